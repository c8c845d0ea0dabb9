// conv2d on the CPU as an implicit GEMM (ops/matmul/cpu_gemm.h): the GEMM's
// packers read the patches of x (or dy) through a table of pointers, one per
// (pixel, kernel tap), null for a tap in the padding, so no im2col matrix is
// ever written. Per group g, with taps = kh·kw and K = taps·Cin/g:
//   forward:          y_g  [P, Cout/g]  = X_ind [P, K] · W_gᵀ                   (W_g [Cout/g, K])
//   backward input:   dx_g [Q, Cin/g]   = dY_ind [Q, taps'·Cout/g] · W'_g       per stride phase, below
//   backward weight:  dW_g [Cout/g, K] += dy_gᵀ [Cout/g, P] · X_ind [P, K]      over bands of P
// X_ind's row of output pixel (n, oy, ox) is made of `taps` segments of Cin/g
// channels: segment (ky, kx) starts at x[n, oy·sh − ph + ky·dh, ox·sw − pw +
// kx·dw, g·Cin/g] (null outside the image). A 1x1, stride-1, unpadded conv
// needs no table: x itself is the [N·H·W, Cin] matrix.
//
// Backward input runs once per stride phase (ry, rx) (one phase at stride 1):
// the input pixels (n, ry + sh·j, rx + sw·i) receive exactly the taps ky, kx
// with (ry + ph − ky·dh) ≡ 0 (mod sh) and (rx + pw − kx·dw) ≡ 0 (mod sw), from
// dy[n, (iy + ph − ky·dh) / sh, (ix + pw − kx·dw) / sw] (null outside dy), so
// a strided conv's gradient multiplies only real products (no zero-inserted
// dy, no col2im). W'_g's row (tap, co) is w[g·Cout/g + co, ky, kx, :]. At
// stride 1 the product lands in dx directly; otherwise in a band buffer that
// is scattered to the phase's pixels (every dx pixel belongs to one phase).
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/conv/conv_cpu.h"
#include "ops/cpu_util.h"
#include "ops/kernel_state.h"
#include "ops/matmul/cpu_gemm.h"
#include "runtime/scratch.h"

namespace cf {
namespace {

// Pointers per table band (8 MiB): the forward and backward input cover
// 116k pixels of a 3x3 conv per GEMM call, more than any SD1.5 layer has.
constexpr int64_t kTablePointers = int64_t{1} << 20;
// Elements of packed X_ind per backward-weight band (16 MiB in f32), and the
// fewest pixels a band should have: each band re-reads and re-writes its f32
// block of dW, 2·Cout/g·(its columns)·4 bytes per 2·Cout/g·(its
// columns)·(band pixels) FLOPs, so bands of >= 2048 pixels keep that traffic
// below 1 byte per 500 FLOPs; narrower column chunks (fewer taps) pay for it.
constexpr int64_t kWeightBandElements = int64_t{1} << 22;
constexpr int64_t kMinWeightBand = 2048;

bool IsPointwise(const ConvParams& p) {
  return p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
}

template <typename T> using Table = const T**;

// tab[(q − q0)·(t1 − t0) + t − t0] for output pixels q in [q0, q1) (q =
// (n·Ho + oy)·Wo + ox) and taps t = ky·kw + kx in [t0, t1): the start of the
// channels of group g of the input pixel the tap reads, null in the padding.
template <typename T>
void PatchTable(const ConvParams& p, const T* x, int64_t g, int64_t q0, int64_t q1, int64_t t0, int64_t t1,
                Table<T> tab) {
  const int64_t nt = t1 - t0, c0 = g * p.cin_g();
  ParallelFor(q0, q1, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t ox = q % p.wo, r = q / p.wo, oy = r % p.ho, n = r / p.ho;
      const T** d = tab + (q - q0) * nt;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t iy = oy * p.sh - p.ph + (t / p.kw) * p.dh, ix = ox * p.sw - p.pw + (t % p.kw) * p.dw;
        const bool inside = iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
        d[t - t0] = inside ? x + ((n * p.h + iy) * p.w + ix) * p.cin + c0 : nullptr;
      }
    }
  });
}

// One stride phase of the backward input (see the top): the input pixels
// (n, ry + sh·j, rx + sw·i), j < hj, i < wj, and the taps they receive.
struct Phase {
  int64_t ry = 0, rx = 0, hj = 0, wj = 0;
  std::vector<int64_t> taps;  // t = ky·kw + kx
  int64_t pixels(const ConvParams& p) const { return p.n * hj * wj; }
};

