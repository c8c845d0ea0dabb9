// CPU tests of the activations against float64 references written here
// (std::erf, std::tanh, std::exp), their VJPs by finite differences, shape
// errors and cost formulas.
#include <cmath>
#include <functional>

#include "ops/activation/activation.h"
#include "tests/support/op_harness.h"

namespace cf {
namespace {

using testing::AllClose;
using testing::BuildStatus;
using testing::CheckVjp;
using testing::RandomTensor;
using testing::RunOp1;
using testing::ToDoubles;

double Tol(DType t) {
  switch (t) {
    case DType::f64: return 1e-12;
    case DType::f32: return 1e-5;
    case DType::f16: return 2e-3;
    default: return 1e-2;
  }
}

double Sig(double x) { return 1 / (1 + std::exp(-x)); }
double GeluErf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double GeluTanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

struct ActCase {
  const char* op;
  Attrs attrs;
  std::function<double(double)> f;
};
std::vector<ActCase> Cases() {
  return {
      {"silu", {}, [](double x) { return x * Sig(x); }},
      {"gelu", {}, GeluErf},
      {"gelu", Attrs{{"approximate", std::string("none")}}, GeluErf},
      {"gelu", Attrs{{"approximate", std::string("tanh")}}, GeluTanh},
      {"quick_gelu", {}, [](double x) { return x * Sig(1.702 * x); }},
      {"leaky_relu", {}, [](double x) { return x > 0 ? x : 0.01 * x; }},
      {"leaky_relu", Attrs{{"negative_slope", 0.2}}, [](double x) { return x > 0 ? x : 0.2 * x; }},
      {"elu", {}, [](double x) { return x > 0 ? x : std::exp(x) - 1; }},
      {"elu", Attrs{{"alpha", 0.5}}, [](double x) { return x > 0 ? x : 0.5 * (std::exp(x) - 1); }},
      {"sigmoid", {}, Sig},
  };
}

TEST(ActivationTest, Forward) {
  uint64_t seed = 1;
  for (const ActCase& c : Cases()) {
    for (const Shape& s : std::vector<Shape>{{}, {17}, {3, 5, 7}, {2, 40001}}) {
      for (DType t : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
        Tensor x = RandomTensor(s, t, seed++, -6, 6);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1(c.op, {x}, c.attrs));
        ASSERT_EQ(y.shape(), s);
        std::vector<double> vx = ToDoubles(x), want(vx.size());
        for (size_t i = 0; i < vx.size(); ++i) want[i] = c.f(vx[i]);
        EXPECT_TRUE(AllClose(ToDoubles(y), want, Tol(t), Tol(t)))
            << c.op << " " << c.attrs.ToString() << " " << s.ToString() << " " << DTypeName(t);
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
      out[r * D + i] = h * (tanh_approx ? GeluTanh(g) : GeluErf(g));
    }
  return out;
}

TEST(ActivationTest, Geglu) {
  uint64_t seed = 200;
  for (bool tanh_approx : {false, true}) {
    for (const Shape& s : std::vector<Shape>{{2}, {3, 10}, {2, 7, 26}, {2, 5, 2560}}) {
      for (DType t : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
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
  Status s = BuildStatus("geglu", {{{2, 7}, DType::f32}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("geglu"), std::string::npos) << s.message();
  EXPECT_NE(std::string(s.message()).find("[2, 7]"), std::string::npos) << s.message();
  s = BuildStatus("gelu", {{{3}, DType::f32}}, Attrs{{"approximate", std::string("fast")}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("approximate"), std::string::npos) << s.message();
  EXPECT_FALSE(BuildStatus("silu", {{{3}, DType::i64}}).ok());
  s = BuildStatus("silu_backward", {{{3, 4}, DType::f32}, {{4, 3}, DType::f32}});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("[4, 3]"), std::string::npos) << s.message();
  EXPECT_FALSE(BuildStatus("geglu_backward", {{{3, 4}, DType::f32}, {{3, 4}, DType::f32}}).ok());
  EXPECT_FALSE(BuildStatus("geglu", {{{}, DType::f32}}).ok());
}

Cost CostOfOp(const char* op, const std::vector<TensorType>& ins, const Attrs& attrs = {}) {
  Graph g;
  Builder b(&g);
  std::vector<Value> vs;
  for (size_t i = 0; i < ins.size(); ++i) vs.push_back(b.Input(absl::StrCat("x", i), ins[i].shape, ins[i].dtype));
  b.Op(op, vs, attrs);
  EXPECT_TRUE(b.ok()) << b.status().message();
  return g.num_nodes() ? g.node(0).cost : Cost{};
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
}  // namespace cf
