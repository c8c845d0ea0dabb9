// Checked CUDA, cuBLAS and cuDNN calls: a failure becomes an absl::Status that
// names the call, the error string, the file and the line.
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#include "runtime/status.h"

#if CF_HAS_CUDA
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

namespace cf::detail {
Status CudaError(cudaError_t e, const char* expr, const char* file, int line);
Status CublasError(cublasStatus_t e, const char* expr, const char* file, int line);
Status CudnnError(cudnnStatus_t e, const char* expr, const char* file, int line);
}  // namespace cf::detail

#define CF_CUDA_CHECK(expr)                                                      \
  do {                                                                           \
    cudaError_t cf_e_ = (expr);                                                  \
    if (cf_e_ != cudaSuccess)                                                    \
      return ::cf::detail::CudaError(cf_e_, #expr, __FILE__, __LINE__);          \
  } while (0)
#define CF_CUBLAS_CHECK(expr)                                                    \
  do {                                                                           \
    cublasStatus_t cf_e_ = (expr);                                               \
    if (cf_e_ != CUBLAS_STATUS_SUCCESS)                                          \
      return ::cf::detail::CublasError(cf_e_, #expr, __FILE__, __LINE__);        \
  } while (0)
#define CF_CUDNN_CHECK(expr)                                                     \
  do {                                                                           \
    cudnnStatus_t cf_e_ = (expr);                                                \
    if (cf_e_ != CUDNN_STATUS_SUCCESS)                                           \
      return ::cf::detail::CudnnError(cf_e_, #expr, __FILE__, __LINE__);         \
  } while (0)
// After a kernel launch: reports launch errors (bad configuration etc.).
#define CF_CUDA_CHECK_LAUNCH() CF_CUDA_CHECK(cudaGetLastError())
#endif
