// The geometry of one 2D convolution (NHWC input, [Cout, kh, kw, Cin/groups]
// weight), derived once from shapes and attributes and shared by the shape
// rules, cost rules and the CPU / CUDA kernels of conv2d and its backward ops.
#pragma once

#include <cstdint>
#include <string>

#include "ops/matmul/cpu_gemm.h"
#include "ops/op.h"

namespace cf {

struct ConvParams {
  int64_t n = 0, h = 0, w = 0, cin = 0;  // input [N, H, W, Cin]
  int64_t cout = 0, kh = 0, kw = 0;      // weight [Cout, kh, kw, Cin/groups]
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
  int64_t ho = 0, wo = 0;                // output [N, Ho, Wo, Cout]

  int64_t cin_g() const { return cin / groups; }
  int64_t cout_g() const { return cout / groups; }
  // Length of one im2col row: kh·kw·(Cin/groups).
  int64_t kdim() const { return kh * kw * cin_g(); }
  // One filter per channel (groups == Cin == Cout): the direct kernels.
  bool depthwise() const { return groups == cin && cin == cout; }
  // Multiply-adds of the forward pass (every kernel tap of every output,
  // padding included): N·Ho·Wo·Cout·kh·kw·Cin/groups.
  int64_t macs() const { return n * ho * wo * cout * kh * kw * cin_g(); }

  Shape input_shape() const { return Shape{n, h, w, cin}; }
  Shape weight_shape() const { return Shape{cout, kh, kw, cin_g()}; }
  Shape output_shape() const { return Shape{n, ho, wo, cout}; }
  std::string ToString() const;  // "x[2, 64, 64, 320] w[320, 3, 3, 320] stride 1x1 pad 1x1 dil 1x1 groups 1"
};

// The forward call's optional parts. Graph passes (graph/passes/epilogue.h)
// fuse what follows a conv into it with the attributes "activation",
// "image_bias" and "residual": inputs x, w, [bias], [image_bias], [residual],
//   y = act(conv(x, w) + bias + image_bias) + residual
// with image_bias [N, 1, 1, Cout] (one bias row per image) and residual
// shaped like y.
struct ConvForm {
  bool has_bias = false, image_bias = false, residual = false;
  gemm::Activation act = gemm::Activation::kNone;
  int image_bias_input() const { return 2 + has_bias; }
  int residual_input() const { return 2 + has_bias + image_bias; }
  bool fused() const { return image_bias || residual || act != gemm::Activation::kNone; }
};

// Reads the form from the attributes and the number of inputs.
StatusOr<ConvForm> ConvFormOf(const Attrs& attrs, size_t num_inputs);

// Reads stride, padding, dilation (each [a, b] or [a]) and groups from
// `attrs`, checks them against the input and weight shapes and computes the
// output size. Errors name what is wrong and the shapes.
StatusOr<ConvParams> ConvParamsOf(const Attrs& attrs, const Shape& x, const Shape& w);

// The conv attributes of `attrs` (stride, padding, dilation, groups,
// allow_tf32) without the rest (backward ops add their own).
Attrs ConvAttrsOnly(const Attrs& attrs);

}  // namespace cf
