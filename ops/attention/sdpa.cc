// "attention", "attention_backward" and "attention_probs" (contracts:
// attention.h, reference: docs/ops/attention.md): shape rules, exact costs,
// the VJP, the builder functions and the CPU kernels' registration (kernels:
// sdpa_cpu.cc; CUDA: sdpa_cuda.cu).
#include "absl/strings/str_cat.h"
#include "ops/attention/attention.h"
#include "ops/attention/attention_params.h"
#include "ops/attention/sdpa_cpu.h"
#include "ops/cpu_util.h"

namespace cf {
namespace {

constexpr char kForward[] = "attention";
constexpr char kBackward[] = "attention_backward";
constexpr char kProbs[] = "attention_probs";

const TensorType* MaskAt(absl::Span<const TensorType> in, size_t index) {
  return in.size() > index ? &in[index] : nullptr;
}

TensorType LseType(const SdpaParams& p) { return {Shape{p.batch, p.heads, p.nq}, DType::f32}; }

StatusOr<std::vector<TensorType>> InferForward(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(SdpaParams p, SdpaParamsOf(kForward, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2],
                                                 MaskAt(c.inputs, 3)));
  return std::vector<TensorType>{c.inputs[0], LseType(p)};
}

// q, k, v, out, lse, dout [, key_mask] -> dq, dk, dv.
StatusOr<std::vector<TensorType>> InferBackward(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(SdpaParams p, SdpaParamsOf(kBackward, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2],
                                                 MaskAt(c.inputs, 6)));
  const TensorType& q = c.inputs[0];
  CF_CHECK_ARG(c.inputs[3] == q && c.inputs[5] == q, kBackward, ": out and dout must have q's type ", q.ToString(),
               ", got out ", c.inputs[3].ToString(), " and dout ", c.inputs[5].ToString());
  CF_CHECK_ARG(c.inputs[4] == LseType(p), kBackward, ": lse must be ", LseType(p).ToString(), " for q ",
               q.ToString(), ", got ", c.inputs[4].ToString());
  return std::vector<TensorType>{q, c.inputs[1], c.inputs[2]};
}

StatusOr<SdpaParams> ProbsParams(const OpCall& c) {
  // attention_probs has no v; k stands in for it in the shared checks.
  CF_ASSIGN_OR_RETURN(SdpaParams p, SdpaParamsOf(kProbs, c.attrs, c.inputs[0], c.inputs[1], c.inputs[1],
                                                 MaskAt(c.inputs, 2)));
  for (int64_t i : c.attrs.Ints("queries"))
    CF_CHECK_ARG(i >= 0 && i < p.nq, kProbs, ": query ", i, " is outside [0, ", p.nq, ") (q ",
                 c.inputs[0].ToString(), ")");
  return p;
}

StatusOr<std::vector<TensorType>> InferProbs(const OpCall& c) {
  CF_CHECK_ARG(c.attrs.Has("queries"), kProbs, ": the attribute 'queries' (ints) is required");
  CF_ASSIGN_OR_RETURN(SdpaParams p, ProbsParams(c));
  const int64_t n = static_cast<int64_t>(c.attrs.Ints("queries").size());
  return std::vector<TensorType>{{Shape{p.batch, p.heads, n, p.nkv}, DType::f32}};
}

// The cost rule (docs/ops/attention.md). V = B * heads * visible pairs
// (causal / band limits counted exactly, the data-dependent key mask not),
// rows = B * heads * Nq.
//   forward:  mac 2 V d (Q K^T) + 2 V d (P V); elementwise per visible pair:
//             scale, running max, subtract, sum (4 V), per output element
//             the final divide (rows d), per row lse = max + log(sum) (rows);
//             transcendentals: one exp per pair (V) and one log per row.
//   backward: mac 2 V d each for the recomputed Q K^T, dV = P^T dO,
//             dP = dO V^T, dQ = dS K, dK = dS^T Q (10 V d), plus D =
//             rowsum(dO * O) (2 rows d); elementwise per pair: scale, minus
//             lse, dP - D, P * (.) (4 V), the scale of dQ and dK (rows d +
//             B heads Nkv d); transcendentals: one exp per pair.
//   probs:    per visible pair of the listed queries: mac 2 d, elementwise
//             scale, max, subtract, sum, normalise (5), one exp.
Cost CostForward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = SdpaParamsOf(kForward, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2], MaskAt(c.inputs, 3));
  if (!p.ok()) return cost;
  const int64_t V = p->batch * p->heads * p->VisiblePairs(), rows = p->batch * p->heads * p->nq, d = p->head_dim;
  cost.mac_flops = 4 * V * d;
  cost.elementwise_flops = 4 * V + rows * d + rows;
  cost.transcendentals = V + rows;
  return cost;
}