std::vector<Phase> Phases(const ConvParams& p) {
  auto mod = [](int64_t v, int64_t m) { return ((v % m) + m) % m; };
  std::vector<Phase> out;
  for (int64_t ry = 0; ry < p.sh; ++ry)
    for (int64_t rx = 0; rx < p.sw; ++rx) {
      Phase ph;
      ph.ry = ry, ph.rx = rx;
      ph.hj = ry < p.h ? (p.h - ry + p.sh - 1) / p.sh : 0;
      ph.wj = rx < p.w ? (p.w - rx + p.sw - 1) / p.sw : 0;
      for (int64_t ky = 0; ky < p.kh; ++ky)
        for (int64_t kx = 0; kx < p.kw; ++kx)
          if (mod(ry + p.ph - ky * p.dh, p.sh) == 0 && mod(rx + p.pw - kx * p.dw, p.sw) == 0)
            ph.taps.push_back(ky * p.kw + kx);
      out.push_back(std::move(ph));
    }
  return out;
}

// The dx element offset of phase pixel q = (n·hj + j)·wj + i.
int64_t PhasePixel(const ConvParams& p, const Phase& f, int64_t q) {
  const int64_t i = q % f.wj, r = q / f.wj, j = r % f.hj, n = r / f.hj;
  return ((n * p.h + f.ry + p.sh * j) * p.w + f.rx + p.sw * i) * p.cin;
}

// tab[(q − q0)·|taps| + u] for phase pixels q in [q0, q1) and the phase's
// u-th tap: the start of group g's channels of the dy pixel it reads, null
// outside dy.
template <typename T>
void GradTable(const ConvParams& p, const Phase& f, const T* dy, int64_t g, int64_t q0, int64_t q1, Table<T> tab) {
  const int64_t nt = static_cast<int64_t>(f.taps.size()), c0 = g * p.cout_g();
  ParallelFor(q0, q1, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t q = lo; q < hi; ++q) {
      const int64_t i = q % f.wj, r = q / f.wj, j = r % f.hj, n = r / f.hj;
      const int64_t iy = f.ry + p.sh * j, ix = f.rx + p.sw * i;
      const T** d = tab + (q - q0) * nt;
      for (int64_t u = 0; u < nt; ++u) {
        const int64_t t = f.taps[u];
        // Exact divisions: the phase keeps only taps whose offsets are multiples of the stride.
        const int64_t ty = iy + p.ph - (t / p.kw) * p.dh, tx = ix + p.pw - (t % p.kw) * p.dw;
        const int64_t oy = ty / p.sh, ox = tx / p.sw;
        const bool inside = ty >= 0 && oy < p.ho && tx >= 0 && ox < p.wo;
        d[u] = inside ? dy + ((n * p.ho + oy) * p.wo + ox) * p.cout + c0 : nullptr;
      }
    }
  });
}

// Dense copy with conversion (f32 accumulators -> storage).
template <typename T, typename F> void StoreAll(const F* src, T* dst, int64_t n) {
  ParallelFor(0, n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) Store(dst, i, static_cast<Acc<T>>(src[i]));
  });
}

// The packed weights of one conv call, one per (phase, group); kept in the
// node's state across runs when the weight is a parameter (ops/kernel_state.h).
template <typename F> using PackedGroups = std::vector<gemm::PackedB<F>>;
struct WeightKey {
  const void* w = nullptr;
  int64_t k = 0, n = 0, groups = 0, kh = 0, kw = 0, sh = 0, sw = 0;
  bool operator==(const WeightKey&) const = default;
};

}  // namespace

template <typename T>
void ConvForwardGemmCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                        const ConvCpuExtras<T>& extras) {
  using F = gemm::GemmAcc<T>;
  const int64_t cog = p.cout_g(), cig = p.cin_g(), kdim = p.kdim(), taps = p.kh * p.kw;
  // B_g(k, co) = w[(g·Cout/g + co)·K + k]: the weight read transposed, packed once.
  PackedGroups<F> local;
  const PackedGroups<F>& wp = KeptOrMade(
      extras.weight_state, WeightKey{w, kdim, cog, p.groups, p.kh, p.kw, 0, 0}, local, [&] {
        PackedGroups<F> packed;
        for (int64_t g = 0; g < p.groups; ++g)
          packed.push_back(gemm::PackB<T, F>(kdim, cog, gemm::Transposed(w + g * cog * kdim, kdim)));
        return packed;
      });
  // Output rows from `row0` (pixels) of group g.
  auto epilogue = [&](int64_t g, int64_t row0) {
    gemm::Epilogue<T> ep;
    ep.bias = bias ? bias + g * cog : nullptr;
    if (extras.residual != nullptr) {
      ep.residual = extras.residual + row0 * p.cout + g * cog;
      ep.ldr = p.cout;
    }
    return ep;
  };
  if (IsPointwise(p) || kdim == 0) {  // x is A itself (K = 0: y = bias + residual)
    for (int64_t g = 0; g < p.groups; ++g)
      gemm::GemmPacked<T, T>(p.n * p.ho * p.wo, gemm::MatRef<T>{x + g * cig, p.cin, 1}, wp[g], y + g * cog, p.cout,
                             epilogue(g, 0));
    return;
  }
  const int64_t pixels = p.n * p.ho * p.wo, band = std::max<int64_t>(1, kTablePointers / taps);
  ScratchBuffer tab_buf(std::min(band, pixels) * taps * static_cast<int64_t>(sizeof(T*)));
  Table<T> tab = tab_buf.as<const T*>();  // written by PatchTable before each read
  for (int64_t q0 = 0; q0 < pixels; q0 += band) {
    const int64_t q1 = std::min(pixels, q0 + band);
    for (int64_t g = 0; g < p.groups; ++g) {
      PatchTable(p, x, g, q0, q1, 0, taps, tab);
      gemm::GemmPacked<T, T>(q1 - q0, gemm::IndirectRef<T>{tab, taps, cig}, wp[g], y + q0 * p.cout + g * cog, p.cout,
                             epilogue(g, q0));
    }
  }
}

