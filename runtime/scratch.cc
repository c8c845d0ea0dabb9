#include "runtime/scratch.h"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#include "runtime/env.h"

namespace cf {
namespace {

// Blocks below this come from malloc's heap, which reuses them without faults.
constexpr int64_t kPoolMinBytes = int64_t{1} << 20;
constexpr size_t kAlign = 64;

struct Block {
  void* p;
  int64_t bytes;
  bool leased;
};

struct Pool {
  std::mutex mu;
  std::vector<Block> blocks;
};

Pool& GetPool() {
  static Pool* pool = new Pool;  // never destroyed: buffers may outlive static destructors
  return *pool;
}

void* AlignedNew(int64_t bytes) {
  const size_t n = static_cast<size_t>((bytes + kAlign - 1) / kAlign * kAlign);
  void* p = std::aligned_alloc(kAlign, std::max<size_t>(n, kAlign));
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

// CF_SCRATCH_POOL=0 serves every block from malloc, as before the pool (to
// measure what it saves).
bool PoolEnabled() {
  static const bool on = EnvSwitch("CF_SCRATCH_POOL");
  return on;
}

bool Pooled(int64_t bytes) { return bytes >= kPoolMinBytes && PoolEnabled(); }

}  // namespace

ScratchBuffer::ScratchBuffer(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 1);
  if (!Pooled(bytes)) {
    p_ = AlignedNew(bytes);
    bytes_ = bytes;
    return;
  }
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> lock(pool.mu);
  // The smallest free block that fits; else grow the largest free one (so the
  // pool holds one block per buffer live at a time, not one per size seen).
  Block* fit = nullptr;
  Block* largest = nullptr;
  for (Block& b : pool.blocks) {
    if (b.leased) continue;
    if (b.bytes >= bytes && (!fit || b.bytes < fit->bytes)) fit = &b;
    if (!largest || b.bytes > largest->bytes) largest = &b;
  }
  if (!fit) {
    if (largest) {
      std::free(largest->p);
      largest->p = AlignedNew(bytes);
      largest->bytes = bytes;
      fit = largest;
    } else {
      pool.blocks.push_back(Block{AlignedNew(bytes), bytes, false});
      fit = &pool.blocks.back();
    }
  }
  fit->leased = true;
  p_ = fit->p;
  bytes_ = fit->bytes;
}

ScratchBuffer::~ScratchBuffer() {
  if (p_ == nullptr) return;
  if (!Pooled(bytes_)) {
    std::free(p_);
    return;
  }
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> lock(pool.mu);
  for (Block& b : pool.blocks)
    if (b.p == p_) b.leased = false;
}

ScratchBuffer& ScratchBuffer::operator=(ScratchBuffer&& o) noexcept {
  if (this != &o) {
    ScratchBuffer old(std::move(*this));
    p_ = o.p_, bytes_ = o.bytes_;
    o.p_ = nullptr, o.bytes_ = 0;
  }
  return *this;
}

int64_t ScratchPoolBytes() {
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> lock(pool.mu);
  int64_t total = 0;
  for (const Block& b : pool.blocks) total += b.bytes;
  return total;
}

void ReleaseFreeScratch() {
  Pool& pool = GetPool();
  std::lock_guard<std::mutex> lock(pool.mu);
  std::erase_if(pool.blocks, [](const Block& b) {
    if (!b.leased) std::free(b.p);
    return !b.leased;
  });
}

}  // namespace cf
