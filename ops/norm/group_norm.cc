// group_norm and group_norm_backward: definitions, costs, VJP and CPU kernels
// (CUDA kernels in group_norm.cu).
//
// group_norm: x [N, ..., C], optional gamma [C] and beta [C] (inputs 1 or 3).
// Attributes: groups (default 32), eps (default 1e-5), affine (optional; when
// given it must agree with the input count), activation ("none" | "silu",
// default "none"). PyTorch's nn.GroupNorm on NHWC: per (n, g), mean and
// biased variance over the P spatial positions and the Cg = C / groups
// channels of the group; z = (x - mean) * rstd * gamma + beta, and y = z or,
// with activation "silu", y = silu(z) (GroupNorm -> SiLU fused: one pass
// over memory instead of two). Its VJP recomputes z with a plain group_norm,
// takes dz = silu_backward(z, dy) and then group_norm_backward(x, dz, gamma).
//
// group_norm_backward: inputs x, dy [, gamma]; outputs dx [, dgamma, dbeta].
// It recomputes mean and rstd from x instead of taking them as saved outputs
// of the forward: the forward stays a single-output op (no [N, G] statistics
// kept alive by the planner from forward to backward, nothing extra when only
// inference runs) at the price of one more read of x in the backward.
// With xhat = (x - mean) * rstd, M = P * Cg elements per group and
// S_dy[n, c] = sum_p dy, S_dyxh[n, c] = sum_p dy * xhat (per-channel sums that
// serve both the parameter gradients and the group sums):
//   dbeta[c]  = sum_n S_dy[n, c]
//   dgamma[c] = sum_n S_dyxh[n, c]
//   A[n, g] = sum_{c in g} gamma[c] S_dy[n, c] / M
//   B[n, g] = sum_{c in g} gamma[c] S_dyxh[n, c] / M
//   dx = rstd * (gamma * dy - A - xhat * B)
#include <cmath>

#include "ops/activation/activation_math.h"
#include "ops/cpu_util.h"
#include "ops/norm/moments.h"
#include "ops/norm/norm.h"
#include "ops/norm/norm_common.h"
#include "ops/norm/norm_internal.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

using norm_internal::GnDims;
using norm_internal::GnDimsOf;

// Checks group_norm's x (and gamma/beta from `gamma_index` on; -1: none).
Status CheckGroupNormArgs(const OpCall& c, int gamma_index) {
  const TensorType& x = c.inputs[0];
  const int64_t groups = norm_internal::GroupsOf(c.attrs);
  CF_CHECK_ARG(x.shape.rank() >= 2, "x must have rank >= 2 ([N, ..., C]), got ", x.shape.ToString());
  CF_CHECK_ARG(IsFloating(x.dtype), "x must be floating, got ", DTypeName(x.dtype));
  const int64_t ch = x.shape.dim(-1);
  if (c.attrs.Has("groups")) CF_RETURN_IF_ERROR(c.attrs.RequireInt("groups").status());  // not silently 32
  CF_CHECK_ARG(groups >= 1, "groups must be >= 1, got ", groups);
  CF_CHECK_ARG(ch % groups == 0, "channels ", ch, " (last dim of ", x.shape.ToString(),
               ") are not divisible by groups ", groups);
  return norm_internal::CheckEpsAndAffine(c, x, gamma_index, "channels of x");
}

StatusOr<std::vector<TensorType>> InferGroupNorm(const OpCall& c) {
  return norm_internal::InferAffineNorm(c, [&](int gamma_index) -> Status {
    const bool affine = c.inputs.size() == 3;
    if (c.attrs.Has("affine"))
      CF_CHECK_ARG(c.attrs.Bool("affine", affine) == affine, "attribute affine=", c.attrs.Bool("affine", affine),
                   " but ", c.inputs.size(), " inputs given");
    const std::string act = norm_internal::ActivationOf(c.attrs);
    CF_CHECK_ARG(act == "none" || act == "silu", "activation must be \"none\" or \"silu\", got \"", act, "\"");
    return CheckGroupNormArgs(c, gamma_index);
  });
}

