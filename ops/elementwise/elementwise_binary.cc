// add, sub, mul, div: numpy-broadcast binary ops. Definitions, VJPs and CPU
// kernels (CUDA kernels in elementwise_binary.cu).
#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast_cpu.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/elementwise_math.h"
#include "ops/elementwise/value_util.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

using ew::BinaryKind;

StatusOr<std::vector<TensorType>> InferBinary(const OpCall& c) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  CF_ASSIGN_OR_RETURN(Shape out, BroadcastShapes(c.inputs[0].shape, c.inputs[1].shape));
  return std::vector<TensorType>{{out, c.inputs[0].dtype}};
}

// One arithmetic op per output element: elementwise_flops = numel(out).
Cost CostBinary(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  cost.elementwise_flops = outs[0].shape.numel();
  return cost;
}

template <BinaryKind K>
CF_VM_TARGET inline __m512 BinaryVec(__m512 x, __m512 y) {
  if constexpr (K == BinaryKind::kAdd) return _mm512_add_ps(x, y);
  else if constexpr (K == BinaryKind::kSub) return _mm512_sub_ps(x, y);
  else if constexpr (K == BinaryKind::kMul) return _mm512_mul_ps(x, y);
  else return _mm512_div_ps(x, y);
}

// The broadcast with AVX-512 (f32 / f16 / bf16): each run of the innermost
// dimension with a broadcast operand's value in a register, e.g. the
// [B, 1, C] + [B, HW, C] add reads [B, 1, C] from L1 for every row.
template <BinaryKind K, typename T>
CF_VM_TARGET void BroadcastBinaryAvx512(const BroadcastPlan& p, const T* a, const T* b, T* out) {
  const int64_t sa = p.stride_a[p.rank - 1], sb = p.stride_b[p.rank - 1];
  ParallelFor(0, p.numel(), kElementwiseGrain, [&](int64_t lo, int64_t hi) CF_VM_TARGET {
    ForEachBroadcastRow(p, lo, hi, [&](int64_t oa, int64_t ob, int64_t i, int64_t len) CF_VM_TARGET {
      const T* pa = a + oa;
      const T* pb = b + ob;
      T* po = out + i;
      const __m512 va = sa == 0 ? _mm512_set1_ps(Load(pa, 0)) : _mm512_setzero_ps();
      const __m512 vb = sb == 0 ? _mm512_set1_ps(Load(pb, 0)) : _mm512_setzero_ps();
      for (int64_t k = 0; k < len; k += vm::kLanes) {
        const __mmask16 m = vm::FirstLanes(len - k);
        const __m512 x = sa != 0 ? vm::Load(pa + k, m) : va;
        const __m512 y = sb != 0 ? vm::Load(pb + k, m) : vb;
        vm::Store(po + k, BinaryVec<K>(x, y), m);
      }
    });
  });
}

template <BinaryKind K>
Status BinaryCpu(KernelContext& ctx) {
  const Tensor &a = ctx.inputs[0], &b = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  const BroadcastPlan plan = PlanBroadcast(out.shape(), a.shape(), b.shape());
  return DispatchFloat(out.dtype(), ctx.op, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (!std::is_same_v<T, double>) {
      if (vm::HasAvx512()) {
        BroadcastBinaryAvx512<K>(plan, a.data<T>(), b.data<T>(), out.data<T>());
        return absl::OkStatus();
      }
    }
    BroadcastBinaryCpu(plan, a.data<T>(), b.data<T>(), out.data<T>(),
                       [](Acc<T> x, Acc<T> y) { return ew::Binary<K>(x, y); });
    return absl::OkStatus();
  });
}

// ---- VJPs: gradients of broadcast operands are summed back to their shapes.

StatusOr<std::vector<Value>> AddVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid()) return std::vector<Value>(2);
  std::vector<Value> g(2);
  for (int i = 0; i < 2; ++i)
    if (c.needs_grad[i]) g[i] = SumTo(dy, c.inputs[i].shape());
  return g;
}

