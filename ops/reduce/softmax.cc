// softmax over the last axis, numerically stable (the row maximum is
// subtracted before exp), and softmax_backward(y, dy) -> dx = y * (dy -
// sum(y * dy)) over the same axis. CPU kernels here; CUDA in softmax.cu.
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu_util.h"
#include "ops/elementwise/value_util.h"
#include "ops/elementwise/elementwise_math.h"
#include "ops/reduce/reduce.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

StatusOr<std::vector<TensorType>> InferSoftmax(const OpCall& c) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  CF_CHECK_ARG(c.inputs[0].shape.rank() >= 1, "softmax needs rank >= 1 (it normalises the last axis)");
  if (c.inputs.size() == 2) {
    CF_CHECK_ARG(c.inputs[1].shape == c.inputs[0].shape, "the gradient ", c.inputs[1].shape.ToString(),
                 " must have the output's shape ", c.inputs[0].shape.ToString());
  }
  return std::vector<TensorType>{c.inputs[0]};
}

// Per row of L: softmax: max (L - 1 comparisons), x - max (L), exp (L
// transcendentals), sum (L - 1), 1 / sum (1), scale (L): 4L - 1 elementwise.
// softmax_backward: y * dy (L), sum (L - 1), dy - dot (L), y * (.) (L): 4L - 1.
Cost CostSoftmax(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const Shape& s = c.inputs[0].shape;
  const int64_t L = s.dim(-1);
  if (L == 0) return cost;
  const int64_t rows = s.numel() / L;
  cost.elementwise_flops = rows * (4 * L - 1);
  if (c.inputs.size() == 1) cost.transcendentals = rows * L;
  return cost;
}

template <typename T>
void SoftmaxRows(const T* x, T* y, int64_t rows, int64_t L) {
  using A = Acc<T>;
  const int64_t grain = RowGrain(L);
  ParallelFor(0, rows, grain, [&](int64_t lo, int64_t hi) {
    std::vector<A> e(L);
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * L;
      T* yr = y + r * L;
      A m = -std::numeric_limits<A>::infinity();
      for (int64_t i = 0; i < L; ++i) m = std::max(m, Load(xr, i));
      A sum = 0;
      for (int64_t i = 0; i < L; ++i) {
        e[i] = ew::ExpT(Load(xr, i) - m);
        sum += e[i];
      }
      const A inv = A(1) / sum;
      for (int64_t i = 0; i < L; ++i) Store(yr, i, e[i] * inv);
    }
  });
}

template <typename T>
void SoftmaxBackwardRows(const T* y, const T* dy, T* dx, int64_t rows, int64_t L) {
  using A = Acc<T>;
  const int64_t grain = RowGrain(L);
  ParallelFor(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T *yr = y + r * L, *dyr = dy + r * L;
      A dot = 0;
      for (int64_t i = 0; i < L; ++i) dot += Load(yr, i) * Load(dyr, i);
      T* dxr = dx + r * L;
      for (int64_t i = 0; i < L; ++i) Store(dxr, i, Load(yr, i) * (Load(dyr, i) - dot));
    }
  });
}

// AVX-512 rows (f32 / f16 / bf16): the max, e = exp(x - max) kept in f32
// with its sum, then e / sum; 16 lanes of partial sums per row.
template <typename T>
CF_VM_TARGET void SoftmaxRowsAvx512(const T* x, T* y, int64_t rows, int64_t L) {
  ParallelFor(0, rows, RowGrain(L), [=](int64_t lo, int64_t hi) CF_VM_TARGET {
    std::vector<float> e(L + vm::kLanes);
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * L;
      __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      for (int64_t i = 0; i < L; i += vm::kLanes) {
        const __mmask16 m = vm::FirstLanes(L - i);
        mx = _mm512_mask_max_ps(mx, m, mx, vm::Load(xr + i, m));
      }
      const __m512 vmax = _mm512_set1_ps(vm::Max(mx));
      __m512 sum = _mm512_setzero_ps();
      for (int64_t i = 0; i < L; i += vm::kLanes) {
        const __mmask16 m = vm::FirstLanes(L - i);
        const __m512 v = _mm512_maskz_mov_ps(m, vm::Exp(_mm512_sub_ps(vm::Load(xr + i, m), vmax)));
        _mm512_storeu_ps(e.data() + i, v);
        sum = _mm512_add_ps(sum, v);
      }
      const __m512 inv = _mm512_set1_ps(1.0f / vm::Sum(sum));
      T* yr = y + r * L;
      for (int64_t i = 0; i < L; i += vm::kLanes)
        vm::Store(yr + i, _mm512_mul_ps(_mm512_loadu_ps(e.data() + i), inv), vm::FirstLanes(L - i));
    }
  });
}

