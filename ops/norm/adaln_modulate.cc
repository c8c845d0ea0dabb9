// adaln_modulate and adaln_modulate_backward: definitions, costs, VJP and CPU
// kernels (CUDA kernels in adaln_modulate.cu).
//
// adaln_modulate: x [B, T, C], shift and scale of one shape, [B, C] or
// [B, 1, C]: y = x * (1 + scale) + shift, broadcast over T (DiT's modulate,
// PixArt's t2i_modulate).
// adaln_modulate_backward: inputs x, scale, dy; outputs
//   dx = dy * (1 + scale), dshift = sum_T dy, dscale = sum_T dy * x
// (dshift and dscale have scale's shape).
#include "ops/cpu_util.h"
#include "ops/norm/norm.h"
#include "ops/norm/norm_common.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

// Checks x [B, T, C] and a modulation `p` ([B, C] or [B, 1, C]).
Status CheckModulation(const TensorType& x, const TensorType& p, const char* what) {
  const int64_t b = x.shape.dim(0), c = x.shape.dim(2);
  CF_CHECK_ARG(p.shape == Shape({b, c}) || p.shape == Shape({b, 1, c}), what, " must be [", b, ", ", c, "] or [", b,
               ", 1, ", c, "] for x ", x.shape.ToString(), ", got ", p.shape.ToString());
  CF_CHECK_ARG(p.dtype == x.dtype, what, " dtype ", DTypeName(p.dtype), " differs from x dtype ", DTypeName(x.dtype));
  return absl::OkStatus();
}

Status CheckX(const TensorType& x) {
  CF_CHECK_ARG(x.shape.rank() == 3, "x must be [B, T, C], got ", x.shape.ToString());
  CF_CHECK_ARG(IsFloating(x.dtype), "x must be floating, got ", DTypeName(x.dtype));
  return absl::OkStatus();
}

StatusOr<std::vector<TensorType>> InferAdaLn(const OpCall& c) {
  const TensorType &x = c.inputs[0], &shift = c.inputs[1], &scale = c.inputs[2];
  CF_RETURN_IF_ERROR(CheckX(x));
  CF_RETURN_IF_ERROR(CheckModulation(x, shift, "shift"));
  CF_RETURN_IF_ERROR(CheckModulation(x, scale, "scale"));
  CF_CHECK_ARG(shift.shape == scale.shape, "shift ", shift.shape.ToString(), " and scale ", scale.shape.ToString(),
               " must have the same shape");
  return std::vector<TensorType>{x};
}

// E = numel(x) = B*T*C: 1 + scale per (b, c), then a multiply and an add per
// element. elementwise = 2E + BC.
Cost AdaLnCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& x = c.inputs[0].shape;
  cost.elementwise_flops = 2 * x.numel() + x.dim(0) * x.dim(2);
  return cost;
}

StatusOr<std::vector<TensorType>> InferAdaLnBackward(const OpCall& c) {
  const TensorType &x = c.inputs[0], &scale = c.inputs[1], &dy = c.inputs[2];
  CF_RETURN_IF_ERROR(CheckX(x));
  CF_RETURN_IF_ERROR(CheckModulation(x, scale, "scale"));
  CF_CHECK_ARG(dy == x, "dy ", dy.ToString(), " must have x's type ", x.ToString());
  return std::vector<TensorType>{x, scale, scale};
}

// dx = dy * (1 + scale): E + BC; dshift = sum_T dy: E - BC;
// dscale = sum_T dy * x: 2E - BC. elementwise = 4E - BC.
Cost AdaLnBackwardCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& x = c.inputs[0].shape;
  cost.elementwise_flops = 4 * x.numel() - x.dim(0) * x.dim(2);
  return cost;
}

// adaln_modulate_backward's outputs {dx, dshift, dscale} are the gradients
// of the inputs {x, shift, scale}.
StatusOr<std::vector<Value>> AdaLnVjp(VjpContext& ctx) {
  return norm_internal::GradsFromBackwardOp(ctx, "adaln_modulate_backward",
                                            {ctx.inputs[0], ctx.inputs[2], ctx.grad_outputs[0]}, {});
}

// ---- CPU kernels -----------------------------------------------------------------

// x, y: [B, T, C]; shift, scale: [B, C] (or [B, 1, C], the same memory).
// Rows [begin, end) of x [B * T, C]: y = x * a + b with a, b [B, C] (AVX-512).
template <typename T>
CF_VM_TARGET void ModulateRowsAvx512(const T* x, T* y, int64_t begin, int64_t end, int64_t t, int64_t c,
                                     const float* s1, const float* sh) {
  for (int64_t row = begin; row < end; ++row) {
    const float* a = s1 + (row / t) * c;
    const float* b = sh + (row / t) * c;
    for (int64_t i = 0; i < c; i += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(c - i);
      vm::Store(y + row * c + i,
                _mm512_fmadd_ps(vm::Load(x + row * c + i, k), _mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i)),
                k);
    }
  }
}

