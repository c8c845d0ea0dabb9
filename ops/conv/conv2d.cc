// "conv2d", "conv2d_backward_input", "conv2d_backward_weight": definitions,
// shape and cost rules, the VJP and the CPU kernels (which pick the GEMM or
// the depthwise path; conv_cpu.h). CUDA kernels: conv2d_cuda.cu.
// See docs/ops/conv.md.
#include "ops/conv/conv.h"

#include "ops/conv/conv_cpu.h"
#include "ops/conv/conv_params.h"
#include "ops/conv/conv_winograd_cpu.h"
#include "ops/cpu_util.h"
#include "ops/elementwise/elementwise.h"
#include "ops/elementwise/value_util.h"
#include "ops/kernel_state.h"
#include "ops/matmul/matmul_dims.h"

namespace cf {
namespace {

Status CheckFloats(absl::Span<const TensorType> ins) {
  for (size_t i = 0; i < ins.size(); ++i) {
    CF_CHECK_ARG(IsFloating(ins[i].dtype), "input ", i, " has dtype ", DTypeName(ins[i].dtype),
                 "; a floating dtype is required");
    CF_CHECK_ARG(ins[i].dtype == ins[0].dtype, "inputs have different dtypes (", DTypeName(ins[0].dtype), " and ",
                 DTypeName(ins[i].dtype), ")");
  }
  return absl::OkStatus();
}

StatusOr<Shape> ShapeAttr(const Attrs& attrs, const std::string& name) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, attrs.RequireInts(name));
  CF_CHECK_ARG(dims.size() == 4, "attribute '", name, "' must have 4 entries, got ", dims.size());
  return Shape(dims);
}

// ---- the three ops' geometry -------------------------------------------------------

StatusOr<ConvParams> ForwardParams(const Attrs& attrs, absl::Span<const TensorType> ins) {
  CF_RETURN_IF_ERROR(CheckFloats(ins));
  CF_ASSIGN_OR_RETURN(ConvForm f, ConvFormOf(attrs, ins.size()));
  CF_ASSIGN_OR_RETURN(ConvParams p, ConvParamsOf(attrs, ins[0].shape, ins[1].shape));
  if (f.has_bias)
    CF_CHECK_ARG(ins[2].shape == Shape({p.cout}), "bias must be [", p.cout, "] (one per output channel), got ",
                 ins[2].shape.ToString());
  if (f.image_bias) {
    const Shape want{p.n, 1, 1, p.cout};
    CF_CHECK_ARG(ins[f.image_bias_input()].shape == want, "image_bias must be ", want.ToString(), ", got ",
                 ins[f.image_bias_input()].shape.ToString());
  }
  if (f.residual)
    CF_CHECK_ARG(ins[f.residual_input()].shape == p.output_shape(), "residual must be ",
                 p.output_shape().ToString(), " (the output's shape), got ", ins[f.residual_input()].shape.ToString());
  return p;
}

// (grad_out, weight) with attribute input_shape.
StatusOr<ConvParams> BackwardInputParams(const Attrs& attrs, absl::Span<const TensorType> ins) {
  CF_RETURN_IF_ERROR(CheckFloats(ins));
  CF_ASSIGN_OR_RETURN(Shape xs, ShapeAttr(attrs, "input_shape"));
  CF_ASSIGN_OR_RETURN(ConvParams p, ConvParamsOf(attrs, xs, ins[1].shape));
  CF_CHECK_ARG(ins[0].shape == p.output_shape(), "grad_out is ", ins[0].shape.ToString(), " but the conv of ",
               p.ToString(), " outputs ", p.output_shape().ToString());
  return p;
}

// (x, grad_out) with attribute weight_shape.
StatusOr<ConvParams> BackwardWeightParams(const Attrs& attrs, absl::Span<const TensorType> ins) {
  CF_RETURN_IF_ERROR(CheckFloats(ins));
  CF_ASSIGN_OR_RETURN(Shape ws, ShapeAttr(attrs, "weight_shape"));
  CF_ASSIGN_OR_RETURN(ConvParams p, ConvParamsOf(attrs, ins[0].shape, ws));
  CF_CHECK_ARG(ins[1].shape == p.output_shape(), "grad_out is ", ins[1].shape.ToString(), " but the conv of ",
               p.ToString(), " outputs ", p.output_shape().ToString());
  return p;
}