StatusOr<std::vector<Value>> SubVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid()) return std::vector<Value>(2);
  std::vector<Value> g(2);
  if (c.needs_grad[0]) g[0] = SumTo(dy, c.inputs[0].shape());
  if (c.needs_grad[1]) g[1] = Neg(SumTo(dy, c.inputs[1].shape()));  // negate the smaller tensor
  return g;
}

StatusOr<std::vector<Value>> MulVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid()) return std::vector<Value>(2);
  std::vector<Value> g(2);
  if (c.needs_grad[0]) g[0] = SumTo(Mul(dy, c.inputs[1]), c.inputs[0].shape());
  if (c.needs_grad[1]) g[1] = SumTo(Mul(dy, c.inputs[0]), c.inputs[1].shape());
  return g;
}

// y = a / b: da = dy / b; db = -dy * a / b^2 = -(dy * y) / b.
StatusOr<std::vector<Value>> DivVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid()) return std::vector<Value>(2);
  const Value a = c.inputs[0], b = c.inputs[1], y = c.outputs[0];
  std::vector<Value> g(2);
  if (c.needs_grad[0]) g[0] = SumTo(Div(dy, b), a.shape());
  if (c.needs_grad[1]) g[1] = Neg(SumTo(Div(Mul(dy, y), b), b.shape()));
  return g;
}

OpDef BinaryDef(const char* name, VjpFn vjp, const char* doc) {
  return {.name = name, .min_inputs = 2, .max_inputs = 2, .infer = InferBinary, .cost = CostBinary,
          .vjp = std::move(vjp), .inplace_ok = true, .doc = doc};
}

Value Binary(const char* op, Value a, Value b) {
  Builder* bld = detail::AnyBuilder({a, b});
  return bld ? bld->Op1(op, {a, b}) : Value{};
}

}  // namespace

Value Add(Value a, Value b) { return Binary("add", a, b); }
Value Sub(Value a, Value b) { return Binary("sub", a, b); }
Value Mul(Value a, Value b) { return Binary("mul", a, b); }
Value Div(Value a, Value b) { return Binary("div", a, b); }

Value operator+(Value a, Value b) { return Add(a, b); }
Value operator-(Value a, Value b) { return Sub(a, b); }
Value operator*(Value a, Value b) { return Mul(a, b); }
Value operator/(Value a, Value b) { return Div(a, b); }
Value operator-(Value x) { return Neg(x); }
Value operator+(Value x, double c) { return Scale(x, 1.0, c); }
Value operator+(double c, Value x) { return Scale(x, 1.0, c); }
Value operator-(Value x, double c) { return Scale(x, 1.0, -c); }
Value operator-(double c, Value x) { return Scale(x, -1.0, c); }
Value operator*(Value x, double c) { return Scale(x, c, 0.0); }
Value operator*(double c, Value x) { return Scale(x, c, 0.0); }
Value operator/(Value x, double c) { return Scale(x, 1.0 / c, 0.0); }

CF_REGISTER_OP(BinaryDef("add", AddVjp, "a + b with numpy broadcasting"));
CF_REGISTER_OP(BinaryDef("sub", SubVjp, "a - b with numpy broadcasting"));
CF_REGISTER_OP(BinaryDef("mul", MulVjp, "a * b with numpy broadcasting"));
CF_REGISTER_OP(BinaryDef("div", DivVjp, "a / b with numpy broadcasting"));
CF_REGISTER_KERNEL("add", kCPU, BinaryCpu<BinaryKind::kAdd>);
CF_REGISTER_KERNEL("sub", kCPU, BinaryCpu<BinaryKind::kSub>);
CF_REGISTER_KERNEL("mul", kCPU, BinaryCpu<BinaryKind::kMul>);
CF_REGISTER_KERNEL("div", kCPU, BinaryCpu<BinaryKind::kDiv>);

}  // namespace cf
