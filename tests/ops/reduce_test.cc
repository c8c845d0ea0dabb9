// CPU tests of sum, mean and softmax against float64 references written here
// with plain loops; VJPs by finite differences; errors and cost formulas.
#include <cmath>

#include "ops/reduce/reduce.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

constexpr DTypeTol Tol = kStorageTol;

// Plain reference of sum/mean over `axes` (empty: all).
std::vector<double> ReduceRef(const std::vector<double>& x, const Shape& s, std::vector<int64_t> axes,
                              bool mean, Shape* out_keep) {
  std::vector<bool> red(s.rank(), axes.empty());
  for (int64_t a : axes) red[a < 0 ? a + s.rank() : a] = true;
  Shape keep;
  for (int d = 0; d < s.rank(); ++d) keep.push_back(red[d] ? 1 : s[d]);
  std::vector<double> out(keep.numel(), 0.0);
  const int64_t count = s.numel() / std::max<int64_t>(1, keep.numel());
  for (int64_t i = 0; i < s.numel(); ++i) {
    int64_t rem = i, o = 0, stride = 1;
    for (int d = s.rank() - 1; d >= 0; --d) {
      const int64_t c = rem % s[d];
      rem /= s[d];
      if (!red[d]) o += c * stride;
      stride *= keep[d];
    }
    out[o] += x[i];
  }
  if (mean)
    for (double& v : out) v /= static_cast<double>(count);
  *out_keep = keep;
  return out;
}

struct ReduceCase {
  Shape x;
  std::vector<int64_t> axes;
};
const std::vector<ReduceCase> kReduceCases = {
    {{7}, {}},
    {{3, 5}, {1}},
    {{3, 5}, {0}},
    {{3, 5}, {-1}},
    {{2, 9, 11, 13}, {1, 2}},     // NHWC spatial mean: [A, R, B]
    {{2, 9, 11, 13}, {0, 2}},     // general
    {{2, 9, 11, 13}, {0, 1, 2}},  // columns
    {{2, 9, 11, 13}, {}},         // all
    {{4, 1, 3}, {1}},             // size-1 axis
    {{}, {}},                     // rank 0
    {{3, 70001}, {1}},            // long rows, split across threads
    {{5000, 3}, {0}},             // long columns, split across threads
};

TEST(ReduceTest, SumAndMean) {
  uint64_t seed = 1;
  for (const char* op : {"sum", "mean"}) {
    for (const ReduceCase& c : kReduceCases) {
      for (bool keepdim : {false, true}) {
        for (DType t : kFloatDTypes) {
          Tensor x = RandomTensor(c.x, t, seed++);
          CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1(op, {x}, Attrs{{"axes", c.axes}, {"keepdim", keepdim}}));
          Shape keep;
          std::vector<double> want = ReduceRef(ToDoubles(x), c.x, c.axes, std::string(op) == "mean", &keep);
          Shape expect_shape;
          std::vector<bool> red(c.x.rank(), c.axes.empty());
          for (int64_t a : c.axes) red[a < 0 ? a + c.x.rank() : a] = true;
          for (int d = 0; d < c.x.rank(); ++d)
            if (!red[d] || keepdim) expect_shape.push_back(keep[d]);
          ASSERT_EQ(y.shape().ToString(), expect_shape.ToString());
          // Sums of up to 2e5 terms of magnitude 1: absolute error grows with sqrt(n).
          const double atol = Tol(t) * (std::string(op) == "sum" ? 30 : 1);
          EXPECT_TRUE(AllClose(ToDoubles(y), want, Tol(t), atol))
              << op << " " << c.x.ToString() << " axes " << c.axes.size() << " " << DTypeName(t);
        }
      }
    }
  }
}

TEST(ReduceTest, SumMeanVjp) {
  uint64_t seed = 100;
  for (const char* op : {"sum", "mean"}) {
    for (const ReduceCase& c : std::vector<ReduceCase>{{{3, 5}, {1}}, {{2, 3, 4, 5}, {0, 2}}, {{4, 1, 3}, {}},
                                                       {{2, 3, 4}, {-2}}}) {
      for (bool keepdim : {false, true}) {
        EXPECT_TRUE(CheckVjp(op, {RandomTensor(c.x, DType::f64, seed++)}, Attrs{{"axes", c.axes}, {"keepdim", keepdim}}))
            << op << " " << c.x.ToString();
      }
    }
  }
}

