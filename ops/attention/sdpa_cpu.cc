// CPU kernels of scaled dot-product attention (sdpa_cpu.h).
//
// Layout trick: every score block is kept transposed, S^T [keys][64 queries],
// so the 64 queries of a block are four 16-lane vectors. The online softmax
// (running max m, denominator l, rescale factor alpha) is then purely
// vertical vector code, and every product of the forward and backward is the
// same small GEMM shape C[M][N] (+)= A[M][K] * B[K][N] with A read through
// arbitrary strides (broadcast one element at a time) and B row-major
// (vector loads): S^T = K Q^T, O^T += V^T P^T, dV += P^T dO, dP^T = V dO^T,
// dK += dS^T Q, dQ += dS K. One register-tiled AVX-512 micro-kernel (6 rows x
// up to 64 columns, masked column tail) therefore serves all of them, for any
// head dim. Scores are in log2 units (q pre-scaled by scale * log2(e)) so the
// exponential is exp2: a round, a degree-6 polynomial and a vscalefps.
#include "ops/attention/sdpa_cpu.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/attention/exp2_avx512.h"
#include "ops/cpu_util.h"
#include "runtime/thread_pool.h"

namespace cf::sdpa_cpu {
namespace {

constexpr int64_t kMq = 64;  // queries per block: four 16-float vectors
constexpr int64_t kNk = 96;  // keys per block: 16 micro-tiles of 6 rows
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr float kInf = std::numeric_limits<float>::infinity();

std::atomic<bool> g_force_generic{false};

bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return has;
}

// The f32 building blocks, one set per instruction set.
struct Kernels {
  // C[m][n] (+)= sum_k a[m * rsa + k * csa] * b[k * ldb + n] for m < M, n < N.
  void (*gemm)(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b,
               int64_t ldb, float* c, int64_t ldc, bool accumulate);
  // The same without accumulation, also raising colmax[n] to max_m C[m][n]
  // (the forward's block max, taken from the registers instead of a pass).
  void (*gemm_colmax)(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b,
                      int64_t ldb, float* c, int64_t ldc, float* colmax);
  // One online-softmax step on s [nk][kMq] (log2 units): m, l, alpha [kMq]
  // are updated, s becomes exp2(s - max) in place. mx: max(m, the block's
  // column max) when the caller has it, else null.
  void (*softmax_step)(float* s, int64_t nk, const float* mx, float* m, float* l, float* alpha);
  // rows x kMq matrix t: t[r][i] *= alpha[i].
  void (*scale_cols)(float* t, int64_t rows, const float* alpha);
  // s [nk][kMq] := exp2(s - lse2[i]).
  void (*exp_sub)(float* s, int64_t nk, const float* lse2);
  // dp [nk][kMq] := p * (dp - dvec[i]).
  void (*dsoftmax)(const float* p, float* dp, int64_t nk, const float* dvec);
};

// ---- portable kernels (the compiler vectorises the inner loops) ------------

void GemmGeneric(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b,
                 int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  for (int64_t m = 0; m < M; ++m) {
    float* cm = c + m * ldc;
    if (!accumulate) std::fill(cm, cm + N, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float am = a[m * rsa + k * csa];
      const float* bk = b + k * ldb;
      for (int64_t n = 0; n < N; ++n) cm[n] += am * bk[n];
    }
  }
}

void GemmColMaxGeneric(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b,
                       int64_t ldb, float* c, int64_t ldc, float* colmax) {
  GemmGeneric(M, N, K, a, rsa, csa, b, ldb, c, ldc, false);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) colmax[n] = std::max(colmax[n], c[m * ldc + n]);
}

void SoftmaxStepGeneric(float* s, int64_t nk, const float* mxin, float* m, float* l, float* alpha) {
  for (int64_t i = 0; i < kMq; ++i) {
    float mx = m[i];
    if (mxin != nullptr) mx = mxin[i];
    else
      for (int64_t j = 0; j < nk; ++j) mx = std::max(mx, s[j * kMq + i]);
    const float use = mx == -kInf ? 0.0f : mx;  // a row without visible keys so far
    alpha[i] = std::exp2(m[i] - use);
    float sum = 0;
    for (int64_t j = 0; j < nk; ++j) {
      const float e = std::exp2(s[j * kMq + i] - use);
      s[j * kMq + i] = e;
      sum += e;
    }
    l[i] = l[i] * alpha[i] + sum;
    m[i] = mx;
  }
}

void ScaleColsGeneric(float* t, int64_t rows, const float* alpha) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < kMq; ++i) t[r * kMq + i] *= alpha[i];
}

void ExpSubGeneric(float* s, int64_t nk, const float* lse2) {
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t i = 0; i < kMq; ++i) s[j * kMq + i] = std::exp2(s[j * kMq + i] - lse2[i]);
}

void DSoftmaxGeneric(const float* p, float* dp, int64_t nk, const float* dvec) {
  for (int64_t j = 0; j < nk; ++j)
    for (int64_t i = 0; i < kMq; ++i) dp[j * kMq + i] = p[j * kMq + i] * (dp[j * kMq + i] - dvec[i]);
}

constexpr Kernels kGeneric{&GemmGeneric, &GemmColMaxGeneric, &SoftmaxStepGeneric, &ScaleColsGeneric, &ExpSubGeneric, &DSoftmaxGeneric};

// ---- AVX-512 kernels (compiled for AVX-512 by the target attribute only;
// used after __builtin_cpu_supports says yes) --------------------------------

#define CF_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))

// GCC 12's AVX-512 headers pass _mm512_undefined_ps() as the unused source of
// unmasked max / roundscale / scalef, which -Wuninitialized reports (a false
// positive in the system header).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// An R x (16 W) tile of C: R * W accumulators (at most 24), W vectors of B
// and one broadcast of A per row, all in the 32 zmm registers. The last
// vector of each B row and C row is masked by `last` (the column tail).
template <int R, int W>
CF_AVX512 void MicroAvx512(int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b, int64_t ldb,
                           float* c, int64_t ldc, __mmask16 last, bool accumulate, float* colmax) {
  __m512 acc[R][W];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) acc[r][w] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = b + k * ldb;
    const float* ak = a + k * csa;
    __m512 bv[W];
