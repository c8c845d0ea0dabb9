// CUDA random fills (the kernel and its launch geometry are in rng_kernel.cuh);
// the math is runtime/philox.h, shared with the CPU, so the values are
// bit-identical to rng.cc's.

#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"
#include "runtime/philox.h"
#include "runtime/rng.h"
#include "runtime/rng_kernel.cuh"

namespace cf {
namespace {

using detail::RngDistribution;

template <typename T>
Status Launch(T* out, int64_t n, RngDistribution dist, uint64_t seed, uint64_t offset, float a,
              float b, cudaStream_t stream) {
  const rng::FillLaunch g = rng::FillGeometry(n, offset);
  const PhiloxKey key{seed};
  if (dist == RngDistribution::kUniform) {
    rng::PhiloxFillKernel<T, RngDistribution::kUniform>
        <<<g.grid, g.block, 0, stream>>>(out, offset, g.end, g.first_block, g.num_blocks, key, a, b);
  } else {
    rng::PhiloxFillKernel<T, RngDistribution::kNormal>
        <<<g.grid, g.block, 0, stream>>>(out, offset, g.end, g.first_block, g.num_blocks, key, a, b);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

}  // namespace

Status detail::FillRandomCuda(void* data, DType dtype, int64_t n, RngDistribution dist,
                              uint64_t seed, uint64_t offset, float a, float b, int ordinal,
                              void* stream) {
  if (n <= 0) return absl::OkStatus();
  CudaDeviceGuard guard(ordinal);
  CF_RETURN_IF_ERROR(guard.status());
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::f32:
      CF_RETURN_IF_ERROR(Launch(static_cast<float*>(data), n, dist, seed, offset, a, b, s));
      break;
    case DType::f16:
      CF_RETURN_IF_ERROR(Launch(static_cast<f16_t*>(data), n, dist, seed, offset, a, b, s));
      break;
    case DType::bf16:
      CF_RETURN_IF_ERROR(Launch(static_cast<bf16_t*>(data), n, dist, seed, offset, a, b, s));
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("random fill on cuda:", ordinal,
                                                     ": unsupported dtype ", DTypeName(dtype)));
  }
  if (s == nullptr) CF_CUDA_CHECK(cudaStreamSynchronize(nullptr));
  return absl::OkStatus();
}

}  // namespace cf