// NG = N * groups statistics (see AffineNormCost); activation "silu" adds
// silu's count per element (E2 T1, activation_math.h).
Cost GroupNormCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = norm_internal::AffineNormCost(c, outs, c.inputs[0].shape.dim(0) * norm_internal::GroupsOf(c.attrs));
  if (norm_internal::SiluOf(c.attrs)) {
    const act::Count k = act::ForwardCount(act::Kind::kSilu);
    cost.elementwise_flops += k.e * c.inputs[0].shape.numel();
    cost.transcendentals += k.t * c.inputs[0].shape.numel();
  }
  return cost;
}

StatusOr<std::vector<TensorType>> InferGroupNormBackward(const OpCall& c) {
  return norm_internal::InferAffineNormBackward(c, [&](int gamma_index) { return CheckGroupNormArgs(c, gamma_index); });
}

// E = numel(x), NG = N * groups, NC = N * C.
//   recomputed statistics: 4E + NG (+ NG rsqrt); xhat: 2E;
//   per-channel sums S_dy, S_dyxh: 3E - 2NC (a multiply and two sums);
//   group sums A, B: 2(NC - NG) adds + 2NG divides, plus 2NC multiplies by
//   gamma with affine; dgamma, dbeta: 2(N-1)C adds;
//   dx = rstd * (gamma dy - A - xhat B): 4E, 5E with affine.
//   elementwise = 13E + NG, with affine 14E + NG + 4NC - 2C; transcendentals = NG.
Cost GroupNormBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& x = c.inputs[0].shape;
  const int64_t e = x.numel(), n = x.dim(0), ch = x.dim(-1);
  const int64_t ng = n * norm_internal::GroupsOf(c.attrs);
  cost.elementwise_flops = c.inputs.size() == 3 ? 14 * e + ng + 4 * n * ch - 2 * ch : 13 * e + ng;
  cost.transcendentals = ng;
  return cost;
}

// With activation "silu" the gradient reaching the normalisation is
// dz = silu'(z) dy, z recomputed by a plain group_norm (the fused forward
// does not keep z; silu is not invertible from y).
StatusOr<std::vector<Value>> GroupNormVjp(VjpContext& ctx) {
  const Attrs attrs{{"groups", norm_internal::GroupsOf(ctx.attrs)}, {"eps", norm_internal::EpsOf(ctx.attrs)}};
  if (norm_internal::SiluOf(ctx.attrs) && ctx.grad_outputs[0].valid()) {
    const Value z = ctx.b.Op1("group_norm", ctx.inputs, attrs);
    ctx.grad_outputs[0] = ctx.b.Op1("silu_backward", {z, ctx.grad_outputs[0]});
    if (!ctx.grad_outputs[0].valid()) return ctx.b.status();
  }
  return norm_internal::AffineNormVjp(ctx, "group_norm_backward", attrs);
}

// ---- CPU kernels -----------------------------------------------------------------

// Spatial positions per task of the statistics passes: a chunk of rows is
// reduced two-pass (it is in cache), chunks are merged with CombineMoments.
constexpr int64_t kRowsPerChunk = 128;

int64_t NumChunks(int64_t p) { return (p + kRowsPerChunk - 1) / kRowsPerChunk; }

// Per-channel mean m [C] and M2 m2 [C] of nr rows of C (x with row stride
// C), two-pass; the channels are the lanes (AVX-512, f32 / f16 / bf16).
template <typename T>
CF_VM_TARGET void ChunkMomentsAvx512(const T* base, int64_t nr, int64_t C, float* m, float* m2) {
  for (int64_t c = 0; c < C; c += vm::kLanes) {
    const __mmask16 k = vm::FirstLanes(C - c);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int64_t r = 0;
    for (; r + 2 <= nr; r += 2) {
      s0 = _mm512_add_ps(s0, vm::Load(base + r * C + c, k));
      s1 = _mm512_add_ps(s1, vm::Load(base + (r + 1) * C + c, k));
    }
    if (r < nr) s0 = _mm512_add_ps(s0, vm::Load(base + r * C + c, k));
    const __m512 mean = _mm512_div_ps(_mm512_add_ps(s0, s1), _mm512_set1_ps(float(nr)));
    __m512 q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
    for (r = 0; r + 2 <= nr; r += 2) {
      const __m512 d0 = _mm512_sub_ps(vm::Load(base + r * C + c, k), mean);
      const __m512 d1 = _mm512_sub_ps(vm::Load(base + (r + 1) * C + c, k), mean);
      q0 = _mm512_fmadd_ps(d0, d0, q0);
      q1 = _mm512_fmadd_ps(d1, d1, q1);
    }
    if (r < nr) {
      const __m512 d0 = _mm512_sub_ps(vm::Load(base + r * C + c, k), mean);
      q0 = _mm512_fmadd_ps(d0, d0, q0);
    }
    _mm512_mask_storeu_ps(m + c, k, mean);
    _mm512_mask_storeu_ps(m2 + c, k, _mm512_add_ps(q0, q1));
  }
}

