// The register-tiled depthwise conv of the CPU backend: stride 1, dilation 1,
// any kh x kw, NHWC, f32 accumulation (docs/ops/conv.md, "Depthwise").
// conv2d's depthwise CPU kernels (conv_cpu.h) route their stride-1,
// dilation-1 cases here; the fused ConvBlock op calls the forward with a gate
// epilogue. AVX-512 (F, BW, VL) when the CPU has it, a portable path
// otherwise (both add the taps of one output in the order ky, kx; AVX-512
// fuses each multiply-add, the portable path rounds the product first).
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

namespace cf {

// What the tiled depthwise forward does after the taps: store d, or gate the
// two channel halves (the ConvBlock's gate) and store C/2 channels.
enum class DwEpilogue {
  kNone,     // y[p, c] = d[c], c in [0, C)
  kProduct,  // y[p, c] = d[c] * d[c + C/2] * factor, c in [0, C/2)
  kSigmoid,  // y[p, c] = d[c] * sigmoid(d[c + C/2]),  c in [0, C/2)
};

struct DwForwardArgs {
  int64_t n = 0, h = 0, w = 0, c = 0;      // input [n, h, w, c], dense NHWC
  int64_t kh = 0, kw = 0, ph = 0, pw = 0;  // stride 1, dilation 1; ho = h + 2ph - kh + 1, wo = w + 2pw - kw + 1
                                           // (a negative padding crops: backward input uses one when p > k - 1)
  const float* wt = nullptr;    // taps, f32, tap-major: wt[(ky * kw + kx) * c + ch]
  const float* bias = nullptr;  // [c] f32 or null (added to d before the epilogue)
  DwEpilogue epilogue = DwEpilogue::kNone;
  float factor = 1.f;           // kProduct only
  int64_t y_pixel_stride = 0;   // elements between consecutive output pixels; 0 = dense (c, or c/2 with a gate).
                                // Lets the caller write into a channel slice of a wider tensor (a concat).

  int64_t ho() const { return h + 2 * ph - kh + 1; }
  int64_t wo() const { return w + 2 * pw - kw + 1; }
};

// d[n, oy, ox, ch] = bias[ch] + Σ_{ky,kx} wt[(ky*kw+kx)*c + ch] * x[n, oy-ph+ky, ox-pw+kx, ch] (zero outside),
// accumulated in f32, then the epilogue; y[((n*ho + oy)*wo + ox) * stride + ch] in T, T in {float, f16_t,
// bf16_t}. With a gate, c must be even. Multithreaded (ParallelFor).
template <typename T> void DepthwiseForwardTiledCpu(const DwForwardArgs& a, const T* x, T* y);

// The weight gradient of the same geometry (wt, bias, epilogue, factor and
// y_pixel_stride of `a` unused): dwt[(ky*kw+kx)*c + ch] = Σ_{n,oy,ox}
// dy[n, oy, ox, ch] * x[n, oy-ph+ky, ox-pw+kx, ch], dy dense [n, ho, wo, c].
// Per-tile f32 partials added in tile order: the result does not depend on
// the thread count.
template <typename T> void DepthwiseBackwardWeightTiledCpu(const DwForwardArgs& a, const T* x, const T* dy,
                                                           float* dwt);

// Which path the tiled kernels take: "avx512" or "portable".
const char* DepthwiseTiledPath();
// Forces the portable path (tests and benchmarks compare both on one
// machine) or, with false, the automatic choice again; returns whether it
// was forced before. Not thread-safe against running convolutions.
bool ForceDepthwisePortable(bool force);

// Wide kernels (kw >= 9) on AVX-512 run the forward (and so the input
// gradient, a forward with the flipped kernel) as a 1D Winograd F(4, 4)
// along W: ~1.9x fewer multiplies at K = 13, ~2x at K = 25, and a rounding
// error a few times the direct taps' (docs/ops/depthwise-winograd.md).
// EnableDepthwiseWinograd(false) keeps every call on the direct taps (tests,
// benchmarks, debugging); returns the previous setting. Also turned off by the
// environment variable CF_DEPTHWISE_WINOGRAD=0. Not thread-safe against
// running convolutions.
bool EnableDepthwiseWinograd(bool enable);
// "winograd_f4x4" when a kw >= 9 forward would take the Winograd path, "direct" otherwise.
const char* DepthwiseWideKernelPath();

}  // namespace cf
