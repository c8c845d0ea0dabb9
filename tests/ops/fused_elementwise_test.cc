// fused_elementwise on the CPU: programs over broadcast inputs against the
// same ops run one by one (in float64, and through their own f32 kernels),
// every instruction code, block tails and threads, register reuse in long
// programs, the shape and dtype rules, the cost (exactly the FLOPs of the
// ops it stands for) and encoding errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/fused/fused_elementwise.h"
#include "tests/ops/fused_test_cases.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Case = FusedCase;

// The program's ops one by one through their own kernels, in `dtype` (inputs cast to it).
StatusOr<Tensor> RunUnfused(const FusedProgram& p, const std::vector<Tensor>& inputs, DType dtype) {
  std::vector<Tensor> regs;
  for (size_t i = 0; i < p.code().size(); ++i) {
    const fused::Instr& in = p.code()[i];
    if (in.code == fused::Code::kInput) {
      regs.push_back(CastTo(inputs[in.a], dtype));
    } else if (in.code == fused::Code::kConst) {
      regs.push_back(FromDoubles({p.consts()[in.p]}, Shape{}, dtype));
    } else {
      std::vector<Tensor> ops = {regs[in.a]};
      if (fused::IsBinary(in.code)) ops.push_back(regs[in.b]);
      CF_ASSIGN_OR_RETURN(Tensor t, RunOp1(p.OpName(static_cast<int>(i)), ops, p.OpAttrs(static_cast<int>(i))));
      regs.push_back(t);
    }
  }
  return regs.back();
}

std::vector<Case> Cases() {
  std::vector<Case> cs;
  cs.push_back(GateCase());
  {  // x * 0.5 + y, rows longer than a block with a tail
    Case c{"scale_add", {{3, 613}, {3, 613}}, {}};
    FusedProgram& p = c.prog;
    Op(p, "add", {Op(p, "scale", {p.Input(0)}, Attrs{{"mul", 0.5}}), p.Input(1)});
    cs.push_back(c);
  }
  {  // silu(x + bias), odd sizes
    Case c{"bias_silu", {{3, 33, 19}, {19}}, {}};
    FusedProgram& p = c.prog;
    Op(p, "silu", {Op(p, "add", {p.Input(0), p.Input(1)})});
    cs.push_back(c);
  }
  {  // an input used twice and a constant: x * x + 2 x / y, y broadcast along rows
    Case c{"reuse_const", {{5, 300}, {5, 1}}, {}};
    FusedProgram& p = c.prog;
    const int x = p.Input(0), y = p.Input(1);
    const int two = p.Const(2.0);
    Op(p, "add", {Op(p, "mul", {x, x}), Op(p, "div", {Op(p, "mul", {two, x}), y})});
    cs.push_back(c);
  }
  {  // the ConvBlock-like per-image gate: x * sigmoid(pool) + x, pool [B, 1, 1, C]; many threads
    Case c{"per_image", {{2, 64, 64, 40}, {2, 1, 1, 40}}, {}};
    FusedProgram& p = c.prog;
    const int x = p.Input(0);
    Op(p, "add", {Op(p, "mul", {x, Op(p, "sigmoid", {p.Input(1)})}), x});
    cs.push_back(c);
  }
  {  // rank 0 and a fully broadcast scalar input
    Case c{"scalars", {{}, {4, 3}}, {}};
    FusedProgram& p = c.prog;
    Op(p, "sub", {Op(p, "exp", {p.Input(0)}), p.Input(1)});
    cs.push_back(c);
  }
  {  // a training step's fused backward: silu_backward(x + bias, dy) * gate + gelu_backward(x, dy), odd sizes
    Case c{"act_backward", {{2, 17, 45}, {45}, {2, 17, 45}, {2, 1, 45}}, {}};
    FusedProgram& p = c.prog;
    const int x = p.Input(0), dy = p.Input(2);
    const int sb = Op(p, "silu_backward", {Op(p, "add", {x, p.Input(1)}), dy});
    Op(p, "add", {Op(p, "mul", {sb, p.Input(3)}), Op(p, "gelu_backward", {x, dy})});
    cs.push_back(c);
  }
  cs.push_back(InnerBroadcastCase());
  return cs;
}

std::vector<Tensor> Inputs(const Case& c, uint64_t seed) {
  std::vector<Tensor> in;
  for (const Shape& s : c.shapes) in.push_back(RandomTensor(s, DType::f64, seed++, -2, 2));
  return in;
}

