// The tiled depthwise conv (conv_depthwise_tiled_cpu.h): the tile driver and
// the portable kernels; the AVX-512 kernels are in
// conv_depthwise_tiled_avx512.cc.
//
// The output is cut into tiles of th rows x tw columns (about 2048 pixels,
// tw <= 128; TileOutput) and the channels into blocks of 16; a task is one
// (image, tile, block), or for a gate the block pair (c0, c0 + C/2). A task
// packs its input window [(th + kh - 1)][(tw + kw - 1)][16] into per-thread
// f32 scratch, zero-padded and with the channel tail zeroed (f16/bf16
// converted there); the taps of every block are packed once per call as
// [kh·kw][16]. The kernels then run without bounds checks, two output rows
// at a time, and the epilogue writes the rows in T.
// The weight gradient keeps one f32 partial [kh·kw][16] per (tile, block)
// task and adds them in tile order (independent of the thread count).
#include "ops/conv/conv_depthwise_tiled_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "ops/conv/conv_depthwise_tiled_kernels.h"
#include "ops/cpu_util.h"
#include "runtime/env.h"

namespace cf {
namespace {

using dw::kLanes;

// ---- the portable path ---------------------------------------------------------------

template <typename T>
void PackPortable(const T* img, int64_t h, int64_t w, int64_t c, int64_t c0, int nc, int64_t y0, int64_t rows,
                  int64_t x0, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float* d = dst + (r * cols + j) * kLanes;
      const int64_t iy = y0 + r, ix = x0 + j;
      const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
      for (int l = 0; l < kLanes; ++l) d[l] = inside && l < nc ? Load(img, (iy * w + ix) * c + c0 + l) : 0.f;
    }
}

template <typename T>
void StorePortable(const float* a, const float* b, int64_t npix, int nc, DwEpilogue ep, float factor, T* y,
                   int64_t stride) {
  for (int64_t p = 0; p < npix; ++p)
    for (int l = 0; l < nc; ++l) {
      const float d = a[p * kLanes + l];
      float v = d;
      if (ep == DwEpilogue::kProduct) v = d * b[p * kLanes + l] * factor;
      if (ep == DwEpilogue::kSigmoid) v = d / (1.f + std::exp(-b[p * kLanes + l]));
      Store(y, p * stride + l, v);
    }
}

void FwdRowsPortable(const float* in, int64_t row, int64_t kh, int64_t kw, const float* wp, const float* bias,
                     int64_t npix, int nrows, float* out) {
  constexpr int64_t kRun = 8;
  for (int q = 0; q < nrows; ++q)
    for (int64_t p0 = 0; p0 < npix; p0 += kRun) {
      const int64_t np = std::min(kRun, npix - p0);
      float acc[kRun][kLanes];
      for (int64_t r = 0; r < np; ++r)
        for (int l = 0; l < kLanes; ++l) acc[r][l] = bias ? bias[l] : 0.f;
      for (int64_t ky = 0; ky < kh; ++ky)
        for (int64_t kx = 0; kx < kw; ++kx) {
          const float* wv = wp + (ky * kw + kx) * kLanes;
          const float* ip = in + ((q + ky) * row + p0 + kx) * kLanes;
          for (int64_t r = 0; r < np; ++r)
            for (int l = 0; l < kLanes; ++l) acc[r][l] += wv[l] * ip[r * kLanes + l];
        }
      for (int64_t r = 0; r < np; ++r)
        for (int l = 0; l < kLanes; ++l) out[((q * npix) + p0 + r) * kLanes + l] = acc[r][l];
    }
}

void WgradPortable(const float* xs, int64_t row, const float* dy, int64_t th, int64_t tw, int64_t kh, int64_t kw,
                   float* part) {
  for (int64_t ky = 0; ky < kh; ++ky)
    for (int64_t kx = 0; kx < kw; ++kx) {
      float acc[kLanes] = {};
      for (int64_t oy = 0; oy < th; ++oy)
        for (int64_t ox = 0; ox < tw; ++ox) {
          const float* d = dy + (oy * tw + ox) * kLanes;
          const float* xv = xs + ((oy + ky) * row + ox + kx) * kLanes;
          for (int l = 0; l < kLanes; ++l) acc[l] += d[l] * xv[l];
        }
      std::copy(acc, acc + kLanes, part + (ky * kw + kx) * kLanes);
    }
}

// ---- path choice ---------------------------------------------------------------------

std::atomic<bool> g_force_portable{false};

bool UseAvx512() { return !g_force_portable.load() && dw::HasAvx512(); }

// CF_DEPTHWISE_WINOGRAD=0 in the environment keeps the direct taps.
bool WinogradAllowed() {
  static const bool allowed = EnvSwitch("CF_DEPTHWISE_WINOGRAD");
  return allowed;
}

template <typename T> const dw::IoKernels<T>& Io() {
  static const dw::IoKernels<T> portable{&PackPortable<T>, &StorePortable<T>};
  return UseAvx512() ? dw::Avx512Io<T>() : portable;
}
const dw::MathKernels& Math() {
  static const dw::MathKernels portable{&FwdRowsPortable, &WgradPortable};
  return UseAvx512() ? dw::Avx512Math() : portable;
}

// ---- tiling and scratch --------------------------------------------------------------

struct Tiling {
  int64_t th = 1, tw = 1, nty = 1, ntx = 1;  // tile size and counts over [ho, wo]
  int64_t tiles_per_image() const { return nty * ntx; }
};

// Tiles of <= 128 columns (a multiple of 16 when split) and about 2048
// pixels (taller tiles pack fewer halo rows per output row), made shorter
// (down to 8 rows) while there are fewer than 16 tasks of `per_tile` each.
// Depends on the shapes only, never on the thread count (the weight
// gradient's partials are added per tile).
Tiling TileOutput(int64_t n, int64_t ho, int64_t wo, int64_t per_tile) {
  Tiling t;
  const int64_t ntx = (wo + 127) / 128;
  t.tw = ntx == 1 ? wo : ((wo + ntx - 1) / ntx + 15) / 16 * 16;
  t.ntx = (wo + t.tw - 1) / t.tw;
  t.th = std::clamp<int64_t>((2048 + t.tw - 1) / t.tw, 1, ho);
  auto tasks = [&] { return n * t.ntx * ((ho + t.th - 1) / t.th) * per_tile; };
  while (t.th >= 16 && tasks() < 16) t.th = (t.th + 1) / 2;
  t.nty = (ho + t.th - 1) / t.th;
  return t;
}

// This thread's f32 scratch of at least n floats, 64-byte aligned (reused
// across calls).
float* Scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n + kLanes) buf.resize(n + kLanes);
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<float*>((p + 63) & ~uintptr_t{63});
}

