// Graph passes against the unfused graph (docs/passes.md): epilogue fusion
// into linear / matmul / conv2d on small graphs and on the tiny SD1.5 UNet
// and PixArt of nn/, a ConvBlock, a training graph with backward; exact
// per-scope accounting; refusals; constant hoisting in the executor.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "graph/accounting.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "graph/passes/epilogue.h"
#include "graph/passes/pass.h"
#include "nn/convblock.h"
#include "ops/ops.h"
#include "tests/graph/pass_check.h"

namespace cf::testing {
namespace {

// Runs `g` unfused and fused on the same random values; every output within
// `tol` (relative to its largest value); accounting identical. Returns the report.
PassReport ExpectFusedMatches(const Graph& g, double tol, uint64_t seed = 1) {
  const auto params = RandomParametersOf(g, seed);
  const auto inputs = RandomInputsOf(g, seed + 1000);
  auto want = RunWithPasses(g, PassOptions::None(), params, inputs);
  EXPECT_TRUE(want.ok()) << want.status();
  PassReport report;
  int nodes = 0;
  auto got = RunWithPasses(g, PassOptions{}, params, inputs, &report, &nodes);
  EXPECT_TRUE(got.ok()) << got.status();
  if (!want.ok() || !got.ok()) return report;
  for (const auto& [name, t] : *want) {
    const double rel = RelativeError(ToDoubles(got->at(name)), ToDoubles(t));
    EXPECT_LE(rel, tol) << name;
  }
  auto fused = OptimizeGraph(g, PassOptions{});
  EXPECT_TRUE(fused.ok()) << fused.status();
  if (fused.ok()) {
    ExpectSameAccountingAs(g, *fused);
    EXPECT_EQ(fused->num_nodes(), nodes);
  }
  std::printf("%s\n", report.ToString().c_str());
  return report;
}

// ---- small graphs, one per pattern ------------------------------------------------------------

Graph LinearChain(DType dt, bool residual = true) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 7, 24}, dt);
  Value r = b.Input("r", Shape{2, 7, 40}, dt);
  auto blk = b.scope("blk");
  Value h;
  {
    auto s = b.scope("proj");
    h = Linear(x, b.Parameter("weight", Shape{40, 24}, dt));
  }
  h = Silu(h + b.Parameter("bias", Shape{40}, dt));
  if (residual) h = h + r;
  b.MarkOutput(h, "y");
  return g;
}

Graph ConvChain(DType dt, bool depthwise = false) {
  Graph g;
  Builder b(&g);
  const int64_t c = depthwise ? 12 : 16;
  Value x = b.Input("x", Shape{2, 9, 11, 12}, dt);
  Value r = b.Input("r", Shape{2, 9, 11, c}, dt);
  Value img = b.Input("img", Shape{2, 1, 1, c}, dt);
  auto blk = b.scope("blk");
  Value y;
  {
    auto s = b.scope("conv");
    Value w = b.Parameter("weight", Shape{c, 3, 3, depthwise ? 1 : 12}, dt);
    y = Conv2d(x, w, std::nullopt, {.padding = 1, .groups = depthwise ? 12 : 1});
  }
  y = y + b.Parameter("bias", Shape{c}, dt);
  y = Gelu(y + img);
  y = r + y;  // the residual on the left
  b.MarkOutput(y, "y");
  return g;
}

TEST(EpilogueFusion, LinearBiasSiluResidual) {
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(DTypeName(dt));
    PassReport r = ExpectFusedMatches(LinearChain(dt), dt == DType::f32 ? 1e-5 : 2e-2);
    EXPECT_EQ(r.Count("linear+bias"), 1);
    EXPECT_EQ(r.Count("linear+silu"), 1);
    EXPECT_EQ(r.Count("linear+residual"), 1);
    EXPECT_EQ(r.nodes_after, 1);
  }
}

TEST(EpilogueFusion, ConvBiasImageBiasGeluResidual) {
  for (bool depthwise : {false, true}) {
    for (DType dt : {DType::f32, DType::f16}) {
      SCOPED_TRACE(absl::StrCat(DTypeName(dt), depthwise ? " depthwise" : ""));
      PassReport r = ExpectFusedMatches(ConvChain(dt, depthwise), dt == DType::f32 ? 1e-5 : 2e-2);
      EXPECT_EQ(r.Count("conv2d+bias"), 1);
      EXPECT_EQ(r.Count("conv2d+image_bias"), 1);
      EXPECT_EQ(r.Count("conv2d+gelu"), 1);
      EXPECT_EQ(r.Count("conv2d+residual"), 1);
      EXPECT_EQ(r.nodes_after, 1);
    }
  }
}

