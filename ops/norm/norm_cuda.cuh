// Host helpers of the norm family's CUDA kernels: the chunk-sum launch and
// the workspace carve-up (device helpers: norm_kernels.cuh, on runtime/kdev).
#pragma once

#include <cstdint>

#include "ops/cuda_util.cuh"
#include "ops/norm/norm_kernels.cuh"

namespace cf::norm_cuda {

template <typename T>
Status LaunchSumChunks(const float* part_a, const float* part_b, int64_t B, int64_t chunks, int C, T* out_a, T* out_b,
                       cudaStream_t stream) {
  SumChunksKernel<T><<<SumChunksGrid(B, C), dim3(32, 8), 0, stream>>>(
      part_a, part_b, chunks, C, out_a, out_b);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

// Zeroes outputs k >= first of the context (parameter gradients when there
// is nothing to sum).
Status ZeroOutputs(KernelContext& ctx, int first);

// Hands out float slices of one workspace allocation.
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<float*>(base)) {}
  float* Take(int64_t floats) {
    float* p = base_ + used_;
    used_ += (floats + 63) / 64 * 64;  // 256-byte aligned slices
    return p;
  }
  static int64_t Bytes(std::initializer_list<int64_t> floats) {
    int64_t total = 0;
    for (int64_t f : floats) total += (f + 63) / 64 * 64;
    return total * 4;
  }

 private:
  float* base_;
  int64_t used_ = 0;
};

// The workspace of `bytes` from the kernel context, or an error naming `op`.
StatusOr<void*> Workspace(KernelContext& ctx, const char* op, int64_t bytes);

}  // namespace cf::norm_cuda