// Floats rounded up to whole 64-byte lines, so consecutive scratch arrays stay aligned.
int64_t Lines(int64_t floats) { return (floats + kLanes - 1) / kLanes * kLanes; }

// The taps and bias of every channel block as [block][kh·kw + 1][16] (the
// bias last, 0 without one), channels past nc zero: blocks [0, blocks) start
// at channel 16·b, with a gate blocks [blocks, 2·blocks) at cout + 16·b.
std::vector<float> PackTaps(const DwForwardArgs& a, int64_t cout, int64_t blocks, int parts) {
  const int64_t taps = a.kh * a.kw, per = (taps + 1) * kLanes;
  std::vector<float> wp(parts * blocks * per, 0.f);
  ParallelFor(0, parts * blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t pb = lo; pb < hi; ++pb) {
      const int64_t blk = pb % blocks, c0 = blk * kLanes + pb / blocks * cout;
      const int64_t nc = std::min<int64_t>(kLanes, cout - blk * kLanes);
      float* d = wp.data() + pb * per;
      for (int64_t k = 0; k < taps; ++k) std::copy_n(a.wt + k * a.c + c0, nc, d + k * kLanes);
      if (a.bias) std::copy_n(a.bias + c0, nc, d + taps * kLanes);
    }
  });
  return wp;
}

}  // namespace

template <typename T> void DepthwiseForwardTiledCpu(const DwForwardArgs& a, const T* x, T* y) {
  if (UseAvx512() && WinogradAllowed() && dw::UseWinograd(a)) return dw::ForwardWinograd<T>(a, x, y);
  const bool gate = a.epilogue != DwEpilogue::kNone;
  const int64_t ho = a.ho(), wo = a.wo(), taps = a.kh * a.kw;
  const int64_t cout = gate ? a.c / 2 : a.c;  // output channels (gate: channel pairs)
  const int64_t stride = a.y_pixel_stride > 0 ? a.y_pixel_stride : cout;
  const int64_t blocks = (cout + kLanes - 1) / kLanes;
  if (a.n <= 0 || ho <= 0 || wo <= 0 || cout <= 0) return;
  const Tiling t = TileOutput(a.n, ho, wo, blocks);
  const dw::IoKernels<T>& io = Io<T>();
  const dw::MathKernels& math = Math();
  const int parts = gate ? 2 : 1;
  const std::vector<float> wp = PackTaps(a, cout, blocks, parts);
  const int64_t wp_n = (taps + 1) * kLanes;
  // Scratch: the input window of each part, then two output rows of each.
  const int64_t win_n = Lines((t.th + a.kh - 1) * (t.tw + a.kw - 1) * kLanes), out_n = 2 * t.tw * kLanes;
  const int64_t tasks = a.n * t.tiles_per_image() * blocks;
  ParallelFor(0, tasks, 1, [&](int64_t lo, int64_t hi) {
    float* s = Scratch(parts * (win_n + out_n));
    float* out = s + parts * win_n;  // [part][2 rows][tw][16]
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t blk = task % blocks, tile = task / blocks % t.tiles_per_image();
      const int64_t n = task / blocks / t.tiles_per_image();
      const int64_t oy0 = tile / t.ntx * t.th, ox0 = tile % t.ntx * t.tw;
      const int64_t th = std::min(t.th, ho - oy0), tw = std::min(t.tw, wo - ox0), cols = tw + a.kw - 1;
      const int nc = static_cast<int>(std::min<int64_t>(kLanes, cout - blk * kLanes));
      const T* img = x + n * a.h * a.w * a.c;
      for (int q = 0; q < parts; ++q)
        io.pack(img, a.h, a.w, a.c, blk * kLanes + q * cout, nc, oy0 - a.ph, th + a.kh - 1, ox0 - a.pw, cols,
                s + q * win_n);
      for (int64_t r = 0; r < th; r += 2) {
        const int rows = static_cast<int>(std::min<int64_t>(2, th - r));
        for (int q = 0; q < parts; ++q) {
          const float* taps_q = wp.data() + (q * blocks + blk) * wp_n;
          math.fwd_rows(s + q * win_n + r * cols * kLanes, cols, a.kh, a.kw, taps_q,
                        a.bias ? taps_q + taps * kLanes : nullptr, tw, rows, out + q * out_n);
        }
        for (int i = 0; i < rows; ++i) {
          T* dst = y + ((n * ho + oy0 + r + i) * wo + ox0) * stride + blk * kLanes;
          io.store(out + i * tw * kLanes, gate ? out + out_n + i * tw * kLanes : nullptr, tw, nc, a.epilogue,
                   a.factor, dst, stride);
        }
      }
    }
  });
}