TEST(EpilogueFusion, BatchedMatmulResidualAndTanhGelu) {
  Graph g;
  Builder b(&g);
  Value a = b.Input("a", Shape{3, 5, 8}, DType::f32);
  Value w = b.Input("w", Shape{3, 6, 8}, DType::f32);
  Value r = b.Input("r", Shape{3, 5, 6}, DType::f32);
  Value y = Gelu(MatMul(a, w, std::nullopt, {.trans_b = true}), /*approximate_tanh=*/true) + r;
  b.MarkOutput(y, "y");
  PassReport rep = ExpectFusedMatches(g, 1e-5);
  EXPECT_EQ(rep.Count("matmul+gelu_tanh"), 1);
  EXPECT_EQ(rep.Count("matmul+residual"), 1);
}

TEST(EpilogueFusion, LinearImageBias) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 6, 8}, DType::f32);
  Value img = b.Input("img", Shape{2, 1, 5}, DType::f32);
  Value y = Linear(x, b.Parameter("w", Shape{5, 8}, DType::f32), b.Parameter("b", Shape{5}, DType::f32)) + img;
  b.MarkOutput(y, "y");
  PassReport rep = ExpectFusedMatches(g, 1e-5);
  EXPECT_EQ(rep.Count("linear+image_bias"), 1);
}

// ---- refusals ------------------------------------------------------------------------------------

// group_norm -> silu becomes group_norm(activation="silu"); a SiLU whose input
// has a second reader stays.
TEST(EpilogueFusion, GroupNormSilu) {
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(DTypeName(dt));
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2, 5, 7, 16}, dt);
    Value gn;
    {
      auto s = b.scope("norm1");
      gn = GroupNorm(x, b.Parameter("weight", Shape{16}, dt), b.Parameter("bias", Shape{16}, dt), 4, 1e-5);
    }
    Value y;
    {
      auto s = b.scope("act");
      y = Silu(gn);
    }
    b.MarkOutput(y, "y");
    PassReport r = ExpectFusedMatches(g, dt == DType::f32 ? 1e-5 : 2e-2);
    EXPECT_EQ(r.Count("group_norm+silu"), 1);
    EXPECT_EQ(r.nodes_after, 1);
  }
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 5, 7, 16}, DType::f32);
  Value gn = GroupNorm(x, std::nullopt, std::nullopt, 4, 1e-5);
  b.MarkOutput(Silu(gn) + gn, "y");
  PassReport r = ExpectFusedMatches(g, 1e-5);
  EXPECT_EQ(r.Count("group_norm+silu"), 0);
}

TEST(EpilogueFusion, RefusesSharedIntermediatesAndGraphOutputs) {
  {
    // The linear's output is also read by a second op.
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4, 8}, DType::f32);
    Value h = Linear(x, b.Parameter("w", Shape{8, 8}, DType::f32));
    b.MarkOutput(Silu(h), "a");
    b.MarkOutput(h * h, "b");
    CF_ASSERT_OK_AND_ASSIGN(Graph out, FuseEpilogues(g));
    EXPECT_EQ(out.ToText(), g.ToText());
  }
  {
    // The linear's output is a graph output.
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4, 8}, DType::f32);
    Value h = Linear(x, b.Parameter("w", Shape{8, 8}, DType::f32));
    b.MarkOutput(h, "h");
    b.MarkOutput(Silu(h), "a");
    CF_ASSERT_OK_AND_ASSIGN(Graph out, FuseEpilogues(g));
    EXPECT_EQ(out.ToText(), g.ToText());
  }
  {
    // A bias after the activation is no bias; a second activation is not fused.
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4, 8}, DType::f32);
    Value h = Linear(x, b.Parameter("w", Shape{8, 8}, DType::f32), std::nullopt, {.activation = "gelu"});
    b.MarkOutput(Silu(h + b.Parameter("b", Shape{8}, DType::f32)), "a");
    CF_ASSERT_OK_AND_ASSIGN(Graph out, FuseEpilogues(g));
    EXPECT_EQ(out.ToText(), g.ToText());
  }
}

