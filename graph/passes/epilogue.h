// Epilogue fusion (docs/passes.md): what directly follows a linear, matmul or
// conv2d is folded into the op's epilogue, the GEMM's store on the CPU
// (gemm::Epilogue) and cuBLASLt's epilogue / one pass after cuDNN on CUDA:
//   (a) an add of a bias-like [N] tensor, when the op has no bias,
//   (b) silu / gelu / gelu (tanh), when the op has no activation,
//   (c) a residual add of a tensor of the output's shape (then the chain ends),
//   (d) an add of a per-image [B, 1, N] / [B, 1, 1, N] tensor (linear and
//       conv2d; the ConvBlock's pooled branch), before any activation.
// Fused in the order the epilogue computes them: act(P + bias + image) + residual.
// Also group_norm -> silu, into group_norm's activation="silu".
// A value is fused away only when its one consumer is the next op of the
// chain and it is not a graph output. The fused node keeps the op's FLOPs and
// scope; the removed nodes' FLOPs go to Node::absorbed under their scopes.
#pragma once

#include "graph/graph.h"
#include "graph/passes/pass.h"

namespace cf {

// Adds "<op>+bias", "<op>+<activation>", "<op>+residual", "<op>+image_bias"
// counts to `report` (may be null).
StatusOr<Graph> FuseEpilogues(const Graph& g, PassReport* report = nullptr);

}  // namespace cf
