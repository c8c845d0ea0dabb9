// sincos_pos_embed_2d: no inputs -> [h * w, embed_dim] (PixArt / MAE 2D sin-cos
// position embedding, diffusers' get_2d_sincos_pos_embed; the layout is stated
// in embed.h). Attributes: embed_dim, h, w (required), base_size (16),
// interpolation_scale (1), dtype (f32). Math in float64 (embed_formulas.h).
#include "ops/cpu_util.h"
#include "ops/embed/embed.h"
#include "ops/embed/embed_formulas.h"

namespace cf {

namespace {

using embed_internal::SinCosParams;
using embed_internal::SinCosParamsOf;

StatusOr<std::vector<TensorType>> InferSinCos(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(SinCosParams p, SinCosParamsOf(c.attrs));
  const DType out = c.attrs.Type("dtype", DType::f32);
  CF_CHECK_ARG(IsFloating(out), "dtype must be floating, got ", DTypeName(out));
  return std::vector<TensorType>{{Shape{p.h * p.w, p.dim}, out}};
}

Status SinCosCpu(KernelContext& ctx) {
  Tensor& out = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(SinCosParams p, SinCosParamsOf(ctx.attrs));
  return DispatchFloat(out.dtype(), "sincos_pos_embed_2d", [&](auto tag) -> Status {
    using T = decltype(tag);
    T* y = out.data<T>();
    ParallelFor(0, p.h * p.w, RowGrain(p.dim, 4096), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r)
        for (int64_t c = 0; c < p.dim; ++c)
          Store(y, r * p.dim + c, static_cast<Acc<T>>(embed_internal::SinCosValue(p, r, c)));
    });
    return absl::OkStatus();
  });
}

// D = embed_dim, P = h * w. One sin or cos per output element (P * D) plus
// D/4 pow for omega; arithmetic: P * D/2 products pos * omega (one per
// sin/cos pair), 2 * (h + w) divisions for the grid coordinates, D/4
// reciprocals for omega. Writes [P, D]; reads nothing.
Cost CostSinCos(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t D = c.attrs.Int("embed_dim", 0), h = c.attrs.Int("h", 0), w = c.attrs.Int("w", 0);
  cost.transcendentals = h * w * D + D / 4;
  cost.elementwise_flops = h * w * (D / 2) + 2 * (h + w) + D / 4;
  return cost;
}

OpDef SinCosDef() {
  return {.name = "sincos_pos_embed_2d", .min_inputs = 0, .max_inputs = 0, .infer = InferSinCos, .cost = CostSinCos,
          .doc = "2D sin-cos position embedding [h*w, embed_dim] (diffusers get_2d_sincos_pos_embed)"};
}

}  // namespace

namespace embed_internal {
StatusOr<SinCosParams> SinCosParamsOf(const Attrs& attrs) {
  SinCosParams p;
  CF_ASSIGN_OR_RETURN(p.dim, attrs.RequireInt("embed_dim"));
  CF_ASSIGN_OR_RETURN(p.h, attrs.RequireInt("h"));
  CF_ASSIGN_OR_RETURN(p.w, attrs.RequireInt("w"));
  CF_CHECK_ARG(p.dim >= 4 && p.dim % 4 == 0, "embed_dim must be a positive multiple of 4, got ", p.dim);
  CF_CHECK_ARG(p.h >= 1 && p.w >= 1, "the grid must be at least 1x1, got h ", p.h, ", w ", p.w);
  p.base_size = attrs.Float("base_size", 16.0);
  p.interpolation_scale = attrs.Float("interpolation_scale", 1.0);
  CF_CHECK_ARG(p.base_size > 0 && p.interpolation_scale > 0, "base_size (", p.base_size,
               ") and interpolation_scale (", p.interpolation_scale, ") must be > 0");
  return p;
}
}  // namespace embed_internal

Value SinCosPosEmbed2d(Builder& b, int64_t embed_dim, int64_t h, int64_t w, const SinCosPosEmbedOptions& o) {
  return b.Op1("sincos_pos_embed_2d", {},
               Attrs{{"embed_dim", embed_dim},
                     {"h", h},
                     {"w", w},
                     {"base_size", o.base_size},
                     {"interpolation_scale", o.interpolation_scale},
                     {"dtype", o.dtype}});
}

CF_REGISTER_OP(SinCosDef());
CF_REGISTER_KERNEL("sincos_pos_embed_2d", kCPU, SinCosCpu);

}  // namespace cf