#pragma GCC unroll 16
    for (int w = 0; w < W - 1; ++w) bv[w] = _mm512_loadu_ps(bk + 16 * w);
    bv[W - 1] = _mm512_maskz_loadu_ps(last, bk + 16 * (W - 1));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(ak[r * rsa]);
#pragma GCC unroll 16
      for (int w = 0; w < W; ++w) acc[r][w] = _mm512_fmadd_ps(av, bv[w], acc[r][w]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
#pragma GCC unroll 16
    for (int w = 0; w < W - 1; ++w) {
      __m512 x = acc[r][w];
      if (accumulate) x = _mm512_add_ps(x, _mm512_loadu_ps(cr + 16 * w));
      _mm512_storeu_ps(cr + 16 * w, x);
    }
    __m512 x = acc[r][W - 1];
    if (accumulate) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(last, cr + 16 * (W - 1)));
    _mm512_mask_storeu_ps(cr + 16 * (W - 1), last, x);
  }
  if (colmax != nullptr) {
#pragma GCC unroll 16
    for (int w = 0; w < W; ++w) {
      __m512 mx = acc[0][w];
#pragma GCC unroll 16
      for (int r = 1; r < R; ++r) mx = _mm512_max_ps(mx, acc[r][w]);
      const __mmask16 lanes = w == W - 1 ? last : __mmask16(0xFFFF);
      _mm512_mask_storeu_ps(colmax + 16 * w, lanes, _mm512_max_ps(mx, _mm512_maskz_loadu_ps(lanes, colmax + 16 * w)));
    }
  }
}

using MicroFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t, __mmask16,
                         bool, float*);
constexpr int kMr = 6;

template <int W>
struct MicroRow {
  static constexpr MicroFn fns[kMr] = {&MicroAvx512<1, W>, &MicroAvx512<2, W>, &MicroAvx512<3, W>,
                                       &MicroAvx512<4, W>, &MicroAvx512<5, W>, &MicroAvx512<6, W>};
};
constexpr const MicroFn* kMicro[4] = {MicroRow<1>::fns, MicroRow<2>::fns, MicroRow<3>::fns, MicroRow<4>::fns};

CF_AVX512 void GemmAvx512Impl(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa,
                              const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate, float* colmax) {
  for (int64_t n0 = 0; n0 < N; n0 += 64) {
    const int64_t nn = std::min<int64_t>(64, N - n0);
    const int w = static_cast<int>((nn + 15) / 16);
    const int rem = static_cast<int>(nn - 16 * (w - 1));
    const __mmask16 last = static_cast<__mmask16>((1u << rem) - 1u);
    const MicroFn* row = kMicro[w - 1];
    for (int64_t m0 = 0; m0 < M; m0 += kMr) {
      const int r = static_cast<int>(std::min<int64_t>(kMr, M - m0));
      row[r - 1](K, a + m0 * rsa, rsa, csa, b + n0, ldb, c + m0 * ldc + n0, ldc, last, accumulate,
                 colmax ? colmax + n0 : nullptr);
    }
  }
}

void GemmAvx512(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b,
                int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  GemmAvx512Impl(M, N, K, a, rsa, csa, b, ldb, c, ldc, accumulate, nullptr);
}
void GemmColMaxAvx512(int64_t M, int64_t N, int64_t K, const float* a, int64_t rsa, int64_t csa, const float* b,
                      int64_t ldb, float* c, int64_t ldc, float* colmax) {
  GemmAvx512Impl(M, N, K, a, rsa, csa, b, ldb, c, ldc, false, colmax);
}

using attention_simd::Exp2Avx512;

constexpr int kLanes = kMq / 16;

CF_AVX512 void SoftmaxStepAvx512(float* s, int64_t nk, const float* mxin, float* m, float* l, float* alpha) {
  __m512 mx[kLanes], use[kLanes], sum[kLanes];
  for (int w = 0; w < kLanes; ++w) mx[w] = _mm512_loadu_ps((mxin ? mxin : m) + 16 * w);
  if (mxin == nullptr)
    for (int64_t j = 0; j < nk; ++j)
      for (int w = 0; w < kLanes; ++w) mx[w] = _mm512_max_ps(mx[w], _mm512_loadu_ps(s + j * kMq + 16 * w));
  const __m512 ninf = _mm512_set1_ps(-kInf);
  for (int w = 0; w < kLanes; ++w) {
    // Rows without a visible key so far keep m = -inf and use 0 as the
    // offset: their scores are all -inf and exp2 gives exact zeros.
    use[w] = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(mx[w], ninf, _CMP_EQ_OQ), mx[w], _mm512_setzero_ps());
    _mm512_storeu_ps(alpha + 16 * w, Exp2Avx512(_mm512_sub_ps(_mm512_loadu_ps(m + 16 * w), use[w])));
    sum[w] = _mm512_setzero_ps();
  }
  for (int64_t j = 0; j < nk; ++j)
    for (int w = 0; w < kLanes; ++w) {
      const __m512 e = Exp2Avx512(_mm512_sub_ps(_mm512_loadu_ps(s + j * kMq + 16 * w), use[w]));
      _mm512_storeu_ps(s + j * kMq + 16 * w, e);
      sum[w] = _mm512_add_ps(sum[w], e);
    }
  for (int w = 0; w < kLanes; ++w) {
    const __m512 lw = _mm512_fmadd_ps(_mm512_loadu_ps(l + 16 * w), _mm512_loadu_ps(alpha + 16 * w), sum[w]);
    _mm512_storeu_ps(l + 16 * w, lw);
    _mm512_storeu_ps(m + 16 * w, mx[w]);
  }
}

