// "neighborhood_attention" and "neighborhood_attention_backward": definitions,
// shape and cost rules, the VJP and the CPU kernels (neighborhood_cpu.cc).
// CUDA kernels: neighborhood_cuda.cu. See docs/ops/neighborhood_attention.md.
//
//   neighborhood_attention: q, k, v [B, H, W, heads*d] -> out (q's type),
//       lse [B, H, W, heads] (f32; f64 for f64 storage).
//   neighborhood_attention_backward: q, k, v, out, lse, dout [, dlse] ->
//       dq, dk, dv. dlse (lse's type) is the gradient flowing into lse; the
//       VJP passes it only when something downstream uses lse.
#include "ops/attention/attention.h"
#include "ops/attention/attention_params.h"
#include "ops/attention/neighborhood_cpu.h"
#include "ops/core/full.h"
#include "ops/cpu_util.h"

namespace cf {
namespace {

constexpr char kForward[] = "neighborhood_attention";
constexpr char kBackward[] = "neighborhood_attention_backward";

DType LseDType(DType storage) { return storage == DType::f64 ? DType::f64 : DType::f32; }

TensorType LseType(const NaParams& p, DType storage) {
  return {Shape{p.batch, p.height, p.width, p.heads}, LseDType(storage)};
}

StatusOr<std::vector<TensorType>> InferForward(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(NaParams p, NaParamsOf(kForward, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2]));
  return std::vector<TensorType>{c.inputs[0], LseType(p, c.inputs[0].dtype)};
}

StatusOr<std::vector<TensorType>> InferBackward(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(NaParams p, NaParamsOf(kBackward, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2]));
  const TensorType& q = c.inputs[0];
  const TensorType lse = LseType(p, q.dtype);
  CF_CHECK_ARG(c.inputs[3] == q && c.inputs[5] == q, kBackward, ": out and dout must have q's type ", q.ToString(),
               ", got out ", c.inputs[3].ToString(), " and dout ", c.inputs[5].ToString());
  CF_CHECK_ARG(c.inputs[4] == lse, kBackward, ": lse must be ", lse.ToString(), " for q ", q.ToString(), ", got ",
               c.inputs[4].ToString());
  if (c.inputs.size() == 7)
    CF_CHECK_ARG(c.inputs[6] == lse, kBackward, ": dlse must be ", lse.ToString(), " for q ", q.ToString(), ", got ",
                 c.inputs[6].ToString());
  return std::vector<TensorType>{q, q, q};
}

// Per (query, head), with n = K_h * K_w keys of d channels:
//   forward:  QK^T and PV: 2 n d multiply-adds (mac 4 n d); elementwise:
//             scale n, max n - 1, subtract n, sum n - 1, 1 / sum 1,
//             normalise d, lse = max + log(sum) 1  ->  4n + d;
//             transcendentals: exp n, log 1.
//   backward: D = <dO, O> d, s = q.k n d, dP = dO.v n d, dq n d, dk n d,
//             dv n d multiply-adds (mac 2d + 10 n d); elementwise: scale n,
//             s - lse n, dP - D n, p (.) n, dq's scale d, dk's scale d (one
//             key per query)  ->  4n + 2d, +1 for D - dlse with dlse;
//             transcendentals: exp n.
StatusOr<NaParams> ParamsOfCall(const OpCall& c, const char* op) {
  return NaParamsOf(op, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2]);
}

Cost CostForward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = ParamsOfCall(c, kForward);
  if (!p.ok()) return cost;
  const int64_t rows = p->batch * p->tokens() * p->heads, n = p->kh * p->kw, d = p->head_dim;
  cost.mac_flops = rows * 4 * n * d;
  cost.elementwise_flops = rows * (4 * n + d);
  cost.transcendentals = rows * (n + 1);
  return cost;
}

Cost CostBackward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = ParamsOfCall(c, kBackward);
  if (!p.ok()) return cost;
  const int64_t rows = p->batch * p->tokens() * p->heads, n = p->kh * p->kw, d = p->head_dim;
  const bool dlse = c.inputs.size() == 7;
  cost.mac_flops = rows * (2 * d + 10 * n * d);
  cost.elementwise_flops = rows * (4 * n + 2 * d + (dlse ? 1 : 0));
  cost.transcendentals = rows * n;
  return cost;
}

