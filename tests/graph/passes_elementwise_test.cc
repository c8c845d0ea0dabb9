// Elementwise-chain fusion (graph/passes/fuse_elementwise.h) against the
// unfused graph: small chains in f32 / f16 / bf16, refusals (graph outputs,
// shared intermediates, smaller broadcast operands, the input and
// instruction limits), the tiny SD1.5 UNet and PixArt of nn/, a training
// graph with backward nodes, and the full-size SD1.5 UNet shape-only
// (accounting and the planner bound). Each prints what fired.
#include <gtest/gtest.h>

#include <cstdio>

#include "graph/autodiff.h"
#include "graph/passes/fuse_elementwise.h"
#include "graph/planner.h"
#include "ops/fused/fused_program.h"
#include "ops/ops.h"
#include "tests/graph/pass_check.h"

namespace cf::testing {
namespace {

const GraphPass kFuse = [](const Graph& g, PassReport* r) { return FuseElementwiseChains(g, r); };

TEST(ElementwiseFusion, GateAndResidualChainBecomesOneNode) {
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    SCOPED_TRACE(DTypeName(dt));
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2, 9, 37}, dt), c = b.Input("c", Shape{2, 9, 37}, dt);
    Value bias = b.Parameter("bias", Shape{37}, dt), r = b.Input("r", Shape{2, 9, 37}, dt);
    Value y;
    {
      auto s = b.scope("a");
      y = (x + bias) * Sigmoid(c);
    }
    {
      auto s = b.scope("b");
      y = Silu(y * 0.5 + r);
    }
    b.MarkOutput(y, "y");
    CF_ASSERT_OK(b.Finish().status());
    PassReport rep;
    Graph out = ExpectPassKeepsResults(g, kFuse, dt == DType::f32 ? 1e-6 : 1e-2, &rep);
    std::printf("%s\n", rep.ToString().c_str());
    EXPECT_EQ(out.num_nodes(), 1);
    EXPECT_EQ(CountOp(out, "fused_elementwise"), 1);
    EXPECT_EQ(rep.Count("elementwise chain"), 1);
    EXPECT_EQ(rep.Count("elementwise chain nodes"), 6);
    // The fused node sits in the last node's scope and keeps the others under theirs.
    EXPECT_EQ(out.node(0).scope, "b");
    EXPECT_EQ(out.node(0).absorbed.size(), 5u);
  }
}

TEST(ElementwiseFusion, RefusesOutputsSharedValuesAndSmallerOperands) {
  {
    // t = x + y is a graph output: the chain is cut there.
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4, 8}, DType::f32), y = b.Input("y", Shape{4, 8}, DType::f32);
    Value t = x + y;
    b.MarkOutput(t, "t");
    b.MarkOutput(Exp(Neg(t)), "z");
    CF_ASSERT_OK(b.Finish().status());
    Graph out = ExpectPassKeepsResults(g, kFuse, 1e-6);
    EXPECT_EQ(out.num_nodes(), 2);  // add, fused(neg, exp)
    EXPECT_EQ(CountOp(out, "add"), 1);
  }
  {
    // t is read by two nodes: each reader's chain starts at t.
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4, 8}, DType::f32), y = b.Input("y", Shape{4, 8}, DType::f32);
    Value t = x * y;
    b.MarkOutput(Silu(t) + x, "a");
    b.MarkOutput(Square(t), "b");
    CF_ASSERT_OK(b.Finish().status());
    Graph out = ExpectPassKeepsResults(g, kFuse, 1e-6);
    EXPECT_EQ(CountOp(out, "mul"), 1);
    EXPECT_EQ(CountOp(out, "square"), 1);
    EXPECT_EQ(CountOp(out, "fused_elementwise"), 1);  // silu + add
  }
  {
    // sigmoid of a pooled [B, 1, 1, C] stays its own node (not recomputed per pixel).
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2, 5, 6, 8}, DType::f32), p = b.Input("p", Shape{2, 1, 1, 8}, DType::f32);
    b.MarkOutput(x * Sigmoid(Scale(p, 2.0)) + x, "y");
    CF_ASSERT_OK(b.Finish().status());
    Graph out = ExpectPassKeepsResults(g, kFuse, 1e-6);
    EXPECT_EQ(CountOp(out, "fused_elementwise"), 2);  // (scale, sigmoid) on [2,1,1,8]; (mul, add) on x
    for (const Node& n : out.nodes()) EXPECT_EQ(n.op->name, "fused_elementwise");
  }
  {
    // Nothing to fuse: a lone op is left as it is.
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4}, DType::f32);
    b.MarkOutput(Gelu(x), "y");
    CF_ASSERT_OK(b.Finish().status());
    CF_ASSERT_OK_AND_ASSIGN(Graph out, FuseElementwiseChains(g));
    EXPECT_EQ(out.ToText(), g.ToText());
  }
}

// 20 inputs summed: trees stop at fused::kMaxInputs inputs, and still compute the sum.
TEST(ElementwiseFusion, LimitsSplitLongChains) {
  Graph g;
  Builder b(&g);
  Value acc = b.Input("x0", Shape{3, 50}, DType::f32);
  for (int i = 1; i < 20; ++i) acc = acc + Silu(b.Input(absl::StrCat("x", i), Shape{3, 50}, DType::f32));
  b.MarkOutput(acc, "y");
  CF_ASSERT_OK(b.Finish().status());
  PassReport rep;
  Graph out = ExpectPassKeepsResults(g, kFuse, 1e-6, &rep);
  std::printf("%s\n", rep.ToString().c_str());
  EXPECT_EQ(CountOp(out, "fused_elementwise"), out.num_nodes());
  EXPECT_GE(out.num_nodes(), 3);
  for (const Node& n : out.nodes()) EXPECT_LE(n.inputs.size(), size_t{fused::kMaxInputs});
}