TEST(EpilogueFusion, NoFuseLeavesTheGraphUnchanged) {
  Graph g = LinearChain(DType::f32);
  ExecutorOptions eo;
  eo.passes = PassOptions::None();
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
  EXPECT_EQ(exec->graph().ToText(), g.ToText());
  EXPECT_TRUE(exec->pass_report().fired.empty());
  CF_ASSERT_OK_AND_ASSIGN(auto on, Executor::Create(g));
  EXPECT_LT(on->graph().num_nodes(), g.num_nodes());
}

TEST(EpilogueFusion, FusedFormsHaveNoVjp) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4, 8}, DType::f32);
  Value r = b.Input("r", Shape{4, 8}, DType::f32);
  Value w = b.Parameter("w", Shape{8, 8}, DType::f32);
  Value y = b.Op1("linear", {x, w, r}, {{"residual", true}});
  CF_ASSERT_OK(b.status());
  auto grads = Grad(b, Sum(y), {w});
  ASSERT_FALSE(grads.ok());
  EXPECT_NE(std::string(grads.status().message()).find("no VJP"), std::string::npos) << grads.status();
}

// ---- real graphs ---------------------------------------------------------------------------------

TEST(EpilogueFusion, TinyUNetMatchesUnfused) {
  for (const char* choice : {"self", "convblock"}) {
    SCOPED_TRACE(choice);
    CF_ASSERT_OK_AND_ASSIGN(Graph g, TinyUNetGraph(choice, /*mark_taps=*/true));  // outputs inside: not fused past
    PassReport r = ExpectFusedMatches(g, 1e-4);
    EXPECT_GT(r.Count("conv2d+residual") + r.Count("linear+residual"), 0);
    EXPECT_LT(r.nodes_after, r.nodes_before);
    if (std::string(choice) == "convblock") {
      EXPECT_GT(r.Count("conv2d+image_bias") + r.Count("linear+image_bias"), 0);
    }
  }
}

TEST(EpilogueFusion, TinyPixArtMatchesUnfused) {
  CF_ASSERT_OK_AND_ASSIGN(Graph g, TinyPixArtGraph());
  PassReport r = ExpectFusedMatches(g, 1e-4);
  EXPECT_LT(r.nodes_after, r.nodes_before);
}

TEST(EpilogueFusion, ConvBlockMatchesUnfused) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 12, 12, 32}, DType::f32);
  {
    auto s = b.scope("block");
    b.MarkOutput(ConvBlock(b, x), "y");
  }
  CF_ASSERT_OK(b.Finish().status());
  PassReport r = ExpectFusedMatches(g, 1e-5);
  EXPECT_GT(r.Count("conv2d+image_bias") + r.Count("linear+image_bias"), 0) << r.ToString();
}

// Forward, loss, gradients and an SGD update in one graph: the passes run on
// the final graph, backward nodes included, and keep each pass's accounting.
TEST(EpilogueFusion, TrainingGraphMatchesUnfused) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{16, 6}, DType::f32);
  Value target = b.Input("target", Shape{16, 3}, DType::f32);
  Value h, pred;
  {
    auto s = b.scope("fc1");
    h = Silu(Linear(x, b.Parameter("weight", Shape{12, 6}, DType::f32)) + b.Parameter("bias", Shape{12}, DType::f32));
  }
  {
    auto s = b.scope("fc2");
    Value skip = Linear(x, b.Parameter("skip", Shape{3, 6}, DType::f32));
    pred = Linear(h, b.Parameter("weight", Shape{3, 12}, DType::f32)) + skip;
  }
  Value loss = MseLoss(pred, target);
  b.MarkOutput(loss, "loss");
  std::vector<Value> params = TrainableParameters(b);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, params));
  for (size_t i = 0; i < params.size(); ++i)
    b.MarkOutput(params[i] + grads[i] * -0.1, "new:" + g.value(params[i].id).name);
  CF_ASSERT_OK(b.Finish().status());
  PassReport r = ExpectFusedMatches(g, 1e-5);
  EXPECT_LT(r.nodes_after, r.nodes_before);
}

// ---- constant hoisting ------------------------------------------------------------------------------

