// GraphRewriter (graph/passes/rewrite.h) and the accounting of absorbed costs.
#include <gtest/gtest.h>

#include "graph/accounting.h"
#include "graph/passes/pass.h"
#include "graph/passes/rewrite.h"
#include "ops/ops.h"

namespace cf {
namespace {

// x -> linear (scope blk.proj) -> + bias (scope blk) -> silu -> output "y" (and "h", the linear).
void Build(Graph* g, bool linear_is_output = true) {
  Builder b(g);
  Value x = b.Input("x", Shape{2, 5, 8}, DType::f32);
  auto s = b.scope("blk");
  Value h;
  {
    auto p = b.scope("proj");
    Value w = b.Parameter("weight", Shape{6, 8}, DType::f32);
    h = Linear(x, w);
  }
  Value bias = b.Parameter("bias", Shape{6}, DType::f32);
  Value y = Silu(h + bias);
  b.MarkOutput(y, "y");
  if (linear_is_output) b.MarkOutput(h, "h");
  ASSERT_TRUE(b.ok()) << b.status();
}

TEST(GraphRewriter, CopyingEveryNodeGivesTheSameGraph) {
  Graph g;
  Build(&g);
  GraphRewriter rw(g);
  for (const Node& n : g.nodes()) ASSERT_TRUE(rw.Copy(n.id).ok());
  auto out = rw.Finish();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->ToText(), g.ToText());
  EXPECT_EQ(out->Outputs(), g.Outputs());
}

TEST(GraphRewriter, OptimizeWithEverythingOffLeavesTheGraphUnchanged) {
  Graph g;
  Build(&g);
  auto out = OptimizeGraph(g, PassOptions::None());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->ToText(), g.ToText());
}

// A hand-made linear+bias fusion: the linear is dropped at its place, a
// linear with the add's bias is emitted at the add's place, standing for the
// add's output. Every scope keeps its FLOPs in every category; bytes drop.
TEST(GraphRewriter, AbsorbedCostsStayInTheirScopes) {
  Graph g;
  Build(&g, /*linear_is_output=*/false);
  const Node* lin = nullptr;
  const Node* add = nullptr;
  for (const Node& n : g.nodes()) {
    if (n.op->name == "linear") lin = &n;
    if (n.op->name == "add") add = &n;
  }
  ASSERT_NE(lin, nullptr);
  ASSERT_NE(add, nullptr);
  GraphRewriter rw(g);
  for (const Node& n : g.nodes()) {
    if (n.id == lin->id) continue;
    if (n.id != add->id) {
      ASSERT_TRUE(rw.Copy(n.id).ok());
      continue;
    }
    Node f;
    f.op = lin->op;
    f.attrs = lin->attrs;
    f.scope = lin->scope;
    f.inputs = {rw.Map(lin->inputs[0]), rw.Map(lin->inputs[1]), rw.Map(add->inputs[1])};
    std::vector<TensorType> in;
    for (int i : f.inputs) in.push_back(rw.graph().value(i).type);
    f.cost = FusedCost(lin->cost, CostOf(*f.op, f.attrs, in, {g.value(add->outputs[0]).type}));
    Absorb(*add, &f.absorbed);
    ASSERT_TRUE(rw.Emit(f, {add->outputs[0]}).ok());
  }
  auto out = rw.Finish();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->num_nodes(), g.num_nodes() - 1);
  auto before = Account(g);
  auto after = Account(*out);
  ASSERT_TRUE(before.ok() && after.ok());
  for (const char* scope : {"", "blk", "blk.proj"}) {
    const ScopeCost* a = before->Find(scope);
    const ScopeCost* b = after->Find(scope);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(a->cost.mac_flops, b->cost.mac_flops) << scope;
    EXPECT_EQ(a->cost.bias_flops, b->cost.bias_flops) << scope;
    EXPECT_EQ(a->cost.elementwise_flops, b->cost.elementwise_flops) << scope;
    EXPECT_EQ(a->cost.transcendentals, b->cost.transcendentals) << scope;
    EXPECT_EQ(a->params, b->params) << scope;
  }
  EXPECT_GT(before->Find("blk")->self.elementwise_flops, 0);
  EXPECT_LT(after->root().cost.bytes_read, before->root().cost.bytes_read);
  // Only the add's scope and op see the add.
  auto adds = Account(*out, {.ops = {"add"}});
  ASSERT_TRUE(adds.ok());
  EXPECT_EQ(adds->root().cost.elementwise_flops, add->cost.elementwise_flops);
  auto backward = Account(*out, {.pass = Pass::kBackward});
  ASSERT_TRUE(backward.ok());
  EXPECT_EQ(backward->root().cost.total_flops(), 0);
}

TEST(GraphRewriter, RefusesToDropAnOutput) {
  Graph g;
  Build(&g);
  GraphRewriter rw(g);
  for (const Node& n : g.nodes()) {
    if (n.op->name == "silu") continue;
    ASSERT_TRUE(rw.Copy(n.id).ok());
  }
  EXPECT_FALSE(rw.Finish().ok());
}

TEST(GraphRewriter, ReadingADroppedValueIsAnError) {
  Graph g;
  Build(&g);
  GraphRewriter rw(g);
  bool failed = false;
  for (const Node& n : g.nodes()) {
    if (n.op->name == "linear") continue;
    failed = failed || !rw.Copy(n.id).ok();
  }
  EXPECT_TRUE(failed);
}

TEST(GraphRewriter, OutputsKeepTheirOrder) {
  Graph g;
  Build(&g);
  // Rebuild with the outputs' values made in another order is not possible by
  // copying, so check the order rule itself: positions first, by position.
  GraphRewriter rw(g);
  for (const Node& n : g.nodes()) ASSERT_TRUE(rw.Copy(n.id).ok());
  auto out = rw.Finish();
  ASSERT_TRUE(out.ok());
  std::vector<std::string> names;
  for (int id : out->Outputs()) names.push_back(out->value(id).output_name);
  EXPECT_EQ(names, (std::vector<std::string>{"h", "y"}));
  Graph swapped = *out;
  swapped.mutable_value(out->FindOutput("y")).output_position = 0;
  swapped.mutable_value(out->FindOutput("h")).output_position = 1;
  names.clear();
  for (int id : swapped.Outputs()) names.push_back(swapped.value(id).output_name);
  EXPECT_EQ(names, (std::vector<std::string>{"y", "h"}));
}

}  // namespace
}  // namespace cf
