// CPU tests of mse_loss against a float64 reference written here, its VJP
// (pred, target and the per-sample weight) by finite differences, shape
// errors and the cost formulas.
#include <cmath>

#include "graph/autodiff.h"
#include "ops/loss/loss.h"
#include "tests/support/op_harness.h"

namespace cf {
namespace {

using testing::AllClose;
using testing::BuildStatus;
using testing::CheckVjp;
using testing::RandomTensor;
using testing::RunOp1;
using testing::ToDoubles;

double MseRef(const std::vector<double>& p, const std::vector<double>& t, const std::vector<double>* w) {
  const size_t n = p.size();
  if (!w) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += (p[i] - t[i]) * (p[i] - t[i]);
    return s / n;
  }
  const size_t B = w->size(), M = n / B;
  double total = 0;
  for (size_t b = 0; b < B; ++b) {
    double s = 0;
    for (size_t i = b * M; i < (b + 1) * M; ++i) s += (p[i] - t[i]) * (p[i] - t[i]);
    total += (*w)[b] * (s / M);
  }
  return total / B;
}

TEST(LossTest, Mse) {
  uint64_t seed = 1;
  for (const Shape& s : std::vector<Shape>{{1}, {7}, {3, 5}, {2, 4, 9, 9}, {4, 70001}}) {
    for (bool weighted : {false, true}) {
      for (DType t : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
        Tensor p = RandomTensor(s, t, seed++), tg = RandomTensor(s, t, seed++);
        std::vector<Tensor> ins = {p, tg};
        Tensor w;
        if (weighted) {
          w = RandomTensor({s[0]}, t, seed++, 0.1, 5);
          ins.push_back(w);
        }
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("mse_loss", ins));
        ASSERT_EQ(y.shape(), Shape{});
        ASSERT_EQ(y.dtype(), t);
        std::vector<double> vw = weighted ? ToDoubles(w) : std::vector<double>{};
        const double want = MseRef(ToDoubles(p), ToDoubles(tg), weighted ? &vw : nullptr);
        const double tol = t == DType::f64 ? 1e-12 : t == DType::f32 ? 1e-5 : t == DType::f16 ? 2e-3 : 1e-2;
        EXPECT_TRUE(AllClose(ToDoubles(y), {want}, tol, 0)) << s.ToString() << " " << DTypeName(t);
      }
    }
  }
}

TEST(LossTest, MseVjp) {
  Tensor p = RandomTensor({3, 2, 5}, DType::f64, 100), t = RandomTensor({3, 2, 5}, DType::f64, 101);
  Tensor w = RandomTensor({3}, DType::f64, 102, 0.5, 2);
  EXPECT_TRUE(CheckVjp("mse_loss", {p, t}));
  EXPECT_TRUE(CheckVjp("mse_loss", {p, t, w}));
  Tensor p1 = RandomTensor({4}, DType::f64, 103), t1 = RandomTensor({4}, DType::f64, 104);
  EXPECT_TRUE(CheckVjp("mse_loss", {p1, t1, RandomTensor({4}, DType::f64, 105)}));
}

TEST(LossTest, GradOfScalarLoss) {
  // The loss is rank 0, so Grad() can seed it directly.
  Graph g;
  Builder b(&g);
  Value p = b.Input("p", {2, 3}, DType::f32), t = b.Input("t", {2, 3}, DType::f32);
  Value loss = MseLoss(p, t);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(loss.shape(), Shape{});
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, {p}));
  ASSERT_TRUE(grads[0].valid());
  EXPECT_EQ(grads[0].shape(), (Shape{2, 3}));
}

TEST(LossTest, Errors) {
  Status s = BuildStatus("mse_loss", {{{2, 3}, DType::f32}, {{3, 2}, DType::f32}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("mse_loss"), std::string::npos) << s.message();
  EXPECT_NE(std::string(s.message()).find("[3, 2]"), std::string::npos) << s.message();
  s = BuildStatus("mse_loss", {{{2, 3}, DType::f32}, {{2, 3}, DType::f32}, {{3}, DType::f32}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("weight"), std::string::npos) << s.message();
  EXPECT_FALSE(BuildStatus("mse_loss", {{{2, 3}, DType::f32}, {{2, 3}, DType::bf16}}).ok());
  EXPECT_FALSE(BuildStatus("mse_loss", {{{2, 3}, DType::f32}}).ok());
}

Cost CostOfOp(const char* op, const std::vector<TensorType>& ins) {
  Graph g;
  Builder b(&g);
  std::vector<Value> vs;
  for (size_t i = 0; i < ins.size(); ++i) vs.push_back(b.Input(absl::StrCat("x", i), ins[i].shape, ins[i].dtype));
  b.Op(op, vs);
  EXPECT_TRUE(b.ok()) << b.status().message();
  return g.num_nodes() ? g.node(0).cost : Cost{};
}

TEST(LossTest, Cost) {
  // Latent noise prediction [2, 64, 64, 4] in f32: n = 32768.
  const int64_t n = 2 * 64 * 64 * 4;
  const TensorType x{{2, 64, 64, 4}, DType::f32}, w{{2}, DType::f32}, dy{{}, DType::f32};
  Cost c = CostOfOp("mse_loss", {x, x});
  EXPECT_EQ(c.elementwise_flops, 3 * n);
  EXPECT_EQ(c.bytes_read, 2 * n * 4);
  EXPECT_EQ(c.bytes_written, 4);
  c = CostOfOp("mse_loss", {x, x, w});
  EXPECT_EQ(c.elementwise_flops, 3 * n + 2);
  EXPECT_EQ(c.bytes_read, 2 * n * 4 + 8);
  c = CostOfOp("mse_loss_backward", {x, x, dy});
  EXPECT_EQ(c.elementwise_flops, 2 * n + 1);
  EXPECT_EQ(c.bytes_written, n * 4);
  c = CostOfOp("mse_loss_backward", {x, x, dy, w});
  EXPECT_EQ(c.elementwise_flops, 2 * n + 4);
}

}  // namespace
}  // namespace cf
