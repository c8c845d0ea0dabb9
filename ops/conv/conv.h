// 2D convolution, channels-last. See docs/ops/conv.md.
//
//   "conv2d": x [N, H, W, Cin], weight [Cout, kh, kw, Cin/groups], optional
//     bias [Cout] -> [N, Ho, Wo, Cout], cross-correlation with symmetric zero
//     padding: Ho = (H + 2·ph - dh·(kh - 1) - 1) / sh + 1 (likewise Wo).
//     Attributes: stride [sh, sw], padding [ph, pw], dilation [dh, dw]
//     (each may also be one int for both), groups, allow_tf32 (CUDA f32).
//   "conv2d_backward_input": (grad_out [N, Ho, Wo, Cout], weight) -> grad of
//     x; attribute input_shape [N, H, W, Cin] plus the conv attributes.
//   "conv2d_backward_weight": (x, grad_out) -> grad of the weight; attribute
//     weight_shape [Cout, kh, kw, Cin/groups] plus the conv attributes.
// CPU: an implicit GEMM on ops/matmul/cpu_gemm.h (no im2col), or direct loops
// over channels for depthwise convs (groups == Cin == Cout). CUDA: cuDNN, and
// a shared-memory tiled kernel for depthwise convs.
#pragma once

#include <optional>
#include <vector>

#include "graph/builder.h"

namespace cf {

struct Conv2dOptions {
  Size2 stride = 1;
  Size2 padding = 0;
  Size2 dilation = 1;
  int64_t groups = 1;
  bool allow_tf32 = false;  // CUDA f32: TF32 tensor cores instead of exact f32
};
//   Conv2d(x, w, bias, {.padding = 1})                       // 3x3, same size
//   Conv2d(x, w, std::nullopt, {.stride = 2, .padding = 1})  // no bias
Value Conv2d(Value x, Value weight, std::optional<Value> bias = std::nullopt, const Conv2dOptions& options = {});

// The backward ops; `conv_attrs` are the forward call's attributes.
Value Conv2dBackwardInput(Value grad_out, Value weight, const Shape& input_shape, const Attrs& conv_attrs);
Value Conv2dBackwardWeight(Value x, Value grad_out, const Shape& weight_shape, const Attrs& conv_attrs);

}  // namespace cf