template <typename T>
void ConvBackwardInputGemmCpu(const ConvParams& p, const T* dy, const T* w, T* dx, const ConvCpuExtras<T>& extras) {
  using F = gemm::GemmAcc<T>;
  const int64_t cog = p.cout_g(), cig = p.cin_g(), kdim = p.kdim(), taps = p.kh * p.kw;
  if (IsPointwise(p)) {  // dx = dy · W_g, W_g [Cout/g, Cin/g] as stored
    PackedGroups<F> local;
    const PackedGroups<F>& wp = KeptOrMade(
        extras.weight_state, WeightKey{w, cog, kdim, p.groups, 1, 1, 1, 1}, local, [&] {
          PackedGroups<F> packed;
          for (int64_t g = 0; g < p.groups; ++g)
            packed.push_back(gemm::PackB<T, F>(cog, kdim, gemm::RowMajor(w + g * cog * kdim, kdim)));
          return packed;
        });
    for (int64_t g = 0; g < p.groups; ++g)
      gemm::GemmPacked<T, T>(p.n * p.h * p.w, gemm::MatRef<T>{dy + g * cog, p.cout, 1}, wp[g], dx + g * cig, p.cin);
    return;
  }
  const std::vector<Phase> phases = Phases(p);
  // W'_g of each phase: row u·Cout/g + co is w[g·Cout/g + co, taps[u], :],
  // read through a row table (a B with indirect K rows).
  PackedGroups<F> local;
  const PackedGroups<F>& wp = KeptOrMade(
      extras.weight_state, WeightKey{w, taps * cog, cig, p.groups, p.kh, p.kw, p.sh, p.sw}, local, [&] {
        PackedGroups<F> packed;
        std::vector<const T*> rows;
        for (const Phase& f : phases)
          for (int64_t g = 0; g < p.groups; ++g) {
            const int64_t nt = static_cast<int64_t>(f.taps.size());
            rows.resize(nt * cog);
            for (int64_t u = 0; u < nt; ++u)
              for (int64_t co = 0; co < cog; ++co) rows[u * cog + co] = w + (g * cog + co) * kdim + f.taps[u] * cig;
            packed.push_back(nt == 0 || cog == 0 ? gemm::PackedB<F>()
                                                 : gemm::PackB<T, F>(nt * cog, cig, gemm::IndirectRef<T>{
                                                                                        rows.data(), 1, cig}));
          }
        return packed;
      });
  const bool strided = p.sh > 1 || p.sw > 1;
  for (size_t fi = 0; fi < phases.size(); ++fi) {
    const Phase& f = phases[fi];
    const int64_t pixels = f.pixels(p), nt = static_cast<int64_t>(f.taps.size());
    if (pixels == 0) continue;
    if (nt == 0 || cog == 0) {  // no tap reaches these pixels: zero gradient
      ParallelFor(0, pixels, 256, [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo; q < hi; ++q)
          std::memset(static_cast<void*>(dx + PhasePixel(p, f, q)), 0, p.cin * sizeof(T));  // +0 in every format
      });
      continue;
    }
    const int64_t band = std::max<int64_t>(1, kTablePointers / nt);
    ScratchBuffer tab_buf(std::min(band, pixels) * nt * static_cast<int64_t>(sizeof(T*)));
    Table<T> tab = tab_buf.as<const T*>();  // written by GradTable before each read
    // Strided: the band's [pixels, Cin] product, scattered after the groups.
    ScratchBuffer out_buf(strided ? std::min(band, pixels) * p.cin * static_cast<int64_t>(sizeof(T)) : 0);
    for (int64_t q0 = 0; q0 < pixels; q0 += band) {
      const int64_t q1 = std::min(pixels, q0 + band);
      T* out = strided ? out_buf.as<T>() : dx + q0 * p.cin;
      for (int64_t g = 0; g < p.groups; ++g) {
        GradTable(p, f, dy, g, q0, q1, tab);
        gemm::GemmPacked<T, T>(q1 - q0, gemm::IndirectRef<T>{tab, nt, cog}, wp[fi * p.groups + g], out + g * cig,
                               p.cin);
      }
      if (strided) {
        ParallelFor(q0, q1, 64, [&](int64_t lo, int64_t hi) {
          for (int64_t q = lo; q < hi; ++q)
            std::memcpy(static_cast<void*>(dx + PhasePixel(p, f, q)), out + (q - q0) * p.cin, p.cin * sizeof(T));
        });
      }
    }
  }
}

