// Host helpers of the norm family's CUDA kernels (see norm_cuda.cuh).
#include <mutex>
#include <vector>

#include "ops/norm/norm_cuda.cuh"

namespace cf::norm_cuda {

int NumSms() {
  static std::mutex mu;
  static std::vector<int> cache;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 132;
  std::lock_guard<std::mutex> lock(mu);
  if (dev >= static_cast<int>(cache.size())) cache.resize(dev + 1, 0);
  if (cache[dev] == 0) {
    int sms = 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) sms = 132;
    cache[dev] = sms;
  }
  return cache[dev];
}

StatusOr<void*> Workspace(KernelContext& ctx, const char* op, int64_t bytes) {
  if (!ctx.workspace) return absl::InternalError(absl::StrCat(op, ": the CUDA kernel needs a workspace and got none"));
  return ctx.workspace(bytes);
}

}  // namespace cf::norm_cuda
