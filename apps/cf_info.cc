// cf_info: the runtime's view of this machine (devices, dtypes, library
// versions) and of its op registry.
//
//   cf_info            (no options besides --help)
#include <cstdio>

#include "absl/strings/str_join.h"
#include "apps/common/cli.h"
#include "ops/op.h"
#include "runtime/cuda_check.h"
#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/thread_pool.h"

namespace cf {
namespace {

Status Main() {
  std::printf("ConvFusion runtime\n");
  std::printf("  CPU threads        : %d\n", NumThreads());
  std::printf("  CUDA backend       : %s\n", kBuiltWithCuda ? "compiled in" : "not compiled");
#if CF_HAS_CUDA
  int runtime_version = 0, driver_version = 0;
  cudaRuntimeGetVersion(&runtime_version);
  cudaDriverGetVersion(&driver_version);
  std::printf("  CUDA runtime       : %d.%d\n", runtime_version / 1000, (runtime_version % 1000) / 10);
  if (driver_version > 0)
    std::printf("  CUDA driver        : %d.%d\n", driver_version / 1000, (driver_version % 1000) / 10);
  else
    std::printf("  CUDA driver        : none\n");
  std::printf("  cuDNN              : %zu\n", cudnnGetVersion());
  int cublas_version = 0;
  cublasLtHandle_t lt = nullptr;
  if (cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS) {
    cublas_version = static_cast<int>(cublasLtGetVersion());
    cublasLtDestroy(lt);
    std::printf("  cuBLASLt           : %d\n", cublas_version);
  } else {
    std::printf("  cuBLASLt           : %zu (no device to create a handle)\n", cublasLtGetVersion());
  }
  const int n = CudaDeviceCount();
  std::printf("  CUDA devices       : %d\n", n);
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    std::printf("    cuda:%d %s, sm_%d%d, %d SMs, %.1f GiB\n", i, p.name, p.major, p.minor,
                p.multiProcessorCount, static_cast<double>(p.totalGlobalMem) / (1 << 30));
  }
  Status s = CheckDeviceAvailable(Device::CUDA(0));
  if (!s.ok()) std::printf("  GPU status         : %s\n", std::string(s.message()).c_str());
#endif
  std::printf("  storage dtypes     : f32 f16 bf16 (f64 on the CPU for tests), i32 i64 u8 bool\n");
  auto names = OpRegistry::Global().Names();
  std::printf("  ops registered     : %zu\n    %s\n", names.size(), absl::StrJoin(names, " ").c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace cf

int main(int argc, char** argv) {
  cf::cli::App app("cf_info",
                   "The runtime's view of this machine: CUDA, cuDNN and cuBLASLt versions, devices, dtypes and the "
                   "registered ops.");
  return app.Run(argc, argv, [] { return cf::Main(); });
}
