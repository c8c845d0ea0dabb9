// Reusable host scratch memory for CPU kernels' per-call buffers (packed GEMM
// operands, im2col bands).
//
// Why: those buffers are tens of MiB (a 3x3 conv 1280 -> 1280 packs a 59 MB
// weight every call). glibc serves blocks above its mmap threshold (at most
// 32 MiB, which mallopt(M_MMAP_THRESHOLD) cannot raise) with a fresh mmap, and
// the kernel zero-fills every page on first touch, so each call paid page
// faults for memory it then overwrote: about 20 s of system time per run of
// the SD1.5 UNet benchmark (docs/cpu-performance.md). A ScratchBuffer instead
// leases a block from a process-wide pool that keeps freed blocks, so steady
// state touches no new pages. CF_SCRATCH_POOL=0 turns the pool off (to measure).
//
// The memory is uninitialised: a kernel must write what it reads. The pool
// keeps at most the largest set of blocks that were leased at one time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cf {

// A leased block of at least `bytes` bytes, 64-byte aligned; returned to the
// pool on destruction. Movable, not copyable; any thread may release it.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  explicit ScratchBuffer(int64_t bytes);
  ~ScratchBuffer();
  ScratchBuffer(ScratchBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  ScratchBuffer& operator=(ScratchBuffer&& o) noexcept;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;

  void* data() const { return p_; }
  template <typename T> T* as() const { return static_cast<T*>(p_); }
  int64_t bytes() const { return bytes_; }  // the block's size (>= the request)

 private:
  void* p_ = nullptr;
  int64_t bytes_ = 0;
};

// Bytes the pool holds (leased and free), for reports and tests.
int64_t ScratchPoolBytes();
// Frees the blocks that are not leased (e.g. after a large one-off run).
void ReleaseFreeScratch();

}  // namespace cf
