#include "runtime/cuda_check.h"

#if CF_HAS_CUDA

#include <cstring>

namespace cf::detail {
namespace {

// Base names are unique in the tree, so they identify the file.
const char* BaseName(const char* file) {
  const char* slash = std::strrchr(file, '/');
  return slash != nullptr ? slash + 1 : file;
}

}  // namespace

Status CudaError(cudaError_t e, const char* expr, const char* file, int line) {
  std::string msg = absl::StrFormat("%s failed: %s (%s) at %s:%d", expr, cudaGetErrorName(e),
                                    cudaGetErrorString(e), BaseName(file), line);
  // Clear the runtime's last error, so that the next CF_CUDA_CHECK_LAUNCH()
  // does not report this failure against an unrelated kernel launch.
  (void)cudaGetLastError();
  if (e == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

Status CublasError(cublasStatus_t e, const char* expr, const char* file, int line) {
  std::string msg = absl::StrFormat("%s failed: %s (%s) at %s:%d", expr, cublasGetStatusName(e),
                                    cublasGetStatusString(e), BaseName(file), line);
  if (e == CUBLAS_STATUS_ALLOC_FAILED) return absl::ResourceExhaustedError(msg);
  if (e == CUBLAS_STATUS_INVALID_VALUE || e == CUBLAS_STATUS_NOT_SUPPORTED) {
    return absl::InvalidArgumentError(msg);
  }
  return absl::InternalError(msg);
}

Status CudnnError(cudnnStatus_t e, const char* expr, const char* file, int line) {
  std::string msg = absl::StrFormat("%s failed: %s at %s:%d", expr, cudnnGetErrorString(e),
                                    BaseName(file), line);
  if (e == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
      e == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED) {
    return absl::ResourceExhaustedError(msg);
  }
  // cuDNN 9 groups codes by thousands: 2xxx bad parameter, 3xxx not supported.
  const int category = static_cast<int>(e) / 1000;
  if (category == 2) return absl::InvalidArgumentError(msg);
  if (category == 3) return absl::UnimplementedError(msg);
  return absl::InternalError(msg);
}

}  // namespace cf::detail

#endif  // CF_HAS_CUDA