CF_AVX512 void ScaleColsAvx512(float* t, int64_t rows, const float* alpha) {
  __m512 a[kLanes];
  for (int w = 0; w < kLanes; ++w) a[w] = _mm512_loadu_ps(alpha + 16 * w);
  for (int64_t r = 0; r < rows; ++r)
    for (int w = 0; w < kLanes; ++w)
      _mm512_storeu_ps(t + r * kMq + 16 * w, _mm512_mul_ps(_mm512_loadu_ps(t + r * kMq + 16 * w), a[w]));
}

CF_AVX512 void ExpSubAvx512(float* s, int64_t nk, const float* lse2) {
  __m512 o[kLanes];
  for (int w = 0; w < kLanes; ++w) o[w] = _mm512_loadu_ps(lse2 + 16 * w);
  for (int64_t j = 0; j < nk; ++j)
    for (int w = 0; w < kLanes; ++w) {
      float* x = s + j * kMq + 16 * w;
      _mm512_storeu_ps(x, Exp2Avx512(_mm512_sub_ps(_mm512_loadu_ps(x), o[w])));
    }
}

CF_AVX512 void DSoftmaxAvx512(const float* p, float* dp, int64_t nk, const float* dvec) {
  __m512 dv[kLanes];
  for (int w = 0; w < kLanes; ++w) dv[w] = _mm512_loadu_ps(dvec + 16 * w);
  for (int64_t j = 0; j < nk; ++j)
    for (int w = 0; w < kLanes; ++w) {
      float* x = dp + j * kMq + 16 * w;
      _mm512_storeu_ps(x, _mm512_mul_ps(_mm512_loadu_ps(p + j * kMq + 16 * w), _mm512_sub_ps(_mm512_loadu_ps(x), dv[w])));
    }
}

#pragma GCC diagnostic pop

constexpr Kernels kAvx512{&GemmAvx512, &GemmColMaxAvx512, &SoftmaxStepAvx512, &ScaleColsAvx512, &ExpSubAvx512, &DSoftmaxAvx512};

const Kernels& Active() { return HasAvx512() && !g_force_generic.load() ? kAvx512 : kGeneric; }

// ---- shared pieces -----------------------------------------------------------

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Keys [j0, j0 + nk) are inside the causal / band range of every query of
// [i0, i0 + mq) (always true without those limits).
bool InsideLimits(const SdpaParams& p, int64_t i0, int64_t mq, int64_t j0, int64_t nk) {
  if (!p.causal && p.window < 0) return true;
  return j0 >= p.KeyBegin(i0 + mq - 1) && j0 + nk <= p.KeyEnd(i0);
}

// Sets the scores of s [nk][kMq] (keys j0.., queries i0.., mq of them) that
// are not visible to -inf: keys the mask hides (a whole row) and, where the
// block is not entirely inside every query's causal / band range, the pairs
// outside it.
void MaskBlock(const SdpaParams& p, float* s, int64_t i0, int64_t mq, int64_t j0, int64_t nk, const uint8_t* mrow) {
  if (mrow != nullptr) {
    for (int64_t j = 0; j < nk; ++j)
      if (mrow[j0 + j] == 0) std::fill(s + j * kMq, s + (j + 1) * kMq, -kInf);
  }
  if (InsideLimits(p, i0, mq, j0, nk)) return;
  for (int64_t i = 0; i < mq; ++i) {
    const int64_t lo = p.KeyBegin(i0 + i), hi = p.KeyEnd(i0 + i);
    for (int64_t j = 0; j < nk; ++j)
      if (j0 + j < lo || j0 + j >= hi) s[j * kMq + i] = -kInf;
  }
}

// Queries [i0, i0 + mq) see some key of [j0, j0 + nk) before the key mask.
bool Overlaps(const SdpaParams& p, int64_t i0, int64_t mq, int64_t j0, int64_t nk) {
  return p.KeyBegin(i0) < j0 + nk && p.KeyEnd(i0 + mq - 1) > j0;
}

// t [d][kMq] = x[i][c] * scale for rows i < mq of x (stride ld), zero columns
// beyond mq.
void PackTransposed(const float* x, int64_t ld, int64_t mq, int64_t d, float scale, float* t) {
  for (int64_t c = 0; c < d; ++c) std::fill(t + c * kMq + mq, t + (c + 1) * kMq, 0.0f);
  for (int64_t i = 0; i < mq; ++i) {
    const float* xi = x + i * ld;
    for (int64_t c = 0; c < d; ++c) t[c * kMq + i] = xi[c] * scale;
  }
}

// dst [n][d] = the n rows of one head in src (row stride ld): a contiguous
// copy, so that a head's K and V (or Q and dO) stay in L2 without the other
// heads' channels sharing their cache lines.
void PackRows(const float* src, int64_t ld, int64_t n, int64_t d, float* dst) {
  for (int64_t r = 0; r < n; ++r) std::copy(src + r * ld, src + r * ld + d, dst + r * d);
}

std::vector<float> ToF32(const void* src, int64_t n, bool is_f16) {
  std::vector<float> out(n);
  ParallelFor(0, n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    if (is_f16) {
      const f16_t* s = static_cast<const f16_t*>(src);
      for (int64_t i = lo; i < hi; ++i) out[i] = F16BitsToF32(s[i].bits);
    } else {
      const bf16_t* s = static_cast<const bf16_t*>(src);
      for (int64_t i = lo; i < hi; ++i) out[i] = BF16BitsToF32(s[i].bits);
    }
  });
  return out;
}

// ---- the f32 flash kernels (T: the output storage) ----------------------------

