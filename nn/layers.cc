// nn/layers.h.
#include "nn/layers.h"

#include "absl/strings/str_cat.h"
#include "ops/conv/conv.h"
#include "ops/matmul/matmul.h"
#include "ops/norm/norm.h"

namespace cf {

bool Check(Builder& b, bool cond, const Status& error) {
  if (!cond && b.ok()) b.Fail(error);
  return cond;
}

Value LinearLayer(Builder& b, const std::string& name, Value x, int64_t out, bool bias, const ParamOptions& p,
                  const std::string& activation) {
  if (!x.valid()) return Value{};
  auto s = b.scope(name);
  const DType dt = p.For(x);
  Value w = b.Parameter("weight", Shape{out, x.dim(-1)}, dt, {}, p.frozen);
  std::optional<Value> bv;
  if (bias) bv = b.Parameter("bias", Shape{out}, dt, {}, p.frozen);
  return Linear(x, w, bv, {.activation = activation});
}

Value Conv2dLayer(Builder& b, const std::string& name, Value x, int64_t out, int64_t kernel, int64_t stride,
                  int64_t padding, bool bias, const ParamOptions& p) {
  if (!x.valid()) return Value{};
  if (kernel == 1 && stride == 1 && padding == 0) return LinearLayer(b, name, x, out, bias, p);
  auto s = b.scope(name);
  const DType dt = p.For(x);
  Value w = b.Parameter("weight", Shape{out, kernel, kernel, x.dim(-1)}, dt, {}, p.frozen);
  std::optional<Value> bv;
  if (bias) bv = b.Parameter("bias", Shape{out}, dt, {}, p.frozen);
  return Conv2d(x, w, bv, {.stride = stride, .padding = padding});
}

Value GroupNormLayer(Builder& b, const std::string& name, Value x, int64_t groups, double eps, bool affine,
                     const ParamOptions& p) {
  if (!x.valid()) return Value{};
  auto s = b.scope(name);
  std::optional<Value> g, beta;
  if (affine) {
    g = b.Parameter("weight", Shape{x.dim(-1)}, p.For(x), {}, p.frozen);
    beta = b.Parameter("bias", Shape{x.dim(-1)}, p.For(x), {}, p.frozen);
  }
  return GroupNorm(x, g, beta, groups, eps);
}

Value LayerNormLayer(Builder& b, const std::string& name, Value x, double eps, bool affine, const ParamOptions& p) {
  if (!x.valid()) return Value{};
  auto s = b.scope(name);
  std::optional<Value> g, beta;
  if (affine) {
    g = b.Parameter("weight", Shape{x.dim(-1)}, p.For(x), {}, p.frozen);
    beta = b.Parameter("bias", Shape{x.dim(-1)}, p.For(x), {}, p.frozen);
  }
  return LayerNorm(x, g, beta, eps);
}

}  // namespace cf