// y = x · (2 wᵀ) + v: the transpose and the scale read only a parameter,
// so the executor runs them at the first Run and after SetParameter("w").
TEST(ConstantHoisting, ParameterOnlyNodesRunOnceAndAfterSetParameter) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4, 8}, DType::f32);
  Value w = b.Parameter("w", Shape{6, 8}, DType::f32);
  Value v = b.Parameter("v", Shape{6}, DType::f32);
  Value wt = Scale(Transpose(w, 0, 1), 2.0);          // [8, 6], hoisted
  Value vv = Reshape(v, {1, 6});                      // a view of a parameter: bound, not hoisted
  b.MarkOutput(MatMul(x, wt) + vv, "y");
  CF_ASSERT_OK(b.status());
  const Tensor xs = RandomTensor(Shape{4, 8}, DType::f32, 1);
  const Tensor w1 = RandomTensor(Shape{6, 8}, DType::f32, 2), w2 = RandomTensor(Shape{6, 8}, DType::f32, 3);
  const Tensor vs = RandomTensor(Shape{6}, DType::f32, 4);
  auto reference = [&](const Tensor& wval) {
    auto out = RunWithPasses(g, PassOptions::None(), {{"w", wval}, {"v", vs}}, {{"x", xs}});
    return out.ok() ? ToDoubles(out->at("y")) : std::vector<double>{};
  };
  ExecutorOptions eo;
  eo.passes = {.fuse = false, .cse = false, .fold_constants = true};
  eo.poison = true;
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
  EXPECT_EQ(exec->num_hoisted(), 2);
  EXPECT_EQ(exec->graph().num_nodes(), g.num_nodes());  // accounting sees every node
  CF_ASSERT_OK(exec->SetParameter("w", w1));
  CF_ASSERT_OK(exec->SetParameter("v", vs));
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->RunNamed({{"x", xs}}));
  EXPECT_EQ(exec->last_run().hoisted, 2);
  EXPECT_LE(RelativeError(ToDoubles(out["y"]), reference(w1)), 1e-6);
  CF_ASSERT_OK_AND_ASSIGN(out, exec->RunNamed({{"x", xs}}));
  EXPECT_EQ(exec->last_run().hoisted, 0);
  EXPECT_LE(RelativeError(ToDoubles(out["y"]), reference(w1)), 1e-6);
  CF_ASSERT_OK(exec->SetParameter("v", vs));  // not read by a hoisted node
  CF_ASSERT_OK_AND_ASSIGN(out, exec->RunNamed({{"x", xs}}));
  EXPECT_EQ(exec->last_run().hoisted, 0);
  CF_ASSERT_OK(exec->SetParameter("w", w2));
  CF_ASSERT_OK_AND_ASSIGN(out, exec->RunNamed({{"x", xs}}));
  EXPECT_EQ(exec->last_run().hoisted, 2);
  EXPECT_LE(RelativeError(ToDoubles(out["y"]), reference(w2)), 1e-6);
  // Off: nothing hoisted, the step runs every node.
  eo.passes = PassOptions::None();
  CF_ASSERT_OK_AND_ASSIGN(auto plain, Executor::Create(g, eo));
  EXPECT_EQ(plain->num_hoisted(), 0);
}

// ---- full-size graph: shape-only, accounting and the planner bound ----------------------------------

TEST(EpilogueFusion, FullSizeSd15KeepsAccountingAndThePlannerBound) {
  Graph g;
  Builder b(&g);
  CF_ASSERT_OK(BuildUNet2DConditionGraph(b, UNet2DConditionConfig::StableDiffusion15(), {.height = 64, .width = 64})
                   .status());
  PassReport r;
  CF_ASSERT_OK_AND_ASSIGN(Graph fused, OptimizeGraph(g, PassOptions{}, &r));
  std::printf("SD1.5 64x64 latents: %s\n", r.ToString().c_str());
  ExpectSameAccountingAs(g, fused);
  CF_ASSERT_OK_AND_ASSIGN(MemoryPlan before, PlanMemory(g));
  CF_ASSERT_OK_AND_ASSIGN(MemoryPlan after, PlanMemory(fused));
  CF_EXPECT_OK(VerifyPlan(fused, after));
  std::printf("arena %.1f MiB -> %.1f MiB (lower bound %.1f -> %.1f MiB)\n", before.arena_bytes / 1048576.0,
              after.arena_bytes / 1048576.0, before.lower_bound_bytes / 1048576.0,
              after.lower_bound_bytes / 1048576.0);
  EXPECT_LE(after.ratio(), 1.05);
  EXPECT_LE(after.arena_bytes, before.arena_bytes);
  EXPECT_LT(fused.num_nodes(), g.num_nodes());
}

}  // namespace
}  // namespace cf::testing