template <class T>
void FlashForward(const SdpaParams& p, const float* q, const float* k, const float* v, const uint8_t* mask, T* out,
                  float* lse) {
  const Kernels& kr = Active();
  const int64_t B = p.batch, H = p.heads, nq = p.nq, nkv = p.nkv, d = p.head_dim, C = p.channels();
  const int64_t nqb = CeilDiv(nq, kMq);
  const float qscale = static_cast<float>(p.scale) * kLog2e;
  ParallelFor(0, B * H * nqb, 1, [&](int64_t lo, int64_t hi) {
    std::vector<float> qt(d * kMq), ot(d * kMq), s(kNk * kMq), m(kMq), l(kMq), alpha(kMq), bmax(kMq);
    std::vector<float> kp(nkv * d), vp(nkv * d);  // the current head's K and V
    int64_t packed = -1;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / (H * nqb), h = task / nqb % H, i0 = task % nqb * kMq;
      const int64_t mq = std::min(kMq, nq - i0);
      if (packed != task / nqb) {
        PackRows(k + b * nkv * C + h * d, C, nkv, d, kp.data());
        PackRows(v + b * nkv * C + h * d, C, nkv, d, vp.data());
        packed = task / nqb;
      }
      PackTransposed(q + (b * nq + i0) * C + h * d, C, mq, d, qscale, qt.data());
      std::fill(ot.begin(), ot.end(), 0.0f);
      std::fill(m.begin(), m.end(), -kInf);
      std::fill(l.begin(), l.end(), 0.0f);
      const uint8_t* mrow = mask ? mask + b * nkv : nullptr;
      // The causal and band limits are monotone in i, so the block's keys
      // are one range; key blocks outside it are never touched.
      const int64_t jlo = p.KeyBegin(i0), jhi = p.KeyEnd(i0 + mq - 1);
      for (int64_t j0 = jlo; j0 < jhi; j0 += kNk) {
        const int64_t nk = std::min(kNk, jhi - j0);
        const float* kb = kp.data() + j0 * d;
        const float* vb = vp.data() + j0 * d;
        // S^T = K Q^T. A block that needs no masking gets its column max from
        // the GEMM's registers; a masked one after masking, in a pass.
        const bool masked = mrow != nullptr || !InsideLimits(p, i0, mq, j0, nk);
        if (masked) {
          kr.gemm(nk, kMq, d, kb, d, 1, qt.data(), kMq, s.data(), kMq, false);
          MaskBlock(p, s.data(), i0, mq, j0, nk, mrow);
        } else {
          std::copy(m.begin(), m.end(), bmax.begin());
          kr.gemm_colmax(nk, kMq, d, kb, d, 1, qt.data(), kMq, s.data(), kMq, bmax.data());
        }
        kr.softmax_step(s.data(), nk, masked ? nullptr : bmax.data(), m.data(), l.data(), alpha.data());
        // Once the running max settles, alpha is 1 everywhere: skip the rescale.
        if (std::any_of(alpha.begin(), alpha.end(), [](float a) { return a != 1.0f; }))
          kr.scale_cols(ot.data(), d, alpha.data());
        kr.gemm(d, kMq, nk, vb, 1, d, s.data(), kMq, ot.data(), kMq, true);  // O^T += V^T P^T
      }
      for (int64_t i = 0; i < mq; ++i) {
        const bool any = l[i] > 0;
        const float inv = any ? 1.0f / l[i] : 0.0f;
        T* orow = out + (b * nq + i0 + i) * C + h * d;
        for (int64_t c = 0; c < d; ++c) Store(orow, c, ot[c * kMq + i] * inv);
        lse[(b * H + h) * nq + i0 + i] = any ? (m[i] + std::log2(l[i])) * kLn2 : -kInf;
      }
    }
  });
}

// ---- the bf16 forward: both products on VDPBF16PS ---------------------------
//
// The same blocks and online softmax as FlashForward, with bf16 operands
// paired along each product's reduction dim (VDPBF16PS multiplies bf16 pairs
// and adds both products into one f32 lane): S^T = K Q^T reduces over the
// head dim, so Q^T is packed once per block as [d/2][kMq] pairs (unscaled, so
// the bf16 inputs are used exactly; the scale is applied to S in f32) and a K
// row's consecutive head-dim pairs are broadcast 32 bits at a time; O^T +=
// V^T P^T reduces over keys, so V^T is packed per head as [keys/2][d] key
// pairs and the f32 P^T of each block is rounded to bf16 key pairs (what
// flash-attention kernels do on tensor cores). The softmax statistics (m, l)
// and the O^T accumulator stay f32. Needs an even head dim.

#define CF_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")))

bool HasAvx512Bf16() {
  static const bool has = HasAvx512() && __builtin_cpu_supports("avx512bf16");
  return has;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// R rows x kMq columns of C (f32, row stride kMq) (+)= scale * sum_p
// a[r * rsa + p * csa] . b[p * kMq + n], every a and b element a bf16 pair;
// colmax as in MicroAvx512.
template <int R>
CF_AVX512BF16 void MicroBf16(int64_t kp, const uint32_t* a, int64_t rsa, int64_t csa, const uint32_t* b, float* c,
                             float scale, bool accumulate, float* colmax) {
  __m512 acc[R][kLanes];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int w = 0; w < kLanes; ++w) acc[r][w] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const uint32_t* bp = b + p * kMq;
    __m512bh bv[kLanes];
#pragma GCC unroll 4
    for (int w = 0; w < kLanes; ++w) bv[w] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(bp + 16 * w));
    const uint32_t* ap = a + p * csa;
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(ap[r * rsa])));
#pragma GCC unroll 4
      for (int w = 0; w < kLanes; ++w) acc[r][w] = _mm512_dpbf16_ps(acc[r][w], av, bv[w]);
    }
  }
  const __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int w = 0; w < kLanes; ++w) {
      float* x = c + r * kMq + 16 * w;
      acc[r][w] = _mm512_mul_ps(acc[r][w], sv);
      _mm512_storeu_ps(x, accumulate ? _mm512_add_ps(acc[r][w], _mm512_loadu_ps(x)) : acc[r][w]);
    }
  if (colmax != nullptr) {
#pragma GCC unroll 4
    for (int w = 0; w < kLanes; ++w) {
      __m512 mx = _mm512_loadu_ps(colmax + 16 * w);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) mx = _mm512_max_ps(mx, acc[r][w]);
      _mm512_storeu_ps(colmax + 16 * w, mx);
    }
  }
}

