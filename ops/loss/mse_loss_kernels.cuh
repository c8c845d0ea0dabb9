// CUDA kernels of mse_loss and mse_loss_backward (launchers in mse_loss.cu),
// written against runtime/kdev/kdev.h so that tests/ops/loss_interp_test.cc
// runs the same source on the CPU interpreter. The forward is a two-pass block
// reduction: per (sample, chunk) partial sums of (p - t)^2 into the
// workspace, then one block sums them with the sample weights
// (deterministic, no atomics).
#pragma once

#include <cstdint>

#include "ops/grid_for.h"
#include "ops/reduce/block_reduce.cuh"
#include "runtime/kdev/kdev.h"

namespace cf::loss {

// p, t: [B, M] of T; partial: [B, S] f32, partial[b, s] = sum over chunk s
// of sample b of (p - t)^2. One block per (b, s), grid-stride over them.
template <typename T>
KD_GLOBAL void MsePartialKernel(kd::Ptr<const T> p, kd::Ptr<const T> t, kd::Ptr<float> partial, int64_t B, int64_t M,
                                int64_t S, int64_t chunk) {
  KD_SHARED(float, scratch, [32]);
  for (int64_t item = kd::blockIdx.x; item < B * S; item += kd::gridDim.x) {
    const int64_t b = item / S, s = item % S;
    const int64_t end = (s + 1) * chunk < M ? (s + 1) * chunk : M;
    const int64_t i0 = b * M + s * chunk, i1 = b * M + end;
    float v = 0.f;
    for (int64_t i = i0 + kd::threadIdx.x; i < i1; i += kd::blockDim.x) {
      const float d = kd::LoadF(p, i) - kd::LoadF(t, i);
      v += d * d;
    }
    v = BlockSum(v, scratch);
    if (kd::threadIdx.x == 0) partial[item] = v;
  }
}

// partial: [B, S] f32; w: [B] of T or null; out: [] of T =
// inv_n * sum_{b, s} w_b partial[b, s]. One block.
template <typename T>
KD_GLOBAL void MseFinishKernel(kd::Ptr<const float> partial, kd::Ptr<const T> w, kd::Ptr<T> out, int64_t B, int64_t S,
                               float inv_n) {
  KD_SHARED(float, scratch, [32]);
  float v = 0.f;
  for (int64_t j = kd::threadIdx.x; j < B * S; j += kd::blockDim.x)
    v += w ? float(partial[j]) * kd::LoadF(w, j / S) : float(partial[j]);
  v = BlockSum(v, scratch);
  if (kd::threadIdx.x == 0) kd::StoreF(out, 0, v * inv_n);
}

// p, t, dp: [B, M] of T; dy: [1]; w: [B] or null;
// dp = (p - t) * dy * (2 / n) * w_b.
template <typename T>
KD_GLOBAL void MseBackwardKernel(kd::Ptr<const T> p, kd::Ptr<const T> t, kd::Ptr<const T> dy, kd::Ptr<const T> w,
                                 kd::Ptr<T> dp, int64_t n, int64_t M, float two_over_n) {
  const float c = kd::LoadF(dy, 0) * two_over_n;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < n;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const float cb = w ? c * kd::LoadF(w, i / M) : c;
    kd::StoreF(dp, i, (kd::LoadF(p, i) - kd::LoadF(t, i)) * cb);
  }
}

// The forward's shape for n elements in B samples (M = n / B each) on a GPU
// with num_sms multiprocessors: S chunks of >= 4096 elements per sample,
// about four blocks per SM in all; B * S partial sums (the workspace, f32);
// the partial pass on `blocks` blocks of 256, the finish on one of 1024.
struct MseLaunch {
  int64_t S, chunk, partials;
  unsigned blocks, block;
  unsigned finish_block;
};
inline MseLaunch MseGeometry(int64_t n, int64_t B, int num_sms) {
  const int64_t M = n / B;
  int64_t S = (4LL * num_sms + B - 1) / B;
  if (M / 4096 < S) S = M / 4096;
  if (S < 1) S = 1;
  int64_t chunk = (M + S - 1) / S;
  if (chunk < 1) chunk = 1;
  const int64_t cap = 65535LL * 16;
  return {S, chunk, B * S, static_cast<unsigned>(B * S < cap ? B * S : cap), 256u, 1024u};
}

// The backward: one thread per element, block 256.
inline GridStride MseBackwardGeometry(int64_t n) { return GridStrideFor(n); }

}  // namespace cf::loss