// Rows [begin, end) of x [N * P, C]: y = (x - mc) * sc + beta, then silu if
// asked; mc, sc: [N, C]; beta [C].
template <typename T>
CF_VM_TARGET void NormalizeRowsAvx512(const T* x, T* y, int64_t begin, int64_t end, int64_t P, int64_t C,
                                      const float* mc, const float* sc, const float* beta, bool silu) {
  for (int64_t row = begin; row < end; ++row) {
    const float* m = mc + (row / P) * C;
    const float* s = sc + (row / P) * C;
    const T* xr = x + row * C;
    T* yr = y + row * C;
    for (int64_t c = 0; c < C; c += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(C - c);
      __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(vm::Load(xr + c, k), _mm512_maskz_loadu_ps(k, m + c)),
                                 _mm512_maskz_loadu_ps(k, s + c), _mm512_maskz_loadu_ps(k, beta + c));
      if (silu) v = vm::Silu(v);
      vm::Store(yr + c, v, k);
    }
  }
}

// The AVX-512 kernels serve f32 / f16 / bf16 storage (f32 arithmetic); f64
// keeps the scalar loops, which are also the path of CPUs without AVX-512.
template <typename T>
constexpr bool kVec = !std::is_same_v<T, double>;

// group_norm_backward's per-channel sums of nr rows of C (x, dy with row
// stride C): sdy[c] += sum_r dy, sdyxh[c] += sum_r dy * (x - m[c]) * r[c].
// Rows outer (the loads stream through memory), two rows per step; the
// [C] accumulators stay in L1.
template <typename T>
CF_VM_TARGET void ChunkGradSumsAvx512(const T* x, const T* dy, int64_t nr, int64_t C, const float* m,
                                      const float* r, float* sdy, float* sdyxh) {
  int64_t row = 0;
  for (; row + 2 <= nr; row += 2) {
    const T *x0 = x + row * C, *g0 = dy + row * C;
    for (int64_t c = 0; c < C; c += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(C - c);
      const __m512 mean = _mm512_maskz_loadu_ps(k, m + c), rs = _mm512_maskz_loadu_ps(k, r + c);
      const __m512 ga = vm::Load(g0 + c, k), gb = vm::Load(g0 + C + c, k);
      const __m512 xa = _mm512_mul_ps(_mm512_sub_ps(vm::Load(x0 + c, k), mean), rs);
      const __m512 xb = _mm512_mul_ps(_mm512_sub_ps(vm::Load(x0 + C + c, k), mean), rs);
      _mm512_mask_storeu_ps(sdy + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, sdy + c), _mm512_add_ps(ga, gb)));
      const __m512 p = _mm512_fmadd_ps(ga, xa, _mm512_mul_ps(gb, xb));
      _mm512_mask_storeu_ps(sdyxh + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, sdyxh + c), p));
    }
  }
  if (row < nr) {
    const T *x0 = x + row * C, *g0 = dy + row * C;
    for (int64_t c = 0; c < C; c += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(C - c);
      const __m512 ga = vm::Load(g0 + c, k);
      const __m512 xa = _mm512_mul_ps(_mm512_sub_ps(vm::Load(x0 + c, k), _mm512_maskz_loadu_ps(k, m + c)),
                                      _mm512_maskz_loadu_ps(k, r + c));
      _mm512_mask_storeu_ps(sdy + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, sdy + c), ga));
      _mm512_mask_storeu_ps(sdyxh + c, k, _mm512_fmadd_ps(ga, xa, _mm512_maskz_loadu_ps(k, sdyxh + c)));
    }
  }
}

