// CudaDeviceGuard: makes one CUDA device current for a scope, then restores
// the previous one, so runtime calls never leave the current device changed.
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#include "runtime/status.h"

#if CF_HAS_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"

namespace cf {

class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int ordinal)
      : ordinal_(ordinal),
        previous_(CurrentDevice()),
        status_(previous_ == ordinal ? absl::OkStatus() : Set(ordinal)) {}
  ~CudaDeviceGuard() {
    if (previous_ >= 0 && previous_ != ordinal_) (void)cudaSetDevice(previous_);
  }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

  // Not OK when the device could not be made current.
  const Status& status() const { return status_; }

 private:
  // -1 when it cannot be read (then nothing is restored).
  static int CurrentDevice() {
    int d = -1;
    if (cudaGetDevice(&d) != cudaSuccess) {
      (void)cudaGetLastError();
      d = -1;
    }
    return d;
  }
  static Status Set(int ordinal) {
    CF_CUDA_CHECK(cudaSetDevice(ordinal));
    return absl::OkStatus();
  }
  int ordinal_;
  int previous_;
  Status status_;
};

}  // namespace cf
#endif  // CF_HAS_CUDA
