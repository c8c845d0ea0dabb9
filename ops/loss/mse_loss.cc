// mse_loss(pred, target[, weight]) -> [] and mse_loss_backward(pred, target,
// dy[, weight]) -> dpred. With n = numel(pred), B = pred's first dimension
// and M = n / B:
//   unweighted: L = sum((p - t)^2) / n
//   weighted:   L = sum_b w_b * s_b / n, s_b = sum over sample b of (p - t)^2
//               (= mean_b(w_b * mean_rest((p - t)^2)))
//   dL/dp = dy * w_b * 2 (p - t) / n; dL/dt = -dL/dp; dL/dw_b = dy * s_b / n.
// CPU kernels here; CUDA in mse_loss.cu.
#include <vector>

#include "ops/cpu_util.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/value_util.h"
#include "ops/loss/loss.h"
#include "ops/reduce/reduce.h"

namespace cf {
namespace {

// Checks pred, target and the optional weight at `weight_index`.
Status CheckLossInputs(const OpCall& c, size_t weight_index) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  const Shape& p = c.inputs[0].shape;
  CF_CHECK_ARG(c.inputs[1].shape == p, "target ", c.inputs[1].shape.ToString(), " must have pred's shape ",
               p.ToString());
  if (c.inputs.size() > weight_index) {
    const Shape& w = c.inputs[weight_index].shape;
    CF_CHECK_ARG(p.rank() >= 1 && w.rank() == 1 && w[0] == p[0], "per-sample weight ", w.ToString(),
                 " must be [B] with B = pred's first dimension (pred ", p.ToString(), ")");
  }
  return absl::OkStatus();
}

StatusOr<std::vector<TensorType>> InferMse(const OpCall& c) {
  CF_RETURN_IF_ERROR(CheckLossInputs(c, 2));
  return std::vector<TensorType>{{Shape{}, c.inputs[0].dtype}};
}

StatusOr<std::vector<TensorType>> InferMseBackward(const OpCall& c) {
  CF_RETURN_IF_ERROR(CheckLossInputs(c, 3));
  CF_CHECK_ARG(c.inputs[2].shape.numel() == 1, "the loss gradient ", c.inputs[2].shape.ToString(),
               " must have one element");
  return std::vector<TensorType>{c.inputs[0]};
}

// Forward: (p - t) and its square (2n), sums (n - 1), the division (1): 3n;
// weighted: sums within samples (n - B), w_b * s_b (B), the sum over samples
// (B - 1) and the division (1): 3n + B.
Cost CostMse(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t n = c.inputs[0].shape.numel();
  if (n == 0) return cost;
  cost.elementwise_flops = 3 * n + (c.inputs.size() == 3 ? c.inputs[0].shape[0] : 0);
  return cost;
}

// Backward: per element (p - t) * c_b (2n); c_b = dy * (2 / n) (1), times
// w_b when weighted (B more multiplies per sample: 2B in all).
Cost CostMseBackward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t n = c.inputs[0].shape.numel();
  cost.elementwise_flops = 2 * n + (c.inputs.size() == 4 ? 2 * c.inputs[0].shape[0] : 1);
  return cost;
}

// Samples and elements per sample of pred: (B, M), or (1, n) without a weight.
std::pair<int64_t, int64_t> Samples(const Shape& p, bool weighted) {
  const int64_t n = p.numel();
  if (!weighted || n == 0) return {1, n};
  return {p[0], n / p[0]};
}

template <typename T>
Acc<T> SquaredDiffSum(const T* p, const T* t, int64_t n) {
  using A = Acc<T>;
  // Chunked so every thread gets work; partials in a fixed order (deterministic).
  const int64_t chunk = 1 << 14, chunks = (n + chunk - 1) / chunk;
  std::vector<A> part(chunks);
  ParallelFor(0, chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      A s[8] = {};
      const int64_t i0 = c * chunk, i1 = std::min(n, i0 + chunk);
      int64_t i = i0;
      for (; i + 8 <= i1; i += 8)
        for (int k = 0; k < 8; ++k) {
          const A d = Load(p, i + k) - Load(t, i + k);
          s[k] += d * d;
        }
      A total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
      for (; i < i1; ++i) {
        const A d = Load(p, i) - Load(t, i);
        total += d * d;
      }
      part[c] = total;
    }
  });
  A sum = 0;
  for (A v : part) sum += v;
  return sum;
}

