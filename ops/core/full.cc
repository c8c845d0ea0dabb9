// full: a tensor of one value. Attributes: shape (ints), dtype, value (float).
// Used to seed gradients and for constants built in the graph.
#include "ops/core/full.h"

#include "ops/cpu_util.h"

namespace cf {
namespace {

StatusOr<std::vector<TensorType>> InferFull(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
  for (int64_t d : dims) CF_CHECK_ARG(d >= 0, "negative dimension in shape");
  return std::vector<TensorType>{{Shape(dims), c.attrs.Type("dtype", DType::f32)}};
}

Status FullCpu(KernelContext& ctx) {
  Tensor& out = ctx.outputs[0];
  const double value = ctx.attrs.Float("value", 0.0);
  const int64_t n = out.numel();
  switch (out.dtype()) {
    case DType::i32: std::fill_n(out.data<int32_t>(), n, static_cast<int32_t>(value)); return absl::OkStatus();
    case DType::i64: std::fill_n(out.data<int64_t>(), n, static_cast<int64_t>(value)); return absl::OkStatus();
    default: break;
  }
  return DispatchFloat(out.dtype(), "full", [&](auto tag) {
    using T = decltype(tag);
    T v = FromAcc<T>(static_cast<Acc<T>>(value));
    std::fill_n(out.data<T>(), n, v);
    return absl::OkStatus();
  });
}

OpDef FullDef() {
  return {.name = "full", .min_inputs = 0, .max_inputs = 0, .infer = InferFull,
          .doc = "a tensor of the given shape and dtype filled with `value`"};
}

}  // namespace

Value Full(Builder& b, const Shape& shape, DType dtype, double value) {
  return b.Op1("full", {}, Attrs{{"shape", std::vector<int64_t>(shape.dims().begin(), shape.dims().end())},
                                 {"dtype", dtype},
                                 {"value", value}});
}

CF_REGISTER_OP(FullDef());
CF_REGISTER_KERNEL("full", kCPU, FullCpu);

}  // namespace cf
