// conv2d on the CPU through the blocked GEMM (ops/matmul/cpu_gemm.h).
//
// Output pixels are processed in bands of whole output rows (n, oy), so the
// im2col matrix of a band, [band pixels, kh·kw·Cin/groups], stays a few MiB
// whatever the image size. Per group g the GEMM sees
//   forward:          y_g [P, Cout/g]  = col_g [P, K] · W_gᵀ        (W_g [Cout/g, K])
//   backward input:   dcol_g [P, K]    = dy_g [P, Cout/g] · W_g     then col2im
//   backward weight:  dW_g [Cout/g, K] += dy_gᵀ · col_g             over bands
// with K = kh·kw·Cin/groups. A 1x1, stride-1, unpadded conv needs no im2col:
// x itself is the [N·H·W, Cin] matrix.
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

// About 4M elements of im2col per band (16 MiB in f32).
constexpr int64_t kBandElements = int64_t{1} << 22;

bool IsPointwise(const ConvParams& p) {
  return p.kh == 1 && p.kw == 1 && p.sh == 1 && p.sw == 1 && p.ph == 0 && p.pw == 0;
}

// Output rows (n, oy) per band.
int64_t BandRows(const ConvParams& p) {
  return std::max<int64_t>(1, kBandElements / std::max<int64_t>(1, p.wo * p.kdim()));
}

// col [ (r1 - r0)·Wo, K ] = the patches of output rows [r0, r1) for group g:
// col[pix, (ky·kw + kx)·Cin/g + ci] = x[n, oy·sh - ph + ky·dh, ox·sw - pw + kx·dw, g·Cin/g + ci] (0 outside).
template <typename T> void Im2Col(const ConvParams& p, const T* x, int64_t g, int64_t r0, int64_t r1, T* col) {
  const int64_t cig = p.cin_g(), kdim = p.kdim();
  ParallelFor(r0, r1, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t n = r / p.ho, oy = r % p.ho;
      for (int64_t ox = 0; ox < p.wo; ++ox) {
        T* dst = col + ((r - r0) * p.wo + ox) * kdim;
        for (int64_t ky = 0; ky < p.kh; ++ky) {
          const int64_t iy = oy * p.sh - p.ph + ky * p.dh;
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t ix = ox * p.sw - p.pw + kx * p.dw;
            T* d = dst + (ky * p.kw + kx) * cig;
            if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) {
              std::memset(static_cast<void*>(d), 0, cig * sizeof(T));  // +0 in every float format
            } else {
              std::memcpy(static_cast<void*>(d), x + ((n * p.h + iy) * p.w + ix) * p.cin + g * cig, cig * sizeof(T));
            }
          }
        }
      }
    }
  });
}

