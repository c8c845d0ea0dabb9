// Internal to the tiled depthwise conv (conv_depthwise_tiled_cpu.cc): the
// per-path kernels the tile driver calls. A channel block is 16 channels; a
// tile's scratch holds them as f32 [rows][cols][16] (zero outside the image
// and past the last channel), so the kernels have no bounds checks. The
// driver keeps scratch 64-byte aligned (loads of a zmm then never split a
// cache line); the kernels do not require it.
#pragma once

#include <cstdint>

#include "ops/conv/conv_depthwise_tiled_cpu.h"

namespace cf::dw {

constexpr int kLanes = 16;  // channels per block (one zmm of f32)

// Moving tiles between tensors of storage type T and f32 scratch.
template <typename T> struct IoKernels {
  // dst[r][j][l] = img[y0 + r][x0 + j][c0 + l] for l < nc where inside the
  // image [h, w, c]; 0 elsewhere (r < rows, j < cols, l < 16).
  void (*pack)(const T* img, int64_t h, int64_t w, int64_t c, int64_t c0, int nc, int64_t y0, int64_t rows,
               int64_t x0, int64_t cols, float* dst);
  // y[p * stride + l] = epilogue(a[p][l], b[p][l]) for p < npix, l < nc
  // (b: the gate's second half, unused by kNone).
  void (*store)(const float* a, const float* b, int64_t npix, int nc, DwEpilogue ep, float factor, T* y,
                int64_t stride);
};

// The f32 arithmetic on scratch (taps: wp[(ky*kw + kx)*16 + l]).
struct MathKernels {
  // out[q][p][l] = bias[l] + Σ_{ky,kx} wp[(ky*kw+kx)*16 + l] * in[((q+ky)*row + p + kx)*16 + l] for output
  // rows q < nrows (1 or 2) and p < npix, taps in the order ky, kx; row = pixels per scratch row; bias may
  // be null (0).
  void (*fwd_rows)(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
                   int64_t npix, int nrows, float* out);
  // part[(ky*kw+kx)*16 + l] = Σ_{oy<th, ox<tw} dy[(oy*tw + ox)*16 + l] * xs[((oy+ky)*row + ox+kx)*16 + l],
  // summed in the order oy, ox.
  void (*wgrad)(const float* xs, int64_t row, const float* dy, int64_t th, int64_t tw, int64_t kh, int64_t kw,
                float* part);
};

// AVX-512 F + BW + VL (conv_depthwise_tiled_avx512.cc); call only when
// HasAvx512() says yes.
bool HasAvx512();
template <typename T> const IoKernels<T>& Avx512Io();
const MathKernels& Avx512Math();

// The Winograd F(4, 4) forward (conv_depthwise_winograd_avx512.cc): kernels
// at least this wide take it, where fewer multiplies pay for the transforms.
constexpr int64_t kWinogradMinKw = 9;
// Whether the forward `a` takes the Winograd path (AVX-512, kw >= kWinogradMinKw,
// an output at least 4 wide, not turned off).
bool UseWinograd(const DwForwardArgs& a);
// Turns the Winograd path on (the default) or off; returns the previous setting.
bool EnableWinograd(bool enable);
// DepthwiseForwardTiledCpu's contract, through Winograd (call when UseWinograd(a)).
template <typename T> void ForwardWinograd(const DwForwardArgs& a, const T* x, T* y);

}  // namespace cf::dw
