// CPU tests of the activations against float64 references written from their
// definitions (here and in tests/support/activation_ref.h), their VJPs by
// finite differences, shape errors and cost formulas.
#include "ops/activation/activation.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "tests/support/activation_ref.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

constexpr DTypeTol Tol = kStorageTol;

struct ActCase {
  const char* op;
  Attrs attrs;
  std::function<double(double)> f;
};
std::vector<ActCase> Cases() {
  return {
      {"silu", {}, SiluRef},
      {"gelu", {}, GeluErfRef},
      {"gelu", Attrs{{"approximate", std::string("none")}}, GeluErfRef},
      {"gelu", Attrs{{"approximate", std::string("tanh")}}, GeluTanhRef},
      {"quick_gelu", {}, [](double x) { return x * SigmoidRef(1.702 * x); }},
      {"leaky_relu", {}, [](double x) { return x > 0 ? x : 0.01 * x; }},
      {"leaky_relu", Attrs{{"negative_slope", 0.2}}, [](double x) { return x > 0 ? x : 0.2 * x; }},
      {"elu", {}, [](double x) { return x > 0 ? x : std::exp(x) - 1; }},
      {"elu", Attrs{{"alpha", 0.5}}, [](double x) { return x > 0 ? x : 0.5 * (std::exp(x) - 1); }},
      {"sigmoid", {}, SigmoidRef},
  };
}

TEST(ActivationTest, Forward) {
  uint64_t seed = 1;
  for (const ActCase& c : Cases()) {
    for (const Shape& s : std::vector<Shape>{{}, {17}, {3, 5, 7}, {2, 40001}}) {
      for (DType t : kFloatDTypes) {
        Tensor x = RandomTensor(s, t, seed++, -6, 6);
        EXPECT_TRUE(MatchesElementwiseRef(c.op, x, c.attrs, c.f, Tol(t)))
            << c.op << " " << c.attrs.ToString() << " " << s.ToString() << " " << DTypeName(t);
      }
    }
  }
}

// Far tails, relative to a float64 reference that does not cancel itself
// (0.5 x erfc(-x / sqrt 2), x / (1 + e^-2u)): on [-12, -6] GELU is tiny
// (1e-32 at -12) and the textbook 0.5 x (1 + erf(x / sqrt 2)) in float has
// 100% relative error there; the kernels claim the accurate forms. The bound
// per element is the storage rounding plus the arithmetic's rounding times
// the tails' condition number (about x^2 for GELU, 0.07 |x|^3 for its tanh
// form: an argument error of one ulp moves e^(-x^2/2) by x^2 ulps); outputs
// that underflow the storage dtype (f16) or the arithmetic may round to
// nearby subnormals.
TEST(ActivationTest, FarTailsKeepRelativeAccuracy) {
  auto gelu_erf = [](double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); };
  auto gelu_tanh = [](double x) {
    const double u = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
    return x / (1 + std::exp(-2 * u));
  };
  const std::vector<ActCase> cases = {
      {"gelu", {}, gelu_erf},
      {"gelu", Attrs{{"approximate", std::string("tanh")}}, gelu_tanh},
      {"silu", {}, SiluRef},
      {"quick_gelu", {}, [](double x) { return x / (1 + std::exp(-1.702 * x)); }},
      {"sigmoid", {}, SigmoidRef},
      {"elu", {}, [](double x) { return x > 0 ? x : std::expm1(x); }},
  };
  uint64_t seed = 50;
  for (const ActCase& c : cases) {
    for (auto [lo, hi] : {std::pair<double, double>{-12, -6}, {6, 12}}) {
      for (DType t : kFloatDTypes) {
        Tensor x = RandomTensor({4001}, t, seed++, lo, hi);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1(c.op, {x}, c.attrs));
        const std::vector<double> xv = ToDoubles(x), got = ToDoubles(y);
        const double arith = t == DType::f64 ? std::ldexp(1.0, -52) : std::ldexp(1.0, -23);
        // Where the result is subnormal in the arithmetic, an intermediate such
        // as e^-|2u| already is: x times its half-ulp error (|x| <= 12).
        const double floor =
            std::max(ScaledAtol({0.0}, 0, t), t == DType::f64 ? 0.0 : 16 * std::ldexp(1.0, -149));
        int64_t bad = 0, worst = -1;
        double worst_rel = 0;
        for (size_t i = 0; i < xv.size(); ++i) {
          const double want = c.f(xv[i]), ax = std::fabs(xv[i]);
          const double rtol = Tol(t) + 4 * arith * (1 + ax * ax + 0.1 * ax * ax * ax);
          const double err = std::fabs(got[i] - want);
          if (!(err <= rtol * std::fabs(want) + floor)) {
            ++bad;
            if (worst < 0 || err / std::fabs(want) > worst_rel) worst = int64_t(i), worst_rel = err / std::fabs(want);
          }
        }
        EXPECT_EQ(bad, 0) << c.op << " " << c.attrs.ToString() << " on [" << lo << ", " << hi << "] "
                          << DTypeName(t) << ": worst at x = " << (worst >= 0 ? xv[worst] : 0) << ", got "
                          << (worst >= 0 ? got[worst] : 0) << ", relative error " << worst_rel;
      }
    }
  }
}

TEST(ActivationTest, Vjp) {
  uint64_t seed = 100;
  for (const ActCase& c : Cases()) {
    // Avoid the kink of leaky_relu / elu at 0 (finite differences straddle it).
    Tensor x = RandomTensor({4, 7}, DType::f64, seed++, -3, 3);
    std::vector<double> v = ToDoubles(x);
    for (double& e : v)
      if (std::fabs(e) < 1e-3) e = 0.5;
    x = testing::FromDoubles(v, {4, 7}, DType::f64);
    EXPECT_TRUE(CheckVjp(c.op, {x}, c.attrs)) << c.op << " " << c.attrs.ToString();
  }
}