// dx = y * (dy - sum(y * dy)) per row.
template <typename T>
CF_VM_TARGET void SoftmaxBackwardRowsAvx512(const T* y, const T* dy, T* dx, int64_t rows, int64_t L) {
  ParallelFor(0, rows, RowGrain(L), [=](int64_t lo, int64_t hi) CF_VM_TARGET {
    for (int64_t r = lo; r < hi; ++r) {
      const T *yr = y + r * L, *dyr = dy + r * L;
      __m512 dot = _mm512_setzero_ps();
      for (int64_t i = 0; i < L; i += vm::kLanes) {
        const __mmask16 m = vm::FirstLanes(L - i);
        dot = _mm512_fmadd_ps(vm::Load(yr + i, m), vm::Load(dyr + i, m), dot);
      }
      const __m512 d = _mm512_set1_ps(vm::Sum(dot));
      T* dxr = dx + r * L;
      for (int64_t i = 0; i < L; i += vm::kLanes) {
        const __mmask16 m = vm::FirstLanes(L - i);
        vm::Store(dxr + i, _mm512_mul_ps(vm::Load(yr + i, m), _mm512_sub_ps(vm::Load(dyr + i, m), d)), m);
      }
    }
  });
}

Status SoftmaxCpu(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  const int64_t L = x.shape().dim(-1);
  if (x.numel() == 0) return absl::OkStatus();
  const int64_t rows = x.numel() / L;
  return DispatchFloat(x.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      if (vm::HasAvx512()) {
        if (ctx.inputs.size() == 1) {
          SoftmaxRowsAvx512(x.data<T>(), ctx.outputs[0].data<T>(), rows, L);
        } else {
          SoftmaxBackwardRowsAvx512(x.data<T>(), ctx.inputs[1].data<T>(), ctx.outputs[0].data<T>(), rows, L);
        }
        return absl::OkStatus();
      }
    }
    if (ctx.inputs.size() == 1) {
      SoftmaxRows(x.data<T>(), ctx.outputs[0].data<T>(), rows, L);
    } else {
      SoftmaxBackwardRows(x.data<T>(), ctx.inputs[1].data<T>(), ctx.outputs[0].data<T>(), rows, L);
    }
    return absl::OkStatus();
  });
}

StatusOr<std::vector<Value>> SoftmaxVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid() || !c.needs_grad[0]) return std::vector<Value>(1);
  return std::vector<Value>{c.b.Op1("softmax_backward", {c.outputs[0], dy})};
}

OpDef SoftmaxDef(bool backward) {
  const int inputs = backward ? 2 : 1;
  // In place: each row is read completely before it is written.
  return {.name = backward ? "softmax_backward" : "softmax", .min_inputs = inputs, .max_inputs = inputs,
          .infer = InferSoftmax, .cost = CostSoftmax, .vjp = backward ? VjpFn() : VjpFn(SoftmaxVjp),
          .inplace_ok = true,
          .doc = backward ? "the gradient of softmax from its output y: y * (dy - sum(y * dy)) over the last axis"
                          : "exp(x - max) / sum(exp(x - max)) over the last axis"};
}

}  // namespace

Value Softmax(Value x) {
  if (!x.valid()) return x;
  return x.b->Op1("softmax", {x});
}

CF_REGISTER_OP(SoftmaxDef(false));
CF_REGISTER_OP(SoftmaxDef(true));
CF_REGISTER_KERNEL("softmax", kCPU, SoftmaxCpu);
CF_REGISTER_KERNEL("softmax_backward", kCPU, SoftmaxCpu);

}  // namespace cf
