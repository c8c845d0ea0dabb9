// The builder's contract with its users (docs/api.md): misuse is an error,
// never a crash or a silently wrong graph. Each test is a mistake a new user
// made, kept as a regression test.
#include <gtest/gtest.h>

#include "graph/accounting.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "graph/planner.h"
#include "ops/ops.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

TEST(ValueAccessors, SafeOnAnInvalidValue) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f32);
  Value bad = Reshape(x, {4, 4});  // fails: 6 elements
  ASSERT_FALSE(b.ok());
  EXPECT_FALSE(bad.valid());
  // The debug print after a failed op: no crash, and it says what happened.
  EXPECT_EQ(bad.shape(), Shape{});
  EXPECT_EQ(bad.rank(), 0);
  EXPECT_EQ(bad.dim(0), -1);
  EXPECT_EQ(bad.dim(-1), -1);
  EXPECT_TRUE(Contains(bad.ToString(), "invalid")) << bad.ToString();
  EXPECT_EQ(Value{}.type().shape, Shape{});
  // A forged id is invalid too, not an out-of-range read.
  Value forged{&b, 1000};
  EXPECT_FALSE(forged.valid());
  EXPECT_EQ(forged.shape(), Shape{});
  EXPECT_TRUE(Contains(forged.ToString(), "not in this builder's graph"));
  // Valid values: dim() counts from the end and refuses out-of-range axes.
  EXPECT_EQ(x.dim(-1), 3);
  EXPECT_EQ(x.dim(2), -1);
  EXPECT_TRUE(Contains(x.ToString(), "f32[2, 3]")) << x.ToString();
}

TEST(ValueAccessors, ShapeSurvivesGraphGrowth) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{7, 5}, DType::f32);
  const Shape& s = x.shape();  // refers into the graph's value table
  const int64_t* first_dim = &s.dims()[0];
  Value h = x;
  for (int i = 0; i < 5000; ++i) h = Scale(h, 1.0);  // the table grows a lot
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(&x.shape(), &s);  // not moved
  EXPECT_EQ(&s.dims()[0], first_dim);
  EXPECT_EQ(s, (Shape{7, 5}));
  EXPECT_EQ(h.shape(), (Shape{7, 5}));
}

TEST(Builder, RefusesValuesOfAnotherBuilder) {
  Graph g1, g2;
  Builder b1(&g1), b2(&g2);
  Value x1 = b1.Input("x", Shape{4}, DType::f32);
  Value x2 = b2.Input("x", Shape{4}, DType::f32);
  b2.MarkOutput(x1, "y");
  ASSERT_FALSE(b2.ok());
  EXPECT_TRUE(Contains(b2.status().message(), "another builder")) << b2.status();
  EXPECT_EQ(g2.Outputs().size(), 0u);
  EXPECT_FALSE(g1.value(x1.id).is_output);  // nothing marked in the other graph either

  Graph g3;
  Builder b3(&g3);
  Value x3 = b3.Input("x", Shape{4}, DType::f32);
  Value sum = x3 + x2;  // x2 is b2's
  EXPECT_FALSE(sum.valid());
  EXPECT_TRUE(Contains(b3.status().message(), "another builder")) << b3.status();

  Graph g4;
  Builder b4(&g4);
  b4.Input("x", Shape{4}, DType::f32);
  b4.MarkOutput(Value{&b4, 57}, "y");  // an id past the graph's values
  ASSERT_FALSE(b4.ok());
  EXPECT_TRUE(Contains(b4.status().message(), "not a valid value")) << b4.status();
}

TEST(Builder, OutputsAreMarkedOnceUnderUniqueNames) {
  {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4}, DType::f32);
    b.MarkOutput(x * 2.0, "a");
    Value y = x + 1.0;
    b.MarkOutput(y, "b");
    b.MarkOutput(y, "c");  // the same value under a second name
    ASSERT_FALSE(b.ok());
    EXPECT_TRUE(Contains(b.status().message(), "already output 'b'")) << b.status();
  }
  {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{4}, DType::f32);
    auto s = b.scope("head");
    b.MarkOutput(x * 2.0, "out");
    b.MarkOutput(x * 3.0, "out");
    ASSERT_FALSE(b.ok());
    EXPECT_TRUE(Contains(b.status().message(), "two outputs named 'out'")) << b.status();
    EXPECT_TRUE(Contains(b.status().message(), "at 'head'")) << b.status();
  }
}