Cost CostBackward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = SdpaParamsOf(kBackward, c.attrs, c.inputs[0], c.inputs[1], c.inputs[2], MaskAt(c.inputs, 6));
  if (!p.ok()) return cost;
  const int64_t V = p->batch * p->heads * p->VisiblePairs(), rows = p->batch * p->heads * p->nq, d = p->head_dim;
  cost.mac_flops = 10 * V * d + 2 * rows * d;
  cost.elementwise_flops = 4 * V + rows * d + p->batch * p->heads * p->nkv * d;
  cost.transcendentals = V;
  return cost;
}

Cost CostProbs(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = ProbsParams(c);
  if (!p.ok()) return cost;
  int64_t pairs = 0;
  for (int64_t i : c.attrs.Ints("queries")) pairs += p->KeyEnd(i) - p->KeyBegin(i);
  pairs *= p->batch * p->heads;
  cost.mac_flops = 2 * pairs * p->head_dim;
  cost.elementwise_flops = 5 * pairs;
  cost.transcendentals = pairs;
  return cost;
}

StatusOr<std::vector<Value>> AttentionVjp(VjpContext& ctx) {
  const Value dout = ctx.grad_outputs[0];
  const bool any = ctx.needs_grad[0] || ctx.needs_grad[1] || ctx.needs_grad[2];
  if (ctx.grad_outputs.size() > 1 && ctx.grad_outputs[1].valid() && any)
    return absl::UnimplementedError(absl::StrCat(
        kForward, ": a gradient flows into lse (output 1), which is not differentiable; use only the attention "
                  "output (q ", ctx.inputs[0].type().ToString(), ")"));
  std::vector<Value> result(ctx.inputs.size());
  if (!dout.valid() || !any) return result;
  std::vector<Value> ins{ctx.inputs[0], ctx.inputs[1], ctx.inputs[2], ctx.outputs[0], ctx.outputs[1], dout};
  if (ctx.inputs.size() > 3) ins.push_back(ctx.inputs[3]);  // the key mask
  std::vector<Value> g = ctx.b.Op(kBackward, ins, ctx.attrs);
  if (g.size() != 3) return ctx.b.status();
  for (int i = 0; i < 3; ++i)
    if (ctx.needs_grad[i]) result[i] = g[i];
  return result;  // no gradient for the mask
}

TensorType TypeOf(const Tensor& t) { return {t.shape(), t.dtype()}; }

StatusOr<SdpaParams> KernelParams(const KernelContext& ctx, const char* op, size_t mask_index, bool has_v) {
  const TensorType q = TypeOf(ctx.inputs[0]), k = TypeOf(ctx.inputs[1]);
  const TensorType v = has_v ? TypeOf(ctx.inputs[2]) : k;
  const TensorType m = ctx.inputs.size() > mask_index ? TypeOf(ctx.inputs[mask_index]) : TensorType{};
  return SdpaParamsOf(op, ctx.attrs, q, k, v, ctx.inputs.size() > mask_index ? &m : nullptr);
}

const uint8_t* MaskData(const KernelContext& ctx, size_t index) {
  return ctx.inputs.size() > index ? static_cast<const uint8_t*>(ctx.inputs[index].raw()) : nullptr;
}

Status ForwardCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(SdpaParams p, KernelParams(ctx, kForward, 3, true));
  return DispatchFloat(ctx.inputs[0].dtype(), kForward, [&](auto tag) {
    using T = decltype(tag);
    const auto& in = ctx.inputs;
    sdpa_cpu::Forward<T>(p, in[0].data<T>(), in[1].data<T>(), in[2].data<T>(), MaskData(ctx, 3),
                         ctx.outputs[0].data<T>(), ctx.outputs[1].data<float>());
    return absl::OkStatus();
  });
}