// Rows [begin, end) of [N * P, C]: dx = ka * dy - (kb + kc * (x - mc)), the
// coefficients per (n, c) ([N, C] each).
template <typename T>
CF_VM_TARGET void GradRowsAvx512(const T* x, const T* dy, T* dx, int64_t begin, int64_t end, int64_t P, int64_t C,
                                 const float* ka, const float* kb, const float* kc, const float* mc) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t off = (row / P) * C;
    const T *xr = x + row * C, *dyr = dy + row * C;
    T* dxr = dx + row * C;
    for (int64_t c = 0; c < C; c += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(C - c);
      const __m512 xc = _mm512_sub_ps(vm::Load(xr + c, k), _mm512_maskz_loadu_ps(k, mc + off + c));
      const __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, kc + off + c), xc, _mm512_maskz_loadu_ps(k, kb + off + c));
      vm::Store(dxr + c, _mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, ka + off + c), vm::Load(dyr + c, k), t), k);
    }
  }
}

// x: [N, P, C] of T. Writes mean and rstd, [N * G] each.
template <typename T>
void GroupStatsCpu(const T* x, const GnDims& d, double eps, std::vector<Acc<T>>& mean, std::vector<Acc<T>>& rstd) {
  using A = Acc<T>;
  const int64_t chunks = NumChunks(d.P);
  std::vector<Moments<A>> part(d.N * chunks * d.G);
  ParallelFor(0, d.N * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> m(d.C), m2(d.C);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / chunks, k = t % chunks;
      const int64_t r0 = k * kRowsPerChunk, nr = std::min(d.P, r0 + kRowsPerChunk) - r0;
      const T* base = x + (n * d.P + r0) * d.C;
      bool done = false;
      if constexpr (!std::is_same_v<T, double>) {
        if (vm::HasAvx512()) {
          ChunkMomentsAvx512(base, nr, d.C, m.data(), m2.data());
          done = true;
        }
      }
      if (!done) {
        std::fill(m.begin(), m.end(), A(0));
        std::fill(m2.begin(), m2.end(), A(0));
        for (int64_t r = 0; r < nr; ++r)
          for (int64_t c = 0; c < d.C; ++c) m[c] += Load(base + r * d.C, c);
        for (int64_t c = 0; c < d.C; ++c) m[c] /= A(nr);
        for (int64_t r = 0; r < nr; ++r) {
          for (int64_t c = 0; c < d.C; ++c) {
            const A v = Load(base + r * d.C, c) - m[c];
            m2[c] += v * v;
          }
        }
      }
      // Channels of a group have equal counts: mean of means, and M2 is the
      // sum of the channels' M2 plus nr * sum of squared mean deviations.
      for (int64_t g = 0; g < d.G; ++g) {
        A gm = 0;
        for (int64_t c = g * d.Cg; c < (g + 1) * d.Cg; ++c) gm += m[c];
        gm /= A(d.Cg);
        A gm2 = 0, dev = 0;
        for (int64_t c = g * d.Cg; c < (g + 1) * d.Cg; ++c) {
          gm2 += m2[c];
          dev += (m[c] - gm) * (m[c] - gm);
        }
        part[t * d.G + g] = {A(nr * d.Cg), gm, gm2 + A(nr) * dev};
      }
    }
  });
  mean.assign(d.N * d.G, A(0));
  rstd.assign(d.N * d.G, A(0));
  for (int64_t n = 0; n < d.N; ++n) {
    for (int64_t g = 0; g < d.G; ++g) {
      Moments<A> acc = part[n * chunks * d.G + g];
      for (int64_t k = 1; k < chunks; ++k) acc = CombineMoments(acc, part[(n * chunks + k) * d.G + g]);
      mean[n * d.G + g] = acc.mean;
      rstd[n * d.G + g] = A(1) / std::sqrt(acc.m2 / acc.count + A(eps));
    }
  }
}

// Per-(n, group) values v [N * G] repeated per channel: [N * C].
template <typename A>
std::vector<A> PerChannel(const std::vector<A>& v, const GnDims& d) {
  std::vector<A> out(d.N * d.C);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t c = 0; c < d.C; ++c) out[n * d.C + c] = v[n * d.G + c / d.Cg];
  return out;
}