TEST(ReduceTest, SumErrors) {
  ExpectError(BuildStatus("sum", {{{2, 3}, DType::f32}}, Attrs{{"axes", std::vector<int64_t>{2}}}),
              {"sum", "[2, 3]", "axis 2"});
  EXPECT_FALSE(BuildStatus("mean", {{{2, 3}, DType::f32}}, Attrs{{"axes", std::vector<int64_t>{1, -1}}}).ok());
  EXPECT_FALSE(BuildStatus("mean", {{{2, 3}, DType::i32}}).ok());
}


// ---- softmax

std::vector<double> SoftmaxRef(const std::vector<double>& x, int64_t L) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r * L < x.size(); ++r) {
    double m = -INFINITY, sum = 0;
    for (int64_t i = 0; i < L; ++i) m = std::max(m, x[r * L + i]);
    for (int64_t i = 0; i < L; ++i) sum += std::exp(x[r * L + i] - m);
    for (int64_t i = 0; i < L; ++i) y[r * L + i] = std::exp(x[r * L + i] - m) / sum;
  }
  return y;
}

TEST(ReduceTest, Softmax) {
  uint64_t seed = 300;
  for (const Shape& s : std::vector<Shape>{{1}, {13}, {3, 7}, {2, 5, 77}, {3, 4099}, {2000, 33}}) {
    for (DType t : kFloatDTypes) {
      // Large logits: a naive exp would overflow.
      Tensor x = RandomTensor(s, t, seed++, -50, 150);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("softmax", {x}));
      ASSERT_EQ(y.shape(), s);
      std::vector<double> want = SoftmaxRef(ToDoubles(x), s.dim(-1));
      EXPECT_TRUE(AllClose(ToDoubles(y), want, Tol(t), Tol(t) * 0.1)) << s.ToString() << " " << DTypeName(t);
    }
  }
}

TEST(ReduceTest, SoftmaxVjp) {
  EXPECT_TRUE(CheckVjp("softmax", {RandomTensor({3, 7}, DType::f64, 400, -2, 2)}));
  EXPECT_TRUE(CheckVjp("softmax", {RandomTensor({2, 1, 5}, DType::f64, 401, -2, 2)}));
  EXPECT_TRUE(CheckVjp("softmax", {RandomTensor({4}, DType::f64, 402, -2, 2)}));
}

TEST(ReduceTest, SoftmaxErrors) {
  ExpectError(BuildStatus("softmax", {{{}, DType::f32}}), {"softmax"});
  ExpectError(BuildStatus("softmax_backward", {{{2, 3}, DType::f32}, {{3, 2}, DType::f32}}), {"[3, 2]"});
}

TEST(ReduceTest, Cost) {
  // mean over H, W of f16 [2, 64, 64, 320]: 640 outputs of 4096 terms:
  // 4095 additions and 1 division each.
  Cost c = CostOfOp("mean", {{{2, 64, 64, 320}, DType::f16}}, Attrs{{"axes", std::vector<int64_t>{1, 2}}});
  EXPECT_EQ(c.elementwise_flops, 640 * 4096);
  EXPECT_EQ(c.transcendentals, 0);
  EXPECT_EQ(c.bytes_read, 2 * 64 * 64 * 320 * 2);
  EXPECT_EQ(c.bytes_written, 640 * 2);
  c = CostOfOp("sum", {{{3, 5}, DType::f32}});
  EXPECT_EQ(c.elementwise_flops, 14);
  EXPECT_EQ(c.bytes_written, 4);
  // softmax of [16, 77]: 16 rows of
  // 4 * 77 - 1 elementwise and 77 exps.
  c = CostOfOp("softmax", {{{16, 77}, DType::f16}});
  EXPECT_EQ(c.elementwise_flops, 16 * (4 * 77 - 1));
  EXPECT_EQ(c.transcendentals, 16 * 77);
  EXPECT_EQ(c.bytes_read, 16 * 77 * 2);
  c = CostOfOp("softmax_backward", {{{16, 77}, DType::f32}, {{16, 77}, DType::f32}});
  EXPECT_EQ(c.elementwise_flops, 16 * (4 * 77 - 1));
  EXPECT_EQ(c.transcendentals, 0);
  EXPECT_EQ(c.bytes_read, 2 * 16 * 77 * 4);
}

}  // namespace
}  // namespace cf::testing
