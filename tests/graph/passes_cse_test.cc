// Common-subexpression elimination (graph/passes/cse.h) against the graph as
// built: duplicates merged (add / mul with their inputs swapped too, chains
// of duplicates through the fixed point), what it refuses (other attributes,
// stateful ops, duplicates that are graph outputs), the tiny SD1.5 UNet and
// PixArt of nn/ and a training graph, with outputs and per-scope accounting
// unchanged.
#include <gtest/gtest.h>

#include <cstdio>

#include "graph/autodiff.h"
#include "graph/passes/cse.h"
#include "ops/ops.h"
#include "tests/graph/pass_check.h"

namespace cf::testing {
namespace {

const GraphPass kCse = [](const Graph& g, PassReport* r) { return EliminateCommonSubexpressions(g, r); };

// An op that draws random numbers (as a dropout would): never merged.
StatusOr<std::vector<TensorType>> SameAsInput(const OpCall& c) { return std::vector<TensorType>{c.inputs[0]}; }
CF_REGISTER_OP((OpDef{.name = "cse_test_random",
                      .min_inputs = 1,
                      .max_inputs = 1,
                      .infer = SameAsInput,
                      .stateful = true,
                      .doc = "test op: stateful"}));

TEST(Cse, MergesDuplicatesToAFixedPoint) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{3, 5}, DType::f32), y = b.Input("y", Shape{3, 5}, DType::f32);
  Value a1, a2;
  {
    auto s = b.scope("first");
    a1 = Silu(x + y) * 2.0;  // add, silu, scale
  }
  {
    auto s = b.scope("second");
    a2 = Silu(y + x) * 2.0;  // the same three nodes (add's inputs swapped): merged one after the other
  }
  Value z = Scale(x, 3.0);   // other attributes: kept
  Value w = Scale(x, 2.0);
  b.MarkOutput(a1 * a2 + z * w, "out");
  CF_ASSERT_OK(b.Finish().status());
  PassReport rep;
  Graph out = ExpectPassKeepsResults(g, kCse, 0.0, &rep);
  std::printf("%s\n", rep.ToString().c_str());
  EXPECT_EQ(rep.Count("cse"), 3);
  EXPECT_EQ(out.num_nodes(), g.num_nodes() - 3);
  // The kept nodes carry the dropped ones' FLOPs under "second".
  int absorbed = 0;
  for (const Node& n : out.nodes())
    for (const AbsorbedCost& a : n.absorbed) absorbed += a.scope == "second";
  EXPECT_EQ(absorbed, 3);
  // A second run finds nothing.
  CF_ASSERT_OK_AND_ASSIGN(Graph again, EliminateCommonSubexpressions(out));
  EXPECT_EQ(again.ToText(), out.ToText());
}

TEST(Cse, RefusesStatefulOpsAndDuplicateOutputs) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4}, DType::f32);
  Value r1 = b.Op1("cse_test_random", {x}), r2 = b.Op1("cse_test_random", {x});
  Value e1 = Exp(x), e2 = Exp(x);
  b.MarkOutput(r1 + r2, "r");
  b.MarkOutput(e1, "e1");
  b.MarkOutput(e2, "e2");  // both are graph outputs: two values
  CF_ASSERT_OK(b.Finish().status());
  CF_ASSERT_OK_AND_ASSIGN(Graph out, EliminateCommonSubexpressions(g));
  EXPECT_EQ(out.ToText(), g.ToText());
}

TEST(Cse, TinyUNetAndPixArt) {
  {
    CF_ASSERT_OK_AND_ASSIGN(Graph g, TinyUNetGraph());
    PassReport rep;
    ExpectPassKeepsResults(g, kCse, 0.0, &rep);
    std::printf("tiny UNet: %s\n", rep.ToString().c_str());
  }
  {
    CF_ASSERT_OK_AND_ASSIGN(Graph g, TinyPixArtGraph());
    PassReport rep;
    ExpectPassKeepsResults(g, kCse, 0.0, &rep);
    std::printf("tiny PixArt: %s\n", rep.ToString().c_str());
  }
}

// Backward graphs repeat work (a value read by several ops gets the same
// gradient pieces more than once); CSE merges them, per pass.
TEST(Cse, TrainingGraph) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8, 6}, DType::f32);
  Value target = b.Input("target", Shape{8, 6}, DType::f32);
  Value h;
  {
    auto s = b.scope("fc");
    h = Linear(x, b.Parameter("weight", Shape{6, 6}, DType::f32)) + b.Parameter("bias", Shape{6}, DType::f32);
  }
  Value pred = Silu(h) * Sigmoid(h) + Silu(h);  // silu(h) twice
  Value loss = MseLoss(pred, target);
  b.MarkOutput(loss, "loss");
  std::vector<Value> params = TrainableParameters(b);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, params));
  for (size_t i = 0; i < params.size(); ++i) b.MarkOutput(grads[i], "grad:" + g.value(params[i].id).name);
  CF_ASSERT_OK(b.Finish().status());
  PassReport rep;
  ExpectPassKeepsResults(g, kCse, 1e-6, &rep);
  std::printf("training graph: %s\n", rep.ToString().c_str());
  EXPECT_GT(rep.Count("cse"), 0);
}

}  // namespace
}  // namespace cf::testing
