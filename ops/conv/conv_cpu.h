// CPU kernels of conv2d and its backward ops, for T in {float, double,
// f16_t, bf16_t}. All arrays are dense, channels-last, shaped as in
// ConvParams: x [N, H, W, Cin], w [Cout, kh, kw, Cin/groups], y / dy
// [N, Ho, Wo, Cout], bias [Cout] or null.
#pragma once

#include <memory>

#include "ops/conv/conv_params.h"

namespace cf {

// Optional parts of a GEMM conv call.
template <typename T> struct ConvCpuExtras {
  // Forward only: y = conv(x, w) + bias + residual, residual shaped like y
  // (it may be y itself). The sum is formed in f32 and rounded once.
  const T* residual = nullptr;
  // A slot kept across runs of the node (ops/kernel_state.h), given when the
  // weight has the same values at every run: the packed weight is kept there.
  std::shared_ptr<void>* weight_state = nullptr;
};

// Implicit GEMM on the blocked GEMM (conv_gemm_cpu.cc, docs/ops/conv.md):
// the patches are read through a pointer table, never copied to an im2col
// matrix; any stride, dilation, padding and groups.
template <typename T>
void ConvForwardGemmCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                        const ConvCpuExtras<T>& extras = {});
// dx = dY_ind · W' per stride phase (only the taps that reach each phase).
template <typename T>
void ConvBackwardInputGemmCpu(const ConvParams& p, const T* dy, const T* w, T* dx,
                              const ConvCpuExtras<T>& extras = {});
// dW = dyᵀ · X_ind, accumulated in f32 over bands of output pixels.
template <typename T> void ConvBackwardWeightGemmCpu(const ConvParams& p, const T* x, const T* dy, T* dw);

// Depthwise (groups == Cin == Cout): stride 1 and dilation 1 in f32/f16/bf16
// through the register-tiled kernels (conv_depthwise_tiled_cpu.h), other
// geometries and f64 through direct loops vectorised over channels.
template <typename T> void DepthwiseForwardCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y);
template <typename T> void DepthwiseBackwardInputCpu(const ConvParams& p, const T* dy, const T* w, T* dx);
template <typename T> void DepthwiseBackwardWeightCpu(const ConvParams& p, const T* x, const T* dy, T* dw);

}  // namespace cf
