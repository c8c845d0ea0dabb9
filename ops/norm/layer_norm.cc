// layer_norm and layer_norm_backward: definitions, costs, VJP and CPU kernels
// (CUDA kernels in layer_norm.cu).
//
// layer_norm: x [..., C], optional gamma [C] and beta [C] (inputs 1 or 3).
// Attribute eps (default 1e-5). PyTorch's nn.LayerNorm over the last dim:
// y = (x - mean) * rstd * gamma + beta with the biased variance.
//
// layer_norm_backward: inputs x, dy [, gamma]; outputs dx [, dgamma, dbeta].
// Row statistics are recomputed from x (a row is C elements, cheap to
// re-reduce), so the forward stays single-output. Per row, with
// xhat = (x - mean) * rstd and g = gamma * dy:
//   dx = rstd * (g - mean_C(g) - xhat * mean_C(g * xhat))
//   dgamma = sum_rows dy * xhat, dbeta = sum_rows dy.
#include <cmath>

#include "ops/cpu_util.h"
#include "ops/norm/norm.h"
#include "ops/norm/norm_common.h"
#include "ops/norm/norm_internal.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

using norm_internal::RowsOf;

// Checks layer_norm's x (and gamma/beta from `gamma_index` on; -1: none).
Status CheckLayerNormArgs(const OpCall& c, int gamma_index) {
  const TensorType& x = c.inputs[0];
  CF_CHECK_ARG(x.shape.rank() >= 1, "x must have rank >= 1, got a scalar");
  CF_CHECK_ARG(IsFloating(x.dtype), "x must be floating, got ", DTypeName(x.dtype));
  return norm_internal::CheckEpsAndAffine(c, x, gamma_index, "last dim of x");
}

StatusOr<std::vector<TensorType>> InferLayerNorm(const OpCall& c) {
  return norm_internal::InferAffineNorm(c, [&](int gamma_index) { return CheckLayerNormArgs(c, gamma_index); });
}

// R = rows (E / C) statistics, one group per row (see AffineNormCost).
Cost LayerNormCost(const OpCall& c, absl::Span<const TensorType> outs) {
  return norm_internal::AffineNormCost(c, outs, RowsOf(c.inputs[0].shape));
}

StatusOr<std::vector<TensorType>> InferLayerNormBackward(const OpCall& c) {
  return norm_internal::InferAffineNormBackward(c, [&](int gamma_index) { return CheckLayerNormArgs(c, gamma_index); });
}

// E = numel(x), R = rows, C = last dim.
//   recomputed statistics 4E + R (+ R rsqrt); xhat 2E; g = gamma dy: E with
//   affine; sum(g), sum(g xhat): 3E - 2R adds/multiplies + 2R divides by C;
//   dx = rstd (g - a - xhat b): 4E; dgamma: E multiplies + (R-1)C adds,
//   dbeta: (R-1)C adds.
//   elementwise = 13E + R, with affine 17E + R - 2C; transcendentals = R.
Cost LayerNormBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& x = c.inputs[0].shape;
  const int64_t e = x.numel(), r = RowsOf(x), ch = x.dim(-1);
  cost.elementwise_flops = c.inputs.size() == 3 ? 17 * e + r - 2 * ch : 13 * e + r;
  cost.transcendentals = r;
  return cost;
}

StatusOr<std::vector<Value>> LayerNormVjp(VjpContext& ctx) {
  return norm_internal::AffineNormVjp(ctx, "layer_norm_backward", Attrs{{"eps", norm_internal::EpsOf(ctx.attrs)}});
}

// ---- CPU kernels -----------------------------------------------------------------

