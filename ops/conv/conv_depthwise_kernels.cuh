// Depthwise conv2d CUDA kernels (declared in conv_depthwise_cuda.h), included
// by one .cu per dtype so the three instantiations compile in parallel.
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
#pragma once

#include <algorithm>
#include <bitset>
#include <mutex>

#include "ops/conv/conv_depthwise_cuda.h"
#include "ops/cuda_util.cuh"

namespace cf {
namespace dwconv {

constexpr int kCB = 16;              // channels per block: 16 lanes of a half-warp
constexpr int kThreads = 256;        // 16 channels x 16 groups
constexpr int kGroups = kThreads / kCB;
constexpr int kTH = 8;               // output rows per tile
constexpr int kTW = 8;               // outputs per thread along a row
constexpr int kTWB = 2 * kTW;        // output columns per tile
constexpr int kMaxTiledK = 31;

__host__ __device__ constexpr int OddUp(int v) { return v | 1; }

// Geometry of a stride-1, dilation-1 depthwise correlation:
// out[n, oy, ox, c] = Σ w[c, ky, kx] · in[n, oy - ph + ky, ox - pw + kx, c].
struct TiledShape {
  int n, ih, iw, c, oh, ow, kh, kw, ph, pw;
};

// Shared memory of one tile of the input: rows kTH + kh - 1, row stride
// OddUp(kTWB + kw - 1) pixels (odd, so the two groups of a warp, which read
// neighbouring rows, hit disjoint banks), 16 channels, f32.
__host__ __device__ inline int TileFloats(int kh, int kw) { return (kTH + kh - 1) * OddUp(kTWB + kw - 1) * kCB; }

// Stages in[n, iy0 .. iy0 + kTH + kh - 1, ix0 .. ix0 + kTWB + kw - 1, c0 .. c0 + 16]
// into in_s as f32, zero outside the image and past the last channel.
template <typename T>
__device__ __forceinline__ void StageInput(const T* __restrict__ in, float* in_s, int n, int ih, int iw, int c, int iy0,
                                           int ix0, int c0, int kh, int kw) {
  const int cols = kTWB + kw - 1, iws = OddUp(cols), px = (kTH + kh - 1) * cols;
  for (int i = threadIdx.x; i < px * kCB; i += kThreads) {
    const int ch = i % kCB, p = i / kCB, ty = p / cols, tx = p % cols;
    const int iy = iy0 + ty, ix = ix0 + tx;
    float v = 0.f;
    if (iy >= 0 && iy < ih && ix >= 0 && ix < iw && c0 + ch < c)
      v = LoadF(in, ((int64_t(n) * ih + iy) * iw + ix) * c + c0 + ch);
    in_s[(ty * iws + tx) * kCB + ch] = v;
  }
}

// v2 forward / backward input. in: [N, IH, IW, C], w: [C, KH, KW], bias: [C]
// or null, out: [N, OH, OW, C]. flip: use w[c, kh-1-ky, kw-1-kx] (backward
// input). Grid (tiles_x·tiles_y, ceil(C/16), min(N, 65535)): a block loops
// over the samples n = blockIdx.z, blockIdx.z + gridDim.z, ... (gridDim.z is
// at most 65535). 256 threads; dynamic shared memory TileFloats(kh, KW) +
// kh·KW·16 floats.
template <typename T, int KW>
__global__ void __launch_bounds__(kThreads)
    DwTiled(const T* __restrict__ in, const T* __restrict__ w, const T* __restrict__ bias, T* __restrict__ out,
            TiledShape s, int flip) {
  extern __shared__ float smem[];
  constexpr int cols = kTWB + KW - 1, iws = OddUp(cols);
  float* in_s = smem;
  float* w_s = smem + TileFloats(s.kh, KW);  // [kh·KW][16], already flipped when asked
  const int tiles_x = (s.ow + kTWB - 1) / kTWB;
  const int oy0 = (blockIdx.x / tiles_x) * kTH, ox0 = (blockIdx.x % tiles_x) * kTWB;
  const int c0 = blockIdx.y * kCB;
  const int lane = threadIdx.x % kCB, g = threadIdx.x / kCB;

  for (int n = blockIdx.z; n < s.n; n += gridDim.z) {  // block-uniform: the barriers below are safe
    StageInput(in, in_s, n, s.ih, s.iw, s.c, oy0 - s.ph, ox0 - s.pw, c0, s.kh, KW);
    const int kk = s.kh * KW;
    for (int i = threadIdx.x; i < kk * kCB; i += kThreads) {
      const int k = i % kk, ch = i / kk;  // reads w[(c0 + ch)·kk + k]: contiguous in i
      const float v = c0 + ch < s.c ? LoadF(w, int64_t(c0) * kk + i) : 0.f;
      w_s[(flip ? kk - 1 - k : k) * kCB + ch] = v;
    }
    __syncthreads();

    const int r = g % kTH, seg = g / kTH;
    float acc[kTW];
#pragma unroll
    for (int j = 0; j < kTW; ++j) acc[j] = 0.f;
    for (int ky = 0; ky < s.kh; ++ky) {
      float wr[KW];
#pragma unroll
      for (int kx = 0; kx < KW; ++kx) wr[kx] = w_s[(ky * KW + kx) * kCB + lane];
      const float* row = in_s + ((r + ky) * iws + seg * kTW) * kCB + lane;
      // Input p of the row meets output j through tap kx = p - j.
#pragma unroll
      for (int p = 0; p < kTW + KW - 1; ++p) {
        const float v = row[p * kCB];
#pragma unroll
        for (int j = 0; j < kTW; ++j) {
          if (p - j >= 0 && p - j < KW) acc[j] = fmaf(wr[p - j], v, acc[j]);
        }
      }
    }
    const int oy = oy0 + r, c = c0 + lane;
    if (oy < s.oh && c < s.c) {
      const float b = bias ? LoadF(bias, c) : 0.f;
#pragma unroll
      for (int j = 0; j < kTW; ++j) {
        const int ox = ox0 + seg * kTW + j;
        if (ox < s.ow) StoreF(out, ((int64_t(n) * s.oh + oy) * s.ow + ox) * s.c + c, acc[j] + b);
      }
    }
    __syncthreads();  // the next sample restages the shared tiles
  }
  (void)cols;
}

// Roles in the weight-gradient kernel: with kh <= 16 the 16 groups split as
// kh taps-rows x `splits` interleaved sets of tile rows; with kh > 16 each
// group owns taps-rows g and g + 16 over all tile rows.
__host__ __device__ inline int RowSplits(int kh) { return kh <= kGroups ? kGroups / kh : 1; }

__host__ inline size_t BwdWeightSmemBytes(int kh, int kw) {
  const int tile = TileFloats(kh, kw) + kTH * kTWB * kCB;
  const int red = RowSplits(kh) * kh * kw * kCB;
  return size_t(std::max(tile, red)) * sizeof(float);
}

// v2 weight gradient. x: [N, IH, IW, C], dy: [N, OH, OW, C] (stride 1,
// dilation 1), part: [gridDim.x, kh·KW, C] f32 partial sums of
// dw[c, ky, kx] = Σ dy[n, oy, ox, c] · x[n, oy - ph + ky, ox - pw + kx, c]
// over the output tiles blockIdx.x, blockIdx.x + gridDim.x, ...
// Grid (P, ceil(C/16)), 256 threads, BwdWeightSmemBytes of shared memory.
template <typename T, int KW>
__global__ void __launch_bounds__(kThreads)
    DwBwdWeightTiled(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ part, TiledShape s) {
  extern __shared__ float smem[];
  constexpr int iws = OddUp(kTWB + KW - 1);
  float* in_s = smem;
  float* dy_s = smem + TileFloats(s.kh, KW);  // [kTH][kTWB][16]
  const int c0 = blockIdx.y * kCB;
  const int lane = threadIdx.x % kCB, g = threadIdx.x / kCB;
  const int splits = RowSplits(s.kh);
  const bool small = s.kh <= kGroups;
  const bool active = small ? g < s.kh * splits : true;
  const int ky0 = small ? g % s.kh : g, rs = small ? g / s.kh : 0;
  const int ky1 = small ? -1 : (g + kGroups < s.kh ? g + kGroups : -1);

  float acc0[KW], acc1[KW];
#pragma unroll
  for (int kx = 0; kx < KW; ++kx) acc0[kx] = acc1[kx] = 0.f;

  const int tiles_x = (s.ow + kTWB - 1) / kTWB, tiles_y = (s.oh + kTH - 1) / kTH;
  const int total = s.n * tiles_x * tiles_y;
  for (int t = blockIdx.x; t < total; t += gridDim.x) {
    const int n = t / (tiles_x * tiles_y), ti = t % (tiles_x * tiles_y);
    const int oy0 = (ti / tiles_x) * kTH, ox0 = (ti % tiles_x) * kTWB;
    __syncthreads();  // the previous tile is no longer read
    StageInput(x, in_s, n, s.ih, s.iw, s.c, oy0 - s.ph, ox0 - s.pw, c0, s.kh, KW);
    for (int i = threadIdx.x; i < kTH * kTWB * kCB; i += kThreads) {
      const int ch = i % kCB, p = i / kCB, oy = oy0 + p / kTWB, ox = ox0 + p % kTWB;
      float v = 0.f;
      if (oy < s.oh && ox < s.ow && c0 + ch < s.c) v = LoadF(dy, ((int64_t(n) * s.oh + oy) * s.ow + ox) * s.c + c0 + ch);
      dy_s[i] = v;
    }
    __syncthreads();
    if (!active) continue;
    for (int r = rs; r < kTH; r += splits) {
      float d[kTWB];
#pragma unroll
      for (int j = 0; j < kTWB; ++j) d[j] = dy_s[(r * kTWB + j) * kCB + lane];
      // Input p of row r + ky meets dy column j through tap kx = p - j.
      const float* row0 = in_s + (r + ky0) * iws * kCB + lane;
#pragma unroll
      for (int p = 0; p < kTWB + KW - 1; ++p) {
        const float v = row0[p * kCB];
#pragma unroll
        for (int j = 0; j < kTWB; ++j)
          if (p - j >= 0 && p - j < KW) acc0[p - j] = fmaf(d[j], v, acc0[p - j]);
      }
      if (ky1 >= 0) {
        const float* row1 = in_s + (r + ky1) * iws * kCB + lane;
#pragma unroll
        for (int p = 0; p < kTWB + KW - 1; ++p) {
          const float v = row1[p * kCB];
#pragma unroll
          for (int j = 0; j < kTWB; ++j)
            if (p - j >= 0 && p - j < KW) acc1[p - j] = fmaf(d[j], v, acc1[p - j]);
        }
      }
    }
  }
  // Sum the row splits in a fixed order through shared memory, then write
  // this block's partial: red[split][k][16].
  __syncthreads();
  float* red = smem;
  const int kk = s.kh * KW;
  if (active) {
#pragma unroll
    for (int kx = 0; kx < KW; ++kx) {
      red[(rs * kk + ky0 * KW + kx) * kCB + lane] = acc0[kx];
      if (ky1 >= 0) red[(ky1 * KW + kx) * kCB + lane] = acc1[kx];
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kk * kCB; i += kThreads) {
    const int ch = i % kCB, k = i / kCB;
    float sum = 0.f;
    for (int sp = 0; sp < splits; ++sp) sum += red[(sp * kk + k) * kCB + ch];
    if (c0 + ch < s.c) part[(int64_t(blockIdx.x) * kk + k) * s.c + c0 + ch] = sum;
  }
}

// Any geometry (v1). ConvGeo mirrors ConvParams in ints.
struct Geo {
  int n, h, w, c, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw;
};

// out: [N, Ho, Wo, C]; one thread per element, channels fastest.
template <typename T>
__global__ void DwForwardGeneric(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                 T* __restrict__ y, Geo g) {
  const int64_t total = int64_t(g.n) * g.ho * g.wo * g.c;
  const int kk = g.kh * g.kw;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % g.c);
    int64_t pix = i / g.c;
    const int ox = int(pix % g.wo), oy = int((pix / g.wo) % g.ho), n = int(pix / (int64_t(g.wo) * g.ho));
    float acc = bias ? LoadF(bias, c) : 0.f;
    for (int ky = 0; ky < g.kh; ++ky) {
      const int iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int kx = 0; kx < g.kw; ++kx) {
        const int ix = ox * g.sw - g.pw + kx * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        acc = fmaf(LoadF(w, int64_t(c) * kk + ky * g.kw + kx), LoadF(x, ((int64_t(n) * g.h + iy) * g.w + ix) * g.c + c),
                   acc);
      }
    }
    StoreF(y, i, acc);
  }
}