TEST(Builder, LeafNamesAreUnique) {
  {
    Graph g;
    Builder b(&g);
    b.Input("x", Shape{4}, DType::f32);
    Value again = b.Input("x", Shape{8}, DType::f32);
    EXPECT_FALSE(again.valid());
    EXPECT_TRUE(Contains(b.status().message(), "two inputs named 'x'")) << b.status();
  }
  {
    Graph g;
    Builder b(&g);
    auto s = b.scope("block");
    b.Parameter("weight", Shape{4}, DType::f32);
    Value again = b.Parameter("weight", Shape{4}, DType::f32);
    EXPECT_FALSE(again.valid());
    EXPECT_TRUE(Contains(b.status().message(), "two parameters named 'block.weight'")) << b.status();
  }
  {
    // The same name in different scopes is two parameters.
    Graph g;
    Builder b(&g);
    {
      auto s = b.scope("a");
      b.Parameter("weight", Shape{4}, DType::f32);
    }
    auto s = b.scope("b");
    b.Parameter("weight", Shape{4}, DType::f32);
    EXPECT_TRUE(b.ok()) << b.status();
  }
}

// An invalid Value where an optional input goes is an error: a failed op
// upstream must not be mistaken for "no bias".
TEST(Builder, InvalidOptionalInputIsNotAbsent) {
  struct Case {
    const char* name;
    std::function<Value(Builder&, Value x, Value w)> build;
  };
  const std::vector<Case> cases = {
      {"linear", [](Builder&, Value x, Value w) { return Linear(x, w, Value{}); }},
      {"matmul", [](Builder&, Value x, Value w) { return MatMul(x, w, Value{}, {.trans_b = true}); }},
      {"conv2d",
       [](Builder& b, Value, Value) {
         Value img = b.Input("img", Shape{1, 5, 5, 4}, DType::f32);
         Value k = b.Parameter("k", Shape{4, 3, 3, 4}, DType::f32);
         return Conv2d(img, k, Value{}, {.padding = 1});
       }},
      {"group_norm", [](Builder&, Value x, Value w) { return GroupNorm(x, Value{}, Value{}, 2); }},
      {"layer_norm", [](Builder&, Value x, Value) { return LayerNorm(x, Value{}, Value{}); }},
      {"mse_loss", [](Builder&, Value x, Value) { return MseLoss(x, x, Value{}); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{3, 4}, DType::f32);
    Value w = b.Parameter("w", Shape{5, 4}, DType::f32);
    Value y = c.build(b, x, w);
    EXPECT_FALSE(y.valid());
    ASSERT_FALSE(b.ok());
    EXPECT_TRUE(Contains(b.status().message(), "invalid Value")) << b.status();
    EXPECT_TRUE(Contains(b.status().message(), c.name)) << b.status();
  }
  // Absent (std::nullopt, or {}) is fine.
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{3, 4}, DType::f32);
  Value w = b.Parameter("w", Shape{5, 4}, DType::f32);
  EXPECT_EQ(Linear(x, w).shape(), (Shape{3, 5}));
  EXPECT_EQ(Linear(x, w, {}).shape(), (Shape{3, 5}));
  EXPECT_EQ(LayerNorm(x).shape(), (Shape{3, 4}));
  EXPECT_TRUE(b.ok()) << b.status();
}

// A forgotten b.status() check: the graph itself refuses to be used.
TEST(Builder, FailedGraphIsRefusedEverywhere) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f32);
  b.MarkOutput(x * 2.0, "ok");
  Value bad = Reshape(x, {5});  // the first error
  b.MarkOutput(Silu(bad), "bad");
  ASSERT_FALSE(b.ok());
  const std::string first(b.status().message());
  EXPECT_TRUE(Contains(first, "reshape")) << first;

  for (const Status& s : {Account(g).status(), PlanMemory(g).status(), Executor::Create(g).status(),
                          b.Finish().status()}) {
    EXPECT_FALSE(s.ok());
    EXPECT_TRUE(Contains(s.message(), first)) << s;
  }
}

TEST(Builder, FinishReturnsAVerifiedGraph) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f32);
  b.MarkOutput(Exp(x), "y");
  auto done = b.Finish();
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(*done, &g);
  auto exec = Executor::Create(**done);
  ASSERT_TRUE(exec.ok()) << exec.status();
  auto in = Tensor::FromValues<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  ASSERT_TRUE(in.ok());
  auto out = (*exec)->Run({{"x", *in}});
  ASSERT_TRUE(out.ok()) << out.status();
  auto y = (*out)[0].ToVector<double>();
  ASSERT_TRUE(y.ok());
  for (int i = 0; i < 6; ++i) EXPECT_NEAR((*y)[i], std::exp(i), 1e-6 * std::exp(i));
}

