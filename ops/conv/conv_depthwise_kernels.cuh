// Depthwise conv2d kernels, written against runtime/kdev/kdev.h: compiled by
// nvcc through conv_depthwise_launch.cuh (one .cu per dtype, so the three
// instantiations compile in parallel) and run on the CPU interpreter by
// tests/ops/conv_interp_test.cc (conv2d) and tests/ops/convblock_interp_test.cc
// (the ConvBlock's gated variant). The launch geometry (grid, block, dynamic
// shared memory) is computed here, by host functions both sides call.
//
// Version history (each tested by tests/ops/conv_gpu_test.cc):
//   v1  one thread per output element, taps read from global memory (kept as
//       the generic path: any stride, dilation and kernel size).
//   v2  stride-1, dilation-1 path: a 16-channel x (8 + kh - 1) x (16 + kw - 1)
//       input window and the block's taps staged in shared memory; each
//       thread keeps 8 outputs of one row in registers and slides the row of
//       inputs past a register copy of one row of taps (kw a template
//       parameter, so everything unrolls into FMAs on registers). Backward
//       input is the same kernel on dy with the taps flipped and padding
//       kw - 1 - pw. Backward weight stages x and dy tiles the same way, each
//       thread accumulating one or two rows of taps over the tiles its block
//       visits; per-block partials are summed by a second kernel in block
//       order (deterministic).
//   v3  DwTiled options (TiledEpilogue, block-uniform): the weight layout
//       (conv2d's [C, kh, kw] or the ConvBlock's [kh, kw, C]), an output
//       pixel stride (writing a channel slice of a wider tensor) and, with
//       kGated, the ConvBlock's gate: a block owns 16 gated channels
//       [c0, c0 + 16) of [0, C/2), stages the input tiles of c and c + C/2 in
//       turn into the same shared memory, keeps both accumulator sets in
//       registers and writes gate(d1, d2); the output may be f32 for
//       low-precision input. The plain path is v2's arithmetic unchanged.
//       Not yet run on a GPU (tests/ops/convblock_gpu_test.cc waits for one).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "ops/conv/conv_params.h"
#include "runtime/kdev/kdev.h"