TEST(FusedElementwise, MatchesOpsOneByOne) {
  std::vector<Case> cs = Cases();
  cs.push_back(AllCodes(Shape{4, 131}));
  uint64_t seed = 1;
  for (const Case& c : cs) {
    ASSERT_LE(c.prog.code().size(), size_t{fused::kMaxInstrs}) << c.name;
    const std::vector<Tensor> in = Inputs(c, seed);
    seed += 10;
    auto want64 = RunUnfused(c.prog, in, DType::f64);
    ASSERT_TRUE(want64.ok()) << c.name << ": " << want64.status();
    const std::vector<double> want = ToDoubles(*want64);
    for (DType t : kFloatDTypes) {
      std::vector<Tensor> rounded;
      for (const Tensor& x : in) rounded.push_back(CastTo(x, t));
      auto got = RunOp1("fused_elementwise", rounded, c.prog.ToAttrs());
      ASSERT_TRUE(got.ok()) << c.name << " " << DTypeName(t) << ": " << got.status();
      EXPECT_EQ(got->dtype(), t);
      EXPECT_EQ(got->shape(), want64->shape()) << c.name;
      // The reference sees unrounded inputs; f16 / bf16 also round them.
      const double tol = t == DType::f64 ? 1e-12 : t == DType::f32 ? 1e-5 : t == DType::f16 ? 1e-2 : 6e-2;
      EXPECT_TRUE(AllClose(ToDoubles(*got), want, tol, ScaledAtol(want, tol, t))) << c.name << " " << DTypeName(t);
      if (t == DType::f32) {
        // The ops' own f32 kernels on the same inputs: the same formulas up to
        // a few ulps (vector and scalar paths of the transcendentals).
        auto unfused = RunUnfused(c.prog, rounded, DType::f32);
        ASSERT_TRUE(unfused.ok()) << unfused.status();
        const std::vector<double> u = ToDoubles(*unfused);
        EXPECT_TRUE(AllClose(ToDoubles(*got), u, 1e-5, ScaledAtol(u, 1e-5, t))) << c.name;
      }
    }
  }
}

// A long program over 8 inputs: registers die and their rows are reused.
TEST(FusedElementwise, LongProgramReusesRows) {
  Case c{"long", {}, {}};
  for (int i = 0; i < fused::kMaxInputs; ++i) c.shapes.push_back(i % 2 ? Shape{3, 1, 517} : Shape{3, 2, 517});
  FusedProgram& p = c.prog;
  int acc = p.Input(0);
  for (int i = 1; i < fused::kMaxInputs; ++i) {
    const int x = p.Input(i);
    acc = Op(p, i % 3 == 0 ? "sub" : "add", {Op(p, "mul", {acc, Op(p, "sigmoid", {x})}), x});
  }
  acc = Op(p, "silu", {acc});
  ASSERT_LE(p.code().size(), size_t{fused::kMaxInstrs});
  const std::vector<Tensor> in = Inputs(c, 77);
  auto want = RunUnfused(p, in, DType::f64);
  ASSERT_TRUE(want.ok()) << want.status();
  for (DType t : {DType::f32, DType::bf16}) {
    std::vector<Tensor> rounded;
    for (const Tensor& x : in) rounded.push_back(CastTo(x, t));
    auto got = RunOp1("fused_elementwise", rounded, p.ToAttrs());
    ASSERT_TRUE(got.ok()) << got.status();
    const double tol = t == DType::f32 ? 1e-5 : 6e-2;
    const std::vector<double> w = ToDoubles(*want);
    EXPECT_TRUE(AllClose(ToDoubles(*got), w, tol, ScaledAtol(w, tol, t))) << DTypeName(t);
  }
}

TEST(FusedElementwise, CostIsTheSumOfTheOpsItStandsFor) {
  std::vector<Case> cs = Cases();
  cs.push_back(AllCodes(Shape{4, 131}));
  for (const Case& c : cs) {
    std::vector<TensorType> types;
    for (const Shape& s : c.shapes) types.push_back({s, DType::bf16});
    const Cost fused = CostOfOp("fused_elementwise", types, c.prog.ToAttrs());
    // The ops one by one at their own shapes.
    Cost sum;
    std::vector<TensorType> regs;
    for (size_t i = 0; i < c.prog.code().size(); ++i) {
      const fused::Instr& in = c.prog.code()[i];
      if (in.code == fused::Code::kInput) {
        regs.push_back(types[in.a]);
        continue;
      }
      if (in.code == fused::Code::kConst) {
        TensorType scalar;  // rank 0
        scalar.dtype = DType::bf16;
        regs.push_back(scalar);
        continue;
      }
      std::vector<TensorType> ops = {regs[in.a]};
      if (fused::IsBinary(in.code)) ops.push_back(regs[in.b]);
      const OpDef* def = OpRegistry::Global().Find(c.prog.OpName(static_cast<int>(i)));
      auto out = InferOp(*def, c.prog.OpAttrs(static_cast<int>(i)), ops);
      ASSERT_TRUE(out.ok()) << out.status();
      sum += CostOf(*def, c.prog.OpAttrs(static_cast<int>(i)), ops, *out);
      regs.push_back((*out)[0]);
    }
    EXPECT_EQ(fused.mac_flops, sum.mac_flops) << c.name;
    EXPECT_EQ(fused.bias_flops, sum.bias_flops) << c.name;
    EXPECT_EQ(fused.elementwise_flops, sum.elementwise_flops) << c.name;
    EXPECT_EQ(fused.transcendentals, sum.transcendentals) << c.name;
    EXPECT_GT(fused.elementwise_flops + fused.transcendentals, 0) << c.name;
    // Bytes: its own inputs and output only.
    int64_t in_bytes = 0;
    for (const TensorType& t : types) in_bytes += t.bytes();
    EXPECT_EQ(fused.bytes_read, in_bytes) << c.name;
    EXPECT_EQ(fused.bytes_written, regs.back().bytes()) << c.name;
  }
}