std::vector<TensorType> TypesOf(absl::Span<const Tensor> ts) {
  std::vector<TensorType> out;
  for (const Tensor& t : ts) out.push_back({t.shape(), t.dtype()});
  return out;
}

// ---- conv2d ------------------------------------------------------------------------

StatusOr<std::vector<TensorType>> InferConv(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(ConvParams p, ForwardParams(c.attrs, c.inputs));
  return std::vector<TensorType>{{p.output_shape(), c.inputs[0].dtype}};
}

Cost CostConv(const OpCall& c, absl::Span<const TensorType> outs) {
  // mac_flops = 2·N·Ho·Wo·Cout·kh·kw·Cin/groups; bias_flops = N·Ho·Wo·Cout;
  // fused forms: the activation's counts and 1 elementwise per output for
  // each of image_bias and residual.
  Cost cost = IoBytes(c.inputs, outs);
  auto p = ForwardParams(c.attrs, c.inputs);
  auto f = ConvFormOf(c.attrs, c.inputs.size());
  if (!p.ok() || !f.ok()) return cost;
  const int64_t outs_n = p->n * p->ho * p->wo * p->cout;
  cost.mac_flops = 2 * p->macs();
  if (f->has_bias) cost.bias_flops = outs_n;
  const ActivationCount ac = CountOf(f->act);
  cost.elementwise_flops = (ac.elementwise + int64_t{f->image_bias} + int64_t{f->residual}) * outs_n;
  cost.transcendentals = ac.transcendental * outs_n;
  return cost;
}

StatusOr<std::vector<Value>> ConvVjp(VjpContext& ctx) {
  CF_ASSIGN_OR_RETURN(ConvForm form, ConvFormOf(ctx.attrs, ctx.inputs.size()));
  if (form.fused())
    return absl::UnimplementedError(
        "conv2d with a fused activation / image_bias / residual has no VJP: graph passes (graph/passes/) make "
        "these forms after autodiff, on the final graph; differentiate the unfused graph");
  std::vector<Value> grads(ctx.inputs.size());
  Value g = ctx.grad_outputs[0];
  if (!g.valid()) return grads;
  Value x = ctx.inputs[0], w = ctx.inputs[1];
  const Attrs attrs = ConvAttrsOnly(ctx.attrs);
  if (ctx.needs_grad[0]) grads[0] = Conv2dBackwardInput(g, w, x.shape(), attrs);
  if (ctx.needs_grad[1]) grads[1] = Conv2dBackwardWeight(x, g, w.shape(), attrs);
  if (ctx.inputs.size() == 3 && ctx.needs_grad[2]) grads[2] = SumTo(g, ctx.inputs[2].shape());
  return grads;
}

// y = act(y) + residual (either may be absent), in place.
template <typename T> void ActResidualInPlace(T* y, int64_t count, gemm::Activation act, const T* residual) {
  ParallelFor(0, count, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      Acc<T> v = gemm::ApplyActivation(act, Load(y, i));
      if (residual != nullptr) v += Load(residual, i);
      Store(y, i, v);
    }
  });
}