TEST(Accounting, OptimizerUpdateIsItsOwnPass) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{8, 4}, DType::f32);
  Value w = b.Parameter("w", Shape{3, 4}, DType::f32);
  Value loss = Sum(Linear(x, w));
  b.MarkOutput(loss, "loss");
  auto grads = Grad(b, loss, {w});
  ASSERT_TRUE(grads.ok()) << grads.status();
  Value updated;
  {
    auto s = b.scope("sgd");
    updated = w - (*grads)[0] * 0.1;
  }
  b.MarkOutput(updated, "w_new");
  ASSERT_TRUE(b.ok()) << b.status();

  auto all = Account(g), fwd = Account(g, {.pass = Pass::kForward}), bwd = Account(g, {.pass = Pass::kBackward}),
       upd = Account(g, {.pass = Pass::kUpdate});
  ASSERT_TRUE(all.ok() && fwd.ok() && bwd.ok() && upd.ok());
  // Forward: one linear (2*8*3*4 MAC FLOPs) and the sum; update: 12 multiplies and 12 subtracts.
  EXPECT_EQ(fwd->root().cost.mac_flops, 2 * 8 * 3 * 4);
  EXPECT_EQ(upd->root().cost.mac_flops, 0);
  EXPECT_EQ(upd->root().cost.elementwise_flops, 2 * 12);
  EXPECT_GT(upd->root().nodes, 0);
  EXPECT_EQ(upd->Find("sgd")->nodes, upd->root().nodes);
  EXPECT_EQ(fwd->root().nodes + bwd->root().nodes + upd->root().nodes, all->root().nodes);
  EXPECT_EQ(fwd->Find("sgd"), nullptr);
}

TEST(Accounting, MarkdownUnitsFitTheNumbers) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4, 8}, DType::f32);
  Value w = b.Parameter("w", Shape{8, 8}, DType::f32);
  b.MarkOutput(Linear(x, w), "y");  // 512 MAC FLOPs
  auto r = Account(g);
  ASSERT_TRUE(r.ok());
  const std::string md = r->ToMarkdown();
  EXPECT_TRUE(Contains(md, "Table-1 FLOP")) << md;   // plain FLOPs, not 0.000 GFLOP
  EXPECT_TRUE(Contains(md, "| 512 |")) << md;
  EXPECT_FALSE(Contains(md, "0.000")) << md;
  EXPECT_TRUE(Contains(md, "param B")) << md;        // 256 bytes

  Graph g2;
  Builder b2(&g2);
  Value x2 = b2.Input("x", Shape{4096, 320}, DType::f32);
  Value w2 = b2.Parameter("w", Shape{320, 320}, DType::f32);
  b2.MarkOutput(Linear(x2, w2), "y");  // 838.9 MFLOP, 400 KiB of weights
  auto r2 = Account(g2);
  ASSERT_TRUE(r2.ok());
  const std::string md2 = r2->ToMarkdown();
  EXPECT_TRUE(Contains(md2, "Table-1 MFLOP")) << md2;
  EXPECT_TRUE(Contains(md2, "838.861")) << md2;
  EXPECT_TRUE(Contains(md2, "param KiB")) << md2;
  EXPECT_TRUE(Contains(md2, "400.000")) << md2;
}

TEST(Conv2dErrors, HintAtPyTorchLayouts) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{1, 4, 16, 16}, DType::f32);            // NCHW by mistake
  Value w = b.Parameter("w", Shape{8, 4, 3, 3}, DType::f32);          // OIHW by mistake
  Conv2d(x, w, std::nullopt, {.padding = 1});
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(Contains(b.status().message(), "looks OIHW")) << b.status();
  EXPECT_TRUE(Contains(b.status().message(), "channels-last")) << b.status();

  Graph g2;
  Builder b2(&g2);
  Value x2 = b2.Input("x", Shape{1, 16, 16, 4}, DType::f32);
  Value w2 = b2.Parameter("w", Shape{8, 3, 3, 5}, DType::f32);  // a plain channel mismatch: no hint
  Conv2d(x2, w2);
  ASSERT_FALSE(b2.ok());
  EXPECT_FALSE(Contains(b2.status().message(), "looks")) << b2.status();
}

TEST(VerifyPlan, StalePlanIsAUserError) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{16}, DType::f32);
  Value h = Exp(x) * 2.0;
  b.MarkOutput(h, "y");
  auto plan = PlanMemory(g);
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(VerifyPlan(g, *plan).ok());
  b.MarkOutput(Exp(h) + 1.0, "z");  // the graph grew after planning
  Status s = VerifyPlan(g, *plan);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(Contains(s.message(), "stale")) << s;
}

}  // namespace
}  // namespace cf::testing