// x, y: [N, P, C]; gamma, beta: [C] or absent.
template <typename T>
Status GroupNormCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Tensor& xt = ctx.inputs[0];
  const GnDims d = GnDimsOf(xt.shape(), ctx.attrs);
  const bool affine = ctx.inputs.size() == 3;
  const T* x = xt.data<T>();
  T* y = ctx.outputs[0].data<T>();
  if (xt.numel() == 0) return absl::OkStatus();
  std::vector<A> mean, rstd;
  GroupStatsCpu(x, d, norm_internal::EpsOf(ctx.attrs), mean, rstd);
  const std::vector<A> gamma = LoadVector<T>(affine ? &ctx.inputs[1] : nullptr, d.C, A(1));
  const std::vector<A> beta = LoadVector<T>(affine ? &ctx.inputs[2] : nullptr, d.C, A(0));
  // Per (n, c): y = (x - mc) * sc + beta.
  const std::vector<A> mc = PerChannel(mean, d);
  std::vector<A> sc = PerChannel(rstd, d);
  for (int64_t i = 0; i < d.N * d.C; ++i) sc[i] *= gamma[i % d.C];
  const bool silu = norm_internal::SiluOf(ctx.attrs);
  if constexpr (!std::is_same_v<T, double>) {
    if (vm::HasAvx512()) {
      ParallelFor(0, d.N * d.P, RowGrain(d.C), [&](int64_t begin, int64_t end) {
        NormalizeRowsAvx512(x, y, begin, end, d.P, d.C, mc.data(), sc.data(), beta.data(), silu);
      });
      return absl::OkStatus();
    }
  }
  ParallelFor(0, d.N * d.P, RowGrain(d.C), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const A* m = mc.data() + (row / d.P) * d.C;
      const A* s = sc.data() + (row / d.P) * d.C;
      const T* xr = x + row * d.C;
      T* yr = y + row * d.C;
      if (silu) {
        for (int64_t c = 0; c < d.C; ++c)
          Store(yr, c, act::Forward<act::Kind::kSilu>((Load(xr, c) - m[c]) * s[c] + beta[c], A(0)));
      } else {
        for (int64_t c = 0; c < d.C; ++c) Store(yr, c, (Load(xr, c) - m[c]) * s[c] + beta[c]);
      }
    }
  });
  return absl::OkStatus();
}

