// Winograd F(4x4, 3x3) for dense 3x3 convolutions on the CPU
// (conv_winograd_cpu.cc, docs/ops/conv-winograd.md): stride 1, dilation 1,
// groups 1, on AVX-512; f32, f16 or bf16 storage, f32 arithmetic. Each 4x4 block of outputs costs 36
// products per (Cin, Cout) pair instead of 144, run as 36 GEMMs on the
// blocked GEMM (ops/matmul/cpu_gemm.h) over blocks of tiles that stay in
// the caches. conv2d's CPU kernels take this path where
// ConvWinogradApplies() says so and the implicit GEMM (conv_cpu.h)
// elsewhere.
#pragma once

#include "ops/conv/conv_cpu.h"

namespace cf {

// Whether conv2d (forward, or backward input when `backward_input`) of
// geometry p in f32, f16 or bf16 runs on the Winograd path: EnableConvWinograd is on,
// the CPU has AVX-512, the conv is 3x3 / stride 1 / dilation 1 / groups 1
// with >= 16 channels on each side, padding <= 2 (backward input), its
// transformed weight (36 · Cin · Cout floats) is at most 256 MiB, and it has
// enough 4x4 output tiles to pay for the transforms: 4 when the transformed
// weight is kept across calls (`kept_weight`: a parameter weight), 128 when
// it is made at every call, and at least 64 for a transformed weight above
// 64 MiB (the memory it keeps must buy enough time).
bool ConvWinogradApplies(const ConvParams& p, bool backward_input = false, bool kept_weight = false);

// y = conv(x, w) + bias + residual as ConvForwardGemmCpu, for any 3x3,
// stride-1, dilation-1, groups-1 geometry and padding (the caller checks
// ConvWinogradApplies for the speed; the results hold for every such
// geometry; other geometries, empty ones and CPUs without AVX-512 go to
// ConvForwardGemmCpu). The transformed weight is kept in extras.weight_state.
// T: float, f16_t or bf16_t (the transforms and GEMMs in f32, rounded once to T).
template <typename T>
void ConvForwardWinogradCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                            const ConvCpuExtras<T>& extras = {});
// dx of that conv: the forward Winograd conv of dy with the weight rotated
// by 180° and its channels swapped, padding 2 − p (p.ph, p.pw <= 2; other
// geometries go to ConvBackwardInputGemmCpu).
template <typename T>
void ConvBackwardInputWinogradCpu(const ConvParams& p, const T* dy, const T* w, T* dx,
                                  const ConvCpuExtras<T>& extras = {});

// Turns the Winograd path on (the default unless CF_CONV_WINOGRAD=0 is in
// the environment) or off, so tests and benchmarks compare both paths in
// one run; returns the previous setting. Not thread-safe against running
// convs.
bool EnableConvWinograd(bool enable);
// "winograd_f4x4" or "implicit_gemm": the path conv2d's forward takes for p (f32, f16, bf16).
const char* ConvForwardPath(const ConvParams& p, bool kept_weight = false);

}  // namespace cf
