// The instruction set of "fused_elementwise" (fused_elementwise.h) and the
// scalar math of each instruction, shared by the CPU kernel (float or double
// arithmetic) and the CUDA kernel (float). Every instruction computes exactly
// the formula of the op it stands for (ops/elementwise/elementwise_math.h,
// ops/activation/activation_math.h), so a fused chain differs from the
// unfused ops only by the intermediates no longer being rounded to the
// storage dtype.
//
// A program is a list of instructions; instruction i defines register i
// (SSA). The result is the last register.
//   {kInput, a = input index}
//   {kConst, p = index of the value in the constants}
//   unary ops: a = operand register; p = index of the first parameter
//     (scale: mul, add; leaky_relu: negative_slope; elu: alpha)
//   binary ops: a, b = operand registers (the *_backward ops: a = x, b = dy)
#pragma once

#include <cstdint>

#include "absl/types/span.h"
#include "ops/activation/activation_math.h"
#include "ops/elementwise/elementwise_math.h"
#include "runtime/dtype.h"  // CF_HD
#include "runtime/shape.h"

namespace cf::fused {

// Limits of one fused node (kernel parameters are fixed-size arrays).
inline constexpr int kMaxInputs = 8;
inline constexpr int kMaxInstrs = 32;
inline constexpr int kMaxConsts = 32;

enum class Code : int8_t {
  kInput,
  kConst,
  // unary
  kScale,
  kExp,
  kSqrt,
  kRsqrt,
  kNeg,
  kSquare,
  kSilu,
  kGelu,
  kGeluTanh,
  kQuickGelu,
  kLeakyRelu,
  kElu,
  kSigmoid,
  // binary
  kAdd,
  kSub,
  kMul,
  kDiv,
  kSiluBackward,
  kGeluBackward,
  kGeluTanhBackward,
  kQuickGeluBackward,
  kLeakyReluBackward,
  kEluBackward,
  kSigmoidBackward,
  kCount
};

// The computing codes (everything but kInput and kConst), for dispatch macros.
#define CF_FUSED_COMPUTE_CODES(X)                                                                          \
  X(kScale) X(kExp) X(kSqrt) X(kRsqrt) X(kNeg) X(kSquare) X(kSilu) X(kGelu) X(kGeluTanh) X(kQuickGelu)    \
  X(kLeakyRelu) X(kElu) X(kSigmoid) X(kAdd) X(kSub) X(kMul) X(kDiv) X(kSiluBackward) X(kGeluBackward)     \
  X(kGeluTanhBackward) X(kQuickGeluBackward) X(kLeakyReluBackward) X(kEluBackward) X(kSigmoidBackward)

CF_HD constexpr bool IsBinary(Code c) { return c >= Code::kAdd && c < Code::kCount; }

// One instruction (4 bytes, so a whole program fits in kernel parameters).
struct Instr {
  Code code = Code::kInput;
  int8_t a = 0, b = 0, p = 0;
};

// f(x[, y]) for code C; p0, p1 are the instruction's parameters (p1 only for
// scale), unused by codes without parameters; y is unused by unary codes.
template <Code C, typename A> CF_HD A Eval(A x, A y, A p0, A p1) {
  using ew::BinaryKind;
  using ew::UnaryKind;
  using act::Kind;
  if constexpr (C == Code::kScale) return ew::Unary<UnaryKind::kScale>(x, p0, p1);
  else if constexpr (C == Code::kExp) return ew::Unary<UnaryKind::kExp>(x, p0, p1);
  else if constexpr (C == Code::kSqrt) return ew::Unary<UnaryKind::kSqrt>(x, p0, p1);
  else if constexpr (C == Code::kRsqrt) return ew::Unary<UnaryKind::kRsqrt>(x, p0, p1);
  else if constexpr (C == Code::kNeg) return ew::Unary<UnaryKind::kNeg>(x, p0, p1);
  else if constexpr (C == Code::kSquare) return ew::Unary<UnaryKind::kSquare>(x, p0, p1);
  else if constexpr (C == Code::kSilu) return act::Forward<Kind::kSilu>(x, p0);
  else if constexpr (C == Code::kGelu) return act::Forward<Kind::kGeluErf>(x, p0);
  else if constexpr (C == Code::kGeluTanh) return act::Forward<Kind::kGeluTanh>(x, p0);
  else if constexpr (C == Code::kQuickGelu) return act::Forward<Kind::kQuickGelu>(x, p0);
  else if constexpr (C == Code::kLeakyRelu) return act::Forward<Kind::kLeakyRelu>(x, p0);
  else if constexpr (C == Code::kElu) return act::Forward<Kind::kElu>(x, p0);
  else if constexpr (C == Code::kSigmoid) return act::Forward<Kind::kSigmoid>(x, p0);
  else if constexpr (C == Code::kAdd) return ew::Binary<BinaryKind::kAdd>(x, y);
  else if constexpr (C == Code::kSub) return ew::Binary<BinaryKind::kSub>(x, y);
  else if constexpr (C == Code::kMul) return ew::Binary<BinaryKind::kMul>(x, y);
  else if constexpr (C == Code::kDiv) return ew::Binary<BinaryKind::kDiv>(x, y);
  // The activations' backward ops: dy * f'(x), as their kernels compute it.
  else if constexpr (C == Code::kSiluBackward) return y * act::Derivative<Kind::kSilu>(x, p0);
  else if constexpr (C == Code::kGeluBackward) return y * act::Derivative<Kind::kGeluErf>(x, p0);
  else if constexpr (C == Code::kGeluTanhBackward) return y * act::Derivative<Kind::kGeluTanh>(x, p0);
  else if constexpr (C == Code::kQuickGeluBackward) return y * act::Derivative<Kind::kQuickGelu>(x, p0);
  else if constexpr (C == Code::kLeakyReluBackward) return y * act::Derivative<Kind::kLeakyRelu>(x, p0);
  else if constexpr (C == Code::kEluBackward) return y * act::Derivative<Kind::kElu>(x, p0);
  else return y * act::Derivative<Kind::kSigmoid>(x, p0);
}

// Eval for a runtime code (the CUDA kernel's interpreter loop); x for an
// input or constant code, which never reach here.
template <typename A> CF_HD A EvalCode(Code c, A x, A y, A p0, A p1) {
  switch (c) {
#define CF_FUSED_CASE(k) \
  case Code::k: return Eval<Code::k>(x, y, p0, p1);
    CF_FUSED_COMPUTE_CODES(CF_FUSED_CASE)
#undef CF_FUSED_CASE
    default: return x;
  }
}

// The output's dimensions collapsed as in ops/elementwise/broadcast.h's
// BroadcastPlan, for any number of operands: size-1 dimensions dropped,
// neighbours merged where every operand indexes them the same way. Strides
// in elements, 0 where an operand is broadcast. Plain old data (a kernel
// parameter).
struct Plan {
  int rank = 1;
  int num_inputs = 0;
  int64_t dims[Shape::kMaxRank] = {1};
  int64_t strides[kMaxInputs][Shape::kMaxRank] = {};

  CF_HD int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
};

// The plan of an output of shape `out` over `inputs` (each broadcasting to it).
Plan MakePlan(const Shape& out, absl::Span<const Shape> inputs);

}  // namespace cf::fused