// GEGLU reference: out[r, i] = h[r, i] * gelu(g[r, i]).
std::vector<double> GegluRef(const std::vector<double>& x, int64_t rows, int64_t D, bool tanh_approx) {
  std::vector<double> out(rows * D);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < D; ++i) {
      const double h = x[r * 2 * D + i], g = x[r * 2 * D + D + i];
      out[r * D + i] = h * (tanh_approx ? GeluTanhRef(g) : GeluErfRef(g));
    }
  return out;
}

TEST(ActivationTest, Geglu) {
  uint64_t seed = 200;
  for (bool tanh_approx : {false, true}) {
    for (const Shape& s : std::vector<Shape>{{2}, {3, 10}, {2, 7, 26}, {2, 5, 2560}}) {
      for (DType t : kFloatDTypes) {
        Tensor x = RandomTensor(s, t, seed++, -4, 4);
        Attrs attrs{{"approximate", std::string(tanh_approx ? "tanh" : "none")}};
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("geglu", {x}, attrs));
        Shape half = s;
        half[s.rank() - 1] /= 2;
        ASSERT_EQ(y.shape(), half);
        const int64_t D = half.dim(-1);
        std::vector<double> want = GegluRef(ToDoubles(x), s.numel() / (2 * D), D, tanh_approx);
        EXPECT_TRUE(AllClose(ToDoubles(y), want, Tol(t), Tol(t) * 4)) << s.ToString() << " " << DTypeName(t);
      }
    }
    EXPECT_TRUE(CheckVjp("geglu", {RandomTensor({3, 8}, DType::f64, seed++, -3, 3)},
                         Attrs{{"approximate", std::string(tanh_approx ? "tanh" : "none")}}));
  }
}

TEST(ActivationTest, Errors) {
  ExpectError(BuildStatus("geglu", {{{2, 7}, DType::f32}}), {"geglu", "[2, 7]"});
  ExpectError(BuildStatus("gelu", {{{3}, DType::f32}}, Attrs{{"approximate", std::string("fast")}}), {"approximate"});
  EXPECT_FALSE(BuildStatus("silu", {{{3}, DType::i64}}).ok());
  ExpectError(BuildStatus("silu_backward", {{{3, 4}, DType::f32}, {{4, 3}, DType::f32}}), {"[4, 3]"});
  EXPECT_FALSE(BuildStatus("geglu_backward", {{{3, 4}, DType::f32}, {{3, 4}, DType::f32}}).ok());
  EXPECT_FALSE(BuildStatus("geglu", {{{}, DType::f32}}).ok());
}

TEST(ActivationTest, Cost) {
  const int64_t n = 2 * 64 * 64 * 320;
  const TensorType x{{2, 64, 64, 320}, DType::f16};
  struct Want {
    const char* op;
    Attrs attrs;
    int64_t e, t;
  };
  for (const Want& w : std::vector<Want>{
           {"silu", {}, 2, 1},
           {"gelu", {}, 4, 1},
           {"gelu", Attrs{{"approximate", std::string("tanh")}}, 8, 1},
           {"quick_gelu", {}, 3, 1},
           {"leaky_relu", {}, 2, 0},
           {"elu", {}, 3, 1},
           {"sigmoid", {}, 2, 1},
       }) {
    Cost c = CostOfOp(w.op, {x}, w.attrs);
    EXPECT_EQ(c.elementwise_flops, n * w.e) << w.op;
    EXPECT_EQ(c.transcendentals, n * w.t) << w.op;
    EXPECT_EQ(c.table1_flops(), 0);
    EXPECT_EQ(c.bytes_read, n * 2);
    EXPECT_EQ(c.bytes_written, n * 2);
  }
  // Backward: f' + 1 multiply; reads x and dy.
  Cost c = CostOfOp("silu_backward", {x, x});
  EXPECT_EQ(c.elementwise_flops, n * 7);
  EXPECT_EQ(c.transcendentals, n);
  EXPECT_EQ(c.bytes_read, n * 4);
  c = CostOfOp("gelu_backward", {x, x});
  EXPECT_EQ(c.elementwise_flops, n * 9);
  EXPECT_EQ(c.transcendentals, n * 2);
  // GEGLU [2, 4096, 2560] -> [2, 4096, 1280]: gelu (4 E, 1 T) + 1 multiply per output.
  const int64_t m = 2 * 4096 * 1280;
  c = CostOfOp("geglu", {{{2, 4096, 2560}, DType::bf16}});
  EXPECT_EQ(c.elementwise_flops, m * 5);
  EXPECT_EQ(c.transcendentals, m);
  EXPECT_EQ(c.bytes_read, 2 * m * 2);
  EXPECT_EQ(c.bytes_written, m * 2);
  // geglu_backward: gelu (4, 1) + gelu' (8, 2) + 3 multiplies.
  c = CostOfOp("geglu_backward", {{{2, 4096, 2560}, DType::bf16}, {{2, 4096, 1280}, DType::bf16}});
  EXPECT_EQ(c.elementwise_flops, m * 15);
  EXPECT_EQ(c.transcendentals, m * 3);
  EXPECT_EQ(c.bytes_read, 3 * m * 2);
  EXPECT_EQ(c.bytes_written, 2 * m * 2);
}

}  // namespace
}  // namespace cf::testing
