// Host helpers declared in cuda_util.cuh.
#include <mutex>
#include <vector>

#include "ops/cuda_util.cuh"

namespace cf {

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

}  // namespace cf
