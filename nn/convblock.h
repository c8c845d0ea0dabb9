// The ConvBlock (the paper's ΔConvBlock, IrisRainbowNeko/ConvFusion
// pyramid_dwconv/conv_block.py): the module that replaces a transformer
// block's self-attention. docs/convblock.md has the definition, the gates,
// the checkpoint keys and what each step is composed from.
//
// The nn/ module pattern (as nn/linfusion.h): the builder's current scope is
// the module's (e.g. "...transformer_blocks.0.conv1"); the parameters are
// declared there by shape under the authors' checkpoint names; a loader or a
// test sets their values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph/builder.h"
#include "nn/safetensors.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace cf {

enum class ConvBlockGate : uint8_t {
  kPaper,     // x1 · x2 / sqrt(C'/2)            (the paper's scaled simple gate)
  kReleased,  // x1 · (x2 / (C'/2)^-1/2) = x1 · x2 · sqrt(C'/2)  (released SD1.5/SDXL code)
  kSigmoid,   // x1 · sigmoid(x2)                (released PixArt code)
};

// "paper", "released", "sigmoid".
const char* ConvBlockGateName(ConvBlockGate g);
StatusOr<ConvBlockGate> ParseConvBlockGate(const std::string& name);

struct ConvBlockOptions {
  int64_t kernel = 13;                      // K: odd, 3..31 (padding K//2)
  std::vector<double> scales = {1.0, 0.5};  // one pyramid stage per scale, each in (0, 1]
  double inter_ratio = 0.5;                 // C' = int(C · inter_ratio), must be even
  ConvBlockGate gate = ConvBlockGate::kReleased;
  bool depthwise_bias = false;              // gates.N.conv_spatial.bias [C'] (none as released)
  std::optional<DType> param_dtype = std::nullopt;  // default: x's dtype
  bool frozen = false;                      // declare the parameters frozen (no gradients)
  // One convblock_pyramid node for the stages (ops/convblock/convblock.h);
  // false: the same stages composed from the op library (the reference).
  bool fused = true;
};

// C' for `channels` (PyTorch's int(C * ratio)).
int64_t ConvBlockInterChannels(int64_t channels, const ConvBlockOptions& options);

// The parameters the module declares (keys relative to its scope) and their
// shapes, in declaration order:
//   conv_up.weight [C', C], conv_up.bias [C'],
//   gates.N.conv_spatial.weight [K, K, C'] (+ gates.N.conv_spatial.bias [C'] with depthwise_bias),
//   conv_out.weight [C, S·C'/2], conv_out.bias [C]   (S = number of scales),
//   conv_pool.weight [C, C], conv_pool.bias [C].
// An error for bad options (K even or outside 3..31, C' odd or < 2, no
// scales, a scale outside (0, 1]).
StatusOr<std::vector<std::pair<std::string, Shape>>> ConvBlockParameterShapes(int64_t channels,
                                                                              const ConvBlockOptions& options);

// x [B, H, W, C] -> [B, H, W, C]:
//   u = conv_up(x)                                              [B, H, W, C']
//   per scale s: p = s == 1 ? u : AdaptiveAvgPool(u, ⌊H·s⌋, ⌊W·s⌋)  [B, h, w, C']
//                d = depthwise KxK conv(p), padding K//2        [B, h, w, C']
//                g = gate(d[..., :C'/2], d[..., C'/2:])         [B, h, w, C'/2]
//                g = s == 1 ? g : ResizeBilinear(g, H, W)        [B, H, W, C'/2]
//   out = conv_out(concat_s g) + conv_pool(mean_{H,W} x)         [B, H, W, C]
// The released gate's factor sqrt(C'/2) is folded into conv_out's weight so
// that the gated maps stay in f16 range (docs/convblock.md). Errors (rank,
// options, a pooled map smaller than 1x1) are recorded in the builder, naming
// the module, and the result is an invalid Value.
Value ConvBlock(Builder& b, Value x, const ConvBlockOptions& options = {});

// Reads the module's parameters from a checkpoint: key `prefix + "." + name`
// (or `name` when prefix is empty) for every name of ConvBlockParameterShapes,
// converted to `dtype` and to the declared shapes. Accepted layouts: the 1x1
// projections [out, in] (nn.Linear, the released Triton block) or
// [out, in, 1, 1] (nn.Conv2d, the NCHW block); the depthwise weight [K, K, C']
// (released) or [C', 1, K, K] (nn.Conv2d with groups = C'). A missing key or
// another shape is an error naming the file, the key, the shape found and the
// shapes accepted; so is a depthwise bias in the file when
// options.depthwise_bias is off. Returned names are the full keys, which are the names the
// module's parameters get when the builder's scope is `prefix`.
StatusOr<std::vector<std::pair<std::string, Tensor>>> LoadConvBlockParameters(const SafetensorsFile& file,
                                                                              const std::string& prefix,
                                                                              int64_t channels,
                                                                              const ConvBlockOptions& options,
                                                                              DType dtype);

}  // namespace cf
