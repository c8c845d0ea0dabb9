// CudaDeviceGuard: makes one CUDA device current for a scope, then restores
// the previous one, so runtime calls never leave the current device changed.
#pragma once

#include "runtime/status.h"

#if CF_HAS_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"

namespace cf {

class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int ordinal) : ordinal_(ordinal) {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      (void)cudaGetLastError();
      previous_ = -1;
    }
    if (previous_ != ordinal_) status_ = Set(ordinal_);
  }
  ~CudaDeviceGuard() {
    if (previous_ >= 0 && previous_ != ordinal_) (void)cudaSetDevice(previous_);
  }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

  // Not OK when the device could not be made current.
  const Status& status() const { return status_; }

 private:
  static Status Set(int ordinal) {
    CF_CUDA_CHECK(cudaSetDevice(ordinal));
    return absl::OkStatus();
  }
  int ordinal_;
  int previous_ = -1;
  Status status_;
};

}  // namespace cf
#endif  // CF_HAS_CUDA