// dx: [N, H, W, C]; one thread per element, gathering the taps that reach it.
template <typename T>
__global__ void DwBackwardInputGeneric(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx, Geo g) {
  const int64_t total = int64_t(g.n) * g.h * g.w * g.c;
  const int kk = g.kh * g.kw;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
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
        acc = fmaf(LoadF(w, int64_t(c) * kk + ky * g.kw + kx),
                   LoadF(dy, ((int64_t(n) * g.ho + ty / g.sh) * g.wo + tx / g.sw) * g.c + c), acc);
      }
    }
    StoreF(dx, i, acc);
  }
}

// part: [splits, kh·kw, C]; element (s, k, c) sums dy·x over the s-th of
// `splits` equal ranges of the N·Ho·Wo output pixels.
template <typename T>
__global__ void DwBackwardWeightGeneric(const T* __restrict__ x, const T* __restrict__ dy, float* __restrict__ part,
                                        Geo g, int splits) {
  const int kk = g.kh * g.kw;
  const int64_t total = int64_t(splits) * kk * g.c, pixels = int64_t(g.n) * g.ho * g.wo;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int c = int(i % g.c), k = int((i / g.c) % kk), sp = int(i / (int64_t(g.c) * kk));
    const int ky = k / g.kw, kx = k % g.kw;
    float acc = 0.f;
    for (int64_t pix = pixels * sp / splits; pix < pixels * (sp + 1) / splits; ++pix) {
      const int ox = int(pix % g.wo), oy = int((pix / g.wo) % g.ho), n = int(pix / (int64_t(g.wo) * g.ho));
      const int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
      if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
      acc = fmaf(LoadF(dy, pix * g.c + c), LoadF(x, ((int64_t(n) * g.h + iy) * g.w + ix) * g.c + c), acc);
    }
    part[i] = acc;
  }
}