using MicroBf16Fn = void (*)(int64_t, const uint32_t*, int64_t, int64_t, const uint32_t*, float*, float, bool,
                             float*);
constexpr MicroBf16Fn kMicroBf16[kMr] = {&MicroBf16<1>, &MicroBf16<2>, &MicroBf16<3>,
                                         &MicroBf16<4>, &MicroBf16<5>, &MicroBf16<6>};

// C [M][kMq] (+)= scale * A B over kp pairs, in tiles of kMr rows.
void GemmBf16(int64_t M, int64_t kp, const uint32_t* a, int64_t rsa, int64_t csa, const uint32_t* b, float* c,
              float scale, bool accumulate, float* colmax) {
  for (int64_t m0 = 0; m0 < M; m0 += kMr) {
    const int r = static_cast<int>(std::min<int64_t>(kMr, M - m0));
    kMicroBf16[r - 1](kp, a + m0 * rsa, rsa, csa, b, c + m0 * kMq, scale, accumulate, colmax);
  }
}

// pt [ceil(nk/2)][kMq] = bf16 key pairs (s[2p][i], s[2p + 1][i]) of the f32
// s [nk][kMq], the missing partner of an odd last key zero.
CF_AVX512BF16 void PackPairsBf16(const float* s, int64_t nk, uint32_t* pt) {
  // Interleaves the low 16 words (row 2p) with the high 16 (row 2p + 1).
  alignas(64) static constexpr uint16_t kIdx[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                    8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kIdx);
  for (int64_t j = 0; j < nk; j += 2) {
    const float* r0 = s + j * kMq;
    const float* r1 = r0 + kMq;
    for (int w = 0; w < kLanes; ++w) {
      const __m512 hi = j + 1 < nk ? _mm512_loadu_ps(r1 + 16 * w) : _mm512_setzero_ps();
      const __m512i x = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, _mm512_loadu_ps(r0 + 16 * w)));
      _mm512_storeu_si512(pt + j / 2 * kMq + 16 * w, _mm512_permutexvar_epi16(idx, x));
    }
  }
}

#pragma GCC diagnostic pop

uint32_t PairBits(uint16_t lo, uint16_t hi) { return static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16; }

void FlashForwardBf16(const SdpaParams& p, const bf16_t* q, const bf16_t* k, const bf16_t* v, const uint8_t* mask,
                      bf16_t* out, float* lse) {
  const Kernels& kr = kAvx512;
  const int64_t B = p.batch, H = p.heads, nq = p.nq, nkv = p.nkv, d = p.head_dim, C = p.channels();
  const int64_t nqb = CeilDiv(nq, kMq), dp = d / 2, nkp = CeilDiv(nkv, 2);
  const float qscale = static_cast<float>(p.scale) * kLog2e;
  ParallelFor(0, B * H * nqb, 1, [&](int64_t lo, int64_t hi) {
    std::vector<uint32_t> qt(dp * kMq), pt(kNk / 2 * kMq);
    std::vector<uint32_t> kp(nkv * dp), vt(nkp * d);  // the current head's K rows and V^T key pairs
    std::vector<float> ot(d * kMq), s(kNk * kMq), m(kMq), l(kMq), alpha(kMq), bmax(kMq);
    int64_t packed = -1;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t b = task / (H * nqb), h = task / nqb % H, i0 = task % nqb * kMq;
      const int64_t mq = std::min(kMq, nq - i0);
      if (packed != task / nqb) {
        const bf16_t* kh = k + b * nkv * C + h * d;
        const bf16_t* vh = v + b * nkv * C + h * d;
        for (int64_t j = 0; j < nkv; ++j)
          for (int64_t c = 0; c < dp; ++c) kp[j * dp + c] = PairBits(kh[j * C + 2 * c].bits, kh[j * C + 2 * c + 1].bits);
        for (int64_t j = 0; j < nkv; j += 2)
          for (int64_t c = 0; c < d; ++c)
            vt[j / 2 * d + c] = PairBits(vh[j * C + c].bits, j + 1 < nkv ? vh[(j + 1) * C + c].bits : uint16_t{0});
        packed = task / nqb;
      }
      std::fill(qt.begin(), qt.end(), 0u);
      for (int64_t i = 0; i < mq; ++i) {
        const bf16_t* qi = q + (b * nq + i0 + i) * C + h * d;
        for (int64_t c = 0; c < dp; ++c) qt[c * kMq + i] = PairBits(qi[2 * c].bits, qi[2 * c + 1].bits);
      }
      std::fill(ot.begin(), ot.end(), 0.0f);
      std::fill(m.begin(), m.end(), -kInf);
      std::fill(l.begin(), l.end(), 0.0f);
      const uint8_t* mrow = mask ? mask + b * nkv : nullptr;
      // Key blocks start at even keys so that they begin on a V^T pair; a key
      // before KeyBegin(i0) is outside the limits and masked like the others.
      const int64_t jlo = p.KeyBegin(i0) / 2 * 2, jhi = p.KeyEnd(i0 + mq - 1);
      for (int64_t j0 = jlo; j0 < jhi; j0 += kNk) {
        const int64_t nk = std::min(kNk, jhi - j0);
        const bool masked = mrow != nullptr || !InsideLimits(p, i0, mq, j0, nk);
        if (masked) {
          GemmBf16(nk, dp, kp.data() + j0 * dp, dp, 1, qt.data(), s.data(), qscale, false, nullptr);
          MaskBlock(p, s.data(), i0, mq, j0, nk, mrow);
        } else {
          std::copy(m.begin(), m.end(), bmax.begin());
          GemmBf16(nk, dp, kp.data() + j0 * dp, dp, 1, qt.data(), s.data(), qscale, false, bmax.data());
        }
        kr.softmax_step(s.data(), nk, masked ? nullptr : bmax.data(), m.data(), l.data(), alpha.data());
        if (std::any_of(alpha.begin(), alpha.end(), [](float a) { return a != 1.0f; }))
          kr.scale_cols(ot.data(), d, alpha.data());
        PackPairsBf16(s.data(), nk, pt.data());
        GemmBf16(d, CeilDiv(nk, 2), vt.data() + j0 / 2 * d, 1, d, pt.data(), ot.data(), 1.0f, true, nullptr);
      }
      for (int64_t i = 0; i < mq; ++i) {
        const bool any = l[i] > 0;
        const float inv = any ? 1.0f / l[i] : 0.0f;
        bf16_t* orow = out + (b * nq + i0 + i) * C + h * d;
        for (int64_t c = 0; c < d; ++c) Store(orow, c, ot[c * kMq + i] * inv);
        lse[(b * H + h) * nq + i0 + i] = any ? (m[i] + std::log2(l[i])) * kLn2 : -kInf;
      }
    }
  });
}