// sum_{i < c} term(i) in 8 independent lanes, so the compiler can vectorise
// a float reduction (and the rounding error grows more slowly).
template <typename A, typename F>
inline A LaneSum(int64_t c, F term) {
  A lane[8] = {};
  int64_t i = 0;
  for (; i + 8 <= c; i += 8)
    for (int j = 0; j < 8; ++j) lane[j] += term(i + j);
  for (; i < c; ++i) lane[i % 8] += term(i);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// Mean and rstd of one row of C, two-pass in A.
template <typename T>
void RowStats(const T* xr, int64_t c, double eps, Acc<T>& mean, Acc<T>& rstd) {
  using A = Acc<T>;
  mean = LaneSum<A>(c, [&](int64_t i) { return Load(xr, i); }) / A(c);
  const A m = mean;
  const A v = LaneSum<A>(c, [&](int64_t i) {
    const A d = Load(xr, i) - m;
    return d * d;
  });
  rstd = A(1) / std::sqrt(v / A(c) + A(eps));
}

// Mean and rstd of a row of c from L1, two-pass in 16 lanes.
template <typename T>
CF_VM_TARGET void RowStatsAvx512(const T* xr, int64_t c, float eps, float& mean, float& rstd) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t i = 0; i < c; i += vm::kLanes) s = _mm512_add_ps(s, vm::Load(xr + i, vm::FirstLanes(c - i)));
  mean = vm::Sum(s) / float(c);
  const __m512 vm_mean = _mm512_set1_ps(mean);
  __m512 q = _mm512_setzero_ps();
  for (int64_t i = 0; i < c; i += vm::kLanes) {
    const __mmask16 k = vm::FirstLanes(c - i);
    const __m512 d = _mm512_maskz_sub_ps(k, vm::Load(xr + i, k), vm_mean);
    q = _mm512_fmadd_ps(d, d, q);
  }
  rstd = 1.0f / std::sqrt(vm::Sum(q) / float(c) + eps);
}

// x, y: [R, C]; gamma, beta: [C] or absent.
// Rows [begin, end) of x [rows, c] with AVX-512 (f32 / f16 / bf16): two-pass
// mean and variance from L1 (16 lanes of partial sums), then
// y = (x - mean) * (rstd * gamma) + beta.
template <typename T>
CF_VM_TARGET void LayerNormRowsAvx512(const T* x, T* y, int64_t begin, int64_t end, int64_t c, float eps,
                                      const float* gamma, const float* beta) {
  for (int64_t r = begin; r < end; ++r) {
    const T* xr = x + r * c;
    float mean, rs;
    RowStatsAvx512(xr, c, eps, mean, rs);
    const __m512 vm_mean = _mm512_set1_ps(mean), rstd = _mm512_set1_ps(rs);
    T* yr = y + r * c;
    for (int64_t i = 0; i < c; i += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(c - i);
      const __m512 g = _mm512_mul_ps(rstd, _mm512_maskz_loadu_ps(k, gamma + i));
      vm::Store(yr + i, _mm512_fmadd_ps(_mm512_sub_ps(vm::Load(xr + i, k), vm_mean), g, _mm512_maskz_loadu_ps(k, beta + i)),
                k);
    }
  }
}

