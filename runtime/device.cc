#include "runtime/device.h"

#if CF_HAS_CUDA
#include <cuda_runtime.h>
#endif

namespace cf {
namespace {

#if CF_HAS_CUDA
// cudaGetDeviceCount once per process: it returns an error (never crashes)
// when there is no driver or no GPU, and that error is the reason we report.
struct CudaProbe {
  int count = 0;
  cudaError_t error = cudaSuccess;
};

const CudaProbe& Probe() {
  static const CudaProbe probe = [] {
    CudaProbe p;
    p.error = cudaGetDeviceCount(&p.count);
    if (p.error != cudaSuccess) {
      p.count = 0;
      (void)cudaGetLastError();  // do not leave the error sticky for later calls
    }
    return p;
  }();
  return probe;
}
#endif

}  // namespace

int CudaDeviceCount() {
#if CF_HAS_CUDA
  return Probe().count;
#else
  return 0;
#endif
}

Status CheckDeviceAvailable(Device d) {
  if (d.is_cpu()) return absl::OkStatus();
#if CF_HAS_CUDA
  const CudaProbe& p = Probe();
  if (p.error != cudaSuccess) {
    return absl::FailedPreconditionError(
        absl::StrCat(d.ToString(), " requested but no CUDA device is present (cudaGetDeviceCount: ",
                     cudaGetErrorName(p.error), ": ", cudaGetErrorString(p.error), ")"));
  }
  if (p.count == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        d.ToString(), " requested but no CUDA device is present (cudaGetDeviceCount: 0 devices)"));
  }
  if (d.ordinal < 0 || d.ordinal >= p.count) {
    return absl::InvalidArgumentError(absl::StrCat(d.ToString(), " requested but this machine has ",
                                                   p.count, " CUDA device(s)"));
  }
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError(
      absl::StrCat(d.ToString(), " requested but this build has no CUDA backend"));
#endif
}

}  // namespace cf