namespace cf {
namespace dwconv {

constexpr int kCB = 16;              // channels per block: 16 lanes of a half-warp
constexpr int kThreads = 256;        // 16 channels x 16 groups
constexpr int kGroups = kThreads / kCB;
constexpr int kTH = 8;               // output rows per tile
constexpr int kTW = 8;               // outputs per thread along a row
constexpr int kTWB = 2 * kTW;        // output columns per tile
constexpr int kMaxTiledK = 31;

KD_HD constexpr int OddUp(int v) { return v | 1; }

// Geometry of a stride-1, dilation-1 depthwise correlation:
// out[n, oy, ox, c] = Σ w[c, ky, kx] · in[n, oy - ph + ky, ox - pw + kx, c].
struct TiledShape {
  int n, ih, iw, c, oh, ow, kh, kw, ph, pw;
};

// Shared memory of one tile of the input: rows kTH + kh - 1, row stride
// OddUp(kTWB + kw - 1) pixels (odd, so the two groups of a warp, which read
// neighbouring rows, hit disjoint banks), 16 channels, f32.
KD_HD int TileFloats(int kh, int kw) { return (kTH + kh - 1) * OddUp(kTWB + kw - 1) * kCB; }

// Stages in[n, iy0 .. iy0 + kTH + kh - 1, ix0 .. ix0 + kTWB + kw - 1, cb + c0 .. cb + c0 + 16]
// into in_s as f32, zero outside the image and where c0 + ch >= climit; in
// has cstride channels per pixel (cb = 0, climit = cstride = C for a plain
// conv; cb = 0 or C/2, climit = C/2 for the two halves of a gated one).
template <typename T>
KD_DEVICE void StageInput(kd::Ptr<const T> KD_RESTRICT in, kd::Ptr<float> in_s, int n, int ih, int iw, int cstride,
                          int cb, int climit, int iy0, int ix0, int c0, int kh, int kw) {
  const int cols = kTWB + kw - 1, iws = OddUp(cols), px = (kTH + kh - 1) * cols;
  for (int i = kd::threadIdx.x; i < px * kCB; i += kThreads) {
    const int ch = i % kCB, p = i / kCB, ty = p / cols, tx = p % cols;
    const int iy = iy0 + ty, ix = ix0 + tx;
    float v = 0.f;
    if (iy >= 0 && iy < ih && ix >= 0 && ix < iw && c0 + ch < climit)
      v = kd::LoadF(in, ((int64_t(n) * ih + iy) * iw + ix) * cstride + cb + c0 + ch);
    in_s[(ty * iws + tx) * kCB + ch] = v;
  }
}

// The weight layouts DwTiled reads, and the gates of its epilogue (the
// values of DwGateKind in conv_depthwise_cuda.h).
constexpr int kWeightCKK = 0;  // conv2d's [C, kh, kw]: w[c·kh·kw + ky·kw + kx]
constexpr int kWeightKKC = 1;  // the ConvBlock's [kh, kw, C]: w[(ky·kw + kx)·C + c]
constexpr int kGateNone = 0;
constexpr int kGateProduct = 1;  // d1 · d2 · factor
constexpr int kGateSigmoid = 2;  // d1 · sigmoid(d2)

// What DwTiled does besides the correlation; block-uniform.
struct TiledEpilogue {
  int flip = 0;                // taps w[kh-1-ky, kw-1-kx] (backward input)
  int layout = kWeightCKK;
  int gate = kGateNone;        // must be set (not kGateNone) for DwTiled<T, KW, true>
  float factor = 1.f;          // kGateProduct's factor
  int64_t out_stride = 0;      // elements from one output pixel to the next (>= the channels written)
};

// Stages the taps of channels cb + c0 .. cb + c0 + 16 (zero where
// c0 + ch >= climit) as w_s[k][16], flipped when asked; the input side of
// both layouts is contiguous in i.
template <typename T>
KD_DEVICE void StageTaps(kd::Ptr<const T> KD_RESTRICT w, kd::Ptr<float> w_s, int kk, int c, int cb, int climit, int c0,
                         const TiledEpilogue& e) {
  for (int i = kd::threadIdx.x; i < kk * kCB; i += kThreads) {
    int k, ch;
    int64_t at;
    if (e.layout == kWeightKKC) {
      ch = i % kCB, k = i / kCB;
      at = int64_t(k) * c + cb + c0 + ch;
    } else {
      k = i % kk, ch = i / kk;
      at = int64_t(cb + c0 + ch) * kk + k;
    }
    const float v = c0 + ch < climit ? kd::LoadF(w, at) : 0.f;
    w_s[(e.flip ? kk - 1 - k : k) * kCB + ch] = v;
  }
}

// acc[j] += the row r, segment seg, lane's kTW outputs of the staged tile.
template <int KW>
KD_DEVICE void AccumulateTile(kd::Ptr<const float> in_s, kd::Ptr<const float> w_s, int kh, int r, int seg, int lane,
                              float (&acc)[kTW]) {
  constexpr int iws = OddUp(kTWB + KW - 1);
  for (int ky = 0; ky < kh; ++ky) {
    float wr[KW];
KD_UNROLL
    for (int kx = 0; kx < KW; ++kx) wr[kx] = w_s[(ky * KW + kx) * kCB + lane];
    const kd::Ptr<const float> row = in_s + ((r + ky) * iws + seg * kTW) * kCB + lane;
    // Input p of the row meets output j through tap kx = p - j.
KD_UNROLL
    for (int p = 0; p < kTW + KW - 1; ++p) {
      const float v = row[p * kCB];
KD_UNROLL
      for (int j = 0; j < kTW; ++j) {
        if (p - j >= 0 && p - j < KW) acc[j] = fmaf(wr[p - j], v, acc[j]);
      }
    }
  }
}

KD_DEVICE float ApplyGate(int gate, float factor, float d1, float d2) {
  return gate == kGateSigmoid ? d1 / (1.f + expf(-d2)) : d1 * d2 * factor;
}

// v2/v3 forward / backward input. in: [N, IH, IW, C], w: [C, KH, KW] or
// [KH, KW, C] (e.layout), bias: [C] or null. Plain: out [N, OH, OW, C]
// (pixel stride e.out_stride) = the correlation + bias. kGated: out
// [N, OH, OW, C/2] (pixel stride e.out_stride) = gate(d[..., c], d[..., c + C/2])
// with d = the correlation + bias (C even). Grid (tiles_x·tiles_y,
// ceil(C_out/16), min(N, 65535)) for C_out = C or C/2: a block loops over the
// samples n = kd::blockIdx.z, kd::blockIdx.z + kd::gridDim.z, ... (kd::gridDim.z
// is at most 65535). 256 threads; dynamic shared memory TileFloats(kh, KW) +
// kh·KW·16 floats. TOut: the output's storage (f32 for the ConvBlock's small
// gated maps of low-precision inputs).
template <typename T, int KW, bool kGated = false, typename TOut = T>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kThreads)
    DwTiled(kd::Ptr<const T> KD_RESTRICT in, kd::Ptr<const T> KD_RESTRICT w, kd::Ptr<const T> KD_RESTRICT bias,
            kd::Ptr<TOut> KD_RESTRICT out, TiledShape s, TiledEpilogue e) {
  KD_DYNAMIC_SHARED(float, smem);
  const kd::Ptr<float> in_s = smem;
  const kd::Ptr<float> w_s = smem + TileFloats(s.kh, KW);  // [kh·KW][16], already flipped when asked
  const int tiles_x = (s.ow + kTWB - 1) / kTWB;
  const int oy0 = (kd::blockIdx.x / tiles_x) * kTH, ox0 = (kd::blockIdx.x % tiles_x) * kTWB;
  const int c0 = kd::blockIdx.y * kCB;
  const int lane = kd::threadIdx.x % kCB, g = kd::threadIdx.x / kCB;
  const int r = g % kTH, seg = g / kTH;
  const int cout = kGated ? s.c / 2 : s.c, kk = s.kh * KW;

  for (int n = kd::blockIdx.z; n < s.n; n += kd::gridDim.z) {  // block-uniform: the barriers below are safe
    float acc0[kTW];
    [[maybe_unused]] float acc1[kGated ? kTW : 1];
KD_UNROLL
    for (int j = 0; j < kTW; ++j) acc0[j] = 0.f;
    StageInput(in, in_s, n, s.ih, s.iw, s.c, 0, cout, oy0 - s.ph, ox0 - s.pw, c0, s.kh, KW);
    StageTaps(w, w_s, kk, s.c, 0, cout, c0, e);
    kd::syncthreads();
    AccumulateTile<KW>(in_s, w_s, s.kh, r, seg, lane, acc0);
    if constexpr (kGated) {  // the second half's tile in the same shared memory
KD_UNROLL
      for (int j = 0; j < kTW; ++j) acc1[j] = 0.f;
      kd::syncthreads();
      StageInput(in, in_s, n, s.ih, s.iw, s.c, cout, cout, oy0 - s.ph, ox0 - s.pw, c0, s.kh, KW);
      StageTaps(w, w_s, kk, s.c, cout, cout, c0, e);
      kd::syncthreads();
      AccumulateTile<KW>(in_s, w_s, s.kh, r, seg, lane, acc1);
    }
    const int oy = oy0 + r, c = c0 + lane;
    if (oy < s.oh && c < cout) {
      const float b0 = bias ? kd::LoadF(bias, c) : 0.f;
      [[maybe_unused]] const float b1 = kGated && bias ? kd::LoadF(bias, c + cout) : 0.f;
KD_UNROLL
      for (int j = 0; j < kTW; ++j) {
        const int ox = ox0 + seg * kTW + j;
        float v = acc0[j] + b0;
        if constexpr (kGated) v = ApplyGate(e.gate, e.factor, v, acc1[j] + b1);
        if (ox < s.ow) kd::StoreF(out, ((int64_t(n) * s.oh + oy) * s.ow + ox) * e.out_stride + c, v);
      }
    }
    kd::syncthreads();  // the next sample restages the shared tiles
  }
}

// Roles in the weight-gradient kernel: with kh <= 16 the 16 groups split as
// kh taps-rows x `splits` interleaved sets of tile rows; with kh > 16 each
// group owns taps-rows g and g + 16 over all tile rows.
KD_HD int RowSplits(int kh) { return kh <= kGroups ? kGroups / kh : 1; }

inline size_t BwdWeightSmemBytes(int kh, int kw) {
  const int tile = TileFloats(kh, kw) + kTH * kTWB * kCB;
  const int red = RowSplits(kh) * kh * kw * kCB;
  return size_t(std::max(tile, red)) * sizeof(float);
}

// v2 weight gradient. x: [N, IH, IW, C], dy: [N, OH, OW, C] (stride 1,
// dilation 1), part: [kd::gridDim.x, kh·KW, C] f32 partial sums of
// dw[c, ky, kx] = Σ dy[n, oy, ox, c] · x[n, oy - ph + ky, ox - pw + kx, c]
// over the output tiles kd::blockIdx.x, kd::blockIdx.x + kd::gridDim.x, ...
// Grid (P, ceil(C/16)), 256 threads, BwdWeightSmemBytes of shared memory.
template <typename T, int KW>
KD_GLOBAL void KD_LAUNCH_BOUNDS(kThreads)
    DwBwdWeightTiled(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<float> KD_RESTRICT part, TiledShape s) {
  KD_DYNAMIC_SHARED(float, smem);
  constexpr int iws = OddUp(kTWB + KW - 1);
  const kd::Ptr<float> in_s = smem;
  const kd::Ptr<float> dy_s = smem + TileFloats(s.kh, KW);  // [kTH][kTWB][16]
  const int c0 = kd::blockIdx.y * kCB;
  const int lane = kd::threadIdx.x % kCB, g = kd::threadIdx.x / kCB;
  const int splits = RowSplits(s.kh);
  const bool small = s.kh <= kGroups;
  const bool active = small ? g < s.kh * splits : true;
  const int ky0 = small ? g % s.kh : g, rs = small ? g / s.kh : 0;
  const int ky1 = small ? -1 : (g + kGroups < s.kh ? g + kGroups : -1);

  float acc0[KW], acc1[KW];
KD_UNROLL
  for (int kx = 0; kx < KW; ++kx) acc0[kx] = acc1[kx] = 0.f;

  const int tiles_x = (s.ow + kTWB - 1) / kTWB, tiles_y = (s.oh + kTH - 1) / kTH;
  const int total = s.n * tiles_x * tiles_y;
  for (int t = kd::blockIdx.x; t < total; t += kd::gridDim.x) {
    const int n = t / (tiles_x * tiles_y), ti = t % (tiles_x * tiles_y);
    const int oy0 = (ti / tiles_x) * kTH, ox0 = (ti % tiles_x) * kTWB;
    kd::syncthreads();  // the previous tile is no longer read
    StageInput(x, in_s, n, s.ih, s.iw, s.c, 0, s.c, oy0 - s.ph, ox0 - s.pw, c0, s.kh, KW);
    for (int i = kd::threadIdx.x; i < kTH * kTWB * kCB; i += kThreads) {
      const int ch = i % kCB, p = i / kCB, oy = oy0 + p / kTWB, ox = ox0 + p % kTWB;
      float v = 0.f;
      if (oy < s.oh && ox < s.ow && c0 + ch < s.c) v = kd::LoadF(dy, ((int64_t(n) * s.oh + oy) * s.ow + ox) * s.c + c0 + ch);
      dy_s[i] = v;
    }
    kd::syncthreads();
    if (!active) continue;
    for (int r = rs; r < kTH; r += splits) {
      float d[kTWB];
KD_UNROLL
      for (int j = 0; j < kTWB; ++j) d[j] = dy_s[(r * kTWB + j) * kCB + lane];
      // Input p of row r + ky meets dy column j through tap kx = p - j.
      const kd::Ptr<const float> row0 = in_s + (r + ky0) * iws * kCB + lane;
KD_UNROLL
      for (int p = 0; p < kTWB + KW - 1; ++p) {
        const float v = row0[p * kCB];
KD_UNROLL
        for (int j = 0; j < kTWB; ++j)
          if (p - j >= 0 && p - j < KW) acc0[p - j] = fmaf(d[j], v, acc0[p - j]);
      }
      if (ky1 >= 0) {
        const kd::Ptr<const float> row1 = in_s + (r + ky1) * iws * kCB + lane;
KD_UNROLL
        for (int p = 0; p < kTWB + KW - 1; ++p) {
          const float v = row1[p * kCB];
KD_UNROLL
          for (int j = 0; j < kTWB; ++j)
            if (p - j >= 0 && p - j < KW) acc1[p - j] = fmaf(d[j], v, acc1[p - j]);
        }
      }
    }
  }
  // Sum the row splits in a fixed order through shared memory, then write
  // this block's partial: red[split][k][16].
  kd::syncthreads();
  const kd::Ptr<float> red = smem;
  const int kk = s.kh * KW;
  if (active) {
KD_UNROLL
    for (int kx = 0; kx < KW; ++kx) {
      red[(rs * kk + ky0 * KW + kx) * kCB + lane] = acc0[kx];
      if (ky1 >= 0) red[(ky1 * KW + kx) * kCB + lane] = acc1[kx];
    }
  }
  kd::syncthreads();
  for (int i = kd::threadIdx.x; i < kk * kCB; i += kThreads) {
    const int ch = i % kCB, k = i / kCB;
    float sum = 0.f;
    for (int sp = 0; sp < splits; ++sp) sum += red[(sp * kk + k) * kCB + ch];
    if (c0 + ch < s.c) part[(int64_t(kd::blockIdx.x) * kk + k) * s.c + c0 + ch] = sum;
  }
}

// Any geometry (v1). ConvGeo mirrors ConvParams in ints.
struct Geo {
  int n, h, w, c, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw;
};

// out: [N, Ho, Wo, C]; one thread per element, channels fastest.
template <typename T>
KD_GLOBAL void DwForwardGeneric(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT w, kd::Ptr<const T> KD_RESTRICT bias,
                                 kd::Ptr<T> KD_RESTRICT y, Geo g) {
  const int64_t total = int64_t(g.n) * g.ho * g.wo * g.c;
  const int kk = g.kh * g.kw;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total; i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int c = int(i % g.c);
    int64_t pix = i / g.c;
    const int ox = int(pix % g.wo), oy = int((pix / g.wo) % g.ho), n = int(pix / (int64_t(g.wo) * g.ho));
    float acc = bias ? kd::LoadF(bias, c) : 0.f;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int ix = ox * g.sw - g.pw + kx * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        acc = fmaf(kd::LoadF(w, int64_t(c) * kk + ky * g.kw + kx), kd::LoadF(x, ((int64_t(n) * g.h + iy) * g.w + ix) * g.c + c),
                   acc);
      }
    }
    kd::StoreF(y, i, acc);
  }
}