// FA2's backward from the saved lse. Tasks are (batch, head, key group): a
// task owns the key blocks g, g + G, ... of one head, so dK and dV are
// written race-free, and adds dQ into its own f32 partial [Nq][d]; the G
// partials are summed in order at the end (G > 1 only when batch x heads is
// too small to keep every thread busy).
template <class T>
void FlashBackward(const SdpaParams& p, const float* q, const float* k, const float* v, const float* o,
                   const float* lse, const float* dout, const uint8_t* mask, T* dq, T* dk, T* dv) {
  const Kernels& kr = Active();
  const int64_t B = p.batch, H = p.heads, nq = p.nq, nkv = p.nkv, d = p.head_dim, C = p.channels();
  const int64_t nqb = CeilDiv(nq, kMq), nkb = CeilDiv(nkv, kNk);
  const float qscale = static_cast<float>(p.scale) * kLog2e, scale = static_cast<float>(p.scale);

  // D = rowsum(dO * O) per (b, h, i).
  std::vector<float> dvec(B * H * nq);
  ParallelFor(0, B * nq, RowGrain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / nq, i = r % nq;
      for (int64_t h = 0; h < H; ++h) {
        const float *x = o + r * C + h * d, *y = dout + r * C + h * d;
        float acc = 0;
        for (int64_t c = 0; c < d; ++c) acc += x[c] * y[c];
        dvec[(b * H + h) * nq + i] = acc;
      }
    }
  });

  const int64_t G = std::clamp<int64_t>(CeilDiv(2 * NumThreads(), std::max<int64_t>(1, B * H)), 1,
                                        std::max<int64_t>(1, nkb));
  std::vector<float> dqp(G * B * H * nq * d, 0.0f);
  ParallelFor(0, B * H * G, 1, [&](int64_t lo, int64_t hi) {
    // Per (b, h): q^T and dO^T packed per query block, lse in log2 units
    // (+inf for rows without visible keys and for padding, so exp2 gives 0)
    // and D, padded to whole blocks.
    std::vector<float> qt(nqb * d * kMq), dot(nqb * d * kMq), lse2(nqb * kMq), dv_pad(nqb * kMq);
    std::vector<float> s(kNk * kMq), dp(kNk * kMq), dkacc(kNk * d), dvacc(kNk * d);
    std::vector<float> qrows(nq * d), dorows(nq * d);  // the head's Q and dO, contiguous
    int64_t packed = -1;
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t bh = task / G, g = task % G, b = bh / H, h = bh % H;
      const float* qh = q + b * nq * C + h * d;
      const float* doh = dout + b * nq * C + h * d;
      if (packed != bh) {
        for (int64_t qb = 0; qb < nqb; ++qb) {
          const int64_t i0 = qb * kMq, mq = std::min(kMq, nq - i0);
          PackTransposed(qh + i0 * C, C, mq, d, qscale, qt.data() + qb * d * kMq);
          PackTransposed(doh + i0 * C, C, mq, d, 1.0f, dot.data() + qb * d * kMq);
        }
        for (int64_t i = 0; i < nqb * kMq; ++i) {
          const float x = i < nq ? lse[bh * nq + i] : -kInf;
          lse2[i] = x == -kInf ? kInf : x * kLog2e;
          dv_pad[i] = i < nq ? dvec[bh * nq + i] : 0.0f;
        }
        PackRows(qh, C, nq, d, qrows.data());
        PackRows(doh, C, nq, d, dorows.data());
        packed = bh;
      }
      float* dqpart = dqp.data() + (g * B * H + bh) * nq * d;
      const uint8_t* mrow = mask ? mask + b * nkv : nullptr;
      for (int64_t kb = g; kb < nkb; kb += G) {
        const int64_t j0 = kb * kNk, nk = std::min(kNk, nkv - j0);
        const float* kblk = k + (b * nkv + j0) * C + h * d;
        const float* vblk = v + (b * nkv + j0) * C + h * d;
        std::fill(dkacc.begin(), dkacc.end(), 0.0f);
        std::fill(dvacc.begin(), dvacc.end(), 0.0f);
        for (int64_t qb = 0; qb < nqb; ++qb) {
          const int64_t i0 = qb * kMq, mq = std::min(kMq, nq - i0);
          if (!Overlaps(p, i0, mq, j0, nk)) continue;
          kr.gemm(nk, kMq, d, kblk, C, 1, qt.data() + qb * d * kMq, kMq, s.data(), kMq, false);  // S^T
          MaskBlock(p, s.data(), i0, mq, j0, nk, mrow);
          kr.exp_sub(s.data(), nk, lse2.data() + i0);                                             // P^T
          kr.gemm(nk, d, mq, s.data(), kMq, 1, dorows.data() + i0 * d, d, dvacc.data(), d, true);           // dV += P^T dO
          kr.gemm(nk, kMq, d, vblk, C, 1, dot.data() + qb * d * kMq, kMq, dp.data(), kMq, false);  // dP^T = V dO^T
          kr.dsoftmax(s.data(), dp.data(), nk, dv_pad.data() + i0);                               // dS^T
          kr.gemm(nk, d, mq, dp.data(), kMq, 1, qrows.data() + i0 * d, d, dkacc.data(), d, true);           // dK += dS^T Q
          kr.gemm(mq, d, nk, dp.data(), 1, kMq, kblk, C, dqpart + i0 * d, d, true);                // dQ += dS K
        }
        for (int64_t j = 0; j < nk; ++j) {
          T* dkr = dk + (b * nkv + j0 + j) * C + h * d;
          T* dvr = dv + (b * nkv + j0 + j) * C + h * d;
          for (int64_t c = 0; c < d; ++c) {
            Store(dkr, c, dkacc[j * d + c] * scale);
            Store(dvr, c, dvacc[j * d + c]);
          }
        }
      }
    }
  });
  ParallelFor(0, B * nq, RowGrain(C), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / nq, i = r % nq;
      for (int64_t h = 0; h < H; ++h) {
        T* out = dq + r * C + h * d;
        for (int64_t c = 0; c < d; ++c) {
          float acc = 0;
          for (int64_t g = 0; g < G; ++g) acc += dqp[((g * B * H + b * H + h) * nq + i) * d + c];
          Store(out, c, acc * scale);
        }
      }
    }
  });
}

