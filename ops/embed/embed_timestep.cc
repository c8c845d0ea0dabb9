// timestep_embedding: timesteps [B] -> [B, dim], diffusers'
// get_timestep_embedding. Attributes: dim (required), flip_sin_to_cos (false),
// downscale_freq_shift (1), max_period (10000), scale (1), dtype (f32: the
// output's). Math in float64 (embed_formulas.h). The VJP gives no gradient:
// timesteps are not differentiated.
#include <cmath>

#include "ops/cpu_util.h"
#include "ops/embed/embed.h"
#include "ops/embed/embed_formulas.h"

namespace cf {

namespace {

using embed_internal::TimestepParams;
using embed_internal::TimestepParamsOf;

bool IsTimestepType(DType t) { return IsFloating(t) || t == DType::i32 || t == DType::i64; }

StatusOr<std::vector<TensorType>> InferTimestep(const OpCall& c) {
  const TensorType& t = c.inputs[0];
  CF_CHECK_ARG(t.shape.rank() == 1, "timesteps must be [B], got ", t.shape.ToString());
  CF_CHECK_ARG(IsTimestepType(t.dtype), "timesteps must be floating or i32 / i64, got ", DTypeName(t.dtype));
  CF_ASSIGN_OR_RETURN(TimestepParams p, TimestepParamsOf(c.attrs));
  const DType out = c.attrs.Type("dtype", DType::f32);
  CF_CHECK_ARG(IsFloating(out), "dtype must be floating, got ", DTypeName(out));
  return std::vector<TensorType>{{Shape{t.shape[0], p.dim}, out}};
}

double TimestepAt(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::f32: return t.data<float>()[i];
    case DType::f64: return t.data<double>()[i];
    case DType::f16: return F16BitsToF32(t.data<f16_t>()[i].bits);
    case DType::bf16: return BF16BitsToF32(t.data<bf16_t>()[i].bits);
    case DType::i32: return t.data<int32_t>()[i];
    case DType::i64: return static_cast<double>(t.data<int64_t>()[i]);
    default: return 0;
  }
}

Status TimestepCpu(KernelContext& ctx) {
  const Tensor& ts = ctx.inputs[0];
  Tensor& out = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(TimestepParams p, TimestepParamsOf(ctx.attrs));
  const int64_t B = ts.shape()[0];
  return DispatchFloat(out.dtype(), "timestep_embedding", [&](auto tag) -> Status {
    using T = decltype(tag);
    T* y = out.data<T>();
    ParallelFor(0, B, RowGrain(p.dim, 4096), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const double t = TimestepAt(ts, i);
        for (int64_t j = 0; j < p.dim; ++j)
          Store(y, i * p.dim + j, static_cast<Acc<T>>(embed_internal::TimestepValue(p, t, j)));
      }
    });
    return absl::OkStatus();
  });
}

// half = dim / 2. Frequency table: half exp, 2 * half arithmetic (times
// -ln(max_period), divided by half - shift). Per timestep and k: t * freq,
// scale * (.), one sin and one cos. So elementwise = 2 * half + 2 * B * half,
// transcendentals = half + 2 * B * half; reads timesteps, writes [B, dim].
Cost CostTimestep(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  const int64_t B = c.inputs[0].shape[0], half = c.attrs.Int("dim", 0) / 2;
  cost.elementwise_flops = 2 * half + 2 * B * half;
  cost.transcendentals = half + 2 * B * half;
  return cost;
}

// Timesteps are not differentiated (a noise-level index, not a learned
// quantity): no gradient flows back, rather than an error.
StatusOr<std::vector<Value>> TimestepVjp(VjpContext&) { return std::vector<Value>{Value{}}; }

OpDef TimestepDef() {
  return {.name = "timestep_embedding", .min_inputs = 1, .max_inputs = 1, .infer = InferTimestep, .cost = CostTimestep,
          .vjp = TimestepVjp,
          .doc = "sinusoidal timestep embedding [B] -> [B, dim] (diffusers get_timestep_embedding)"};
}

}  // namespace

namespace embed_internal {
StatusOr<TimestepParams> TimestepParamsOf(const Attrs& attrs) {
  TimestepParams p;
  CF_ASSIGN_OR_RETURN(p.dim, attrs.RequireInt("dim"));
  CF_CHECK_ARG(p.dim >= 1, "dim must be >= 1, got ", p.dim);
  p.half = p.dim / 2;
  p.flip = attrs.Bool("flip_sin_to_cos", false);
  const double shift = attrs.Float("downscale_freq_shift", 1.0);
  const double max_period = attrs.Float("max_period", 10000.0);
  CF_CHECK_ARG(max_period > 0, "max_period must be > 0, got ", max_period);
  p.log_max_period = std::log(max_period);
  p.denom = static_cast<double>(p.half) - shift;
  CF_CHECK_ARG(p.half == 0 || p.denom != 0, "half = dim / 2 = ", p.half,
               " equals downscale_freq_shift: the frequencies would divide by zero");
  p.scale = attrs.Float("scale", 1.0);
  return p;
}
}  // namespace embed_internal

Value TimestepEmbedding(Value timesteps, int64_t dim, const TimestepEmbeddingOptions& o) {
  if (!timesteps.valid()) return Value{};
  return timesteps.b->Op1("timestep_embedding", {timesteps},
                          Attrs{{"dim", dim},
                                {"flip_sin_to_cos", o.flip_sin_to_cos},
                                {"downscale_freq_shift", o.downscale_freq_shift},
                                {"max_period", o.max_period},
                                {"scale", o.scale},
                                {"dtype", o.dtype}});
}

CF_REGISTER_OP(TimestepDef());
CF_REGISTER_KERNEL("timestep_embedding", kCPU, TimestepCpu);

}  // namespace cf