// layer_norm_backward of rows [begin, end) of [rows, c] (AVX-512, f32 / f16 /
// bf16): per row xhat (kept in xh [c]), g = dy * gamma,
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); with pg / pb (one
// chunk's partial dgamma / dbeta [c], else null) pg += dy * xhat, pb += dy.
template <typename T>
CF_VM_TARGET void LayerNormBackwardRowsAvx512(const T* x, const T* dy, T* dx, int64_t begin, int64_t end, int64_t c,
                                              float eps, const float* gamma, float* xh, float* pg, float* pb) {
  for (int64_t r = begin; r < end; ++r) {
    const T *xr = x + r * c, *dyr = dy + r * c;
    float mean, rstd;
    RowStatsAvx512(xr, c, eps, mean, rstd);
    const __m512 vmean = _mm512_set1_ps(mean), vrstd = _mm512_set1_ps(rstd);
    __m512 sa = _mm512_setzero_ps(), sb = _mm512_setzero_ps();
    for (int64_t i = 0; i < c; i += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(c - i);
      const __m512 d = vm::Load(dyr + i, k);
      const __m512 h = _mm512_mul_ps(_mm512_maskz_sub_ps(k, vm::Load(xr + i, k), vmean), vrstd);
      const __m512 g = _mm512_mul_ps(d, _mm512_maskz_loadu_ps(k, gamma + i));
      _mm512_mask_storeu_ps(xh + i, k, h);
      sa = _mm512_add_ps(sa, g);
      sb = _mm512_fmadd_ps(g, h, sb);
      if (pg) {
        _mm512_mask_storeu_ps(pg + i, k, _mm512_fmadd_ps(d, h, _mm512_maskz_loadu_ps(k, pg + i)));
        _mm512_mask_storeu_ps(pb + i, k, _mm512_add_ps(d, _mm512_maskz_loadu_ps(k, pb + i)));
      }
    }
    const __m512 ma = _mm512_set1_ps(vm::Sum(sa) / float(c)), mb = _mm512_set1_ps(vm::Sum(sb) / float(c));
    T* dxr = dx + r * c;
    for (int64_t i = 0; i < c; i += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(c - i);
      const __m512 g = _mm512_mul_ps(vm::Load(dyr + i, k), _mm512_maskz_loadu_ps(k, gamma + i));
      const __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, xh + i), mb, ma);
      vm::Store(dxr + i, _mm512_mul_ps(vrstd, _mm512_sub_ps(g, t)), k);
    }
  }
}

template <typename T>
Status LayerNormCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Tensor& xt = ctx.inputs[0];
  const int64_t c = xt.shape().dim(-1), rows = RowsOf(xt.shape());
  if (xt.numel() == 0) return absl::OkStatus();
  const double eps = norm_internal::EpsOf(ctx.attrs);
  const bool affine = ctx.inputs.size() == 3;
  const std::vector<A> gamma = LoadVector<T>(affine ? &ctx.inputs[1] : nullptr, c, A(1));
  const std::vector<A> beta = LoadVector<T>(affine ? &ctx.inputs[2] : nullptr, c, A(0));
  const T* x = xt.data<T>();
  T* y = ctx.outputs[0].data<T>();
  if constexpr (!std::is_same_v<T, double>) {
    if (vm::HasAvx512()) {
      ParallelFor(0, rows, RowGrain(c), [&](int64_t begin, int64_t end) {
        LayerNormRowsAvx512(x, y, begin, end, c, float(eps), gamma.data(), beta.data());
      });
      return absl::OkStatus();
    }
  }
  ParallelFor(0, rows, RowGrain(c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * c;
      T* yr = y + r * c;
      A mean, rstd;
      RowStats(xr, c, eps, mean, rstd);
      for (int64_t i = 0; i < c; ++i) Store(yr, i, (Load(xr, i) - mean) * rstd * gamma[i] + beta[i]);
    }
  });
  return absl::OkStatus();
}