// dx_acc[n, iy, ix, g-channels] += the dcol entries of output rows [r0, r1)
// that land on it. Parallel over input rows (n, iy): each is written by one
// task only.
template <typename F>
void Col2ImGather(const ConvParams& p, const F* dcol, int64_t g, int64_t r0, int64_t r1, F* dx_acc) {
  const int64_t cig = p.cin_g(), kdim = p.kdim();
  std::vector<std::pair<int64_t, int64_t>> rows;  // (n, iy) touched by this band
  for (int64_t n = r0 / p.ho; n <= (r1 - 1) / p.ho; ++n) {
    const int64_t oy_lo = std::max<int64_t>(r0 - n * p.ho, 0), oy_hi = std::min<int64_t>(r1 - n * p.ho, p.ho);
    const int64_t iy_lo = std::max<int64_t>(0, oy_lo * p.sh - p.ph);
    const int64_t iy_hi = std::min<int64_t>(p.h - 1, (oy_hi - 1) * p.sh - p.ph + (p.kh - 1) * p.dh);
    for (int64_t iy = iy_lo; iy <= iy_hi; ++iy) rows.emplace_back(n, iy);
  }
  ParallelFor(0, static_cast<int64_t>(rows.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const auto [n, iy] = rows[t];
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t ty = iy + p.ph - ky * p.dh;
        if (ty < 0 || ty % p.sh != 0) continue;
        const int64_t r = n * p.ho + ty / p.sh;
        if (ty / p.sh >= p.ho || r < r0 || r >= r1) continue;
        for (int64_t ix = 0; ix < p.w; ++ix) {
          F* dst = dx_acc + ((n * p.h + iy) * p.w + ix) * p.cin + g * cig;
          for (int64_t kx = 0; kx < p.kw; ++kx) {
            const int64_t tx = ix + p.pw - kx * p.dw;
            if (tx < 0 || tx % p.sw != 0 || tx / p.sw >= p.wo) continue;
            const F* src = dcol + ((r - r0) * p.wo + tx / p.sw) * kdim + (ky * p.kw + kx) * cig;
            for (int64_t c = 0; c < cig; ++c) dst[c] += src[c];
          }
        }
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


// The packed weights of one conv call, per group; kept in the node's state
// across runs when the weight is a parameter (ops/kernel_state.h).
template <typename F> using PackedGroups = std::vector<gemm::PackedB<F>>;
struct WeightKey {
  const void* w = nullptr;
  int64_t k = 0, n = 0, groups = 0;
  bool operator==(const WeightKey&) const = default;
};
template <typename F, typename Make>
const PackedGroups<F>& PackedWeight(std::shared_ptr<void>* slot, const WeightKey& key, PackedGroups<F>& local,
                                    Make make) {
  if (const PackedGroups<F>* kept = KeptState<PackedGroups<F>>(slot, key, make)) return *kept;
  local = make();
  return local;
}

}  // namespace

template <typename T>
void ConvForwardGemmCpu(const ConvParams& p, const T* x, const T* w, const T* bias, T* y,
                        const ConvCpuExtras<T>& extras) {
  using F = gemm::GemmAcc<T>;
  const int64_t cog = p.cout_g(), cig = p.cin_g(), kdim = p.kdim();
  // B_g(k, co) = w[(g·Cout/g + co)·K + k]: the weight read transposed, packed once.
  PackedGroups<F> local;
  const PackedGroups<F>& wp =
      PackedWeight<F>(extras.weight_state, WeightKey{w, kdim, cog, p.groups}, local, [&] {
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
  if (IsPointwise(p)) {
    for (int64_t g = 0; g < p.groups; ++g)
      gemm::GemmPacked<T, T>(p.n * p.h * p.w, gemm::MatRef<T>{x + g * cig, p.cin, 1}, wp[g], y + g * cog, p.cout,
                             epilogue(g, 0));
    return;
  }
  const int64_t rows = p.n * p.ho, band = BandRows(p);
  ScratchBuffer col_buf(std::min(band, rows) * p.wo * kdim * static_cast<int64_t>(sizeof(T)));
  T* col = col_buf.as<T>();  // written by Im2Col before each read
  for (int64_t r0 = 0; r0 < rows; r0 += band) {
    const int64_t r1 = std::min(rows, r0 + band);
    for (int64_t g = 0; g < p.groups; ++g) {
      Im2Col(p, x, g, r0, r1, col);
      gemm::GemmPacked<T, T>((r1 - r0) * p.wo, gemm::RowMajor<T>(col, kdim), wp[g],
                             y + r0 * p.wo * p.cout + g * cog, p.cout, epilogue(g, r0 * p.wo));
    }
  }
}

template <typename T>
void ConvBackwardInputGemmCpu(const ConvParams& p, const T* dy, const T* w, T* dx, const ConvCpuExtras<T>& extras) {
  using F = gemm::GemmAcc<T>;
  const int64_t cog = p.cout_g(), cig = p.cin_g(), kdim = p.kdim();
  // B_g(co, k) = w[(g·Cout/g + co)·K + k]: W_g as stored.
  PackedGroups<F> local;
  const PackedGroups<F>& wp =
      PackedWeight<F>(extras.weight_state, WeightKey{w, cog, kdim, p.groups}, local, [&] {
        PackedGroups<F> packed;
        for (int64_t g = 0; g < p.groups; ++g)
          packed.push_back(gemm::PackB<T, F>(cog, kdim, gemm::RowMajor(w + g * cog * kdim, kdim)));
        return packed;
      });
  auto dy_rows = [&](int64_t pix0, int64_t g) { return gemm::MatRef<T>{dy + pix0 * p.cout + g * cog, p.cout, 1}; };
  if (IsPointwise(p)) {
    for (int64_t g = 0; g < p.groups; ++g)
      gemm::GemmPacked<T, T>(p.n * p.h * p.w, dy_rows(0, g), wp[g], dx + g * cig, p.cin);
    return;
  }
  const int64_t numel = p.n * p.h * p.w * p.cin;
  // Accumulate in F: directly in dx when T is F, else in a scratch copy.
  std::vector<F> scratch;
  F* acc;
  if constexpr (std::is_same_v<T, F>) {
    acc = dx;
  } else {
    scratch.resize(numel);
    acc = scratch.data();
  }
  std::fill_n(acc, numel, F(0));
  const int64_t rows = p.n * p.ho, band = BandRows(p);
  ScratchBuffer dcol_buf(std::min(band, rows) * p.wo * kdim * static_cast<int64_t>(sizeof(F)));
  F* dcol = dcol_buf.as<F>();  // written by the GEMM before each read
  for (int64_t r0 = 0; r0 < rows; r0 += band) {
    const int64_t r1 = std::min(rows, r0 + band);
    for (int64_t g = 0; g < p.groups; ++g) {
      gemm::GemmPacked<T, F>((r1 - r0) * p.wo, dy_rows(r0 * p.wo, g), wp[g], dcol, kdim);
      Col2ImGather(p, dcol, g, r0, r1, acc);
    }
  }
  if constexpr (!std::is_same_v<T, F>) StoreAll(acc, dx, numel);
}

template <typename T> void ConvBackwardWeightGemmCpu(const ConvParams& p, const T* x, const T* dy, T* dw) {
  using F = gemm::GemmAcc<T>;
  const int64_t cog = p.cout_g(), cig = p.cin_g(), kdim = p.kdim();
  const int64_t numel = p.cout * kdim;
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
      gemm::Gemm<T, T, F>(cog, kdim, p.n * p.h * p.w, dy_t(0, g), gemm::MatRef<T>{x + g * cig, p.cin, 1},
                          acc + g * cog * kdim, kdim);
  } else {
    const int64_t rows = p.n * p.ho, band = BandRows(p);
    if (rows == 0) std::fill_n(acc, numel, F(0));
    ScratchBuffer col_buf(std::min(band, rows) * p.wo * kdim * static_cast<int64_t>(sizeof(T)));
    T* col = col_buf.as<T>();  // written by Im2Col before each read
    for (int64_t r0 = 0; r0 < rows; r0 += band) {
      const int64_t r1 = std::min(rows, r0 + band);
      for (int64_t g = 0; g < p.groups; ++g) {
        Im2Col(p, x, g, r0, r1, col);
        gemm::Epilogue<F> ep;
        ep.accumulate = r0 > 0;
        gemm::Gemm<T, T, F>(cog, kdim, (r1 - r0) * p.wo, dy_t(r0 * p.wo, g), gemm::RowMajor<T>(col, kdim),
                            acc + g * cog * kdim, kdim, ep);
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
