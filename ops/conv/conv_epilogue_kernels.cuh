// The epilogue kernels of conv2d's CUDA path after cuDNN / the depthwise
// kernel (launched by conv2d_cuda.cu), written against runtime/kdev/kdev.h so
// tests/ops/conv_epilogue_interp_test.cc runs the same source on the CPU
// interpreter. One thread per element, grid-stride (launch: GridFor(count),
// 256 threads), f32 arithmetic, in place on y [N, Ho, Wo, Cout].
// Activation codes: those of matmul_epilogue_kernels.cuh.
#pragma once

#include <cstdint>

#include "ops/matmul/matmul_epilogue_kernels.cuh"
#include "runtime/kdev/kdev.h"

namespace cf::epilogue {

// y [rows, c] += bias [c].
template <typename T> KD_GLOBAL void AddBias(kd::Ptr<T> y, kd::Ptr<const T> bias, int64_t count, int64_t c) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < count;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x)
    kd::StoreF(y, i, kd::LoadF(kd::Ptr<const T>(y), i) + kd::LoadF(bias, i % c));
}

// y: [N, Ho, Wo, Cout] (image = Ho * Wo pixels), the fused forms' epilogue
// (ConvForm), in place (before the move into this header the image index was
// i / image, off by the factor Cout; found by conv_epilogue_interp_test):
//   y = act(y + bias[c] + image_bias[n, c]) + residual  (absent terms skipped)
template <typename T>
KD_GLOBAL void FusedEpilogue(kd::Ptr<T> y, int64_t count, int64_t c, int64_t image, kd::Ptr<const T> bias,
                             kd::Ptr<const T> image_bias, int act, kd::Ptr<const T> residual) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < count;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    float v = kd::LoadF(kd::Ptr<const T>(y), i);
    const int64_t ch = i % c;
    if (bias) v += kd::LoadF(bias, ch);
    if (image_bias) v += kd::LoadF(image_bias, (i / (image * c)) * c + ch);  // image i / (Ho Wo Cout)
    v = ApplyAct(act, v);
    if (residual) v += kd::LoadF(residual, i);
    kd::StoreF(y, i, v);
  }
}

}  // namespace cf::epilogue