// x, dy, dx: [R, C]; gamma, dgamma, dbeta: [C] or absent.
template <typename T>
Status LayerNormBackwardCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Tensor& xt = ctx.inputs[0];
  const int64_t c = xt.shape().dim(-1), rows = RowsOf(xt.shape());
  const double eps = norm_internal::EpsOf(ctx.attrs);
  const bool affine = ctx.inputs.size() == 3;
  const std::vector<A> gamma = LoadVector<T>(affine ? &ctx.inputs[2] : nullptr, c, A(1));
  const T* x = xt.data<T>();
  const T* dy = ctx.inputs[1].data<T>();
  T* dx = ctx.outputs[0].data<T>();
  // Chunks of rows, each with its own partial dgamma / dbeta.
  const int64_t rows_per_chunk = RowGrain(c);
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<A> pg(affine ? chunks * c : 0, A(0)), pb(affine ? chunks * c : 0, A(0));
  if constexpr (!std::is_same_v<T, double>) {
    if (vm::HasAvx512()) {
      ParallelFor(0, chunks, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> xh(c);
        for (int64_t k = begin; k < end; ++k) {
          const int64_t r0 = k * rows_per_chunk, r1 = std::min(rows, r0 + rows_per_chunk);
          LayerNormBackwardRowsAvx512(x, dy, dx, r0, r1, c, float(eps), gamma.data(), xh.data(),
                                      affine ? pg.data() + k * c : nullptr, affine ? pb.data() + k * c : nullptr);
        }
      });
      if (affine) {
        SumOverMiddle<T>(pg.data(), 1, chunks, c, ctx.outputs[1].data<T>());
        SumOverMiddle<T>(pb.data(), 1, chunks, c, ctx.outputs[2].data<T>());
      }
      return absl::OkStatus();
    }
  }
  ParallelFor(0, chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<A> g(c), xh(c);
    for (int64_t k = begin; k < end; ++k) {
      for (int64_t r = k * rows_per_chunk; r < std::min(rows, (k + 1) * rows_per_chunk); ++r) {
        const T* xr = x + r * c;
        const T* dyr = dy + r * c;
        T* dxr = dx + r * c;
        A mean, rstd;
        RowStats(xr, c, eps, mean, rstd);
        for (int64_t i = 0; i < c; ++i) {
          xh[i] = (Load(xr, i) - mean) * rstd;
          g[i] = Load(dyr, i) * gamma[i];
        }
        const A sa = LaneSum<A>(c, [&](int64_t i) { return g[i]; }) / A(c);
        const A sb = LaneSum<A>(c, [&](int64_t i) { return g[i] * xh[i]; }) / A(c);
        for (int64_t i = 0; i < c; ++i) Store(dxr, i, rstd * (g[i] - sa - xh[i] * sb));
        if (affine) {
          A* pgk = pg.data() + k * c;
          A* pbk = pb.data() + k * c;
          for (int64_t i = 0; i < c; ++i) {
            const A d = Load(dyr, i);
            pgk[i] += d * xh[i];
            pbk[i] += d;
          }
        }
      }
    }
  });
  if (affine) {
    SumOverMiddle<T>(pg.data(), 1, chunks, c, ctx.outputs[1].data<T>());
    SumOverMiddle<T>(pb.data(), 1, chunks, c, ctx.outputs[2].data<T>());
  }
  return absl::OkStatus();
}

Status LayerNormCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "layer_norm", [&](auto tag) { return LayerNormCpuT<decltype(tag)>(ctx); });
}
Status LayerNormBackwardCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "layer_norm_backward",
                       [&](auto tag) { return LayerNormBackwardCpuT<decltype(tag)>(ctx); });
}

OpDef LayerNormDef() {
  return {.name = "layer_norm", .min_inputs = 1, .max_inputs = 3, .infer = InferLayerNorm, .cost = LayerNormCost,
          .vjp = LayerNormVjp, .doc = "layer normalisation over the last dim of x [..., C]"};
}

OpDef LayerNormBackwardDef() {
  return {.name = "layer_norm_backward", .min_inputs = 2, .max_inputs = 3, .infer = InferLayerNormBackward,
          .cost = LayerNormBackwardCost, .doc = "gradients of layer_norm: (x, dy [, gamma]) -> dx [, dgamma, dbeta]"};
}

}  // namespace

Value LayerNorm(Value x, std::optional<Value> gamma, std::optional<Value> beta, double eps) {
  return norm_internal::AffineNormOp("LayerNorm", "layer_norm", x, gamma, beta, Attrs{{"eps", eps}});
}

CF_REGISTER_OP(LayerNormDef());
CF_REGISTER_OP(LayerNormBackwardDef());
CF_REGISTER_KERNEL("layer_norm", kCPU, LayerNormCpu);
CF_REGISTER_KERNEL("layer_norm_backward", kCPU, LayerNormBackwardCpu);

}  // namespace cf
