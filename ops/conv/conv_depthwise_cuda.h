// CUDA depthwise conv2d (groups == Cin == Cout, weight [C, kh, kw, 1]),
// channels-last, for T in {float, __half, __nv_bfloat16}; f32 arithmetic.
// Kernels: conv_depthwise_kernels.cuh; one translation unit per dtype
// (conv_depthwise_{f32,f16,bf16}.cu). Used by conv2d_cuda.cu; include from
// .cu files only. The ConvBlock's gated variant is used by
// ops/convblock/convblock_pyramid.cu.
#pragma once

#include <cuda_runtime.h>

#include <functional>

#include "ops/conv/conv_params.h"

namespace cf {

// y [N, Ho, Wo, C] = depthwise conv of x [N, H, W, C] (+ bias [C] or null).
template <typename T>
Status DepthwiseForwardCuda(const ConvParams& p, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream);

// The ConvBlock's depthwise conv and gate (docs/convblock.md): x [n, h, w, c]
// (c even), taps w_kkc [k, k, c] (odd k in 3..31), padding k/2, bias [c] or
// null; d = the correlation + bias; y [n, h, w, c/2] with y_pixel_stride
// elements from one pixel to the next (>= c/2: a channel slice of a wider
// tensor) = d[.., j] · d[.., j + c/2] · factor (kDwGateProduct) or
// d[.., j] · sigmoid(d[.., j + c/2]) (kDwGateSigmoid). f32 accumulation.
enum DwGateKind : int { kDwGateProduct = 1, kDwGateSigmoid = 2 };
struct DwGateShape {
  int64_t n, h, w, c, k;
};
// TOut is T, or float (instantiated for every T).
template <typename T, typename TOut>
Status DepthwiseGateForwardCuda(const DwGateShape& g, const T* x, const T* w_kkc, const T* bias, float factor,
                                int gate, TOut* y, int64_t y_pixel_stride, cudaStream_t stream);

// dx [N, H, W, C] from dy [N, Ho, Wo, C].
template <typename T>
Status DepthwiseBackwardInputCuda(const ConvParams& p, const T* dy, const T* w, T* dx, cudaStream_t stream);

// dw [C, kh, kw, 1] from x and dy; per-block partial sums go to f32 scratch
// from `workspace` and are added in a fixed order (deterministic).
template <typename T>
Status DepthwiseBackwardWeightCuda(const ConvParams& p, const T* x, const T* dy, T* dw, cudaStream_t stream,
                                   const std::function<StatusOr<void*>(int64_t)>& workspace);

}  // namespace cf
