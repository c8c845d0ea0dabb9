// CUDA kernel of `full` (launcher in full.cu), written against
// runtime/kdev/kdev.h so that tests/ops/full_interp_test.cc runs the same
// source on the CPU interpreter.
#pragma once

#include <cstdint>

#include "ops/grid_for.h"
#include "runtime/kdev/kdev.h"

namespace cf::core {

// out: [n] of T, every element set to v (rounded to T once per store).
template <typename T>
KD_GLOBAL void FullKernel(kd::Ptr<T> out, int64_t n, float v) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < n;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x)
    kd::StoreF(out, i, v);
}

// One thread per element, block 256.
inline GridStride FullGeometry(int64_t n) { return GridStrideFor(n); }

}  // namespace cf::core