// dw[c·kk + k] = Σ_b part[(b·kk + k)·C + c], b in order; one thread per (k, c).
template <typename T>
__global__ void DwReducePartials(const float* __restrict__ part, T* __restrict__ dw, int blocks, int kk, int c) {
  const int64_t total = int64_t(kk) * c;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int ch = int(i % c), k = int(i / c);
    float s = 0.f;
    for (int b = 0; b < blocks; ++b) s += part[int64_t(b) * total + i];
    StoreF(dw, int64_t(ch) * kk + k, s);
  }
}

// ---- launchers -----------------------------------------------------------------------------

inline Geo GeoOf(const ConvParams& p) {
  return Geo{int(p.n), int(p.h), int(p.w), int(p.cin), int(p.ho), int(p.wo), int(p.kh),
             int(p.kw), int(p.sh), int(p.sw), int(p.ph), int(p.pw), int(p.dh), int(p.dw)};
}

// The tiled kernels take stride 1, dilation 1 and odd kw in 3..31 (kh <= 31).
inline bool TiledOk(const ConvParams& p) {
  return p.sh == 1 && p.sw == 1 && p.dh == 1 && p.dw == 1 && p.kh <= kMaxTiledK && p.kw >= 3 &&
         p.kw <= kMaxTiledK && p.kw % 2 == 1;
}

