#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "runtime/allocator.h"
#include "runtime/env.h"

namespace cf {

std::string AllocatorStats::ToString() const {
  return absl::StrFormat("allocated %d B, reserved %d B, peak %d B, %d allocs (%d from the system)",
                         bytes_allocated, bytes_reserved, peak_bytes_allocated, num_allocs,
                         num_device_allocs);
}

namespace {

// Why a cache: glibc serves blocks above its mmap threshold (at most 32 MiB)
// from fresh pages, or trims its heap once a large block is freed, so a tensor
// of that size allocated on every run (an executor's output, 10.5 MB for the
// SD1.5 ConvBlock) page-faults in every run: ~2200 faults and ~3 ms of a
// 17 ms block (docs/convblock.md). Blocks from kCacheMinBytes up are kept
// after Free and handed out again for a request of about the same size;
// smaller ones come from malloc's heap, which reuses them without faults.
constexpr int64_t kCacheMinBytes = int64_t{1} << 20;
constexpr int64_t kCacheGranule = int64_t{64} << 10;
// A free block serves requests down to 7/8 of its size (so a cached block is
// never much larger than what it holds).
constexpr int64_t kCacheSlackDivisor = 8;
// At most this much is held free; beyond it the oldest free blocks go back.
constexpr int64_t kCacheMaxFreeBytes = int64_t{512} << 20;

// CF_HOST_CACHE=0 frees every block at once, as malloc alone would (to measure).
bool CacheEnabled() {
  static const bool on = EnvSwitch("CF_HOST_CACHE");
  return on;
}

int64_t Rounded(int64_t bytes) {
  if (bytes >= kCacheMinBytes) return (bytes + kCacheGranule - 1) / kCacheGranule * kCacheGranule;
  return std::max<int64_t>((bytes + 255) / 256 * 256, 256);
}

// Aligned host memory. Keeps sizes so that statistics are exact, and large
// freed blocks for reuse (bytes_reserved counts them; EmptyCache frees them).
class HostAllocator final : public Allocator {
 public:
  StatusOr<void*> Allocate(int64_t bytes) override {
    if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("cpu allocate: negative size ", bytes));
    const int64_t rounded = Rounded(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = rounded >= kCacheMinBytes ? TakeCachedLocked(rounded) : nullptr;
    int64_t size = rounded;
    if (p != nullptr) {
      size = sizes_.at(p);
    } else {
      p = std::aligned_alloc(256, static_cast<size_t>(rounded));
      if (p == nullptr && !free_.empty()) {  // the cache may hold what the system lacks
        ReleaseFreeLocked(0);
        p = std::aligned_alloc(256, static_cast<size_t>(rounded));
      }
      if (p == nullptr) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "cpu: out of memory allocating %d bytes (%s)", bytes, StatsLocked().ToString()));
      }
      sizes_[p] = rounded;
      stats_.bytes_reserved += rounded;
      ++stats_.num_device_allocs;
    }
    stats_.bytes_allocated += size;
    stats_.peak_bytes_allocated = std::max(stats_.peak_bytes_allocated, stats_.bytes_allocated);
    ++stats_.num_allocs;
    return p;
  }
  void Free(void* ptr) override {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(ptr);
    if (it == sizes_.end()) {
      std::free(ptr);  // not ours (kept as before: the caller's contract)
      return;
    }
    const int64_t size = it->second;
    stats_.bytes_allocated -= size;
    if (size >= kCacheMinBytes && CacheEnabled()) {
      free_.push_back(ptr);
      free_bytes_ += size;
      ReleaseFreeLocked(kCacheMaxFreeBytes);
      return;
    }
    stats_.bytes_reserved -= size;
    sizes_.erase(it);
    std::free(ptr);
  }
  Device device() const override { return Device::CPU(); }
  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return StatsLocked();
  }
  void ResetPeak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_allocated = stats_.bytes_allocated;
  }
  void EmptyCache() override {
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseFreeLocked(0);
  }

 private:
  AllocatorStats StatsLocked() const { return stats_; }

  // The smallest free block of [rounded, rounded + rounded / 8] bytes, or null.
  void* TakeCachedLocked(int64_t rounded) {
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it) {
      const int64_t s = sizes_.at(*it);
      if (s >= rounded && s <= rounded + rounded / kCacheSlackDivisor &&
          (best == free_.end() || s < sizes_.at(*best)))
        best = it;
    }
    if (best == free_.end()) return nullptr;
    void* p = *best;
    free_bytes_ -= sizes_.at(p);
    free_.erase(best);
    return p;
  }

  // Frees the oldest free blocks until at most `keep` bytes are held free.
  void ReleaseFreeLocked(int64_t keep) {
    while (free_bytes_ > keep && !free_.empty()) {
      void* p = free_.front();
      free_.pop_front();
      const int64_t s = sizes_.at(p);
      free_bytes_ -= s;
      stats_.bytes_reserved -= s;
      sizes_.erase(p);
      std::free(p);
    }
  }

  mutable std::mutex mu_;
  std::unordered_map<void*, int64_t> sizes_;  // every block held, leased or free
  std::deque<void*> free_;                     // cached free blocks, oldest first
  int64_t free_bytes_ = 0;
  AllocatorStats stats_;
};

}  // namespace
Allocator* CpuAllocator() {
  static HostAllocator* a = new HostAllocator();
  return a;
}

StatusOr<Allocator*> AllocatorFor(Device d) {
  if (d.is_cpu()) return CpuAllocator();
  return CudaAllocator(d.ordinal);
}

}  // namespace cf
