// The ConvBlock's pyramid, fused: see docs/convblock.md.
//
//   "convblock_pyramid": u [B, H, W, C'] (C' even), S depthwise weights
//     w_n [K, K, C'] (the released layout), and with has_bias S biases [C']
//     -> [B, H, W, S·C'/2]. Channels [n·C'/2, (n+1)·C'/2) of the output are
//     stage n:  up_n(gate(d[..., :C'/2], d[..., C'/2:])),
//               d = depthwise_K(pool_n(u), w_n) + b_n   (padding K//2),
//     pool_n = adaptive average pool to sizes[n] (identity at (H, W)), up_n =
//     bilinear resize back to (H, W) (align_corners = false), gate = product
//     (x1·x2·factor) or sigmoid (x1·sigmoid(x2)).
//     Attributes: sizes [h_0, w_0, h_1, w_1, ...], kernel K, gate
//     "product" | "sigmoid", factor (product), has_bias.
// One node instead of the ~9 per stage of the composition (pool, permute,
// conv2d, split, mul, sigmoid, resize, concat): the intermediate maps never
// reach memory at full size. Its FLOPs are those of the composition (counted
// from it), its bytes its own inputs and output. Backward recomputes the
// stage from u (the composition's VJPs), so nothing but u is kept.
#pragma once

#include <utility>
#include <vector>

#include "graph/builder.h"

namespace cf {

enum class PyramidGate { kProduct, kSigmoid };

struct ConvBlockPyramidOptions {
  int64_t kernel = 13;
  std::vector<std::pair<int64_t, int64_t>> sizes;  // the pooled (h, w) of each stage
  PyramidGate gate = PyramidGate::kProduct;
  double factor = 1.0;  // kProduct: x1 · x2 · factor
};

// The fused node. biases: empty, or one per stage.
Value ConvBlockPyramid(Value u, const std::vector<Value>& weights, const std::vector<Value>& biases,
                       const ConvBlockPyramidOptions& options);

// The same result composed from the op library (adaptive_avg_pool2d,
// permute, conv2d with groups = C', split, mul, scale, sigmoid,
// resize_bilinear, concat): the reference the fused op is tested against,
// its cost, and its backward.
Value ConvBlockPyramidComposed(Value u, const std::vector<Value>& weights, const std::vector<Value>& biases,
                               const ConvBlockPyramidOptions& options);

}  // namespace cf
