// A caching allocator per CUDA device. Requests are rounded to a size class
// (512 B up to 1 MiB, then 2 MiB), freed blocks stay cached and are reused by
// best fit; blocks are never split. Memory freed here is reused at once by the
// next Allocate, so work on several streams must be ordered by the caller.
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "runtime/allocator.h"
#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"

namespace cf {

#if CF_HAS_CUDA
namespace {

constexpr int64_t kSmallLimit = int64_t{1} << 20;  // requests up to 1 MiB are small
constexpr int64_t kSmallGranule = 512;
constexpr int64_t kLargeGranule = int64_t{2} << 20;
constexpr int64_t kMaxBytes = int64_t{1} << 62;    // nothing larger is ever satisfiable

int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// The size class of a request: the block size that serves it.
int64_t BlockSize(int64_t bytes) {
  if (bytes <= kSmallLimit) return std::max(kSmallGranule, RoundUp(bytes, kSmallGranule));
  return RoundUp(std::min(bytes, kMaxBytes), kLargeGranule);
}

class CachingCudaAllocator final : public Allocator {
 public:
  explicit CachingCudaAllocator(int ordinal) : ordinal_(ordinal) {}

  StatusOr<void*> Allocate(int64_t bytes) override {
    if (bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(device().ToString(), " allocate: negative size ", bytes));
    }
    const int64_t size = BlockSize(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = TakeCachedLocked(size);
    if (p == nullptr) {
      CF_ASSIGN_OR_RETURN(p, DeviceMallocLocked(bytes, size));
    }
    live_[p] = size;
    stats_.bytes_allocated += size;
    stats_.peak_bytes_allocated = std::max(stats_.peak_bytes_allocated, stats_.bytes_allocated);
    ++stats_.num_allocs;
    return p;
  }

  void Free(void* ptr) override {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) {
      // Free cannot return an error; a foreign pointer is a bug worth seeing.
      std::fprintf(stderr, "cf: %s allocator: Free(%p) of a pointer it did not allocate; ignored\n",
                   device().ToString().c_str(), ptr);
      return;
    }
    stats_.bytes_allocated -= it->second;
    cached_.emplace(it->second, ptr);
    live_.erase(it);
  }

  Device device() const override { return Device::CUDA(ordinal_); }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void ResetPeak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_allocated = stats_.bytes_allocated;
  }

  void EmptyCache() override {
    std::lock_guard<std::mutex> lock(mu_);
    ReleaseCacheLocked();
  }

 private:
  // Best fit among cached blocks, accepting at most 1/8 of waste (blocks are
  // not split, so a much larger block stays for a request that needs it).
  void* TakeCachedLocked(int64_t size) {
    auto it = cached_.lower_bound(size);
    if (it == cached_.end() || it->first > size + size / 8) return nullptr;
    void* p = it->second;
    cached_.erase(it);
    return p;
  }

  // cudaMalloc of a new block; on out-of-memory, frees the cache and tries once more.
  StatusOr<void*> DeviceMallocLocked(int64_t bytes, int64_t size) {
    CudaDeviceGuard guard(ordinal_);
    CF_RETURN_IF_ERROR(guard.status());
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, static_cast<size_t>(size));
    if (e == cudaErrorMemoryAllocation && !cached_.empty()) {
      (void)cudaGetLastError();
      ReleaseCacheLocked();
      e = cudaMalloc(&p, static_cast<size_t>(size));
    }
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      size_t free_bytes = 0, total_bytes = 0;
      std::string device_info;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
        device_info = absl::StrFormat("; the device has %d of %d bytes free", free_bytes, total_bytes);
      } else {
        (void)cudaGetLastError();
      }
      return absl::ResourceExhaustedError(absl::StrFormat(
          "%s: out of memory allocating %d bytes (block of %d bytes): %s%s", device().ToString(),
          bytes, size, stats_.ToString(), device_info));
    }
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return detail::CudaError(e, "cudaMalloc", __FILE__, __LINE__);
    }
    stats_.bytes_reserved += size;
    ++stats_.num_device_allocs;
    return p;
  }

  void ReleaseCacheLocked() {
    if (cached_.empty()) return;
    CudaDeviceGuard guard(ordinal_);
    // Review fix: a block whose cudaFree fails (e.g. called during a stream
    // capture, where cudaFree is not allowed) is still held: keep it cached
    // and counted instead of leaking it and under-reporting bytes_reserved.
    std::multimap<int64_t, void*> kept;
    for (const auto& [size, p] : cached_) {
      if (cudaFree(p) != cudaSuccess) {
        (void)cudaGetLastError();
        kept.emplace(size, p);
        continue;
      }
      stats_.bytes_reserved -= size;
    }
    cached_.swap(kept);
  }

  const int ordinal_;
  mutable std::mutex mu_;
  std::unordered_map<void*, int64_t> live_;  // pointer -> block size
  std::multimap<int64_t, void*> cached_;     // block size -> free block
  AllocatorStats stats_;
};

}  // namespace

StatusOr<Allocator*> CudaAllocator(int ordinal) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(Device::CUDA(ordinal)));
  // One allocator per device for the life of the process (never destroyed:
  // freeing at exit would race the CUDA runtime's own teardown).
  static const std::vector<CachingCudaAllocator*>* allocators = [] {
    auto* v = new std::vector<CachingCudaAllocator*>();
    for (int i = 0; i < CudaDeviceCount(); ++i) v->push_back(new CachingCudaAllocator(i));
    return v;
  }();
  return (*allocators)[ordinal];
}

#else  // !CF_HAS_CUDA

StatusOr<Allocator*> CudaAllocator(int ordinal) {
  return absl::FailedPreconditionError(absl::StrCat(
      Device::CUDA(ordinal).ToString(), " requested but this build has no CUDA backend"));
}

#endif  // CF_HAS_CUDA

}  // namespace cf
