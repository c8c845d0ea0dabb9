// Pooling and resampling of channels-last images x [N, H, W, C], with
// PyTorch's semantics. See docs/ops/pool.md.
#pragma once

#include <optional>
#include <vector>

#include "graph/builder.h"

namespace cf {

// "avg_pool2d": kernel [kh, kw] (or [k]), stride (empty: the kernel),
// padding (zeros counted in the average, count_include_pad = true;
// ceil_mode = false). Errors when the kernel does not fit the padded input or
// a padding exceeds half its kernel (PyTorch's rules).
struct AvgPool2dOptions {
  std::optional<Size2> stride = std::nullopt;  // default: the kernel
  Size2 padding = 0;
};
//   AvgPool2d(x, 2)                                  // 2x2, stride 2
//   AvgPool2d(x, 3, {.stride = 1, .padding = 1})
Value AvgPool2d(Value x, Size2 kernel, const AvgPool2dOptions& options = {});

// "adaptive_avg_pool2d": to [N, oh, ow, C]; bin i covers
// [floor(i*H/oh), ceil((i+1)*H/oh)). oh > H and ow > W are allowed.
Value AdaptiveAvgPool2d(Value x, int64_t oh, int64_t ow);

// "resize_bilinear": to [N, oh, ow, C], align_corners = false, no antialias
// (F.interpolate(mode="bilinear", size=(oh, ow))).
Value ResizeBilinear(Value x, int64_t oh, int64_t ow);

// "upsample_nearest2x": [N, 2H, 2W, C], each pixel repeated 2x2
// (F.interpolate(scale_factor=2, mode="nearest")).
Value UpsampleNearest2x(Value x);

}  // namespace cf
