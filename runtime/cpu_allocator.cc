#include <atomic>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#include "runtime/allocator.h"

namespace cf {

std::string AllocatorStats::ToString() const {
  return absl::StrFormat("allocated %d B, reserved %d B, peak %d B, %d allocs (%d from the system)",
                         bytes_allocated, bytes_reserved, peak_bytes_allocated, num_allocs,
                         num_device_allocs);
}

namespace {

// Aligned host memory; keeps sizes so that statistics are exact.
class HostAllocator final : public Allocator {
 public:
  StatusOr<void*> Allocate(int64_t bytes) override {
    if (bytes < 0) return absl::InvalidArgumentError(absl::StrCat("cpu allocate: negative size ", bytes));
    size_t rounded = static_cast<size_t>((bytes + 255) / 256 * 256);
    if (rounded == 0) rounded = 256;
    void* p = std::aligned_alloc(256, rounded);
    std::lock_guard<std::mutex> lock(mu_);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "cpu: out of memory allocating %d bytes (%s)", bytes, StatsLocked().ToString()));
    }
    sizes_[p] = static_cast<int64_t>(rounded);
    stats_.bytes_allocated += static_cast<int64_t>(rounded);
    stats_.bytes_reserved = stats_.bytes_allocated;
    stats_.peak_bytes_allocated = std::max(stats_.peak_bytes_allocated, stats_.bytes_allocated);
    ++stats_.num_allocs;
    ++stats_.num_device_allocs;
    return p;
  }
  void Free(void* ptr) override {
    if (ptr == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sizes_.find(ptr);
      if (it != sizes_.end()) {
        stats_.bytes_allocated -= it->second;
        stats_.bytes_reserved = stats_.bytes_allocated;
        sizes_.erase(it);
      }
    }
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

 private:
  AllocatorStats StatsLocked() const { return stats_; }
  mutable std::mutex mu_;
  std::unordered_map<void*, int64_t> sizes_;
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