StatusOr<std::vector<Value>> NeighborhoodVjp(VjpContext& ctx) {
  Value dout = ctx.grad_outputs[0];
  const Value dlse = ctx.grad_outputs.size() > 1 ? ctx.grad_outputs[1] : Value{};
  const bool any = ctx.needs_grad[0] || ctx.needs_grad[1] || ctx.needs_grad[2];
  if ((!dout.valid() && !dlse.valid()) || !any) return std::vector<Value>(3);
  const Value q = ctx.inputs[0];
  if (!dout.valid()) dout = Full(ctx.b, q.shape(), q.dtype(), 0.0);
  std::vector<Value> ins{ctx.inputs[0], ctx.inputs[1], ctx.inputs[2], ctx.outputs[0], ctx.outputs[1], dout};
  if (dlse.valid()) ins.push_back(dlse);
  std::vector<Value> g = ctx.b.Op(kBackward, ins, ctx.attrs);
  if (g.size() != 3) return ctx.b.status();
  std::vector<Value> result(3);
  for (int i = 0; i < 3; ++i)
    if (ctx.needs_grad[i]) result[i] = g[i];
  return result;
}

TensorType TypeOf(const Tensor& t) { return {t.shape(), t.dtype()}; }

Status ForwardCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(NaParams p, NaParamsOf(kForward, ctx.attrs, TypeOf(ctx.inputs[0]), TypeOf(ctx.inputs[1]),
                                             TypeOf(ctx.inputs[2])));
  return DispatchFloat(ctx.inputs[0].dtype(), kForward, [&](auto tag) {
    using T = decltype(tag);
    na_cpu::Forward<T>(p, ctx.inputs[0].data<T>(), ctx.inputs[1].data<T>(), ctx.inputs[2].data<T>(),
                       ctx.outputs[0].data<T>(), ctx.outputs[1].data<na_cpu::Lse<T>>());
    return absl::OkStatus();
  });
}

Status BackwardCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(NaParams p, NaParamsOf(kBackward, ctx.attrs, TypeOf(ctx.inputs[0]), TypeOf(ctx.inputs[1]),
                                             TypeOf(ctx.inputs[2])));
  return DispatchFloat(ctx.inputs[0].dtype(), kBackward, [&](auto tag) {
    using T = decltype(tag);
    using L = na_cpu::Lse<T>;
    const auto& in = ctx.inputs;
    na_cpu::Backward<T>(p, in[0].data<T>(), in[1].data<T>(), in[2].data<T>(), in[3].data<T>(), in[4].data<L>(),
                        in[5].data<T>(), in.size() == 7 ? in[6].data<L>() : nullptr, ctx.outputs[0].data<T>(),
                        ctx.outputs[1].data<T>(), ctx.outputs[2].data<T>());
    return absl::OkStatus();
  });
}

OpDef ForwardDef() {
  return {.name = kForward, .min_inputs = 3, .max_inputs = 3, .infer = InferForward, .cost = CostForward,
          .vjp = NeighborhoodVjp,
          .doc = "2D neighborhood attention (NATTEN windows, dilation) of q, k, v [B, H, W, heads*d] -> out, lse"};
}

OpDef BackwardDef() {
  return {.name = kBackward, .min_inputs = 6, .max_inputs = 7, .infer = InferBackward, .cost = CostBackward,
          .doc = "gradients of neighborhood_attention: (q, k, v, out, lse, dout [, dlse]) -> dq, dk, dv"};
}

}  // namespace

Value NeighborhoodAttention(Value q, Value k, Value v, const NeighborhoodAttentionOptions& options) {
  if (q.b == nullptr) return {};
  Attrs attrs{{"heads", options.heads},
              {"kernel", std::vector<int64_t>{options.kernel.h, options.kernel.w}},
              {"dilation", std::vector<int64_t>{options.dilation.h, options.dilation.w}}};
  if (options.scale) attrs.Set("scale", *options.scale);
  std::vector<Value> outs = q.b->Op(kForward, {q, k, v}, attrs);
  return outs.empty() ? Value{} : outs[0];
}

CF_REGISTER_OP(ForwardDef());
CF_REGISTER_OP(BackwardDef());
CF_REGISTER_KERNEL("neighborhood_attention", kCPU, ForwardCpu);
CF_REGISTER_KERNEL("neighborhood_attention_backward", kCPU, BackwardCpu);

}  // namespace cf
