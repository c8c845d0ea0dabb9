// geglu (diffusers GEGLU after its projection): x [..., 2D] -> h * gelu(gate)
// [..., D] with h = x[..., :D], gate = x[..., D:]. Attribute approximate
// ("none" | "tanh"). Backward op geglu_backward(x, dy [..., D]) -> dx
// [..., 2D]. CPU kernels here, CUDA kernels in geglu.cu.
#include "ops/activation/activation.h"
#include "ops/activation/activation_avx512.h"
#include "ops/activation/activation_ops.h"
#include "ops/cpu_util.h"
#include "ops/elementwise/value_util.h"

namespace cf {
namespace {

using act::Kind;

StatusOr<std::vector<TensorType>> InferGeglu(const OpCall& c) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(c.inputs));
  CF_RETURN_IF_ERROR(act::Select(c.op, c.attrs).status());
  const Shape& x = c.inputs[0].shape;
  CF_CHECK_ARG(x.rank() >= 1 && x.dim(-1) % 2 == 0, "the last dimension of ", x.ToString(),
               " must be even (it is split into value and gate halves)");
  Shape half = x;
  half[x.rank() - 1] = x.dim(-1) / 2;
  if (c.inputs.size() == 2) {
    CF_CHECK_ARG(c.inputs[1].shape == half, "the gradient ", c.inputs[1].shape.ToString(), " must have shape ",
                 half.ToString(), " (the output of geglu on ", x.ToString(), ")");
    return std::vector<TensorType>{c.inputs[0]};
  }
  return std::vector<TensorType>{{half, c.inputs[0].dtype}};
}

// Per output element (of [..., D]): forward gelu + 1 multiply; backward
// gelu + gelu' + 3 multiplies (dh = dy gelu(g), dg = dy h gelu'(g)).
Cost CostGeglu(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto sel = act::Select(c.op, c.attrs);
  if (!sel.ok()) return cost;
  const act::Count f = act::ForwardCount(sel->kind), d = act::DerivativeCount(sel->kind);
  const bool backward = c.inputs.size() == 2;
  const int64_t n = c.inputs[0].shape.numel() / 2;
  cost.elementwise_flops = n * (backward ? f.e + d.e + 3 : f.e + 1);
  cost.transcendentals = n * (backward ? f.t + d.t : f.t);
  return cost;
}

// AVX-512 rows (f32 / f16 / bf16): x [rows, 2D] -> out [rows, D], or
// with dy [rows, D] the gradient [rows, 2D] (which may overwrite x: each
// vector of h and gate is read before the same positions are written).
template <Kind K, typename T>
CF_VM_TARGET void GegluRowsAvx512(const T* x, const T* dy, T* out, int64_t rows, int64_t D) {
  ParallelFor(0, rows, RowGrain(D), [=](int64_t lo, int64_t hi) CF_VM_TARGET {
    for (int64_t r = lo; r < hi; ++r) {
      const T* h = x + r * 2 * D;
      const T* g = h + D;
      for (int64_t i = 0; i < D; i += vm::kLanes) {
        const __mmask16 m = vm::FirstLanes(D - i);
        const __m512 hv = vm::Load(h + i, m), gv = vm::Load(g + i, m);
        if (dy == nullptr) {
          vm::Store(out + r * D + i, _mm512_mul_ps(hv, act::VecForward<K>(gv)), m);
        } else {
          const __m512 d = vm::Load(dy + r * D + i, m);
          vm::Store(out + r * 2 * D + i, _mm512_mul_ps(d, act::VecForward<K>(gv)), m);
          vm::Store(out + r * 2 * D + D + i, _mm512_mul_ps(_mm512_mul_ps(d, hv), act::VecDerivative<K>(gv)), m);
        }
      }
    }
  });
}

Status GegluCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(ctx.op, ctx.attrs));
  const Tensor& x = ctx.inputs[0];
  const int64_t D = x.shape().dim(-1) / 2, rows = D ? x.numel() / (2 * D) : 0;
  const bool backward = ctx.inputs.size() == 2;
  return act::DispatchKind(sel.kind, [&](auto kind) {
    using KT = decltype(kind);  // the kind as a type (usable in nested lambdas)
    return DispatchFloat(x.dtype(), ctx.op, [&](auto tag) {
      using T = decltype(tag);
      using A = Acc<T>;
      const T* px = x.data<T>();
      T* po = ctx.outputs[0].data<T>();
      const T* pdy = backward ? ctx.inputs[1].data<T>() : nullptr;
      if constexpr (act::kHasVec<KT::value> && !std::is_same_v<T, double>) {
        if (vm::HasAvx512()) {
          GegluRowsAvx512<KT::value>(px, pdy, po, rows, D);
          return absl::OkStatus();
        }
      }
      const int64_t grain = RowGrain(D);
      ParallelFor(0, rows, grain, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const T* h = px + r * 2 * D;
          const T* g = h + D;
          if (!backward) {
            for (int64_t i = 0; i < D; ++i) Store(po + r * D, i, Load(h, i) * act::Forward<KT::value>(Load(g, i), A(0)));
          } else {
            const T* dy = pdy + r * D;
            T* dh = po + r * 2 * D;
            T* dg = dh + D;
            for (int64_t i = 0; i < D; ++i) {
              const A gi = Load(g, i), hi_ = Load(h, i), d = Load(dy, i);
              Store(dh, i, d * act::Forward<KT::value>(gi, A(0)));
              Store(dg, i, d * hi_ * act::Derivative<KT::value>(gi, A(0)));
            }
          }
        }
      });
      return absl::OkStatus();
    });
  });
}

StatusOr<std::vector<Value>> GegluVjp(VjpContext& c) {
  const Value dy = c.grad_outputs[0];
  if (!dy.valid() || !c.needs_grad[0]) return std::vector<Value>(1);
  return std::vector<Value>{c.b.Op1("geglu_backward", {c.inputs[0], dy}, c.attrs)};
}

OpDef GegluDef(bool backward) {
  const int inputs = backward ? 2 : 1;
  // In place: the backward output has input 0's type and is written after
  // reading the same row of it, so it may overwrite it.
  return {.name = backward ? "geglu_backward" : "geglu", .min_inputs = inputs, .max_inputs = inputs,
          .infer = InferGeglu, .cost = CostGeglu, .vjp = backward ? VjpFn() : VjpFn(GegluVjp), .inplace_ok = backward,
          .doc = backward ? "the gradient of geglu: [dy * gelu(gate), dy * h * gelu'(gate)]"
                          : "h * gelu(gate) with (h, gate) the halves of the last dimension"};
}

}  // namespace

Value Geglu(Value x, bool approximate_tanh) {
  if (!x.valid()) return x;
  return x.b->Op1("geglu", {x}, Attrs{{"approximate", std::string(approximate_tanh ? "tanh" : "none")}});
}

CF_REGISTER_OP(GegluDef(false));
CF_REGISTER_OP(GegluDef(true));
CF_REGISTER_KERNEL("geglu", kCPU, GegluCpu);
CF_REGISTER_KERNEL("geglu_backward", kCPU, GegluCpu);

}  // namespace cf