// Calls f(std::integral_constant<int, KW>) for the tiled kw.
template <typename F> Status WithKw(int kw, F&& f) {
  switch (kw) {
#define CF_DW_CASE(K) \
  case K: return f(std::integral_constant<int, K>{});
    CF_DW_CASE(3) CF_DW_CASE(5) CF_DW_CASE(7) CF_DW_CASE(9) CF_DW_CASE(11) CF_DW_CASE(13) CF_DW_CASE(15)
    CF_DW_CASE(17) CF_DW_CASE(19) CF_DW_CASE(21) CF_DW_CASE(23) CF_DW_CASE(25) CF_DW_CASE(27) CF_DW_CASE(29)
    CF_DW_CASE(31)
#undef CF_DW_CASE
    default: return absl::InternalError(absl::StrCat("depthwise conv: no tiled kernel for kw = ", kw));
  }
}

// Dynamic shared memory of DwTiled<T, KW> for kh taps rows.
__host__ inline size_t TiledSmemBytes(int kh, int kw) {
  return (size_t(TileFloats(kh, kw)) + size_t(kh) * kw * kCB) * sizeof(float);
}

// Raises kKernel's dynamic shared memory limit once per device to `bytes` (the
// most any launch of it needs), capped at the device's opt-in maximum. Setting
// it before every launch raced between host threads launching the same
// kernel with different sizes.
template <auto kKernel>
Status RaiseSmemLimitOnce(size_t bytes) {
  static std::mutex mu;
  static std::bitset<64> done;
  int dev = 0;
  CF_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (dev >= 0 && dev < 64 && done[dev]) return absl::OkStatus();
  int optin = 0;
  CF_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CF_CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(std::min<size_t>(bytes, size_t(std::max(optin, 0))))));
  if (dev >= 0 && dev < 64) done[dev] = true;
  return absl::OkStatus();
}

