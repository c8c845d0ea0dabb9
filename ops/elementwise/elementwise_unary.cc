// Unary elementwise ops: scale (x * mul + add; attributes mul, add), exp,
// sqrt, rsqrt, neg, square. Definitions, VJPs and CPU kernels (CUDA kernels
// in elementwise_unary.cu).
#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast_cpu.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/elementwise_math.h"
#include "ops/elementwise/value_util.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

using ew::UnaryKind;

StatusOr<std::vector<TensorType>> InferUnary(const OpCall& c) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  return std::vector<TensorType>{c.inputs[0]};
}

// Per element: scale 2 (a multiply and an add; 1 when add == 0 or mul == 1),
// exp / sqrt 1 transcendental, rsqrt 1 transcendental + 1 division,
// square 1 multiply, neg 0 (data movement).
Cost CostUnary(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t n = outs[0].shape.numel();
  if (c.op == "scale") {
    const bool mul = c.attrs.Float("mul", 1.0) != 1.0, add = c.attrs.Float("add", 0.0) != 0.0;
    cost.elementwise_flops = n * ((mul ? 1 : 0) + (add ? 1 : 0));
  } else if (c.op == "exp" || c.op == "sqrt") {
    cost.transcendentals = n;
  } else if (c.op == "rsqrt") {
    cost.transcendentals = n;
    cost.elementwise_flops = n;
  } else if (c.op == "square") {
    cost.elementwise_flops = n;
  }
  return cost;
}

// e^x with AVX-512 (f32 / f16 / bf16 storage).
template <typename T>
CF_VM_TARGET void ExpAvx512(const T* x, T* y, int64_t n) {
  ParallelFor(0, n, kElementwiseGrain, [=](int64_t lo, int64_t hi) CF_VM_TARGET {
    vm::Map(x + lo, y + lo, hi - lo, [n](__m512 v) CF_VM_TARGET { return vm::Exp(v); });
  });
}

template <UnaryKind K>
Status UnaryCpuKernel(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const double p0 = ctx.attrs.Float("mul", 1.0), p1 = ctx.attrs.Float("add", 0.0);
  return DispatchFloat(out.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
    using A = Acc<T>;
    const A m = static_cast<A>(p0), a = static_cast<A>(p1);
    if constexpr (K == UnaryKind::kExp && !std::is_same_v<T, double>) {
      if (vm::HasAvx512()) {
        ExpAvx512(x.data<T>(), out.data<T>(), out.numel());
        return absl::OkStatus();
      }
    }
    UnaryCpu(out.numel(), x.data<T>(), out.data<T>(), [m, a](A v) { return ew::Unary<K>(v, m, a); });
    return absl::OkStatus();
  });
}

// ---- VJPs (dy invalid means zero: no gradient).
using VjpBody = Value (*)(VjpContext&, Value dy);

template <VjpBody F>
StatusOr<std::vector<Value>> UnaryVjp(VjpContext& c) {
  if (!c.grad_outputs[0].valid() || !c.needs_grad[0]) return std::vector<Value>(1);
  return std::vector<Value>{F(c, c.grad_outputs[0])};
}
Value ScaleGrad(VjpContext& c, Value dy) { return Scale(dy, c.attrs.Float("mul", 1.0)); }
Value ExpGrad(VjpContext& c, Value dy) { return Mul(dy, c.outputs[0]); }
// d sqrt(x) = 0.5 / sqrt(x).
Value SqrtGrad(VjpContext& c, Value dy) { return Scale(Div(dy, c.outputs[0]), 0.5); }
// d x^-1/2 = -0.5 x^-3/2 = -0.5 * y / x.
Value RsqrtGrad(VjpContext& c, Value dy) { return Scale(Div(Mul(dy, c.outputs[0]), c.inputs[0]), -0.5); }
Value NegGrad(VjpContext&, Value dy) { return Neg(dy); }
Value SquareGrad(VjpContext& c, Value dy) { return Scale(Mul(dy, c.inputs[0]), 2.0); }

OpDef UnaryDef(const char* name, VjpFn vjp, const char* doc) {
  return {.name = name, .min_inputs = 1, .max_inputs = 1, .infer = InferUnary, .cost = CostUnary, .vjp = std::move(vjp),
          .inplace_ok = true, .doc = doc};
}

Value Unary(const char* op, Value x, Attrs attrs = {}) {
  if (!x.valid()) return x;
  return x.b->Op1(op, {x}, std::move(attrs));
}

}  // namespace

Value Scale(Value x, double mul, double add) { return Unary("scale", x, Attrs{{"mul", mul}, {"add", add}}); }
Value Exp(Value x) { return Unary("exp", x); }
Value Sqrt(Value x) { return Unary("sqrt", x); }
Value Rsqrt(Value x) { return Unary("rsqrt", x); }
Value Neg(Value x) { return Unary("neg", x); }
Value Square(Value x) { return Unary("square", x); }

CF_REGISTER_OP(UnaryDef("scale", UnaryVjp<ScaleGrad>, "x * mul + add"));
CF_REGISTER_OP(UnaryDef("exp", UnaryVjp<ExpGrad>, "e^x"));
CF_REGISTER_OP(UnaryDef("sqrt", UnaryVjp<SqrtGrad>, "sqrt(x)"));
CF_REGISTER_OP(UnaryDef("rsqrt", UnaryVjp<RsqrtGrad>, "1 / sqrt(x)"));
CF_REGISTER_OP(UnaryDef("neg", UnaryVjp<NegGrad>, "-x"));
CF_REGISTER_OP(UnaryDef("square", UnaryVjp<SquareGrad>, "x * x"));
CF_REGISTER_KERNEL("scale", kCPU, UnaryCpuKernel<UnaryKind::kScale>);
CF_REGISTER_KERNEL("exp", kCPU, UnaryCpuKernel<UnaryKind::kExp>);
CF_REGISTER_KERNEL("sqrt", kCPU, UnaryCpuKernel<UnaryKind::kSqrt>);
CF_REGISTER_KERNEL("rsqrt", kCPU, UnaryCpuKernel<UnaryKind::kRsqrt>);
CF_REGISTER_KERNEL("neg", kCPU, UnaryCpuKernel<UnaryKind::kNeg>);
CF_REGISTER_KERNEL("square", kCPU, UnaryCpuKernel<UnaryKind::kSquare>);

}  // namespace cf
