// Host-side pieces shared by the norm family's op definitions: the checks and
// shape rules of the normalisations with optional gamma / beta (group_norm,
// layer_norm), their VJP, and the builder call.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "ops/op.h"

namespace cf::norm_internal {

// A check of x and of gamma / beta from input `gamma_index` on (-1: none).
using AffineArgsCheck = std::function<Status(int gamma_index)>;

// eps >= 0, and every input from gamma_index on (gamma, then beta) is [C]
// with C = x's last dim, in x's dtype. `channels` names C in the message
// (e.g. "last dim of x").
Status CheckEpsAndAffine(const OpCall& c, const TensorType& x, int gamma_index, const char* channels);

// Cost of normalising x (E elements) in `groups` groups of statistics:
//   mean: E (L-1 adds + 1 divide per group of L); variance: 3E (subtract,
//   square, L-1 adds + 1 divide); rstd: `groups` adds (eps) + rsqrts;
//   normalise: 2E (subtract, multiply); affine: 2E (multiply, add).
//   elementwise = 6E + groups (+ 2E with affine), transcendentals = groups.
Cost AffineNormCost(const OpCall& c, absl::Span<const TensorType> outs, int64_t groups);

// Inputs x alone or x, gamma, beta; the output has x's type.
StatusOr<std::vector<TensorType>> InferAffineNorm(const OpCall& c, const AffineArgsCheck& check);

// The backward: inputs x, dy [, gamma]; outputs dx [, dgamma, dbeta].
StatusOr<std::vector<TensorType>> InferAffineNormBackward(const OpCall& c, const AffineArgsCheck& check);

// A VJP through one call of `backward_op`(ins) with `attrs` whose outputs
// are the gradients of the forward's inputs, in order; those not needed are
// dropped.
StatusOr<std::vector<Value>> GradsFromBackwardOp(VjpContext& ctx, const char* backward_op,
                                                 const std::vector<Value>& ins, Attrs attrs);

// The VJP of group_norm / layer_norm: `backward_op`(x, dy [, gamma]).
StatusOr<std::vector<Value>> AffineNormVjp(VjpContext& ctx, const char* backward_op, Attrs attrs);

// Builds `op`(x [, gamma, beta]); gamma and beta are both given or both
// absent, else the builder fails with an error naming `api`.
Value AffineNormOp(const char* api, const char* op, Value x, const std::optional<Value>& gamma,
                   const std::optional<Value>& beta, Attrs attrs);

}  // namespace cf::norm_internal