// ---- the f64 path: one query row at a time, two passes ----------------------

// Scores of query row i (already scaled) over its visible keys into `s`
// (-inf where the key mask hides a key); returns the max (-inf: none visible).
double RowScores(const SdpaParams& p, const double* qi, const double* kh, const uint8_t* mrow, int64_t i,
                 std::vector<double>& s) {
  const int64_t d = p.head_dim, C = p.channels();
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j) {
    double x = -std::numeric_limits<double>::infinity();
    if (mrow == nullptr || mrow[j] != 0) {
      const double* kj = kh + j * C;
      double acc = 0;
      for (int64_t c = 0; c < d; ++c) acc += qi[c] * kj[c];
      x = acc * p.scale;
    }
    s[j] = x;
    mx = std::max(mx, x);
  }
  return mx;
}

// s := softmax probabilities of row i in place; returns the denominator's
// log plus the max (lse), -inf for a row without visible keys (then s = 0).
double RowSoftmax(const SdpaParams& p, int64_t i, double mx, std::vector<double>& s) {
  if (mx == -std::numeric_limits<double>::infinity()) {
    for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j) s[j] = 0;
    return mx;
  }
  double sum = 0;
  for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j) sum += (s[j] = std::exp(s[j] - mx));
  for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j) s[j] /= sum;
  return mx + std::log(sum);
}

void ForwardF64(const SdpaParams& p, const double* q, const double* k, const double* v, const uint8_t* mask,
                double* out, float* lse) {
  const int64_t B = p.batch, H = p.heads, nq = p.nq, nkv = p.nkv, d = p.head_dim, C = p.channels();
  ParallelFor(0, B * H * nq, RowGrain(nkv * d, 1 << 18), [&](int64_t lo, int64_t hi) {
    std::vector<double> s(nkv);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / (H * nq), h = r / nq % H, i = r % nq;
      const double* qi = q + (b * nq + i) * C + h * d;
      const double* kh = k + b * nkv * C + h * d;
      const double* vh = v + b * nkv * C + h * d;
      const uint8_t* mrow = mask ? mask + b * nkv : nullptr;
      const double l = RowSoftmax(p, i, RowScores(p, qi, kh, mrow, i, s), s);
      double* oi = out + (b * nq + i) * C + h * d;
      std::fill(oi, oi + d, 0.0);
      for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j)
        if (s[j] != 0)
          for (int64_t c = 0; c < d; ++c) oi[c] += s[j] * vh[j * C + c];
      lse[r] = static_cast<float>(l);
    }
  });
}

void BackwardF64(const SdpaParams& p, const double* q, const double* k, const double* v, const double* o,
                 const double* dout, const uint8_t* mask, double* dq, double* dk, double* dv) {
  const int64_t B = p.batch, H = p.heads, nq = p.nq, nkv = p.nkv, d = p.head_dim, C = p.channels();
  // One task per (b, h): its dK and dV rows are its own.
  ParallelFor(0, B * H, 1, [&](int64_t lo, int64_t hi) {
    std::vector<double> s(nkv), dkacc(nkv * d), dvacc(nkv * d);
    for (int64_t bh = lo; bh < hi; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const double* kh = k + b * nkv * C + h * d;
      const double* vh = v + b * nkv * C + h * d;
      const uint8_t* mrow = mask ? mask + b * nkv : nullptr;
      std::fill(dkacc.begin(), dkacc.end(), 0.0);
      std::fill(dvacc.begin(), dvacc.end(), 0.0);
      for (int64_t i = 0; i < nq; ++i) {
        const int64_t row = (b * nq + i) * C + h * d;
        const double *qi = q + row, *oi = o + row, *doi = dout + row;
        RowSoftmax(p, i, RowScores(p, qi, kh, mrow, i, s), s);
        double D = 0;
        for (int64_t c = 0; c < d; ++c) D += doi[c] * oi[c];
        double* dqi = dq + row;
        std::fill(dqi, dqi + d, 0.0);
        for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j) {
          if (s[j] == 0) continue;
          const double* vj = vh + j * C;
          const double* kj = kh + j * C;
          double dpj = 0;
          for (int64_t c = 0; c < d; ++c) dpj += doi[c] * vj[c];
          const double ds = s[j] * (dpj - D) * p.scale;
          for (int64_t c = 0; c < d; ++c) {
            dqi[c] += ds * kj[c];
            dkacc[j * d + c] += ds * qi[c];
            dvacc[j * d + c] += s[j] * doi[c];
          }
        }
      }
      for (int64_t j = 0; j < nkv; ++j)
        for (int64_t c = 0; c < d; ++c) {
          dk[(b * nkv + j) * C + h * d + c] = dkacc[j * d + c];
          dv[(b * nkv + j) * C + h * d + c] = dvacc[j * d + c];
        }
    }
  });
}

}  // namespace

