// The README's example, as written there, builds, accounts and plans.
#include <gtest/gtest.h>

#include "graph/accounting.h"
#include "graph/planner.h"
#include "ops/ops.h"

namespace cf {
namespace {

TEST(ReadmeExample, BuildsAccountsAndPlans) {
  cf::Graph g;
  cf::Builder b(&g);
  cf::Value x = b.Input("x", cf::Shape{2, 64, 64, 320}, cf::DType::f16);  // NHWC
  cf::Value h;
  {
    auto scope = b.scope("block");
    cf::Value w = b.Parameter("conv.weight", cf::Shape{320, 3, 3, 320}, cf::DType::f16);
    h = cf::Silu(cf::Conv2d(x, w, {}, {1, 1}, {1, 1}));  // [2, 64, 64, 320]
  }
  b.MarkOutput(h, "h");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(h.shape(), (Shape{2, 64, 64, 320}));

  auto report = Account(g);
  ASSERT_TRUE(report.ok()) << report.status().message();
  const ScopeCost* block = report->Find("block");
  ASSERT_NE(block, nullptr);
  // 2 FLOPs per multiply-add: N*H*W*Cout * (kh*kw*Cin).
  EXPECT_EQ(block->cost.mac_flops, int64_t{2} * 2 * 64 * 64 * 320 * (3 * 3 * 320));
  auto plan = PlanMemory(g);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_LE(plan->arena_bytes, int64_t{2} * 64 * 64 * 320 * 2 + 256);
}

}  // namespace
}  // namespace cf