Status BackwardCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(SdpaParams p, KernelParams(ctx, kBackward, 6, true));
  return DispatchFloat(ctx.inputs[0].dtype(), kBackward, [&](auto tag) {
    using T = decltype(tag);
    const auto& in = ctx.inputs;
    sdpa_cpu::Backward<T>(p, in[0].data<T>(), in[1].data<T>(), in[2].data<T>(), in[3].data<T>(),
                          in[4].data<float>(), in[5].data<T>(), MaskData(ctx, 6), ctx.outputs[0].data<T>(),
                          ctx.outputs[1].data<T>(), ctx.outputs[2].data<T>());
    return absl::OkStatus();
  });
}

Status ProbsCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(SdpaParams p, KernelParams(ctx, kProbs, 2, false));
  const std::vector<int64_t> queries = ctx.attrs.Ints("queries");
  return DispatchFloat(ctx.inputs[0].dtype(), kProbs, [&](auto tag) {
    using T = decltype(tag);
    sdpa_cpu::Probs<T>(p, ctx.inputs[0].data<T>(), ctx.inputs[1].data<T>(), MaskData(ctx, 2), queries,
                       ctx.outputs[0].data<float>());
    return absl::OkStatus();
  });
}

OpDef ForwardDef() {
  return {.name = kForward, .min_inputs = 3, .max_inputs = 4, .infer = InferForward, .cost = CostForward,
          .vjp = AttentionVjp,
          .doc = "softmax(q k^T * scale) v per head of q, k, v [B, N, heads*d] [, key_mask [B, Nkv]] -> out, lse "
                 "[B, heads, Nq] f32 (causal, window band)"};
}

OpDef BackwardDef() {
  return {.name = kBackward, .min_inputs = 6, .max_inputs = 7, .infer = InferBackward, .cost = CostBackward,
          .doc = "gradients of attention from the saved lse: (q, k, v, out, lse, dout [, key_mask]) -> dq, dk, dv"};
}

OpDef ProbsDef() {
  return {.name = kProbs, .min_inputs = 2, .max_inputs = 3, .infer = InferProbs, .cost = CostProbs,
          .doc = "the exact softmax rows of the queries listed in 'queries': (q, k [, key_mask]) -> [B, heads, Q, "
                 "Nkv] f32"};
}

Attrs AttrsOf(const AttentionOptions& o) {
  Attrs a{{"heads", o.heads}, {"causal", o.causal}, {"window", o.window}};
  if (o.scale) a.Set("scale", *o.scale);
  return a;
}

Builder* BuilderOf(const Value& a, const Value& b, const Value& c) { return a.b ? a.b : b.b ? b.b : c.b; }

std::vector<Value> Build(const char* op, std::vector<Value> ins, const AttentionOptions& o, Attrs attrs) {
  Builder* b = BuilderOf(ins[0], ins[1], ins.size() > 2 ? ins[2] : ins[0]);
  if (b == nullptr) return {};
  if (o.key_mask) ins.push_back(*o.key_mask);
  for (const Value& v : ins)
    if (!v.valid()) {
      if (b->ok()) b->Fail(absl::InvalidArgumentError(absl::StrCat(op, ": an input is an invalid Value")));
      return {};
    }
  return b->Op(op, std::move(ins), std::move(attrs));
}

}  // namespace

std::vector<Value> AttentionWithLse(Value q, Value k, Value v, const AttentionOptions& options) {
  return Build(kForward, {q, k, v}, options, AttrsOf(options));
}

Value Attention(Value q, Value k, Value v, const AttentionOptions& options) {
  std::vector<Value> outs = AttentionWithLse(q, k, v, options);
  return outs.empty() ? Value{} : outs[0];
}

Value AttentionProbs(Value q, Value k, std::vector<int64_t> queries, const AttentionOptions& options) {
  Attrs attrs = AttrsOf(options);
  attrs.Set("queries", std::move(queries));
  std::vector<Value> outs = Build(kProbs, {q, k}, options, std::move(attrs));
  return outs.empty() ? Value{} : outs[0];
}

CF_REGISTER_OP(ForwardDef());
CF_REGISTER_OP(BackwardDef());
CF_REGISTER_OP(ProbsDef());
CF_REGISTER_KERNEL("attention", kCPU, ForwardCpu);
CF_REGISTER_KERNEL("attention_backward", kCPU, BackwardCpu);
CF_REGISTER_KERNEL("attention_probs", kCPU, ProbsCpu);

}  // namespace cf