template <typename T>
void DepthwiseBackwardWeightTiledCpu(const DwForwardArgs& a, const T* x, const T* dy, float* dwt) {
  const int64_t ho = a.ho(), wo = a.wo(), taps = a.kh * a.kw, c = a.c;
  const int64_t blocks = (c + kLanes - 1) / kLanes;
  if (taps <= 0 || c <= 0) return;
  const Tiling t = TileOutput(std::max<int64_t>(a.n, 1), std::max<int64_t>(ho, 1), std::max<int64_t>(wo, 1), blocks);
  const int64_t tiles = a.n > 0 && ho > 0 && wo > 0 ? a.n * t.tiles_per_image() : 0;
  const dw::IoKernels<T>& io = Io<T>();
  const dw::MathKernels& math = Math();
  // part[(tile * blocks + blk) * taps + tap][16].
  std::vector<float> part(tiles * blocks * taps * kLanes);
  const int64_t in_n = Lines((t.th + a.kh - 1) * (t.tw + a.kw - 1) * kLanes), dy_n = t.th * t.tw * kLanes;
  ParallelFor(0, tiles * blocks, 1, [&](int64_t lo, int64_t hi) {
    float* xs = Scratch(in_n + dy_n);
    float* ds = xs + in_n;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t blk = task % blocks, tile = task / blocks % t.tiles_per_image();
      const int64_t n = task / blocks / t.tiles_per_image();
      const int64_t oy0 = tile / t.ntx * t.th, ox0 = tile % t.ntx * t.tw;
      const int64_t th = std::min(t.th, ho - oy0), tw = std::min(t.tw, wo - ox0);
      const int64_t cols = tw + a.kw - 1, c0 = blk * kLanes;
      const int nc = static_cast<int>(std::min<int64_t>(kLanes, c - c0));
      io.pack(x + n * a.h * a.w * c, a.h, a.w, c, c0, nc, oy0 - a.ph, th + a.kh - 1, ox0 - a.pw, cols, xs);
      io.pack(dy + n * ho * wo * c, ho, wo, c, c0, nc, oy0, th, ox0, tw, ds);
      math.wgrad(xs, cols, ds, th, tw, a.kh, a.kw, part.data() + task * taps * kLanes);
    }
  });
  ParallelFor(0, blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t c0 = blk * kLanes, nc = std::min<int64_t>(kLanes, c - c0);
      for (int64_t k = 0; k < taps; ++k) {
        float acc[kLanes] = {};
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const float* pp = part.data() + ((tile * blocks + blk) * taps + k) * kLanes;
          for (int l = 0; l < kLanes; ++l) acc[l] += pp[l];
        }
        std::copy(acc, acc + nc, dwt + k * c + c0);
      }
    }
  });
}

const char* DepthwiseTiledPath() { return UseAvx512() ? "avx512" : "portable"; }

bool ForceDepthwisePortable(bool force) { return g_force_portable.exchange(force); }

bool EnableDepthwiseWinograd(bool enable) { return dw::EnableWinograd(enable); }

const char* DepthwiseWideKernelPath() {
  DwForwardArgs wide{.n = 1, .h = 16, .w = 16, .c = 16, .kh = 13, .kw = 13, .ph = 6, .pw = 6};
  return UseAvx512() && WinogradAllowed() && dw::UseWinograd(wide) ? "winograd_f4x4" : "direct";
}

#define CF_DW_TILED_INSTANTIATE(T)                                                           \
  template void DepthwiseForwardTiledCpu<T>(const DwForwardArgs&, const T*, T*);              \
  template void DepthwiseBackwardWeightTiledCpu<T>(const DwForwardArgs&, const T*, const T*, float*);
CF_DW_TILED_INSTANTIATE(float)
CF_DW_TILED_INSTANTIATE(f16_t)
CF_DW_TILED_INSTANTIATE(bf16_t)
#undef CF_DW_TILED_INSTANTIATE

}  // namespace cf