// dx: [N, H, W, C]; one thread per element, gathering the taps that reach it.
template <typename T>
KD_GLOBAL void DwBackwardInputGeneric(kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<const T> KD_RESTRICT w, kd::Ptr<T> KD_RESTRICT dx, Geo g) {
  const int64_t total = int64_t(g.n) * g.h * g.w * g.c;
  const int kk = g.kh * g.kw;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total; i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int c = int(i % g.c);
    const int64_t pix = i / g.c;
    const int ix = int(pix % g.w), iy = int((pix / g.w) % g.h), n = int(pix / (int64_t(g.w) * g.h));
    float acc = 0.f;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int ty = iy + g.ph - ky * g.dh;
      if (ty < 0 || ty % g.sh != 0 || ty / g.sh >= g.ho) continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int tx = ix + g.pw - kx * g.dw;
        if (tx < 0 || tx % g.sw != 0 || tx / g.sw >= g.wo) continue;
        acc = fmaf(kd::LoadF(w, int64_t(c) * kk + ky * g.kw + kx),
                   kd::LoadF(dy, ((int64_t(n) * g.ho + ty / g.sh) * g.wo + tx / g.sw) * g.c + c), acc);
      }
    }
    kd::StoreF(dx, i, acc);
  }
}

// part: [splits, kh·kw, C]; element (s, k, c) sums dy·x over the s-th of
// `splits` equal ranges of the N·Ho·Wo output pixels.
template <typename T>
KD_GLOBAL void DwBackwardWeightGeneric(kd::Ptr<const T> KD_RESTRICT x, kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<float> KD_RESTRICT part,
                                        Geo g, int splits) {
  const int kk = g.kh * g.kw;
  const int64_t total = int64_t(splits) * kk * g.c, pixels = int64_t(g.n) * g.ho * g.wo;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total; i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int c = int(i % g.c), k = int((i / g.c) % kk), sp = int(i / (int64_t(g.c) * kk));
    const int ky = k / g.kw, kx = k % g.kw;
    float acc = 0.f;
    for (int64_t pix = pixels * sp / splits; pix < pixels * (sp + 1) / splits; ++pix) {
      const int ox = int(pix % g.wo), oy = int((pix / g.wo) % g.ho), n = int(pix / (int64_t(g.wo) * g.ho));
      const int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
      if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
      acc = fmaf(kd::LoadF(dy, pix * g.c + c), kd::LoadF(x, ((int64_t(n) * g.h + iy) * g.w + ix) * g.c + c), acc);
    }
    part[i] = acc;
  }
}

