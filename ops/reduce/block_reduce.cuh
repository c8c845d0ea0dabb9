// Warp and block sums / maxima in f32 for the reduction, softmax and loss
// kernels, written against runtime/kdev/kdev.h (nvcc: the built-ins; host
// compiler: the CPU interpreter, tests/ops/reduce_interp_test.cc).
#pragma once

#include <cmath>

#include "runtime/kdev/kdev.h"

namespace cf {

KD_DEVICE float WarpSum(float v) {
  KD_UNROLL
  for (int o = 16; o > 0; o >>= 1) v += kd::shfl_xor_sync(kd::kFullMask, v, o);
  return v;
}
KD_DEVICE float WarpMax(float v) {
  KD_UNROLL
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, kd::shfl_xor_sync(kd::kFullMask, v, o));
  return v;
}

// Sum of v over a 1-D block (blockDim.x a multiple of 32, <= 1024); every
// thread gets the result. `scratch` is 32 floats of shared memory; the call
// synchronises the block, so it may be reused by a following call.
KD_DEVICE float BlockSum(float v, kd::Ptr<float> scratch) {
  const int lane = kd::threadIdx.x & 31, warp = kd::threadIdx.x >> 5, warps = kd::blockDim.x >> 5;
  v = WarpSum(v);
  kd::syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  kd::syncthreads();
  v = lane < warps ? float(scratch[lane]) : 0.f;
  return WarpSum(v);
}

KD_DEVICE float BlockMax(float v, kd::Ptr<float> scratch) {
  const int lane = kd::threadIdx.x & 31, warp = kd::threadIdx.x >> 5, warps = kd::blockDim.x >> 5;
  v = WarpMax(v);
  kd::syncthreads();
  if (lane == 0) scratch[warp] = v;
  kd::syncthreads();
  v = lane < warps ? float(scratch[lane]) : -INFINITY;
  return WarpMax(v);
}

}  // namespace cf
