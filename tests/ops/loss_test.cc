// CPU tests of mse_loss against a float64 reference written here, its VJP
// (pred, target and the per-sample weight) by finite differences, shape
// errors and the cost formulas.
#include <cmath>

#include "graph/autodiff.h"
#include "ops/loss/loss.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

constexpr DTypeTol Tol = kStorageTol;

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
      for (DType t : kFloatDTypes) {
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
        EXPECT_TRUE(AllClose(ToDoubles(y), {want}, Tol(t), 0)) << s.ToString() << " " << DTypeName(t);
      }
    }
  }
}

// No elements: the mean of nothing is NaN, weighted or not, and the weights
// (here possibly an empty tensor) are not read; the backward is empty.
TEST(LossTest, MseOfNothing) {
  for (const Shape& s : {Shape({0, 3}), Shape({3, 0}), Shape({0})}) {
    for (DType t : kFloatDTypes) {
      Tensor p = RandomTensor(s, t, 1), tg = RandomTensor(s, t, 2), w = RandomTensor({s[0]}, t, 3, 0.5, 2);
      for (bool weighted : {false, true}) {
        std::vector<Tensor> ins = {p, tg};
        if (weighted) ins.push_back(w);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("mse_loss", ins));
        EXPECT_TRUE(std::isnan(ToDoubles(y)[0])) << s.ToString() << " weighted " << weighted;
        std::vector<Tensor> back = {p, tg, RandomTensor({}, t, 4)};
        if (weighted) back.push_back(w);
        CF_ASSERT_OK_AND_ASSIGN(Tensor dp, RunOp1("mse_loss_backward", back));
        EXPECT_EQ(dp.shape(), s);
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
  ExpectError(BuildStatus("mse_loss", {{{2, 3}, DType::f32}, {{3, 2}, DType::f32}}), {"mse_loss", "[3, 2]"});
  ExpectError(BuildStatus("mse_loss", {{{2, 3}, DType::f32}, {{2, 3}, DType::f32}, {{3}, DType::f32}}), {"weight"});
  EXPECT_FALSE(BuildStatus("mse_loss", {{{2, 3}, DType::f32}, {{2, 3}, DType::bf16}}).ok());
  EXPECT_FALSE(BuildStatus("mse_loss", {{{2, 3}, DType::f32}}).ok());
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
}  // namespace cf::testing
