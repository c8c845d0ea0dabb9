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
// CPU: im2col + the blocked GEMM (ops/matmul/cpu_gemm.h), or direct loops
// over channels for depthwise convs (groups == Cin == Cout). CUDA: cuDNN, and
// a shared-memory tiled kernel for depthwise convs.
#pragma once

#include <vector>

#include "graph/builder.h"

namespace cf {

Value Conv2d(Value x, Value weight, Value bias = {}, std::vector<int64_t> stride = {1, 1},
             std::vector<int64_t> padding = {0, 0}, std::vector<int64_t> dilation = {1, 1}, int64_t groups = 1);

// The backward ops; `conv_attrs` are the forward call's attributes.
Value Conv2dBackwardInput(Value grad_out, Value weight, const Shape& input_shape, const Attrs& conv_attrs);
Value Conv2dBackwardWeight(Value x, Value grad_out, const Shape& weight_shape, const Attrs& conv_attrs);

}  // namespace cf