template <class T>
void Forward(const SdpaParams& p, const T* q, const T* k, const T* v, const uint8_t* mask, T* out, float* lse) {
  if (p.batch * p.heads * p.nq == 0) return;
  if constexpr (std::is_same_v<T, double>) {
    ForwardF64(p, q, k, v, mask, out, lse);
  } else if constexpr (std::is_same_v<T, float>) {
    FlashForward<float>(p, q, k, v, mask, out, lse);
  } else {
    constexpr bool f16 = std::is_same_v<T, f16_t>;
    if constexpr (!f16) {
      if (HasAvx512Bf16() && !g_force_generic.load() && p.head_dim % 2 == 0)
        return FlashForwardBf16(p, q, k, v, mask, out, lse);
    }
    const int64_t nq = p.batch * p.nq * p.channels(), nkv = p.batch * p.nkv * p.channels();
    const std::vector<float> qf = ToF32(q, nq, f16), kf = ToF32(k, nkv, f16), vf = ToF32(v, nkv, f16);
    FlashForward<T>(p, qf.data(), kf.data(), vf.data(), mask, out, lse);
  }
}

template <class T>
void Backward(const SdpaParams& p, const T* q, const T* k, const T* v, const T* out, const float* lse, const T* dout,
              const uint8_t* mask, T* dq, T* dk, T* dv) {
  if (p.batch * p.heads == 0) return;
  if constexpr (std::is_same_v<T, double>) {
    BackwardF64(p, q, k, v, out, dout, mask, dq, dk, dv);
  } else if constexpr (std::is_same_v<T, float>) {
    FlashBackward<float>(p, q, k, v, out, lse, dout, mask, dq, dk, dv);
  } else {
    constexpr bool f16 = std::is_same_v<T, f16_t>;
    const int64_t nq = p.batch * p.nq * p.channels(), nkv = p.batch * p.nkv * p.channels();
    const std::vector<float> qf = ToF32(q, nq, f16), kf = ToF32(k, nkv, f16), vf = ToF32(v, nkv, f16),
                             of = ToF32(out, nq, f16), df = ToF32(dout, nq, f16);
    FlashBackward<T>(p, qf.data(), kf.data(), vf.data(), of.data(), lse, df.data(), mask, dq, dk, dv);
  }
}

template <class T>
void Probs(const SdpaParams& p, const T* q, const T* k, const uint8_t* mask, const std::vector<int64_t>& queries,
           float* probs) {
  const int64_t B = p.batch, H = p.heads, Q = static_cast<int64_t>(queries.size()), nq = p.nq, nkv = p.nkv,
                d = p.head_dim, C = p.channels();
  ParallelFor(0, B * H * Q, RowGrain(nkv * d, 1 << 18), [&](int64_t lo, int64_t hi) {
    std::vector<double> qi(d), s(nkv);
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t b = r / (H * Q), h = r / Q % H, i = queries[r % Q];
      const uint8_t* mrow = mask ? mask + b * nkv : nullptr;
      for (int64_t c = 0; c < d; ++c) qi[c] = Load(q, (b * nq + i) * C + h * d + c);
      double mx = -std::numeric_limits<double>::infinity();
      std::fill(s.begin(), s.end(), -std::numeric_limits<double>::infinity());
      for (int64_t j = p.KeyBegin(i); j < p.KeyEnd(i); ++j) {
        if (mrow != nullptr && mrow[j] == 0) continue;
        double acc = 0;
        for (int64_t c = 0; c < d; ++c) acc += qi[c] * static_cast<double>(Load(k, (b * nkv + j) * C + h * d + c));
        s[j] = acc * p.scale;
        mx = std::max(mx, s[j]);
      }
      float* pr = probs + r * nkv;
      if (mx == -std::numeric_limits<double>::infinity()) {
        std::fill(pr, pr + nkv, 0.0f);
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < nkv; ++j) sum += (s[j] = std::exp(s[j] - mx));
      for (int64_t j = 0; j < nkv; ++j) pr[j] = static_cast<float>(s[j] / sum);
    }
  });
}

const char* KernelName() { return &Active() == &kAvx512 ? "avx512" : "generic"; }
const char* Bf16ForwardKernelName() { return HasAvx512Bf16() && !g_force_generic.load() ? "avx512bf16" : "f32"; }
bool ForceGeneric(bool force) { return g_force_generic.exchange(force); }

#define CF_SDPA_CPU_INSTANTIATE(T)                                                                           \
  template void Forward<T>(const SdpaParams&, const T*, const T*, const T*, const uint8_t*, T*, float*);   \
  template void Backward<T>(const SdpaParams&, const T*, const T*, const T*, const T*, const float*, const T*, \
                            const uint8_t*, T*, T*, T*);                                                     \
  template void Probs<T>(const SdpaParams&, const T*, const T*, const uint8_t*, const std::vector<int64_t>&, \
                         float*);
CF_SDPA_CPU_INSTANTIATE(float)
CF_SDPA_CPU_INSTANTIATE(double)
CF_SDPA_CPU_INSTANTIATE(f16_t)
CF_SDPA_CPU_INSTANTIATE(bf16_t)

}  // namespace cf::sdpa_cpu