// x, dy, dx: [N, P, C]; gamma, dgamma, dbeta: [C] or absent.
template <typename T>
Status GroupNormBackwardCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Tensor& xt = ctx.inputs[0];
  const GnDims d = GnDimsOf(xt.shape(), ctx.attrs);
  const bool affine = ctx.inputs.size() == 3;
  const T* x = xt.data<T>();
  const T* dy = ctx.inputs[1].data<T>();
  T* dx = ctx.outputs[0].data<T>();
  if (xt.numel() == 0) {  // no positions: dgamma = dbeta = 0
    for (size_t k = 1; k < ctx.outputs.size(); ++k)
      for (int64_t c = 0; c < d.C; ++c) Store(ctx.outputs[k].data<T>(), c, A(0));
    return absl::OkStatus();
  }
  std::vector<A> mean, rstd;
  GroupStatsCpu(x, d, norm_internal::EpsOf(ctx.attrs), mean, rstd);
  const std::vector<A> gamma = LoadVector<T>(affine ? &ctx.inputs[2] : nullptr, d.C, A(1));
  const std::vector<A> mc = PerChannel(mean, d), rc = PerChannel(rstd, d);

  // Per-channel sums over chunks of positions, then over chunks.
  const int64_t chunks = NumChunks(d.P);
  std::vector<A> part_dy(d.N * chunks * d.C, A(0)), part_dyxh(d.N * chunks * d.C, A(0));
  const bool vec = kVec<T> && vm::HasAvx512();
  ParallelFor(0, d.N * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / chunks, k = t % chunks;
      const int64_t r0 = k * kRowsPerChunk, r1 = std::min(d.P, r0 + kRowsPerChunk);
      const A* m = mc.data() + n * d.C;
      const A* r = rc.data() + n * d.C;
      A* sdy = part_dy.data() + t * d.C;
      A* sdyxh = part_dyxh.data() + t * d.C;
      if constexpr (kVec<T>) {
        if (vec) {
          const int64_t off = (n * d.P + r0) * d.C;
          ChunkGradSumsAvx512(x + off, dy + off, r1 - r0, d.C, m, r, sdy, sdyxh);
          continue;
        }
      }
      for (int64_t row = r0; row < r1; ++row) {
        const T* xr = x + (n * d.P + row) * d.C;
        const T* dyr = dy + (n * d.P + row) * d.C;
        for (int64_t c = 0; c < d.C; ++c) {
          const A g = Load(dyr, c);
          sdy[c] += g;
          sdyxh[c] += g * ((Load(xr, c) - m[c]) * r[c]);
        }
      }
    }
  });
  std::vector<A> s_dy(d.N * d.C), s_dyxh(d.N * d.C);
  SumOverMiddle<A>(part_dy.data(), d.N, chunks, d.C, s_dy.data());
  SumOverMiddle<A>(part_dyxh.data(), d.N, chunks, d.C, s_dyxh.data());
  if (affine) {
    SumOverMiddle<T>(s_dyxh.data(), 1, d.N, d.C, ctx.outputs[1].data<T>());
    SumOverMiddle<T>(s_dy.data(), 1, d.N, d.C, ctx.outputs[2].data<T>());
  }
  // dx = ka * dy - kb - kc * (x - mean), per (n, c) coefficients.
  std::vector<A> ka(d.N * d.C), kb(d.N * d.C), kc(d.N * d.C);
  const A inv_m = A(1) / A(d.P * d.Cg);
  for (int64_t n = 0; n < d.N; ++n)
    for (int64_t g = 0; g < d.G; ++g) {
      A sa = 0, sb = 0;
      for (int64_t c = g * d.Cg; c < (g + 1) * d.Cg; ++c) {
        sa += gamma[c] * s_dy[n * d.C + c];
        sb += gamma[c] * s_dyxh[n * d.C + c];
      }
      const A rs = rstd[n * d.G + g];
      for (int64_t c = g * d.Cg; c < (g + 1) * d.Cg; ++c) {
        ka[n * d.C + c] = rs * gamma[c];
        kb[n * d.C + c] = rs * sa * inv_m;
        kc[n * d.C + c] = rs * rs * sb * inv_m;
      }
    }
  ParallelFor(0, d.N * d.P, RowGrain(d.C), [&](int64_t begin, int64_t end) {
    if constexpr (kVec<T>) {
      if (vec) return GradRowsAvx512(x, dy, dx, begin, end, d.P, d.C, ka.data(), kb.data(), kc.data(), mc.data());
    }
    for (int64_t row = begin; row < end; ++row) {
      const int64_t off = (row / d.P) * d.C;
      const A *a = ka.data() + off, *b = kb.data() + off, *cc = kc.data() + off, *m = mc.data() + off;
      const T* xr = x + row * d.C;
      const T* dyr = dy + row * d.C;
      T* dxr = dx + row * d.C;
      for (int64_t c = 0; c < d.C; ++c) Store(dxr, c, a[c] * Load(dyr, c) - b[c] - cc[c] * (Load(xr, c) - m[c]));
    }
  });
  return absl::OkStatus();
}

Status GroupNormCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "group_norm", [&](auto tag) { return GroupNormCpuT<decltype(tag)>(ctx); });
}
Status GroupNormBackwardCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "group_norm_backward",
                       [&](auto tag) { return GroupNormBackwardCpuT<decltype(tag)>(ctx); });
}

OpDef GroupNormDef() {
  return {.name = "group_norm", .min_inputs = 1, .max_inputs = 3, .infer = InferGroupNorm, .cost = GroupNormCost,
          .vjp = GroupNormVjp,
          .doc = "group normalisation of channels-last x [N, ..., C] over (spatial, C/groups) per (n, group), "
                 "optionally followed by silu (activation=\"silu\")"};
}

OpDef GroupNormBackwardDef() {
  return {.name = "group_norm_backward", .min_inputs = 2, .max_inputs = 3, .infer = InferGroupNormBackward,
          .cost = GroupNormBackwardCost, .doc = "gradients of group_norm: (x, dy [, gamma]) -> dx [, dgamma, dbeta]"};
}

}  // namespace

Value GroupNorm(Value x, std::optional<Value> gamma, std::optional<Value> beta, int64_t groups, double eps,
                const std::string& activation) {
  Attrs attrs{{"groups", groups}, {"eps", eps}};
  if (activation != "none") attrs.Set("activation", activation);
  return norm_internal::AffineNormOp("GroupNorm", "group_norm", x, gamma, beta, std::move(attrs));
}

CF_REGISTER_OP(GroupNormDef());
CF_REGISTER_OP(GroupNormBackwardDef());
CF_REGISTER_KERNEL("group_norm", kCPU, GroupNormCpu);
CF_REGISTER_KERNEL("group_norm_backward", kCPU, GroupNormBackwardCpu);

}  // namespace cf
