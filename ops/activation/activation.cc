// Pointwise activations silu, gelu, quick_gelu, leaky_relu, elu, sigmoid and
// their fused backward ops "<name>_backward"(x, dy) -> dx = dy * f'(x):
// definitions, VJPs and CPU kernels (CUDA kernels in activation.cu).
// Attributes: gelu: approximate ("none" | "tanh"); leaky_relu:
// negative_slope (default 0.01); elu: alpha (default 1).
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "ops/activation/activation.h"
#include "ops/activation/activation_avx512.h"
#include "ops/activation/activation_ops.h"
#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast_cpu.h"
#include "ops/elementwise/value_util.h"

namespace cf {

namespace act {

StatusOr<Selected> Select(const std::string& op, const Attrs& attrs) {
  absl::string_view base(op);
  absl::ConsumeSuffix(&base, "_backward");
  if (base == "gelu" || base == "geglu") {
    const std::string a = attrs.Str("approximate", "none");
    CF_CHECK_ARG(a == "none" || a == "tanh", "approximate must be \"none\" or \"tanh\", got \"", a, "\"");
    return Selected{a == "tanh" ? Kind::kGeluTanh : Kind::kGeluErf, 0.0};
  }
  if (base == "silu") return Selected{Kind::kSilu, 0.0};
  if (base == "quick_gelu") return Selected{Kind::kQuickGelu, 0.0};
  if (base == "leaky_relu") return Selected{Kind::kLeakyRelu, attrs.Float("negative_slope", 0.01)};
  if (base == "elu") return Selected{Kind::kElu, attrs.Float("alpha", 1.0)};
  if (base == "sigmoid") return Selected{Kind::kSigmoid, 0.0};
  return absl::InternalError(absl::StrCat("no activation named ", op));
}

}  // namespace act

namespace {

using act::Kind;

StatusOr<std::vector<TensorType>> InferActivation(const OpCall& c) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  CF_RETURN_IF_ERROR(act::Select(c.op, c.attrs).status());
  if (c.inputs.size() == 2) {
    CF_CHECK_ARG(c.inputs[1].shape == c.inputs[0].shape, "the gradient ", c.inputs[1].shape.ToString(),
                 " must have the input's shape ", c.inputs[0].shape.ToString());
  }
  return std::vector<TensorType>{c.inputs[0]};
}

// Forward: ForwardCount(kind) per element. Backward: DerivativeCount(kind)
// + 1 (the multiply by dy) per element. See activation_math.h.
Cost CostActivation(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto sel = act::Select(c.op, c.attrs);
  if (!sel.ok()) return cost;
  const int64_t n = outs[0].shape.numel();
  const bool backward = absl::EndsWith(c.op, "_backward");
  const act::Count k = backward ? act::DerivativeCount(sel->kind) : act::ForwardCount(sel->kind);
  cost.elementwise_flops = n * (k.e + (backward ? 1 : 0));
  cost.transcendentals = n * k.t;
  return cost;
}

// AVX-512 kernels (f32 / f16 / bf16 storage, kinds with kHasVec): forward
// y = f(x) and backward dx = dy f'(x).
template <Kind K, typename T>
CF_VM_TARGET void ForwardAvx512(const T* x, T* y, int64_t n) {
  ParallelFor(0, n, kElementwiseGrain, [=](int64_t lo, int64_t hi) CF_VM_TARGET {
    vm::Map(x + lo, y + lo, hi - lo, [n](__m512 v) CF_VM_TARGET { return act::VecForward<K>(v); });
  });
}
template <Kind K, typename T>
CF_VM_TARGET void BackwardAvx512(const T* x, const T* dy, T* dx, int64_t n) {
  ParallelFor(0, n, kElementwiseGrain, [=](int64_t lo, int64_t hi) CF_VM_TARGET {
    vm::Map2(x + lo, dy + lo, dx + lo, hi - lo,
             [n](__m512 v, __m512 g) CF_VM_TARGET { return _mm512_mul_ps(g, act::VecDerivative<K>(v)); });
  });
}

Status ActivationCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(ctx.op, ctx.attrs));
  const Tensor& x = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  const int64_t n = out.numel();
  return act::DispatchKind(sel.kind, [&](auto kind) {
    using KT = decltype(kind);  // the kind as a type (usable in nested lambdas)
    return DispatchFloat(out.dtype(), ctx.op, [&](auto tag) {
      using T = decltype(tag);
      using A = Acc<T>;
      const A p = static_cast<A>(sel.param);
      const T* px = x.data<T>();
      T* po = out.data<T>();
      if constexpr (act::kHasVec<KT::value> && !std::is_same_v<T, double>) {
        if (vm::HasAvx512()) {
          if (ctx.inputs.size() == 1) ForwardAvx512<KT::value>(px, po, n);
          else BackwardAvx512<KT::value>(px, ctx.inputs[1].data<T>(), po, n);
          return absl::OkStatus();
        }
      }
      if (ctx.inputs.size() == 1) {
        UnaryCpu(n, px, po, [p](A v) { return act::Forward<KT::value>(v, p); });
      } else {
        const T* pdy = ctx.inputs[1].data<T>();
        ParallelFor(0, n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
          for (int64_t i = lo; i < hi; ++i) Store(po, i, Load(pdy, i) * act::Derivative<KT::value>(Load(px, i), p));
        });
      }
      return absl::OkStatus();
    });
  });
}