// dw[c·kk + k] = Σ_b part[(b·kk + k)·C + c], b in order; one thread per (k, c).
template <typename T>
KD_GLOBAL void DwReducePartials(kd::Ptr<const float> KD_RESTRICT part, kd::Ptr<T> KD_RESTRICT dw, int blocks, int kk, int c) {
  const int64_t total = int64_t(kk) * c;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total; i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int ch = int(i % c), k = int(i / c);
    float s = 0.f;
    for (int b = 0; b < blocks; ++b) s += part[int64_t(b) * total + i];
    kd::StoreF(dw, int64_t(ch) * kk + k, s);
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// One launch: grid, block and dynamic shared memory. An empty grid (a zero
// dimension) means there is nothing to compute and no launch.
struct LaunchShape {
  kd::Dim3 grid{1, 1, 1};
  kd::Dim3 block{1, 1, 1};
  size_t smem = 0;
  bool empty() const { return grid.x == 0 || grid.y == 0 || grid.z == 0; }
};

constexpr int kGenericThreads = 256;
constexpr unsigned kMaxGridYZ = 65535;

// Blocks of kGenericThreads for a grid-stride loop over n elements (at most
// 65535·16, as GridFor in ops/cuda_util.cuh); 0 for n = 0.
inline unsigned GridStrideBlocks(int64_t n) {
  if (n <= 0) return 0;
  return unsigned(std::min<int64_t>((n + kGenericThreads - 1) / kGenericThreads, 65535LL * 16));
}
inline LaunchShape GenericLaunch(int64_t total) {
  return LaunchShape{kd::Dim3(GridStrideBlocks(total)), kd::Dim3(kGenericThreads), 0};
}

inline Geo GeoOf(const ConvParams& p) {
  return Geo{int(p.n), int(p.h), int(p.w), int(p.cin), int(p.ho), int(p.wo), int(p.kh),
             int(p.kw), int(p.sh), int(p.sw), int(p.ph), int(p.pw), int(p.dh), int(p.dw)};
}

// The tiled kernels take stride 1, dilation 1 and odd kw in 3..31 (kh <= 31).
inline bool TiledOk(const ConvParams& p) {
  return p.sh == 1 && p.sw == 1 && p.dh == 1 && p.dw == 1 && p.kh <= kMaxTiledK && p.kw >= 3 &&
         p.kw <= kMaxTiledK && p.kw % 2 == 1;
}
// Backward input runs the tiled forward on dy with padding k - 1 - p, which
// must not be negative.
inline bool TiledBackwardInputOk(const ConvParams& p) {
  return TiledOk(p) && p.ph <= p.kh - 1 && p.pw <= p.kw - 1;
}
inline TiledShape TiledForwardShape(const ConvParams& p) {
  return TiledShape{int(p.n), int(p.h), int(p.w), int(p.cin), int(p.ho), int(p.wo),
                    int(p.kh), int(p.kw), int(p.ph), int(p.pw)};
}
// dx = dy correlated with the flipped taps, padded by k - 1 - p.
inline TiledShape TiledBackwardInputShape(const ConvParams& p) {
  return TiledShape{int(p.n), int(p.ho), int(p.wo), int(p.cin), int(p.h), int(p.w),
                    int(p.kh), int(p.kw), int(p.kh - 1 - p.ph), int(p.kw - 1 - p.pw)};
}

// Dynamic shared memory of DwTiled<T, KW> for kh taps rows.
inline size_t TiledSmemBytes(int kh, int kw) {
  return (size_t(TileFloats(kh, kw)) + size_t(kh) * kw * kCB) * sizeof(float);
}
// The most any launch of DwTiled<T, kw> (any kh) or DwBwdWeightTiled<T, kw> needs.
inline size_t TiledSmemMost(int kw) {
  size_t most = 0;
  for (int kh = 1; kh <= kMaxTiledK; ++kh) most = std::max(most, TiledSmemBytes(kh, kw));
  return most;
}
inline size_t BwdWeightSmemMost(int kw) {
  size_t most = 0;
  for (int kh = 1; kh <= kMaxTiledK; ++kh) most = std::max(most, BwdWeightSmemBytes(kh, kw));
  return most;
}

// DwTiled: grid (tiles_x·tiles_y, ceil(C_out/16), min(N, 65535)) with
// C_out = C, or C/2 when gated; samples past 65535 are looped over in the
// kernel.
inline LaunchShape TiledLaunch(const TiledShape& s, bool gated = false) {
  const int64_t tiles = int64_t((s.ow + kTWB - 1) / kTWB) * ((s.oh + kTH - 1) / kTH);
  const int64_t chunks = ((gated ? int64_t(s.c) / 2 : int64_t(s.c)) + kCB - 1) / kCB;
  return LaunchShape{kd::Dim3(unsigned(std::max<int64_t>(tiles, 0)), unsigned(std::max<int64_t>(chunks, 0)),
                              unsigned(std::clamp<int64_t>(s.n, 0, kMaxGridYZ))),
                     kd::Dim3(kThreads), TiledSmemBytes(s.kh, s.kw)};
}

// conv2d's epilogue: [C, kh, kw] taps, dense output, flipped for backward input.
inline TiledEpilogue ConvEpilogue(const TiledShape& s, int flip) {
  TiledEpilogue e;
  e.flip = flip;
  e.out_stride = s.c;
  return e;
}

// The ConvBlock's depthwise + gate: x [n, h, w, c] (c even) with [k, k, c]
// taps, padding k/2 ("same"), into [n, h, w, c/2] gated channels written
// out_stride elements apart per pixel.
inline TiledShape GateShape(int n, int h, int w, int c, int k) { return TiledShape{n, h, w, c, h, w, k, k, k / 2, k / 2}; }
inline TiledEpilogue GateEpilogue(int gate, float factor, int64_t out_stride) {
  TiledEpilogue e;
  e.layout = kWeightKKC;
  e.gate = gate;
  e.factor = factor;
  e.out_stride = out_stride;
  return e;
}
// The gated tiled kernel takes what the ConvBlock allows: odd k in 3..31,
// even c >= 2, a pixel stride that holds c/2 channels.
inline bool GateOk(const TiledShape& s, int gate, int64_t out_stride) {
  return s.kw >= 3 && s.kw <= kMaxTiledK && s.kw % 2 == 1 && s.kh == s.kw && s.c >= 2 && s.c % 2 == 0 &&
         (gate == kGateProduct || gate == kGateSigmoid) && out_stride >= s.c / 2;
}

// DwBwdWeightTiled: grid (P, ceil(C/16)) with P about four blocks per SM of
// an H100 in total, at most one per tile, at least one (it writes the zero
// partials of an empty batch).
inline LaunchShape BwdWeightTiledLaunch(const TiledShape& s) {
  const int64_t tiles = int64_t(s.n) * ((s.ow + kTWB - 1) / kTWB) * ((s.oh + kTH - 1) / kTH);
  const int chunks = (s.c + kCB - 1) / kCB;
  if (chunks <= 0) return LaunchShape{kd::Dim3(0), kd::Dim3(kThreads), 0};
  const int blocks = int(std::max<int64_t>(1, std::min<int64_t>(tiles, std::max(1, 528 / chunks))));
  return LaunchShape{kd::Dim3(unsigned(blocks), unsigned(chunks)), kd::Dim3(kThreads), BwdWeightSmemBytes(s.kh, s.kw)};
}

// DwBackwardWeightGeneric: enough splits of the pixels for ~64K threads, at
// most one per pixel, at least one.
inline int GenericBwdWeightSplits(const ConvParams& p) {
  const int64_t kk = p.kh * p.kw, pixels = p.n * p.ho * p.wo;
  return int(std::max<int64_t>(1, std::min<int64_t>(pixels, (int64_t(1) << 16) / std::max<int64_t>(1, kk * p.cin) + 1)));
}

}  // namespace dwconv
}  // namespace cf