Status MseCpu(KernelContext& ctx) {
  const Tensor &p = ctx.inputs[0], &t = ctx.inputs[1];
  const bool weighted = ctx.inputs.size() == 3;
  const auto [B, M] = Samples(p.shape(), weighted);
  const int64_t n = p.numel();
  return DispatchFloat(p.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    A total = 0;
    for (int64_t b = 0; b < B; ++b) {
      const A s = SquaredDiffSum(p.data<T>() + b * M, t.data<T>() + b * M, M);
      // n == 0 is one empty "sample" (Samples): the weights, maybe an empty
      // tensor, are not read.
      total += weighted && n > 0 ? Load(ctx.inputs[2].data<T>(), b) * s : s;
    }
    // n == 0: the mean of nothing is NaN, as in PyTorch.
    Store(ctx.outputs[0].data<T>(), 0, total / static_cast<A>(n));
    return absl::OkStatus();
  });
}

Status MseBackwardCpu(KernelContext& ctx) {
  const Tensor &p = ctx.inputs[0], &t = ctx.inputs[1], &dy = ctx.inputs[2];
  const bool weighted = ctx.inputs.size() == 4;
  const auto [B, M] = Samples(p.shape(), weighted);
  const int64_t n = p.numel();
  if (n == 0) return absl::OkStatus();
  return DispatchFloat(p.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const A c = Load(dy.data<T>(), 0) * (A(2) / static_cast<A>(n));
    const T *pp = p.data<T>(), *pt = t.data<T>();
    const T* pw = weighted ? ctx.inputs[3].data<T>() : nullptr;
    T* out = ctx.outputs[0].data<T>();
    ParallelFor(0, n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
      int64_t i = lo;
      while (i < hi) {  // runs within one sample share c_b
        const int64_t b = i / M, end = std::min(hi, (b + 1) * M);
        const A cb = pw ? c * Load(pw, b) : c;
        for (; i < end; ++i) Store(out, i, (Load(pp, i) - Load(pt, i)) * cb);
      }
    });
    return absl::OkStatus();
  });
}

StatusOr<std::vector<Value>> MseVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  const bool weighted = c.inputs.size() == 3;
  std::vector<Value> g(c.inputs.size());
  if (!dy.valid()) return g;
  const Value p = c.inputs[0], t = c.inputs[1];
  if (c.needs_grad[0] || c.needs_grad[1]) {
    std::vector<Value> ins = {p, t, dy};
    if (weighted) ins.push_back(c.inputs[2]);
    const Value dp = c.b.Op1("mse_loss_backward", ins);
    if (c.needs_grad[0]) g[0] = dp;
    if (c.needs_grad[1]) g[1] = Neg(dp);
  }
  if (weighted && c.needs_grad[2]) {
    // dL/dw_b = dy * s_b / n.
    const int64_t n = p.shape().numel();
    std::vector<int64_t> rest;
    for (int d = 1; d < p.rank(); ++d) rest.push_back(d);
    Value s = Square(Sub(p, t));
    if (!rest.empty()) s = Sum(s, rest);
    g[2] = Scale(Mul(s, dy), 1.0 / static_cast<double>(n));
  }
  return g;
}

OpDef MseDef() {
  return {.name = "mse_loss", .min_inputs = 2, .max_inputs = 3, .infer = InferMse, .cost = CostMse, .vjp = MseVjp,
          .doc = "mean((pred - target)^2), optionally mean_b(w_b * mean_rest((pred - target)^2)); shape []"};
}

OpDef MseBackwardDef() {
  // In place: elementwise in pred.
  return {.name = "mse_loss_backward", .min_inputs = 3, .max_inputs = 4, .infer = InferMseBackward,
          .cost = CostMseBackward, .inplace_ok = true, .doc = "d mse_loss / d pred = dy * w_b * 2 (pred - target) / n"};
}

}  // namespace

Value MseLoss(Value pred, Value target, std::optional<Value> per_sample_weight) {
  Builder* b = detail::AnyBuilder({pred, target});
  if (!b) return Value{};
  std::vector<Value> ins = {pred, target};
  if (per_sample_weight) ins.push_back(*per_sample_weight);
  return b->Op1("mse_loss", ins);
}

CF_REGISTER_OP(MseDef());
CF_REGISTER_OP(MseBackwardDef());
CF_REGISTER_KERNEL("mse_loss", kCPU, MseCpu);
CF_REGISTER_KERNEL("mse_loss_backward", kCPU, MseBackwardCpu);

}  // namespace cf
