#include "ops/matmul/matmul_dims.h"

#include <algorithm>

#include "ops/activation/activation_math.h"

namespace cf {

int64_t MatmulDims::a_batch_count() const {
  int64_t c = 1;
  for (int64_t d : a_batch) c *= d;
  return c;
}
int64_t MatmulDims::b_batch_count() const {
  int64_t c = 1;
  for (int64_t d : b_batch) c *= d;
  return c;
}

std::vector<int64_t> MatmulDims::Indices(const std::vector<int64_t>& operand) const {
  const int r = static_cast<int>(batch.size());
  // Row-major strides of the operand's own batch, 0 where it broadcasts.
  std::vector<int64_t> stride(r, 0);
  int64_t s = 1;
  for (int i = r - 1; i >= 0; --i) {
    stride[i] = operand[i] == 1 ? 0 : s;
    s *= operand[i];
  }
  std::vector<int64_t> out(batch_count);
  std::vector<int64_t> idx(r, 0);
  for (int64_t t = 0; t < batch_count; ++t) {
    int64_t off = 0;
    for (int i = 0; i < r; ++i) off += idx[i] * stride[i];
    out[t] = off;
    for (int i = r - 1; i >= 0; --i) {  // odometer increment
      if (++idx[i] < batch[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

StatusOr<MatmulDims> MatmulDimsOf(const std::string& op, const Attrs& attrs, absl::Span<const TensorType> inputs) {
  MatmulDims d;
  d.has_image_bias = attrs.Bool("image_bias", false);
  d.has_residual = attrs.Bool("residual", false);
  const size_t fixed = 2 + d.has_image_bias + d.has_residual;
  CF_CHECK_ARG(inputs.size() == fixed || inputs.size() == fixed + 1, "expected ", fixed, " or ", fixed + 1,
               " inputs (a, b, [bias]", d.has_image_bias ? ", image_bias" : "", d.has_residual ? ", residual" : "",
               "), got ", inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    CF_CHECK_ARG(IsFloating(inputs[i].dtype), "input ", i, " has dtype ", DTypeName(inputs[i].dtype),
                 "; a floating dtype is required");
    CF_CHECK_ARG(inputs[i].dtype == inputs[0].dtype, "inputs have different dtypes (", DTypeName(inputs[0].dtype),
                 " and ", DTypeName(inputs[i].dtype), ")");
  }
  d.dtype = inputs[0].dtype;
  CF_ASSIGN_OR_RETURN(d.act, gemm::ParseActivation(attrs.Str("activation", "none")));
  d.allow_tf32 = attrs.Bool("allow_tf32", false);
  d.has_bias = inputs.size() == fixed + 1;
  const Shape& a = inputs[0].shape;
  const Shape& b = inputs[1].shape;

  if (op == "linear") {
    CF_CHECK_ARG(a.rank() >= 1, "x must have at least 1 dimension, got ", a.ToString());
    CF_CHECK_ARG(b.rank() == 2, "weight must be [out, in], got ", b.ToString());
    CF_CHECK_ARG(a.dim(-1) == b[1], "x ", a.ToString(), " has ", a.dim(-1), " features but weight ", b.ToString(),
                 " expects in = ", b[1]);
    d.trans_b = true;
    d.k = b[1];
    d.n = b[0];
    d.m = a.prod(0, a.rank() - 1);
    std::vector<int64_t> out(a.dims().begin(), a.dims().end());
    out.back() = d.n;
    for (int64_t v : out) d.out_shape.push_back(v);
  } else {
    d.trans_a = attrs.Bool("trans_a", false);
    d.trans_b = attrs.Bool("trans_b", false);
    CF_CHECK_ARG(a.rank() >= 2 && b.rank() >= 2, "matmul needs operands of rank >= 2, got a ", a.ToString(),
                 " and b ", b.ToString());
    const int64_t am = a.dim(-2), ak = a.dim(-1), bk = b.dim(-2), bn = b.dim(-1);
    d.m = d.trans_a ? ak : am;
    d.k = d.trans_a ? am : ak;
    const int64_t kb = d.trans_b ? bn : bk;
    d.n = d.trans_b ? bk : bn;
    CF_CHECK_ARG(d.k == kb, "inner dimensions differ: a ", a.ToString(), (d.trans_a ? " (transposed)" : ""),
                 " has K = ", d.k, " but b ", b.ToString(), (d.trans_b ? " (transposed)" : ""), " has K = ", kb);
    const int ra = a.rank() - 2, rb = b.rank() - 2, r = std::max(ra, rb);
    d.batch.assign(r, 1);
    d.a_batch.assign(r, 1);
    d.b_batch.assign(r, 1);
    for (int i = 0; i < ra; ++i) d.a_batch[r - ra + i] = a[i];
    for (int i = 0; i < rb; ++i) d.b_batch[r - rb + i] = b[i];
    for (int i = 0; i < r; ++i) {
      const int64_t x = d.a_batch[i], y = d.b_batch[i];
      CF_CHECK_ARG(x == y || x == 1 || y == 1, "batch dimensions of a ", a.ToString(), " and b ", b.ToString(),
                   " do not broadcast");
      d.batch[i] = x == 1 ? y : x;
      d.batch_count *= d.batch[i];
    }
    std::vector<int64_t> out = d.batch;
    out.push_back(d.m);
    out.push_back(d.n);
    for (int64_t v : out) d.out_shape.push_back(v);
  }
  if (d.has_bias) {
    const Shape& bias = inputs[2].shape;
    CF_CHECK_ARG(bias.rank() == 1 && bias[0] == d.n, "bias must be [", d.n, "] (one per output column), got ",
                 bias.ToString());
  }
  if (d.has_image_bias) {
    CF_CHECK_ARG(op == "linear", "image_bias is for linear (and conv2d), not ", op);
    const Shape& out = d.out_shape;
    CF_CHECK_ARG(out.rank() >= 2 && out[0] > 0, "image_bias needs an output of rank >= 2 with images, got ",
                 out.ToString());
    Shape want = out;
    for (int i = 1; i + 1 < want.rank(); ++i) want[i] = 1;
    const Shape& ib = inputs[d.image_bias_input()].shape;
    CF_CHECK_ARG(ib == want, "image_bias must be ", want.ToString(), " (one row per image), got ", ib.ToString());
    d.image_rows = d.m / out[0];
  }
  if (d.has_residual) {
    const Shape& r = inputs[d.residual_input()].shape;
    CF_CHECK_ARG(r == d.out_shape, "residual must have the output's shape ", d.out_shape.ToString(), ", got ",
                 r.ToString());
  }
  return d;
}

// The activation family's counts (docs/ops/activation.md), so a fused
// epilogue counts what the separate op would.
ActivationCount CountOf(gemm::Activation a) {
  act::Count c{0, 0};
  switch (a) {
    case gemm::Activation::kNone: break;
    case gemm::Activation::kGelu: c = act::ForwardCount(act::Kind::kGeluErf); break;        // 4 E, 1 T (erf)
    case gemm::Activation::kGeluTanh: c = act::ForwardCount(act::Kind::kGeluTanh); break;   // 8 E, 1 T (tanh)
    case gemm::Activation::kSilu: c = act::ForwardCount(act::Kind::kSilu); break;           // 2 E, 1 T (exp)
  }
  return {c.e, c.t};
}

Cost MatmulCost(const MatmulDims& d, absl::Span<const TensorType> inputs, absl::Span<const TensorType> outputs) {
  // mac_flops = 2·B·M·N·K; bias_flops = B·M·N with a bias; the activation
  // adds its per-element counts over B·M·N outputs; bytes = inputs + output.
  Cost c = IoBytes(inputs, outputs);
  const int64_t outs = d.batch_count * d.m * d.n;
  c.mac_flops = 2 * outs * d.k;
  if (d.has_bias) c.bias_flops = outs;
  const ActivationCount ac = CountOf(d.act);
  c.elementwise_flops = ac.elementwise * outs;
  c.transcendentals = ac.transcendental * outs;
  c.elementwise_flops += (int64_t{d.has_image_bias} + int64_t{d.has_residual}) * outs;
  return c;
}

}  // namespace cf
