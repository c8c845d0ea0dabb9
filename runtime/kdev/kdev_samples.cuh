// Small kernels written against runtime/kdev/kdev.h: compiled by nvcc in
// kdev_samples.cu (the check that the abstraction lowers to the plain
// instructions) and run on the CPU interpreter by
// tests/runtime/kdev_samples_interp_test.cc. Not wired into any op.
#pragma once

#include <cstdint>
#include <type_traits>

#include "runtime/kdev/kdev.h"

namespace cf::kdev_samples {

KD_DEVICE float WarpSum(float v) {
  KD_UNROLL
  for (int o = 16; o > 0; o >>= 1) v += kd::shfl_xor_sync(kd::kFullMask, v, o);
  return v;
}

// out[b] = sum of x[i] over the grid-stride slice of block b; 1-D blocks of a
// multiple of 32 threads (<= 1024).
template <class T>
KD_GLOBAL void BlockSum(kd::Ptr<const T> x, kd::Ptr<float> out, int64_t n) {
  KD_SHARED(float, warp_sums, [32]);
  float v = 0.f;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < n;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x)
    v += kd::LoadF(x, i);
  v = WarpSum(v);
  const int lane = kd::threadIdx.x & 31, warp = kd::threadIdx.x >> 5, warps = kd::blockDim.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  kd::syncthreads();
  if (warp == 0) {
    v = lane < warps ? float(warp_sums[lane]) : 0.f;
    v = WarpSum(v);
    if (lane == 0) out[kd::blockIdx.x] = v;
  }
}

// y[c, r] = x[r, c] for x [rows, cols]; block (32, 8), grid (ceil(cols/32), ceil(rows/32)).
template <class T>
KD_GLOBAL void Transpose(kd::Ptr<const T> x, kd::Ptr<T> y, int rows, int cols) {
  KD_SHARED(T, tile, [32][33]);  // +1 column: no bank conflicts on the transposed read
  const int c0 = kd::blockIdx.x * 32, r0 = kd::blockIdx.y * 32;
  for (int j = kd::threadIdx.y; j < 32; j += 8) {
    const int r = r0 + j, c = c0 + kd::threadIdx.x;
    if (r < rows && c < cols) tile[j][kd::threadIdx.x] = x[int64_t(r) * cols + c];
  }
  kd::syncthreads();
  for (int j = kd::threadIdx.y; j < 32; j += 8) {
    const int c = c0 + j, r = r0 + kd::threadIdx.x;
    if (r < rows && c < cols) y[int64_t(c) * rows + r] = tile[kd::threadIdx.x][j];
  }
}

// c[M, N] (f32) = a[M, K] * b[K, N], a and b row-major f16 or bf16, M, N, K
// multiples of 16. One warp per 16x16 tile of c (grid (N/16, M/16), block
// 32): two-stage cp.async pipeline of 16x16 tiles of a and b into shared
// memory, ldmatrix (.trans for b) into fragments, two m16n8k16 per step.
template <class T>
KD_GLOBAL void KD_LAUNCH_BOUNDS(32) MmaGemm(kd::Ptr<const T> a, kd::Ptr<const T> b, kd::Ptr<float> c, int M, int N,
                                            int K) {
  KD_SHARED(T, as, [2][16][16]);
  KD_SHARED(T, bs, [2][16][16]);
  const int lane = kd::threadIdx.x;
  const int m0 = kd::blockIdx.y * 16, n0 = kd::blockIdx.x * 16;
  // Lane l copies 16 bytes (8 elements) of row l / 2 of each tile.
  const int row = lane >> 1, col = (lane & 1) * 8;
  auto stage = [&](int s, int k0) {
    kd::cp_async<16>(&as[s][row][col], a + (int64_t(m0 + row) * K + k0 + col));
    kd::cp_async<16>(&bs[s][row][col], b + (int64_t(k0 + row) * N + n0 + col));
    kd::cp_async_commit();
  };
  float acc[2][4] = {};
  const int steps = K / 16;
  stage(0, 0);
  for (int kt = 0; kt < steps; ++kt) {
    const int s = kt & 1;
    if (kt + 1 < steps) {
      stage(s ^ 1, (kt + 1) * 16);
      kd::cp_async_wait<1>();  // this step's tiles have landed, the next ones may be in flight
    } else {
      kd::cp_async_wait<0>();
    }
    kd::syncthreads();
    uint32_t af[4], bf[4];
    // A: lanes 0-15 rows 0-15 of columns 0-7, lanes 16-31 the same rows of columns 8-15.
    kd::ldmatrix_x4(af, &as[s][lane & 15][(lane >> 4) * 8]);
    // B (row-major K x N): matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
    kd::ldmatrix_x4_trans(bf, &bs[s][lane & 15][(lane >> 4) * 8]);
    if constexpr (std::is_same_v<T, kd::bfloat16>) {
      kd::mma_m16n8k16_f32_bf16(acc[0], af, bf, acc[0]);
      kd::mma_m16n8k16_f32_bf16(acc[1], af, bf + 2, acc[1]);
    } else {
      kd::mma_m16n8k16_f32_f16(acc[0], af, bf, acc[0]);
      kd::mma_m16n8k16_f32_f16(acc[1], af, bf + 2, acc[1]);
    }
    kd::syncthreads();  // the stage is overwritten by the copy issued in the next step
  }
  for (int j = 0; j < 2; ++j) {
    KD_UNROLL
    for (int i = 0; i < 4; ++i) {
      const int m = m0 + kd::Mma16816::c_row(lane, i), n = n0 + 8 * j + kd::Mma16816::c_col(lane, i);
      c[int64_t(m) * N + n] = acc[j][i];
    }
  }
  (void)M;
}

}  // namespace cf::kdev_samples
