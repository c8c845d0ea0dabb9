// The epilogue kernels of matmul / linear that cuBLASLt has no epilogue for
// (launched by matmul_cublaslt.cu), written against runtime/kdev/kdev.h so
// tests/ops/matmul_epilogue_interp_test.cc runs the same source on the CPU
// interpreter. One thread per element, grid-stride (launch: GridFor(count),
// 256 threads), f32 arithmetic, in place on the product y.
//
// Activation codes (the order of gemm::Activation): 0 none, 1 erf-GELU,
// 2 tanh-GELU, 3 SiLU; the formulas of ops/activation/activation_math.h.
#pragma once

#include <cstdint>

#include "ops/activation/activation_math.h"
#include "runtime/kdev/kdev.h"

namespace cf::epilogue {

KD_DEVICE float ApplyAct(int code, float v) {
  switch (code) {
    case 1: return act::Forward<act::Kind::kGeluErf>(v, 0.0f);
    case 2: return act::Forward<act::Kind::kGeluTanh>(v, 0.0f);
    case 3: return act::Forward<act::Kind::kSilu>(v, 0.0f);
    default: return v;
  }
}

// y: [count] of T, y = act(y) in place.
template <typename T> KD_GLOBAL void ActivationInPlace(kd::Ptr<T> y, int64_t count, int code) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < count;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x)
    kd::StoreF(y, i, ApplyAct(code, kd::LoadF(kd::Ptr<const T>(y), i)));
}

// y: [rows, n] of T, y = act(y + bias[col]): the bias (and activation) when
// cuBLASLt's bias epilogue cannot take the bias pointer (see kLtBiasAlign).
template <typename T>
KD_GLOBAL void BiasActInPlace(kd::Ptr<T> y, int64_t count, int64_t n, kd::Ptr<const T> bias, int code) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < count;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x)
    kd::StoreF(y, i, ApplyAct(code, kd::LoadF(kd::Ptr<const T>(y), i) + kd::LoadF(bias, i % n)));
}

// y: [rows, n] of T, the fused forms' epilogue after the product:
//   y = act(y + bias[col] + image_bias[row / image_rows, col]) + residual[row, col]
// (each term only when its pointer is set).
template <typename T>
KD_GLOBAL void FusedEpilogueInPlace(kd::Ptr<T> y, int64_t count, int64_t n, kd::Ptr<const T> bias,
                                    kd::Ptr<const T> image_bias, int64_t image_rows, kd::Ptr<const T> residual,
                                    int code) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < count;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    float v = kd::LoadF(kd::Ptr<const T>(y), i);
    const int64_t col = i % n;
    if (bias) v += kd::LoadF(bias, col);
    if (image_bias) v += kd::LoadF(image_bias, (i / n / image_rows) * n + col);
    v = ApplyAct(code, v);
    if (residual) v += kd::LoadF(residual, i);
    kd::StoreF(y, i, v);
  }
}

}  // namespace cf::epilogue