TEST(ElementwiseFusion, TinyUNet) {
  for (const char* choice : {"self", "convblock"}) {
    SCOPED_TRACE(choice);
    CF_ASSERT_OK_AND_ASSIGN(Graph g, TinyUNetGraph(choice, /*mark_taps=*/true));
    PassReport rep;
    ExpectPassKeepsResults(g, kFuse, 1e-5, &rep);
    std::printf("tiny UNet (%s): %s\n", choice, rep.ToString().c_str());
    // The self-attention UNet's elementwise ops all follow a linear / conv2d or
    // feed several readers (the epilogue's); the ConvBlock's gate is a chain.
    if (std::string(choice) == "convblock") {
      EXPECT_GT(rep.Count("elementwise chain"), 0);
    }
  }
}

TEST(ElementwiseFusion, TinyPixArt) {
  CF_ASSERT_OK_AND_ASSIGN(Graph g, TinyPixArtGraph());
  PassReport rep;
  ExpectPassKeepsResults(g, kFuse, 1e-5, &rep);
  std::printf("tiny PixArt: %s\n", rep.ToString().c_str());
  EXPECT_GT(rep.Count("elementwise chain"), 0);
}

// Forward, loss, gradients (the activations' backward ops) and an SGD
// update: chains inside the backward and update passes, accounting per pass.
TEST(ElementwiseFusion, TrainingGraph) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{16, 6}, DType::f32);
  Value target = b.Input("target", Shape{16, 6}, DType::f32);
  Value h;
  {
    auto s = b.scope("fc1");
    h = Linear(x, b.Parameter("weight", Shape{12, 6}, DType::f32)) + b.Parameter("bias", Shape{12}, DType::f32);
    h = Gelu(Silu(h) * 1.5, /*approximate_tanh=*/true);
  }
  Value pred;
  {
    auto s = b.scope("fc2");
    pred = Sigmoid(Linear(h, b.Parameter("weight", Shape{6, 12}, DType::f32))) * x + x;
  }
  Value loss = MseLoss(pred, target);
  b.MarkOutput(loss, "loss");
  std::vector<Value> params = TrainableParameters(b);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, params));
  for (size_t i = 0; i < params.size(); ++i)
    b.MarkOutput(params[i] * 0.999 + grads[i] * -0.1, "new:" + g.value(params[i].id).name);  // decay + SGD
  CF_ASSERT_OK(b.Finish().status());
  PassReport rep;
  Graph out = ExpectPassKeepsResults(g, kFuse, 1e-5, &rep);
  std::printf("training graph: %s\n", rep.ToString().c_str());
  int backward = 0, update = 0;
  for (const Node& n : out.nodes()) {
    if (n.op->name != "fused_elementwise") continue;
    backward += n.backward;
    update += n.update;
  }
  EXPECT_GT(backward, 0);
  EXPECT_GT(update, 0);
}

// The full-size SD1.5 UNet, shape-only: a forward step (nothing to fuse: its
// elementwise ops follow a linear / conv2d, which the epilogue pass takes, or
// feed several readers) and a training step with the backward graph.
TEST(ElementwiseFusion, FullSizeSd15KeepsAccountingAndThePlannerBound) {
  for (bool training : {false, true}) {
    SCOPED_TRACE(training ? "training" : "forward");
    Graph g;
    Builder b(&g);
    CF_ASSERT_OK_AND_ASSIGN(UNetOutputs u, BuildUNet2DConditionGraph(b, UNet2DConditionConfig::StableDiffusion15(),
                                                                     {.height = 32, .width = 32}));
    if (training) {
      Value target = b.Input("target", u.sample.shape(), u.sample.dtype());
      Value loss = MseLoss(u.sample, target);
      b.MarkOutput(loss, "loss");
      std::vector<Value> params = TrainableParameters(b);
      CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, params));
      for (size_t i = 0; i < params.size(); ++i) b.MarkOutput(grads[i], "grad:" + g.value(params[i].id).name);
    }
    CF_ASSERT_OK(b.Finish().status());
    PassReport rep;
    CF_ASSERT_OK_AND_ASSIGN(Graph fused, FuseElementwiseChains(g, &rep));
    std::printf("SD1.5 32x32 latents %s: %d -> %d nodes: %s\n", training ? "training" : "forward", g.num_nodes(),
                fused.num_nodes(), rep.ToString().c_str());
    ExpectSameAccountingAs(g, fused);
    CF_ASSERT_OK_AND_ASSIGN(MemoryPlan before, PlanMemory(g));
    CF_ASSERT_OK_AND_ASSIGN(MemoryPlan after, PlanMemory(fused));
    CF_EXPECT_OK(VerifyPlan(fused, after));
    std::printf("arena %.1f MiB -> %.1f MiB (lower bound %.1f -> %.1f MiB)\n", before.arena_bytes / 1048576.0,
                after.arena_bytes / 1048576.0, before.lower_bound_bytes / 1048576.0,
                after.lower_bound_bytes / 1048576.0);
    EXPECT_LE(after.ratio(), 1.05);
    if (training) {
      EXPECT_LT(fused.num_nodes(), g.num_nodes());
    }
  }
}

}  // namespace
}  // namespace cf::testing