template <typename T>
Status AdaLnCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Shape& s = ctx.inputs[0].shape();
  const int64_t bn = s[0], t = s[1], c = s[2];
  const T* x = ctx.inputs[0].data<T>();
  const T* shift = ctx.inputs[1].data<T>();
  const T* scale = ctx.inputs[2].data<T>();
  T* y = ctx.outputs[0].data<T>();
  std::vector<A> sh(bn * c), s1(bn * c);
  for (int64_t i = 0; i < bn * c; ++i) {
    sh[i] = Load(shift, i);
    s1[i] = A(1) + Load(scale, i);
  }
  if constexpr (!std::is_same_v<T, double>) {
    if (vm::HasAvx512()) {
      ParallelFor(0, bn * t, RowGrain(c), [&](int64_t begin, int64_t end) {
        ModulateRowsAvx512(x, y, begin, end, t, c, s1.data(), sh.data());
      });
      return absl::OkStatus();
    }
  }
  ParallelFor(0, bn * t, RowGrain(c), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const A* a = s1.data() + (row / t) * c;
      const A* b = sh.data() + (row / t) * c;
      const T* xr = x + row * c;
      T* yr = y + row * c;
      for (int64_t i = 0; i < c; ++i) Store(yr, i, Load(xr, i) * a[i] + b[i]);
    }
  });
  return absl::OkStatus();
}

// nr rows of c (x, dy, dx with row stride c): dx = dy * s1, ps += dy,
// pc += dy * x (ps, pc: one task's partial sums [c]).
template <typename T>
CF_VM_TARGET void ModulateGradRowsAvx512(const T* x, const T* dy, T* dx, int64_t nr, int64_t c, const float* s1,
                                         float* ps, float* pc) {
  for (int64_t r = 0; r < nr; ++r) {
    const int64_t off = r * c;
    for (int64_t i = 0; i < c; i += vm::kLanes) {
      const __mmask16 k = vm::FirstLanes(c - i);
      const __m512 g = vm::Load(dy + off + i, k);
      vm::Store(dx + off + i, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(k, s1 + i)), k);
      _mm512_mask_storeu_ps(ps + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, ps + i), g));
      _mm512_mask_storeu_ps(pc + i, k, _mm512_fmadd_ps(g, vm::Load(x + off + i, k), _mm512_maskz_loadu_ps(k, pc + i)));
    }
  }
}

// x, dy, dx: [B, T, C]; scale, dshift, dscale: [B, C] (or [B, 1, C]).
template <typename T>
Status AdaLnBackwardCpuT(KernelContext& ctx) {
  using A = Acc<T>;
  const Shape& s = ctx.inputs[0].shape();
  const int64_t bn = s[0], t = s[1], c = s[2];
  const T* x = ctx.inputs[0].data<T>();
  const T* scale = ctx.inputs[1].data<T>();
  const T* dy = ctx.inputs[2].data<T>();
  T* dx = ctx.outputs[0].data<T>();
  std::vector<A> s1(bn * c);
  for (int64_t i = 0; i < bn * c; ++i) s1[i] = A(1) + Load(scale, i);
  // Tasks over (b, chunk of T), each with partial sums [C].
  const int64_t rows_per_chunk = RowGrain(c);
  const int64_t chunks = (t + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<A> p_shift(bn * chunks * c, A(0)), p_scale(bn * chunks * c, A(0));
  const bool vec = vm::HasAvx512();
  ParallelFor(0, bn * chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / chunks, k = task % chunks;
      const A* a = s1.data() + b * c;
      A* ps = p_shift.data() + task * c;
      A* pc = p_scale.data() + task * c;
      const int64_t r0 = k * rows_per_chunk, r1 = std::min(t, (k + 1) * rows_per_chunk);
      if constexpr (!std::is_same_v<T, double>) {
        if (vec) {
          const int64_t off = (b * t + r0) * c;
          ModulateGradRowsAvx512(x + off, dy + off, dx + off, r1 - r0, c, a, ps, pc);
          continue;
        }
      }
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t off = (b * t + r) * c;
        for (int64_t i = 0; i < c; ++i) {
          const A g = Load(dy + off, i);
          Store(dx + off, i, g * a[i]);
          ps[i] += g;
          pc[i] += g * Load(x + off, i);
        }
      }
    }
  });
  SumOverMiddle<T>(p_shift.data(), bn, chunks, c, ctx.outputs[1].data<T>());
  SumOverMiddle<T>(p_scale.data(), bn, chunks, c, ctx.outputs[2].data<T>());
  return absl::OkStatus();
}

Status AdaLnCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "adaln_modulate", [&](auto tag) { return AdaLnCpuT<decltype(tag)>(ctx); });
}
Status AdaLnBackwardCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), "adaln_modulate_backward",
                       [&](auto tag) { return AdaLnBackwardCpuT<decltype(tag)>(ctx); });
}

OpDef AdaLnDef() {
  return {.name = "adaln_modulate", .min_inputs = 3, .max_inputs = 3, .infer = InferAdaLn, .cost = AdaLnCost,
          .vjp = AdaLnVjp, .inplace_ok = true,
          .doc = "x [B, T, C] * (1 + scale) + shift with shift, scale [B, C] or [B, 1, C]"};
}

OpDef AdaLnBackwardDef() {
  return {.name = "adaln_modulate_backward", .min_inputs = 3, .max_inputs = 3, .infer = InferAdaLnBackward,
          .cost = AdaLnBackwardCost, .doc = "gradients of adaln_modulate: (x, scale, dy) -> dx, dshift, dscale"};
}

}  // namespace

Value AdaLnModulate(Value x, Value shift, Value scale) {
  if (!x.valid()) return {};
  return x.b->Op1("adaln_modulate", {x, shift, scale});
}

CF_REGISTER_OP(AdaLnDef());
CF_REGISTER_OP(AdaLnBackwardDef());
CF_REGISTER_KERNEL("adaln_modulate", kCPU, AdaLnCpu);
CF_REGISTER_KERNEL("adaln_modulate_backward", kCPU, AdaLnBackwardCpu);

}  // namespace cf
