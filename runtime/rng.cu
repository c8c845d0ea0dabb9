// CUDA random fills; the math is runtime/philox.h, shared with the CPU, so the
// values are bit-identical to rng.cc's.

#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"
#include "runtime/philox.h"
#include "runtime/rng.h"

namespace cf {
namespace {

using detail::RngDistribution;

// Same rounding as the CPU: dtype.h's conversions, not the cuda_fp16 intrinsics.
__device__ __forceinline__ void Store(float* out, float v) { *out = v; }
__device__ __forceinline__ void Store(f16_t* out, float v) { out->bits = F32ToF16Bits(v); }
__device__ __forceinline__ void Store(bf16_t* out, float v) { out->bits = F32ToBF16Bits(v); }

// out: [n] elements of T; out[i] = stream element offset + i. One thread per
// Philox block (4 elements), grid-stride over blocks first_block + j,
// j in [0, num_blocks).
template <typename T, RngDistribution kDist>
__global__ void PhiloxFillKernel(T* __restrict__ out, uint64_t offset, uint64_t end,
                                 uint64_t first_block, int64_t num_blocks, PhiloxKey key, float a,
                                 float b) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < num_blocks;
       j += stride) {
    const uint64_t block = first_block + static_cast<uint64_t>(j);
    float v[4];
    if constexpr (kDist == RngDistribution::kUniform) {
      PhiloxUniformBlock(key, block, a, b, v);
    } else {
      PhiloxNormalBlock(key, block, a, b, v);
    }
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const uint64_t g = block * 4 + static_cast<uint64_t>(lane);
      if (g >= offset && g < end) Store(out + (g - offset), v[lane]);
    }
  }
}

template <typename T>
Status Launch(T* out, int64_t n, RngDistribution dist, uint64_t seed, uint64_t offset, float a,
              float b, cudaStream_t stream) {
  const uint64_t end = offset + static_cast<uint64_t>(n);
  const uint64_t first_block = offset >> 2;
  const int64_t num_blocks = static_cast<int64_t>(((end - 1) >> 2) - first_block + 1);
  constexpr int kThreads = 256;
  const int grid = static_cast<int>(std::min<int64_t>((num_blocks + kThreads - 1) / kThreads, 65536));
  const PhiloxKey key{seed};
  if (dist == RngDistribution::kUniform) {
    PhiloxFillKernel<T, RngDistribution::kUniform>
        <<<grid, kThreads, 0, stream>>>(out, offset, end, first_block, num_blocks, key, a, b);
  } else {
    PhiloxFillKernel<T, RngDistribution::kNormal>
        <<<grid, kThreads, 0, stream>>>(out, offset, end, first_block, num_blocks, key, a, b);
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