TEST(FusedElementwise, ShapeAndDTypeRules) {
  FusedProgram p;
  Op(p, "add", {p.Input(0), p.Input(1)});
  const Attrs a = p.ToAttrs();
  const TensorType x{{2, 3}, DType::f32};
  EXPECT_TRUE(BuildStatus("fused_elementwise", {x, {{3}, DType::f32}}, a).ok());
  ExpectError("fused_elementwise", {x, {{4}, DType::f32}}, a, {"instruction 2", "do not broadcast"});
  ExpectError("fused_elementwise", {x, {{3}, DType::f16}}, a, {"different dtypes"});
  ExpectError("fused_elementwise", {x}, a, {"reads 2 inputs, got 1"});
  ExpectError("fused_elementwise", {{{2}, DType::i32}, {{2}, DType::i32}}, a, {"floating"});
  // The backward ops keep their own rule: dy must have x's shape.
  FusedProgram b;
  Op(b, "silu_backward", {b.Input(0), b.Input(1)});
  ExpectError("fused_elementwise", {x, {{3}, DType::f32}}, b.ToAttrs(), {"must have the input's shape"});
  // A register that does not broadcast to the output (here: wider than it).
  FusedProgram w;
  const int big = w.Input(0);
  Op(w, "exp", {w.Input(1)});
  (void)big;
  ExpectError("fused_elementwise", {x, {{3}, DType::f32}}, w.ToAttrs(), {"register 0", "does not broadcast"});
}

TEST(FusedElementwise, EncodingErrors) {
  FusedProgram p;
  EXPECT_FALSE(p.AddOp("matmul", {}, {0}).ok());
  EXPECT_FALSE(p.AddOp("gelu", Attrs{{"approximate", std::string("cubic")}}, {0}).ok());
  p.Input(0);
  EXPECT_FALSE(p.AddOp("add", {}, {0}).ok());     // arity
  EXPECT_FALSE(p.AddOp("exp", {}, {3}).ok());     // undefined register
  EXPECT_TRUE(IsFusableElementwise("gelu", Attrs{{"approximate", std::string("tanh")}}));
  EXPECT_FALSE(IsFusableElementwise("softmax", {}));
  const TensorType x{{2}, DType::f32};
  ExpectError("fused_elementwise", {x}, Attrs{{"program", std::vector<int64_t>{0, 0, 0}}}, {"4 integers"});
  ExpectError("fused_elementwise", {x}, Attrs{{"program", std::vector<int64_t>{0, 0, 0, 0, 99, 0, 0, 0}}},
              {"unknown code 99"});
  ExpectError("fused_elementwise", {x},
              Attrs{{"program", std::vector<int64_t>{0, 0, 0, 0, static_cast<int64_t>(fused::Code::kAdd), 0, 1, 0}}},
              {"earlier registers"});
  ExpectError("fused_elementwise", {x},
              Attrs{{"program", std::vector<int64_t>{0, 0, 0, 0, static_cast<int64_t>(fused::Code::kScale), 0, 0, 0}}},
              {"parameters out of range"});
  // Round trip and printing.
  FusedProgram q;
  Op(q, "scale", {q.Input(0)}, Attrs{{"mul", 2.0}, {"add", 1.0}});
  auto back = FusedProgram::FromAttrs(q.ToAttrs());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToString(), "r0 = in0; r1 = scale(r0) {add=1, mul=2}");
}

TEST(FusedElementwise, BuilderFunction) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4, 8}, DType::f32), y = b.Input("y", Shape{8}, DType::f32);
  FusedProgram p;
  Op(p, "gelu", {Op(p, "add", {p.Input(0), p.Input(1)})});
  Value z = FusedElementwise({x, y}, p);
  b.MarkOutput(z, "z");
  ASSERT_TRUE(b.status().ok()) << b.status();
  EXPECT_EQ(z.shape(), (Shape{4, 8}));
  EXPECT_EQ(g.node(0).cost.transcendentals, 32);
  EXPECT_EQ(g.node(0).cost.elementwise_flops, 32 + 4 * 32);  // add + gelu's E4
}

}  // namespace
}  // namespace cf::testing
