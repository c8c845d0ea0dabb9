// Test setup shared by fused_elementwise's CPU test (fused_elementwise_test.cc)
// and its CUDA kernel's interpreter test (fused_elementwise_interp_test.cc):
// a named program over input shapes, the program builder and the program
// with every instruction code.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "ops/fused/fused_elementwise.h"

namespace cf::testing {

struct FusedCase {
  std::string name;
  std::vector<Shape> shapes;
  FusedProgram prog;
};

// Adds `op`(regs) with `attrs` to p; a test failure (and register 0) on error.
inline int Op(FusedProgram& p, const std::string& op, std::vector<int> regs, const Attrs& attrs = {}) {
  auto r = p.AddOp(op, attrs, regs);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : 0;
}

// Every instruction code once over x, y of `shape`: the unary ones chained on
// (x + 0.5 y + 0.25), each backward op on (x, dy = y) added in, then / 3.
inline FusedCase AllCodes(const Shape& shape) {
  FusedCase c{"all_codes", {shape, shape}, {}};
  FusedProgram& p = c.prog;
  const int x = p.Input(0), y = p.Input(1);
  int acc = Op(p, "add", {x, Op(p, "scale", {y}, Attrs{{"mul", 0.5}, {"add", 0.25}})});
  const std::vector<std::pair<std::string, Attrs>> unary = {
      {"silu", {}},
      {"gelu", {}},
      {"gelu", Attrs{{"approximate", std::string("tanh")}}},
      {"quick_gelu", {}},
      {"leaky_relu", Attrs{{"negative_slope", 0.2}}},
      {"elu", Attrs{{"alpha", 0.7}}},
      {"sigmoid", {}},
      {"neg", {}},
      {"square", {}},
      {"exp", {}},
      {"sqrt", {}},
      {"rsqrt", {}}};
  for (const auto& [op, a] : unary) acc = Op(p, op, {acc}, a);
  const std::vector<std::pair<std::string, Attrs>> backward = {
      {"silu_backward", {}},
      {"gelu_backward", {}},
      {"gelu_backward", Attrs{{"approximate", std::string("tanh")}}},
      {"quick_gelu_backward", {}},
      {"leaky_relu_backward", Attrs{{"negative_slope", 0.3}}},
      {"elu_backward", Attrs{{"alpha", 1.5}}},
      {"sigmoid_backward", {}}};
  for (const auto& [op, a] : backward) acc = Op(p, "add", {acc, Op(p, op, {x, y}, a)});
  Op(p, "div", {acc, Op(p, "scale", {y}, Attrs{{"mul", 0.0}, {"add", 3.0}})});
  return c;
}

// (a + b) * sigmoid(c) over a [2, 5, 7], b [7], c [2, 1, 7].
inline FusedCase GateCase() {
  FusedCase c{"gate", {{2, 5, 7}, {7}, {2, 1, 7}}, {}};
  FusedProgram& p = c.prog;
  Op(p, "mul", {Op(p, "add", {p.Input(0), p.Input(1)}), Op(p, "sigmoid", {p.Input(2)})});
  return c;
}

// The innermost dimension broadcast: -(x [7, 1] * y [1, 9]), per-row constants.
inline FusedCase InnerBroadcastCase() {
  FusedCase c{"inner_bcast", {{7, 1}, {1, 9}}, {}};
  FusedProgram& p = c.prog;
  Op(p, "neg", {Op(p, "mul", {p.Input(0), p.Input(1)})});
  return c;
}

}  // namespace cf::testing
