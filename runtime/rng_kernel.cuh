// The CUDA random fill kernel (launcher in rng.cu), written against
// runtime/kdev/kdev.h so that tests/runtime/rng_interp_test.cc runs the same
// source on the CPU interpreter. The math is runtime/philox.h, shared with
// the CPU fill (rng.cc), so the values are bit-identical to it.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"
#include "runtime/kdev/kdev.h"
#include "runtime/philox.h"
#include "runtime/rng.h"

namespace cf::rng {

// Same rounding as the CPU: dtype.h's conversions, not the cuda_fp16 intrinsics.
KD_DEVICE void StoreRng(kd::Ptr<float> out, uint64_t i, float v) { out[i] = v; }
KD_DEVICE void StoreRng(kd::Ptr<f16_t> out, uint64_t i, float v) { out[i] = f16_t{F32ToF16Bits(v)}; }
KD_DEVICE void StoreRng(kd::Ptr<bf16_t> out, uint64_t i, float v) { out[i] = bf16_t{F32ToBF16Bits(v)}; }

// out: [n] elements of T; out[i] = stream element offset + i. One thread per
// Philox block (4 elements), grid-stride over blocks first_block + j,
// j in [0, num_blocks).
template <typename T, detail::RngDistribution kDist>
KD_GLOBAL void PhiloxFillKernel(kd::Ptr<T> KD_RESTRICT out, uint64_t offset, uint64_t end, uint64_t first_block,
                                int64_t num_blocks, PhiloxKey key, float a, float b) {
  const int64_t stride = static_cast<int64_t>(kd::gridDim.x) * kd::blockDim.x;
  for (int64_t j = static_cast<int64_t>(kd::blockIdx.x) * kd::blockDim.x + kd::threadIdx.x; j < num_blocks;
       j += stride) {
    const uint64_t block = first_block + static_cast<uint64_t>(j);
    float v[4];
    if constexpr (kDist == detail::RngDistribution::kUniform) {
      PhiloxUniformBlock(key, block, a, b, v);
    } else {
      PhiloxNormalBlock(key, block, a, b, v);
    }
    KD_UNROLL
    for (int lane = 0; lane < 4; ++lane) {
      const uint64_t g = block * 4 + static_cast<uint64_t>(lane);
      if (g >= offset && g < end) StoreRng(out, g - offset, v[lane]);
    }
  }
}

// The fill of n >= 1 elements from stream element `offset`: the Philox
// blocks it touches, one thread each, blocks of 256, at most 65536 blocks.
struct FillLaunch {
  uint64_t end, first_block;
  int64_t num_blocks;
  unsigned grid, block;
};
inline FillLaunch FillGeometry(int64_t n, uint64_t offset) {
  constexpr int kThreads = 256;
  const uint64_t end = offset + static_cast<uint64_t>(n);
  const uint64_t first_block = offset >> 2;
  const int64_t num_blocks = static_cast<int64_t>(((end - 1) >> 2) - first_block + 1);
  const int64_t blocks = (num_blocks + kThreads - 1) / kThreads;
  return {end, first_block, num_blocks, static_cast<unsigned>(blocks < 65536 ? blocks : 65536), kThreads};
}

}  // namespace cf::rng