template <typename T> void ConvBackwardWeightGemmCpu(const ConvParams& p, const T* x, const T* dy, T* dw) {
  using F = gemm::GemmAcc<T>;
  const int64_t cog = p.cout_g(), cig = p.cin_g(), kdim = p.kdim(), taps = p.kh * p.kw;
  const int64_t numel = p.cout * kdim, pixels = p.n * p.ho * p.wo;
  std::vector<F> scratch;
  F* acc;
  if constexpr (std::is_same_v<T, F>) {
    acc = dw;
  } else {
    scratch.resize(numel);
    acc = scratch.data();
  }
  // A_g(co, pix) = dy[pix, g·Cout/g + co]: dy read transposed.
  auto dy_t = [&](int64_t pix0, int64_t g) { return gemm::MatRef<T>{dy + pix0 * p.cout + g * cog, 1, p.cout}; };
  if (IsPointwise(p)) {
    for (int64_t g = 0; g < p.groups; ++g)
      gemm::Gemm<T, T, F>(cog, kdim, pixels, dy_t(0, g), gemm::MatRef<T>{x + g * cig, p.cin, 1},
                          acc + g * cog * kdim, kdim);
  } else if (pixels == 0 || cig == 0) {
    std::fill_n(acc, numel, F(0));
  } else {
    // Columns in chunks of whole taps when one band of all of them would be
    // too short (wide channels): chunk x band elements of packed X_ind.
    int64_t chunk = taps;
    if (pixels * kdim > kWeightBandElements) {
      chunk = std::clamp<int64_t>(kWeightBandElements / (kMinWeightBand * cig), 1, taps);
      const int64_t nchunks = (taps + chunk - 1) / chunk;
      chunk = (taps + nchunks - 1) / nchunks;
    }
    const int64_t band = std::max<int64_t>(1, kWeightBandElements / (chunk * cig));
    ScratchBuffer tab_buf(std::min(band, pixels) * chunk * static_cast<int64_t>(sizeof(T*)));
    Table<T> tab = tab_buf.as<const T*>();  // written by PatchTable before each read
    for (int64_t t0 = 0; t0 < taps; t0 += chunk) {
      const int64_t t1 = std::min(taps, t0 + chunk);
      for (int64_t q0 = 0; q0 < pixels; q0 += band) {
        const int64_t q1 = std::min(pixels, q0 + band);
        for (int64_t g = 0; g < p.groups; ++g) {
          PatchTable(p, x, g, q0, q1, t0, t1, tab);
          // B = X_ind [band pixels, (t1 − t0)·Cin/g]: its K rows (pixels) indirect.
          const gemm::PackedB<F> xb =
              gemm::PackB<T, F>(q1 - q0, (t1 - t0) * cig, gemm::IndirectRef<T>{tab, t1 - t0, cig});
          gemm::Epilogue<F> ep;
          ep.accumulate = q0 > 0;
          gemm::GemmPacked<T, F>(cog, dy_t(q0, g), xb, acc + g * cog * kdim + t0 * cig, kdim, ep);
        }
      }
    }
  }
  if constexpr (!std::is_same_v<T, F>) StoreAll(acc, dw, numel);
}

#define CF_CONV_GEMM_INSTANTIATE(T)                                                                           \
  template void ConvForwardGemmCpu<T>(const ConvParams&, const T*, const T*, const T*, T*, const ConvCpuExtras<T>&); \
  template void ConvBackwardInputGemmCpu<T>(const ConvParams&, const T*, const T*, T*, const ConvCpuExtras<T>&);     \
  template void ConvBackwardWeightGemmCpu<T>(const ConvParams&, const T*, const T*, T*);
CF_CONV_GEMM_INSTANTIATE(float)
CF_CONV_GEMM_INSTANTIATE(double)
CF_CONV_GEMM_INSTANTIATE(f16_t)
CF_CONV_GEMM_INSTANTIATE(bf16_t)
#undef CF_CONV_GEMM_INSTANTIATE

}  // namespace cf
