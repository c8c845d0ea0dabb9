// Allocators: aligned CPU memory that keeps large freed blocks, and a caching
// allocator per CUDA device.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/device.h"
#include "runtime/status.h"

namespace cf {

struct AllocatorStats {
  int64_t bytes_allocated = 0;       // in live allocations handed out
  int64_t bytes_reserved = 0;        // held from the system (>= allocated for a cache)
  int64_t peak_bytes_allocated = 0;
  int64_t num_allocs = 0;            // Allocate calls served
  int64_t num_device_allocs = 0;     // calls into the system allocator (cudaMalloc)
  std::string ToString() const;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  // Returns at least `bytes` bytes aligned to 256 bytes (0 bytes gives a valid
  // unique pointer). Out of memory is a ResourceExhausted error that says what
  // was asked and what is in use.
  virtual StatusOr<void*> Allocate(int64_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual Device device() const = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void ResetPeak() = 0;
  // Returns cached, unused memory to the system (the CPU allocator keeps freed
  // blocks of 1 MiB and more for reuse; the CUDA one keeps all).
  virtual void EmptyCache() {}
};

// Process-wide allocators. CUDA fails with a clear error without a device.
Allocator* CpuAllocator();
StatusOr<Allocator*> CudaAllocator(int ordinal);
StatusOr<Allocator*> AllocatorFor(Device d);

}  // namespace cf
