// The ConvBlock module (nn/convblock.h): linear (the 1x1 projections), the
// pyramid stages (one convblock_pyramid node, or their composition from the
// op library with options.fused off; the depthwise weights are declared in
// the released [K, K, C'] layout, so the parameters and their gradients stay
// in the checkpoint's layout), mean and add.
#include "nn/convblock.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ops/convblock/convblock.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/reduce/reduce.h"

namespace cf {

const char* ConvBlockGateName(ConvBlockGate g) {
  switch (g) {
    case ConvBlockGate::kPaper: return "paper";
    case ConvBlockGate::kReleased: return "released";
    case ConvBlockGate::kSigmoid: return "sigmoid";
  }
  return "?";
}

StatusOr<ConvBlockGate> ParseConvBlockGate(const std::string& name) {
  for (ConvBlockGate g : {ConvBlockGate::kPaper, ConvBlockGate::kReleased, ConvBlockGate::kSigmoid})
    if (name == ConvBlockGateName(g)) return g;
  return absl::InvalidArgumentError(absl::StrCat("unknown ConvBlock gate '", name, "' (paper, released, sigmoid)"));
}

int64_t ConvBlockInterChannels(int64_t channels, const ConvBlockOptions& o) {
  return static_cast<int64_t>(static_cast<double>(channels) * o.inter_ratio);  // int() truncates, as in Python
}

StatusOr<std::vector<std::pair<std::string, Shape>>> ConvBlockParameterShapes(int64_t C, const ConvBlockOptions& o) {
  const int64_t K = o.kernel, Ci = ConvBlockInterChannels(C, o);
  if (K < 3 || K > 31 || K % 2 == 0)
    return absl::InvalidArgumentError(absl::StrCat("ConvBlock: kernel ", K, " is not an odd integer in [3, 31]"));
  if (o.scales.empty()) return absl::InvalidArgumentError("ConvBlock: needs at least one scale");
  for (double s : o.scales)
    if (!(s > 0.0 && s <= 1.0))
      return absl::InvalidArgumentError(absl::StrCat("ConvBlock: scale ", s, " is not in (0, 1]"));
  if (Ci < 2 || Ci % 2 != 0)
    return absl::InvalidArgumentError(absl::StrCat("ConvBlock: C' = int(", C, " * ", o.inter_ratio, ") = ", Ci,
                                                   " must be even and >= 2 (the gate splits it in halves)"));
  const int64_t S = static_cast<int64_t>(o.scales.size());
  std::vector<std::pair<std::string, Shape>> p = {{"conv_up.weight", Shape{Ci, C}}, {"conv_up.bias", Shape{Ci}}};
  for (int64_t n = 0; n < S; ++n) {
    p.push_back({absl::StrCat("gates.", n, ".conv_spatial.weight"), Shape{K, K, Ci}});
    if (o.depthwise_bias) p.push_back({absl::StrCat("gates.", n, ".conv_spatial.bias"), Shape{Ci}});
  }
  p.push_back({"conv_out.weight", Shape{C, S * (Ci / 2)}});
  p.push_back({"conv_out.bias", Shape{C}});
  p.push_back({"conv_pool.weight", Shape{C, C}});
  p.push_back({"conv_pool.bias", Shape{C}});
  return p;
}

namespace {

// The pooled size of one axis: int(n * s), as the released code computes it.
int64_t Pooled(int64_t n, double s) { return static_cast<int64_t>(static_cast<double>(n) * s); }

// nn.Linear named `name` in the current scope, optionally scaling its weight
// by `weight_scale` (the folded gate factor).
Value Projection(Builder& b, Value x, const std::string& name, int64_t in, int64_t out, DType dt, bool frozen,
                 double weight_scale = 1.0) {
  auto s = b.scope(name);
  Value w = b.Parameter("weight", Shape{out, in}, dt, {}, frozen);
  Value bias = b.Parameter("bias", Shape{out}, dt, {}, frozen);
  if (weight_scale != 1.0) w = Scale(w, weight_scale);
  return Linear(x, w, bias);
}

}  // namespace

Value ConvBlock(Builder& b, Value x, const ConvBlockOptions& o) {
  if (!x.valid()) {
    if (b.ok()) b.Fail(absl::InvalidArgumentError("ConvBlock: the input is an invalid Value"));
    return Value{};
  }
  const Shape in_shape = x.shape();  // a copy: building ops may grow the graph
  if (in_shape.rank() != 4) {
    b.Fail(absl::InvalidArgumentError(
        absl::StrCat("ConvBlock: x must be [B, H, W, C] (channels last), got ", x.type().ToString())));
    return Value{};
  }
  const int64_t H = in_shape[1], W = in_shape[2], C = in_shape[3];
  const auto shapes = ConvBlockParameterShapes(C, o);
  if (!shapes.ok()) {
    b.Fail(shapes.status());
    return Value{};
  }
  for (double s : o.scales)
    if (Pooled(H, s) < 1 || Pooled(W, s) < 1) {
      b.Fail(absl::InvalidArgumentError(absl::StrCat("ConvBlock: scale ", s, " pools the ", H, "x", W,
                                                     " map of ", x.type().ToString(), " to ", Pooled(H, s), "x",
                                                     Pooled(W, s))));
      return Value{};
    }
  const int64_t K = o.kernel, Ci = ConvBlockInterChannels(C, o), half = Ci / 2;
  const DType dt = o.param_dtype.value_or(x.dtype());

  // The gate's factor: the paper divides by sqrt(C'/2), the released code
  // multiplies. A factor > 1 applied to the map can push f16 out of range, so
  // it is folded into conv_out's weight instead (conv_out is linear in its
  // input, the upsample too, and every stage has the same factor); a factor
  // < 1 is applied to x2 before the product, which keeps the product small.
  const double factor = o.gate == ConvBlockGate::kSigmoid ? 1.0
                        : o.gate == ConvBlockGate::kPaper ? 1.0 / std::sqrt(static_cast<double>(half))
                                                          : std::sqrt(static_cast<double>(half));

  Value u = Projection(b, x, "conv_up", C, Ci, dt, o.frozen);  // [B, H, W, C']
  std::vector<Value> weights, biases;
  ConvBlockPyramidOptions po{.kernel = K,
                             .sizes = {},
                             .gate = o.gate == ConvBlockGate::kSigmoid ? PyramidGate::kSigmoid : PyramidGate::kProduct,
                             .factor = o.gate == ConvBlockGate::kPaper ? factor : 1.0};  // released: folded below
  for (size_t n = 0; n < o.scales.size(); ++n) {
    auto sc = b.scope(absl::StrCat("gates.", n, ".conv_spatial"));
    const double s = o.scales[n];
    po.sizes.push_back(s == 1.0 ? std::pair{H, W} : std::pair{Pooled(H, s), Pooled(W, s)});
    weights.push_back(b.Parameter("weight", Shape{K, K, Ci}, dt, {}, o.frozen));  // [K, K, C']
    if (o.depthwise_bias) biases.push_back(b.Parameter("bias", Shape{Ci}, dt, {}, o.frozen));
  }
  // Per stage: pool, depthwise KxK, gate, bilinear up; concatenated.
  Value cat = o.fused ? ConvBlockPyramid(u, weights, biases, po)
                      : ConvBlockPyramidComposed(u, weights, biases, po);  // [B, H, W, S·C'/2]
  const int64_t S = static_cast<int64_t>(o.scales.size());
  Value y = Projection(b, cat, "conv_out", S * half, C, dt, o.frozen,
                       o.gate == ConvBlockGate::kReleased ? factor : 1.0);  // [B, H, W, C]
  Value pooled = Mean(x, {1, 2}, /*keepdim=*/true);                          // [B, 1, 1, C]
  Value pool = Projection(b, pooled, "conv_pool", C, C, dt, o.frozen);      // [B, 1, 1, C]
  return y + pool;                                                            // [B, H, W, C]
}

StatusOr<std::vector<std::pair<std::string, Tensor>>> LoadConvBlockParameters(const SafetensorsFile& file,
                                                                              const std::string& prefix,
                                                                              int64_t channels,
                                                                              const ConvBlockOptions& options,
                                                                              DType dtype) {
  CF_ASSIGN_OR_RETURN(auto shapes, ConvBlockParameterShapes(channels, options));
  const int64_t K = options.kernel, Ci = ConvBlockInterChannels(channels, options);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, shape] : shapes) {
    const std::string key = prefix.empty() ? name : absl::StrCat(prefix, ".", name);
    const bool depthwise = name.find(".conv_spatial.weight") != std::string::npos;
    const bool matrix = shape.rank() == 2;
    // The layouts accepted for this parameter, the declared one first.
    std::vector<Shape> accepted = {shape};
    if (matrix) accepted.push_back(Shape{shape[0], shape[1], 1, 1});
    if (depthwise) accepted.push_back(Shape{Ci, 1, K, K});
    std::vector<std::string> accepted_text;
    for (const Shape& s : accepted) accepted_text.push_back(s.ToString());
    if (!file.contains(key))
      return absl::NotFoundError(absl::StrCat("ConvBlock weights: '", file.path(), "' has no tensor '", key,
                                              "' (expected ", absl::StrJoin(accepted_text, " or "), ")"));
    CF_ASSIGN_OR_RETURN(Tensor t, file.Read(key));
    size_t which = accepted.size();
    for (size_t i = 0; i < accepted.size(); ++i)
      if (t.shape() == accepted[i]) which = i;
    if (which == accepted.size() || !IsFloating(t.dtype()))
      return absl::InvalidArgumentError(absl::StrCat("ConvBlock weights: tensor '", key, "' in '", file.path(), "' is ",
                                                     DTypeName(t.dtype()), t.shape().ToString(), "; expected ",
                                                     absl::StrJoin(accepted_text, " or "), " (floating)"));
    Tensor v;
    if (depthwise && which == 1) {
      // nn.Conv2d's [C', 1, K, K] -> the released [K, K, C'].
      CF_ASSIGN_OR_RETURN(std::vector<double> src, t.ToVector<double>());
      std::vector<double> dst(src.size());
      for (int64_t c = 0; c < Ci; ++c)
        for (int64_t i = 0; i < K * K; ++i) dst[i * Ci + c] = src[c * K * K + i];
      CF_ASSIGN_OR_RETURN(v, Tensor::FromValues<double>(dst, shape, dtype));
    } else {
      CF_ASSIGN_OR_RETURN(v, Tensor::Empty(t.shape(), dtype));
      CF_RETURN_IF_ERROR(v.CopyFrom(t));
      CF_ASSIGN_OR_RETURN(v, v.Reshape(shape));
    }
    out.push_back({key, std::move(v)});
  }
  // A depthwise bias the options do not declare would be dropped silently.
  for (size_t n = 0; n < options.scales.size() && !options.depthwise_bias; ++n) {
    const std::string name = absl::StrCat("gates.", n, ".conv_spatial.bias");
    const std::string key = prefix.empty() ? name : absl::StrCat(prefix, ".", name);
    if (file.contains(key))
      return absl::InvalidArgumentError(absl::StrCat("ConvBlock weights: '", file.path(), "' has '", key,
                                                     "' but the block has no depthwise bias (depthwise_bias)"));
  }
  return out;
}

}  // namespace cf
