// "fused_elementwise": one kernel for a DAG of elementwise ops over up to
// fused::kMaxInputs inputs with numpy broadcasting, e.g. (a + b) * sigmoid(c),
// x * scale + y, silu(x + bias). Made by the elementwise-chain fusion pass
// (graph/passes/fuse_elementwise.h) or built directly. See docs/passes.md.
//
// Attributes: "program" (ints, 4 per instruction: code, a, b, p; see
// fused_program.h) and "consts" (floats: constants and op parameters).
// Shape and dtype: as the ops it stands for (every instruction's operands go
// through that op's own shape rule; all inputs one floating dtype); the output
// is the last instruction's. Cost: the FLOPs of exactly those ops at their own
// shapes (each from the op's cost rule), and the bytes of the fused node's own
// inputs and output. Not differentiable (the passes run after autodiff).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "ops/fused/fused_program.h"

namespace cf {

class FusedProgram {
 public:
  // Register of input i / of a constant value.
  int Input(int i);
  int Const(double v);
  // Appends elementwise op `op` (e.g. "add", "scale", "gelu", "silu_backward")
  // with `attrs` over registers `operands`; its register. An error when the op
  // has no instruction (IsFusableElementwise), the operand count is wrong or
  // a limit (instructions, constants) is reached.
  StatusOr<int> AddOp(const std::string& op, const Attrs& attrs, const std::vector<int>& operands);

  const std::vector<fused::Instr>& code() const { return code_; }
  const std::vector<double>& consts() const { return consts_; }
  int num_inputs() const;  // 1 + the largest input index loaded (0 for none)

  Attrs ToAttrs() const;
  // Checks the encoding (codes, register and constant indices in range, SSA
  // order, limits); the program of a fused_elementwise node.
  static StatusOr<FusedProgram> FromAttrs(const Attrs& attrs);

  // The op and attributes instruction i stands for (not for inputs/constants).
  std::string OpName(int i) const;
  Attrs OpAttrs(int i) const;

  std::string ToString() const;  // "r0 = in0; r1 = in1; r2 = add(r0, r1); ..."

 private:
  std::vector<fused::Instr> code_;
  std::vector<double> consts_;
};

// True when `op` with `attrs` has an instruction (add, sub, mul, div, scale,
// exp, sqrt, rsqrt, neg, square, silu, gelu (both forms), quick_gelu,
// leaky_relu, elu, sigmoid and their *_backward ops).
bool IsFusableElementwise(const std::string& op, const Attrs& attrs);

// A fused_elementwise node over `inputs` (all of one builder).
Value FusedElementwise(const std::vector<Value>& inputs, const FusedProgram& program);

}  // namespace cf
