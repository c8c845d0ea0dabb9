// The layers every model is made of, each declaring its parameters under the
// checkpoint's names in a child scope of the builder's current one
// (`Linear(b, "to_q", x, 320)` inside "...attn1" declares
// "...attn1.to_q.weight" [320, C]).
//
// Layouts (DESIGN.md "Channels-last everywhere"): linear weights [out, in];
// KxK conv weights [out, kh, kw, in] (PyTorch's [out, in, kh, kw] is permuted
// at load time, nn/weights.h); 1x1 convolutions of a channels-last map are
// linear layers over its channels, so their weights are declared [out, in]
// and loaded from PyTorch's [out, in, 1, 1].
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "graph/builder.h"

namespace cf {

// Where parameters come from: their dtype (default: the input's) and
// whether they train.
struct ParamOptions {
  std::optional<DType> dtype = std::nullopt;
  bool frozen = false;
  DType For(const Value& x) const { return dtype.value_or(x.dtype()); }
};

// nn.Linear: x [..., in] -> [..., out]; `name`.weight [out, in], `name`.bias [out].
Value LinearLayer(Builder& b, const std::string& name, Value x, int64_t out, bool bias = true,
                  const ParamOptions& p = {}, const std::string& activation = "none");

// nn.Conv2d on x [B, H, W, Cin] -> [B, Ho, Wo, out]; `name`.weight
// [out, k, k, Cin], `name`.bias [out]. k == 1 with stride 1 and no padding
// is a linear layer with weight [out, Cin].
Value Conv2dLayer(Builder& b, const std::string& name, Value x, int64_t out, int64_t kernel, int64_t stride = 1,
                  int64_t padding = 0, bool bias = true, const ParamOptions& p = {});

// nn.GroupNorm(groups, C, eps, affine) on x [B, ..., C]; `name`.weight / .bias [C].
Value GroupNormLayer(Builder& b, const std::string& name, Value x, int64_t groups, double eps, bool affine = true,
                     const ParamOptions& p = {});

// nn.LayerNorm(C, eps, elementwise_affine) on x [..., C]; `name`.weight / .bias [C].
Value LayerNormLayer(Builder& b, const std::string& name, Value x, double eps = 1e-5, bool affine = true,
                     const ParamOptions& p = {});

// An error recorded in the builder (once; the first wins) when `cond` is
// false; returns cond. For checks of module arguments.
bool Check(Builder& b, bool cond, const Status& error);

}  // namespace cf
