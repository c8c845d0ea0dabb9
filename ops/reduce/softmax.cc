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

Status SoftmaxCpu(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  const int64_t L = x.shape().dim(-1);
  if (x.numel() == 0) return absl::OkStatus();
  const int64_t rows = x.numel() / L;
  return DispatchFloat(x.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
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