template <typename T>
Status LaunchTiled(const T* in, const T* w, const T* bias, T* out, const TiledShape& s, int flip, cudaStream_t stream) {
  return WithKw(s.kw, [&](auto kw_tag) -> Status {
    constexpr int KW = decltype(kw_tag)::value;
    const size_t smem = TiledSmemBytes(s.kh, KW);
    size_t most = 0;
    for (int kh = 1; kh <= kMaxTiledK; ++kh) most = std::max(most, TiledSmemBytes(kh, KW));
    CF_RETURN_IF_ERROR((RaiseSmemLimitOnce<DwTiled<T, KW>>(most)));
    auto kernel = DwTiled<T, KW>;
    const int tiles = ((s.ow + kTWB - 1) / kTWB) * ((s.oh + kTH - 1) / kTH);
    dim3 grid(tiles, (s.c + kCB - 1) / kCB, std::min(s.n, 65535));
    kernel<<<grid, kThreads, smem, stream>>>(in, w, bias, out, s, flip);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

}  // namespace dwconv

template <typename T>
Status DepthwiseForwardCuda(const ConvParams& p, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream) {
  using namespace dwconv;
  if (p.n * p.ho * p.wo * p.cin == 0) return absl::OkStatus();
  if (TiledOk(p)) {
    const TiledShape s{int(p.n), int(p.h), int(p.w), int(p.cin), int(p.ho), int(p.wo),
                       int(p.kh), int(p.kw), int(p.ph), int(p.pw)};
    return LaunchTiled(x, w, bias, y, s, 0, stream);
  }
  DwForwardGeneric<T><<<GridFor(p.n * p.ho * p.wo * p.cin), 256, 0, stream>>>(x, w, bias, y, GeoOf(p));
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status DepthwiseBackwardInputCuda(const ConvParams& p, const T* dy, const T* w, T* dx, cudaStream_t stream) {
  using namespace dwconv;
  if (p.n * p.h * p.w * p.cin == 0) return absl::OkStatus();
  if (TiledOk(p) && p.ph <= p.kh - 1 && p.pw <= p.kw - 1) {
    // dx = dy correlated with the flipped taps, padded by k - 1 - p.
    const TiledShape s{int(p.n), int(p.ho), int(p.wo), int(p.cin), int(p.h), int(p.w),
                       int(p.kh), int(p.kw), int(p.kh - 1 - p.ph), int(p.kw - 1 - p.pw)};
    return LaunchTiled(dy, w, static_cast<const T*>(nullptr), dx, s, 1, stream);
  }
  DwBackwardInputGeneric<T><<<GridFor(p.n * p.h * p.w * p.cin), 256, 0, stream>>>(dy, w, dx, GeoOf(p));
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status DepthwiseBackwardWeightCuda(const ConvParams& p, const T* x, const T* dy, T* dw, cudaStream_t stream,
                                   const std::function<StatusOr<void*>(int64_t)>& workspace) {
  using namespace dwconv;
  const int kk = int(p.kh * p.kw), c = int(p.cin);
  const int64_t pixels = p.n * p.ho * p.wo;
  int blocks = 0;
  float* part = nullptr;
  if (TiledOk(p)) {
    const TiledShape s{int(p.n), int(p.h), int(p.w), c, int(p.ho), int(p.wo),
                       int(p.kh), int(p.kw), int(p.ph), int(p.pw)};
    const int64_t tiles = p.n * ((p.wo + kTWB - 1) / kTWB) * ((p.ho + kTH - 1) / kTH);
    const int chunks = (c + kCB - 1) / kCB;
    // About four blocks per SM of an H100 in total, at most one per tile.
    blocks = int(std::max<int64_t>(1, std::min<int64_t>(tiles, std::max(1, 528 / chunks))));
    CF_ASSIGN_OR_RETURN(void* ws, workspace(int64_t(blocks) * kk * c * sizeof(float)));
    part = static_cast<float*>(ws);
    CF_RETURN_IF_ERROR(WithKw(s.kw, [&](auto kw_tag) -> Status {
      constexpr int KW = decltype(kw_tag)::value;
      const size_t smem = BwdWeightSmemBytes(s.kh, KW);
      size_t most = 0;
      for (int kh = 1; kh <= kMaxTiledK; ++kh) most = std::max(most, BwdWeightSmemBytes(kh, KW));
      CF_RETURN_IF_ERROR((RaiseSmemLimitOnce<DwBwdWeightTiled<T, KW>>(most)));
      auto kernel = DwBwdWeightTiled<T, KW>;
      kernel<<<dim3(blocks, chunks), kThreads, smem, stream>>>(x, dy, part, s);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    }));
  } else {
    // Enough splits of the pixels for ~64K threads, at most one per pixel.
    blocks = int(std::max<int64_t>(1, std::min<int64_t>(pixels, (int64_t(1) << 16) / std::max(1, kk * c) + 1)));
    CF_ASSIGN_OR_RETURN(void* ws, workspace(int64_t(blocks) * kk * c * sizeof(float)));
    part = static_cast<float*>(ws);
    DwBackwardWeightGeneric<T><<<GridFor(int64_t(blocks) * kk * c), 256, 0, stream>>>(x, dy, part, GeoOf(p), blocks);
    CF_CUDA_CHECK_LAUNCH();
  }
  DwReducePartials<T><<<GridFor(int64_t(kk) * c), 256, 0, stream>>>(part, dw, blocks, kk, c);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

}  // namespace cf

// One dtype's instantiations (used by conv_depthwise_{f32,f16,bf16}.cu).
#define CF_DEPTHWISE_CUDA_INSTANTIATE(T)                                                                       \
  template Status DepthwiseForwardCuda<T>(const ConvParams&, const T*, const T*, const T*, T*, cudaStream_t); \
  template Status DepthwiseBackwardInputCuda<T>(const ConvParams&, const T*, const T*, T*, cudaStream_t);     \
  template Status DepthwiseBackwardWeightCuda<T>(const ConvParams&, const T*, const T*, T*, cudaStream_t,     \
                                                 const std::function<StatusOr<void*>(int64_t)>&);