// dx = <name>_backward(x, dy).
VjpFn ActivationVjp(const std::string& name) {
  return [backward = name + "_backward"](VjpContext& c) -> StatusOr<std::vector<Value>> {
    const Value dy = c.grad_outputs[0];
    if (!dy.valid() || !c.needs_grad[0]) return std::vector<Value>(1);
    return std::vector<Value>{c.b.Op1(backward, {c.inputs[0], dy}, c.attrs)};
  };
}

OpDef ActivationDef(const std::string& name, bool backward, const char* doc) {
  const int inputs = backward ? 2 : 1;
  return {.name = backward ? name + "_backward" : name, .min_inputs = inputs, .max_inputs = inputs,
          .infer = InferActivation, .cost = CostActivation, .vjp = backward ? VjpFn() : ActivationVjp(name),
          .inplace_ok = true, .doc = backward ? absl::StrCat("dy * ", name, "'(x): the gradient of ", name) : doc};
}

Value Activation(const char* op, Value x, Attrs attrs = {}) {
  if (!x.valid()) return x;
  return x.b->Op1(op, {x}, std::move(attrs));
}

struct Registration {
  Registration() {
    const std::pair<const char*, const char*> ops[] = {
        {"silu", "x * sigmoid(x)"},
        {"gelu", "0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation with approximate=\"tanh\""},
        {"quick_gelu", "x * sigmoid(1.702 x)"},
        {"leaky_relu", "x > 0 ? x : negative_slope * x"},
        {"elu", "x > 0 ? x : alpha * (exp(x) - 1)"},
        {"sigmoid", "1 / (1 + exp(-x))"},
    };
    for (const auto& [name, doc] : ops) {
      for (bool backward : {false, true}) {
        OpDef d = ActivationDef(name, backward, doc);
        const std::string op = d.name;
        OpRegistry::Global().Register(std::move(d));
        OpRegistry::Global().RegisterKernel(op, DeviceKind::kCPU, ActivationCpu);
      }
    }
  }
};
const Registration registration;

}  // namespace

Value Silu(Value x) { return Activation("silu", x); }
Value Gelu(Value x, bool approximate_tanh) {
  return Activation("gelu", x, Attrs{{"approximate", std::string(approximate_tanh ? "tanh" : "none")}});
}
Value QuickGelu(Value x) { return Activation("quick_gelu", x); }
Value LeakyRelu(Value x, double negative_slope) {
  return Activation("leaky_relu", x, Attrs{{"negative_slope", negative_slope}});
}
Value Elu(Value x, double alpha) { return Activation("elu", x, Attrs{{"alpha", alpha}}); }
Value Sigmoid(Value x) { return Activation("sigmoid", x); }

}  // namespace cf
