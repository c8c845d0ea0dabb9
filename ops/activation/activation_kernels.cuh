// CUDA kernels of the activations (activation.cu) and of geglu (geglu.cu),
// written against runtime/kdev/kdev.h so that tests/ops/activation_interp_test.cc
// runs the same source on the CPU interpreter. f32 arithmetic (the formulas of
// activation_math.h), 16-byte vector access when the pointers are aligned.
#pragma once

#include <cstdint>

#include "ops/activation/activation_math.h"
#include "ops/elementwise/elementwise_cuda.cuh"
#include "ops/grid_for.h"
#include "runtime/kdev/kdev.h"

namespace cf::act {

// x, out: [n] of T; out = f(x); out may be x. Launch: ew::MapGeometry.
template <typename T, Kind K>
KD_GLOBAL void ActivationKernel(kd::Ptr<const T> x, kd::Ptr<T> out, int64_t n, float p, bool vec) {
  ew::MapElementwise(out, n, vec, [=](float v) { return Forward<K>(v, p); }, x);
}

// x, dy, dx: [n] of T; dx = dy * f'(x); dx may be x. Launch: ew::MapGeometry.
template <typename T, Kind K>
KD_GLOBAL void ActivationBackwardKernel(kd::Ptr<const T> x, kd::Ptr<const T> dy, kd::Ptr<T> dx, int64_t n, float p,
                                        bool vec) {
  ew::MapElementwise(dx, n, vec, [=](float v, float g) { return g * Derivative<K>(v, p); }, x, dy);
}

// x: [rows, 2D] of T (h = x[:, :D], gate = x[:, D:]); out: [rows, D];
// out[r, i] = h[r, i] * gelu(gate[r, i]). One thread per output element.
template <typename T, Kind K>
KD_GLOBAL void GegluKernel(kd::Ptr<const T> x, kd::Ptr<T> out, int64_t rows, int64_t D) {
  const int64_t n = rows * D;
  for (int64_t o = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; o < n;
       o += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t r = o / D, i = o - r * D;
    const kd::Ptr<const T> h = x + r * 2 * D;
    kd::StoreF(out, o, kd::LoadF(h, i) * Forward<K>(kd::LoadF(h, D + i), 0.f));
  }
}

// x: [rows, 2D]; dy: [rows, D]; dx: [rows, 2D] (may be x):
// dh = dy gelu(g), dg = dy h gelu'(g).
template <typename T, Kind K>
KD_GLOBAL void GegluBackwardKernel(kd::Ptr<const T> x, kd::Ptr<const T> dy, kd::Ptr<T> dx, int64_t rows, int64_t D) {
  const int64_t n = rows * D;
  for (int64_t o = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; o < n;
       o += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t r = o / D, i = o - r * D;
    const int64_t hi = r * 2 * D + i, gi = hi + D;
    const float h = kd::LoadF(x, hi), g = kd::LoadF(x, gi), d = kd::LoadF(dy, o);
    kd::StoreF(dx, hi, d * Forward<K>(g, 0.f));
    kd::StoreF(dx, gi, d * h * Derivative<K>(g, 0.f));
  }
}

// Both geglu kernels: one thread per output element (rows * D), block 256.
inline GridStride GegluGeometry(int64_t rows, int64_t D) { return GridStrideFor(rows * D); }

}  // namespace cf::act
