// cast: dtype conversion. Attribute: dtype. Supported: f32, f16, bf16, f64,
// i32, i64 in any direction (see cast_math.h for float -> int). CPU kernel
// here; CUDA kernel (no f64) in elementwise_cast.cu.
#include "ops/cpu_util.h"
#include "ops/elementwise/cast_math.h"
#include "ops/elementwise/elementwise.h"

namespace cf {
namespace {

bool Castable(DType t) { return IsFloating(t) || t == DType::i32 || t == DType::i64; }

StatusOr<std::vector<TensorType>> InferCast(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(DType to, c.attrs.RequireType("dtype"));
  const DType from = c.inputs[0].dtype;
  CF_CHECK_ARG(Castable(from) && Castable(to), "cannot cast ", DTypeName(from), " to ", DTypeName(to),
               " (supported: f32, f16, bf16, f64, i32, i64)");
  return std::vector<TensorType>{{c.inputs[0].shape, to}};
}

// Calls fn(T{}) for the storage type of a castable dtype.
template <typename F>
Status DispatchCastable(DType t, F&& fn) {
  switch (t) {
    case DType::i32: return fn(int32_t{});
    case DType::i64: return fn(int64_t{});
    default: return DispatchFloat(t, "cast", fn);
  }
}

template <typename To, typename From>
void Convert(const From* in, To* out, int64_t lo, int64_t hi) {
  constexpr bool kFromInt = std::is_integral_v<From>, kToInt = std::is_integral_v<To>;
  for (int64_t i = lo; i < hi; ++i) {
    if constexpr (kFromInt && kToInt) {
      out[i] = ew::IntToInt<To>(in[i]);
    } else if constexpr (kFromInt) {
      Store(out, i, static_cast<Acc<To>>(in[i]));
    } else if constexpr (kToInt) {
      out[i] = ew::FloatToInt<To>(Load(in, i));
    } else {
      Store(out, i, static_cast<Acc<To>>(Load(in, i)));
    }
  }
}

Status CastCpu(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  return DispatchCastable(x.dtype(), [&](auto from_tag) {
    using From = decltype(from_tag);
    return DispatchCastable(out.dtype(), [&](auto to_tag) {
      using To = decltype(to_tag);
      const From* in = x.data<From>();
      To* o = out.data<To>();
      ParallelFor(0, out.numel(), kElementwiseGrain, [&](int64_t lo, int64_t hi) { Convert(in, o, lo, hi); });
      return absl::OkStatus();
    });
  });
}

// Floating -> floating: the gradient cast back; nothing through integers.
StatusOr<std::vector<Value>> CastVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0], x = c.inputs[0];
  if (!dy.valid() || !c.needs_grad[0] || !IsFloating(x.dtype()) || !IsFloating(dy.dtype()))
    return std::vector<Value>(1);
  return std::vector<Value>{Cast(dy, x.dtype())};
}

OpDef CastDef() {
  return {.name = "cast", .min_inputs = 1, .max_inputs = 1, .infer = InferCast, .vjp = CastVjp,
          .doc = "x converted to `dtype` (float -> int truncates toward zero and saturates)"};
}

}  // namespace

Value Cast(Value x, DType dtype) {
  if (!x.valid() || x.dtype() == dtype) return x;
  return x.b->Op1("cast", {x}, Attrs{{"dtype", dtype}});
}

CF_REGISTER_OP(CastDef());
CF_REGISTER_KERNEL("cast", kCPU, CastCpu);

}  // namespace cf