Status ConvCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(ConvParams p, ForwardParams(ctx.attrs, TypesOf(ctx.inputs)));
  CF_ASSIGN_OR_RETURN(ConvForm f, ConvFormOf(ctx.attrs, ctx.inputs.size()));
  return DispatchFloat(ctx.inputs[0].dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* bias = f.has_bias ? ctx.inputs[2].data<T>() : nullptr;
    const T* image_bias = f.image_bias ? ctx.inputs[f.image_bias_input()].data<T>() : nullptr;
    const T* residual = f.residual ? ctx.inputs[f.residual_input()].data<T>() : nullptr;
    const T* x = ctx.inputs[0].data<T>();
    const T* w = ctx.inputs[1].data<T>();
    T* y = ctx.outputs[0].data<T>();
    // The GEMM's epilogue adds the residual when no activation comes before it.
    const bool residual_in_gemm = residual != nullptr && !p.depthwise() && f.act == gemm::Activation::kNone;
    // conv(x, w) + bias of images [i0, i0 + q.n), into y's rows of them.
    auto run = [&](const ConvParams& q, int64_t i0, const T* b) {
      const int64_t in_img = q.h * q.w * q.cin, out_img = q.ho * q.wo * q.cout;
      if (q.depthwise()) {
        DepthwiseForwardCpu<T>(q, x + i0 * in_img, w, b, y + i0 * out_img);
      } else {
        ConvCpuExtras<T> extras;
        extras.weight_state = StableInputSlot(ctx, 1);
        if (residual_in_gemm) extras.residual = residual + i0 * out_img;
        if constexpr (!std::is_same_v<T, double>) {
          if (ConvWinogradApplies(q, false, extras.weight_state != nullptr))
            return ConvForwardWinogradCpu<T>(q, x + i0 * in_img, w, b, y + i0 * out_img, extras);
        }
        ConvForwardGemmCpu<T>(q, x + i0 * in_img, w, b, y + i0 * out_img, extras);
      }
    };
    if (image_bias == nullptr) {
      run(p, 0, bias);
    } else {
      // One call per image with that image's bias row (+ the bias).
      ConvParams one = p;
      one.n = 1;
      std::vector<T> row(p.cout);
      for (int64_t i = 0; i < p.n; ++i) {
        for (int64_t c = 0; c < p.cout; ++c)
          Store(row.data(), c, Load(image_bias, i * p.cout + c) + (bias != nullptr ? Load(bias, c) : Acc<T>(0)));
        run(one, i, row.data());
      }
    }
    if (f.act != gemm::Activation::kNone || (residual != nullptr && !residual_in_gemm))
      ActResidualInPlace<T>(y, p.n * p.ho * p.wo * p.cout, f.act, residual_in_gemm ? nullptr : residual);
    return absl::OkStatus();
  });
}

// ---- conv2d_backward_input -----------------------------------------------------------

StatusOr<std::vector<TensorType>> InferBackwardInput(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(ConvParams p, BackwardInputParams(c.attrs, c.inputs));
  return std::vector<TensorType>{{p.input_shape(), c.inputs[0].dtype}};
}

// Both backward ops (kParams: how the op's inputs give the geometry):
// mac_flops = 2·N·Ho·Wo·Cout·kh·kw·Cin/groups (the forward's multiply-adds,
// padding taps included, as the GEMM computes them).
template <auto kParams>
Cost CostBackward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = kParams(c.attrs, c.inputs);
  if (p.ok()) cost.mac_flops = 2 * p->macs();
  return cost;
}

Status BackwardInputCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(ConvParams p, BackwardInputParams(ctx.attrs, TypesOf(ctx.inputs)));
  return DispatchFloat(ctx.inputs[0].dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* dy = ctx.inputs[0].data<T>();
    const T* w = ctx.inputs[1].data<T>();
    T* dx = ctx.outputs[0].data<T>();
    if (p.depthwise()) {
      DepthwiseBackwardInputCpu<T>(p, dy, w, dx);
    } else {
      ConvCpuExtras<T> extras;
      extras.weight_state = StableInputSlot(ctx, 1);
      if constexpr (!std::is_same_v<T, double>) {
        if (ConvWinogradApplies(p, /*backward_input=*/true, extras.weight_state != nullptr)) {
          ConvBackwardInputWinogradCpu<T>(p, dy, w, dx, extras);
          return absl::OkStatus();
        }
      }
      ConvBackwardInputGemmCpu<T>(p, dy, w, dx, extras);
    }
    return absl::OkStatus();
  });
}

// ---- conv2d_backward_weight -----------------------------------------------------------

StatusOr<std::vector<TensorType>> InferBackwardWeight(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(ConvParams p, BackwardWeightParams(c.attrs, c.inputs));
  return std::vector<TensorType>{{p.weight_shape(), c.inputs[0].dtype}};
}

Status BackwardWeightCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(ConvParams p, BackwardWeightParams(ctx.attrs, TypesOf(ctx.inputs)));
  return DispatchFloat(ctx.inputs[0].dtype(), ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    const T* x = ctx.inputs[0].data<T>();
    const T* dy = ctx.inputs[1].data<T>();
    T* dw = ctx.outputs[0].data<T>();
    if (p.depthwise()) {
      DepthwiseBackwardWeightCpu<T>(p, x, dy, dw);
    } else {
      ConvBackwardWeightGemmCpu<T>(p, x, dy, dw);
    }
    return absl::OkStatus();
  });
}

OpDef MakeDef(const char* name, int min_in, int max_in, decltype(OpDef::infer) infer, decltype(OpDef::cost) cost,
              VjpFn vjp, const char* doc) {
  return {.name = name, .min_inputs = min_in, .max_inputs = max_in, .infer = std::move(infer), .cost = std::move(cost),
          .vjp = std::move(vjp), .doc = doc};
}

std::vector<int64_t> Dims(const Shape& s) { return std::vector<int64_t>(s.dims().begin(), s.dims().end()); }

}  // namespace

Value Conv2d(Value x, Value weight, std::optional<Value> bias, const Conv2dOptions& o) {
  Builder* b = detail::AnyBuilder({x, weight});
  if (b == nullptr) return {};
  std::vector<Value> ins{x, weight};
  if (bias) ins.push_back(*bias);
  Attrs attrs{{"stride", std::vector<int64_t>{o.stride.h, o.stride.w}},
              {"padding", std::vector<int64_t>{o.padding.h, o.padding.w}},
              {"dilation", std::vector<int64_t>{o.dilation.h, o.dilation.w}},
              {"groups", o.groups}};
  if (o.allow_tf32) attrs.Set("allow_tf32", true);
  return b->Op1("conv2d", ins, attrs);
}

Value Conv2dBackwardInput(Value grad_out, Value weight, const Shape& input_shape, const Attrs& conv_attrs) {
  Builder* b = grad_out.b != nullptr ? grad_out.b : weight.b;
  if (b == nullptr) return {};
  Attrs attrs = ConvAttrsOnly(conv_attrs);
  attrs.Set("input_shape", Dims(input_shape));
  return b->Op1("conv2d_backward_input", {grad_out, weight}, attrs);
}

Value Conv2dBackwardWeight(Value x, Value grad_out, const Shape& weight_shape, const Attrs& conv_attrs) {
  Builder* b = x.b != nullptr ? x.b : grad_out.b;
  if (b == nullptr) return {};
  Attrs attrs = ConvAttrsOnly(conv_attrs);
  attrs.Set("weight_shape", Dims(weight_shape));
  return b->Op1("conv2d_backward_weight", {x, grad_out}, attrs);
}

CF_REGISTER_OP(MakeDef("conv2d", 2, 5, InferConv, CostConv, ConvVjp,
                       "2D cross-correlation, NHWC input, [Cout, kh, kw, Cin/groups] weight, optional bias"));
CF_REGISTER_OP(MakeDef("conv2d_backward_input", 2, 2, InferBackwardInput, CostBackward<BackwardInputParams>,
                       nullptr, "gradient of conv2d's input from (grad_out, weight); attribute input_shape"));
CF_REGISTER_OP(MakeDef("conv2d_backward_weight", 2, 2, InferBackwardWeight, CostBackward<BackwardWeightParams>,
                       nullptr, "gradient of conv2d's weight from (x, grad_out); attribute weight_shape"));
CF_REGISTER_KERNEL("conv2d", kCPU, ConvCpu);
CF_REGISTER_KERNEL("conv2d_backward_input", kCPU, BackwardInputCpu);
CF_REGISTER_KERNEL("conv2d_backward_weight", kCPU, BackwardWeightCpu);

}  // namespace cf
