// CPU tests of the norm family: group_norm, layer_norm, adaln_modulate and
// their backward ops, against float64 references written here with plain loops.
#include <cmath>

#include "ops/norm/norm.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// Tolerance of a low-precision run against the f64 reference on the same
// (rounded) inputs: the rounding of the output (docs/conventions.md).
constexpr DTypeTol Tol = kStorageTol;

// ---- references ----------------------------------------------------------------

// x [N, P, C] flattened; gamma/beta empty for no affine.
std::vector<double> RefGroupNorm(const std::vector<double>& x, int64_t n, int64_t p, int64_t c, int64_t groups,
                                 double eps, const std::vector<double>& gamma, const std::vector<double>& beta) {
  std::vector<double> y(x.size());
  const int64_t cg = c / groups;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      double s = 0;
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) s += x[(b * p + i) * c + k];
      const double mean = s / double(p * cg);
      double v = 0;
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) v += std::pow(x[(b * p + i) * c + k] - mean, 2);
      const double rstd = 1 / std::sqrt(v / double(p * cg) + eps);
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) {
          const int64_t j = (b * p + i) * c + k;
          y[j] = (x[j] - mean) * rstd;
          if (!gamma.empty()) y[j] = y[j] * gamma[k] + beta[k];
        }
    }
  return y;
}

// Rows of C.
std::vector<double> RefLayerNorm(const std::vector<double>& x, int64_t c, double eps,
                                 const std::vector<double>& gamma, const std::vector<double>& beta) {
  const int64_t rows = static_cast<int64_t>(x.size()) / c;
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<double> row(x.begin() + r * c, x.begin() + (r + 1) * c);
    const std::vector<double> yr = RefGroupNorm(row, 1, 1, c, 1, eps, gamma, beta);
    std::copy(yr.begin(), yr.end(), y.begin() + r * c);
  }
  return y;
}

// The backward ops in closed form. x, dy [N, P, C] flattened; gamma empty for
// no affine. With xhat = (x - mean) * rstd per (n, group) of M = P * C / G
// elements and g = gamma * dy:
//   dx = rstd * (g - mean_group(g) - xhat * mean_group(g * xhat)),
//   dgamma[c] = sum over n, p of dy * xhat, dbeta[c] = sum over n, p of dy.
// Returns {dx} or {dx, dgamma, dbeta}.
std::vector<std::vector<double>> RefGroupNormBackward(const std::vector<double>& x, const std::vector<double>& dy,
                                                      int64_t n, int64_t p, int64_t c, int64_t groups, double eps,
                                                      const std::vector<double>& gamma) {
  std::vector<double> dx(x.size()), dgamma(c, 0.0), dbeta(c, 0.0);
  const int64_t cg = c / groups;
  const double m = double(p * cg);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t g = 0; g < groups; ++g) {
      auto at = [&](int64_t i, int64_t k) { return (b * p + i) * c + k; };
      double s = 0;
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) s += x[at(i, k)];
      const double mean = s / m;
      double v = 0;
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) v += (x[at(i, k)] - mean) * (x[at(i, k)] - mean);
      const double rstd = 1 / std::sqrt(v / m + eps);
      double mean_g = 0, mean_gx = 0;
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) {
          const double xh = (x[at(i, k)] - mean) * rstd, gd = (gamma.empty() ? 1.0 : gamma[k]) * dy[at(i, k)];
          mean_g += gd / m;
          mean_gx += gd * xh / m;
          dgamma[k] += dy[at(i, k)] * xh;
          dbeta[k] += dy[at(i, k)];
        }
      for (int64_t i = 0; i < p; ++i)
        for (int64_t k = g * cg; k < (g + 1) * cg; ++k) {
          const double xh = (x[at(i, k)] - mean) * rstd, gd = (gamma.empty() ? 1.0 : gamma[k]) * dy[at(i, k)];
          dx[at(i, k)] = rstd * (gd - mean_g - xh * mean_gx);
        }
    }
  if (gamma.empty()) return {dx};
  return {dx, dgamma, dbeta};
}

// layer_norm_backward: every row of C is one group of its own "sample".
std::vector<std::vector<double>> RefLayerNormBackward(const std::vector<double>& x, const std::vector<double>& dy,
                                                      int64_t c, double eps, const std::vector<double>& gamma) {
  const int64_t rows = static_cast<int64_t>(x.size()) / c;
  return RefGroupNormBackward(x, dy, rows, 1, c, 1, eps, gamma);
}

// adaln_modulate_backward: x, dy [B, T, C], scale [B, C] (or [B, 1, C], the
// same numbers): dx = dy * (1 + scale), dshift = sum_T dy, dscale = sum_T dy * x.
std::vector<std::vector<double>> RefAdaLnBackward(const std::vector<double>& x, const std::vector<double>& scale,
                                                  const std::vector<double>& dy, int64_t b, int64_t t, int64_t c) {
  std::vector<double> dx(x.size()), dshift(b * c, 0.0), dscale(b * c, 0.0);
  for (int64_t i = 0; i < b; ++i)
    for (int64_t j = 0; j < t; ++j)
      for (int64_t k = 0; k < c; ++k) {
        const int64_t e = (i * t + j) * c + k;
        dx[e] = dy[e] * (1 + scale[i * c + k]);
        dshift[i * c + k] += dy[e];
        dscale[i * c + k] += dy[e] * x[e];
      }
  return {dx, dshift, dscale};
}

// ---- helpers -----------------------------------------------------------------

// Runs `op` on `inputs` rounded to `dtype` and compares every output, element
// by element, with `want` (computed in float64 from the same rounded inputs):
// the storage tolerance, absolute part scaled by the output's largest value.
void ExpectOutputsMatch(const std::string& op, const std::vector<Tensor>& rounded, const Attrs& attrs, DType dtype,
                        const std::vector<std::vector<double>>& want) {
  auto got = RunOp(op, rounded, attrs);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_EQ(got->size(), want.size()) << op;
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ((*got)[k].dtype(), dtype);
    EXPECT_TRUE(AllClose(ToDoubles((*got)[k]), want[k], Tol(dtype), ScaledAtol(want[k], Tol(dtype), dtype)))
        << op << " output " << k << " " << DTypeName(dtype);
  }
}

// ---- group_norm -----------------------------------------------------------------

struct GnCase {
  Shape shape;
  int64_t groups;
  bool affine;
};

TEST(GroupNorm, MatchesReference) {
  const GnCase cases[] = {
      {{2, 5, 7, 12}, 4, true},    {{1, 3, 6}, 3, false},      {{3, 16}, 2, true},
      {{2, 17, 11, 32}, 32, true}, {{1, 131, 3, 8}, 2, false}, {{2, 3, 1, 5, 10}, 5, true},
  };
  uint64_t seed = 1;
  for (const GnCase& k : cases) {
    const int64_t n = k.shape.dim(0), c = k.shape.dim(-1), p = k.shape.numel() / (n * c);
    for (DType dt : kFloatDTypes) {
      Tensor x = RandomTensor(k.shape, dt, seed++, -2, 3);
      Tensor gamma = RandomTensor(Shape({c}), dt, seed++, 0.5, 1.5);
      Tensor beta = RandomTensor(Shape({c}), dt, seed++);
      std::vector<Tensor> ins{x};
      std::vector<double> gv, bv;
      if (k.affine) {
        ins.push_back(gamma);
        ins.push_back(beta);
        gv = ToDoubles(gamma);
        bv = ToDoubles(beta);
      }
      const double eps = 1e-5;
      auto y = RunOp1("group_norm", ins, Attrs{{"groups", k.groups}, {"eps", eps}});
      ASSERT_TRUE(y.ok()) << y.status().message();
      EXPECT_EQ(y->dtype(), dt);
      EXPECT_EQ(y->shape(), k.shape);
      EXPECT_TRUE(AllClose(ToDoubles(*y), RefGroupNorm(ToDoubles(x), n, p, c, k.groups, eps, gv, bv), Tol(dt), Tol(dt)))
          << k.shape.ToString() << " " << DTypeName(dt);
    }
  }
}

TEST(GroupNorm, DefaultGroupsIs32) {
  Tensor x = RandomTensor(Shape({1, 4, 4, 64}), DType::f64, 5);
  auto y = RunOp1("group_norm", {x});
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_TRUE(AllClose(ToDoubles(*y), RefGroupNorm(ToDoubles(x), 1, 16, 64, 32, 1e-5, {}, {}), 1e-10, 1e-10));
}

// Large groups with a large mean: the statistics must not lose the variance
// to cancellation (a one-pass sum of squares in f32 would).
TEST(GroupNorm, AccurateForLargeGroupsWithOffset) {
  const Shape shape({1, 128, 128, 320});
  Tensor x = RandomTensor(shape, DType::f32, 11, 99.0, 101.0);
  auto y = RunOp1("group_norm", {x}, Attrs{{"groups", int64_t{32}}});
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_TRUE(AllClose(ToDoubles(*y), RefGroupNorm(ToDoubles(x), 1, 128 * 128, 320, 32, 1e-5, {}, {}), 2e-4, 2e-4));
}

TEST(GroupNorm, Vjp) {
  Tensor x = RandomTensor(Shape({2, 3, 5, 6}), DType::f64, 21);
  Tensor g = RandomTensor(Shape({6}), DType::f64, 22, 0.5, 1.5);
  Tensor b = RandomTensor(Shape({6}), DType::f64, 23);
  EXPECT_TRUE(CheckVjp("group_norm", {x, g, b}, Attrs{{"groups", int64_t{3}}}));
  EXPECT_TRUE(CheckVjp("group_norm", {x}, Attrs{{"groups", int64_t{2}}, {"eps", 1e-3}}));
  Tensor x2 = RandomTensor(Shape({3, 8}), DType::f64, 24);
  Tensor g2 = RandomTensor(Shape({8}), DType::f64, 25);
  Tensor b2 = RandomTensor(Shape({8}), DType::f64, 26);
  EXPECT_TRUE(CheckVjp("group_norm", {x2, g2, b2}, Attrs{{"groups", int64_t{4}}}));
  // More than one statistics chunk (P > 128) and one channel per group.
  Tensor x3 = RandomTensor(Shape({1, 131, 4}), DType::f64, 27);
  Tensor g3 = RandomTensor(Shape({4}), DType::f64, 28);
  Tensor b3 = RandomTensor(Shape({4}), DType::f64, 29);
  EXPECT_TRUE(CheckVjp("group_norm", {x3, g3, b3}, Attrs{{"groups", int64_t{4}}}));
}

// Every element of dx, dgamma and dbeta against the closed form, in every
// dtype: several groups, more than one statistics chunk (P > 128), no spatial
// dims, one channel per group, a large mean.
TEST(GroupNorm, BackwardMatchesClosedForm) {
  const GnCase cases[] = {
      {{2, 9, 7, 8}, 4, true}, {{2, 9, 7, 8}, 4, false}, {{1, 131, 4}, 4, true},
      {{3, 16}, 2, true},      {{2, 5, 3, 2, 12}, 3, true},
      // C not a multiple of the 16 vector lanes, odd group sizes, a last
      // statistics chunk of odd rows (P = 393 = 3 * 128 + 9).
      {{2, 9, 7, 40}, 8, true}, {{1, 131, 3, 36}, 12, true}, {{2, 5, 33}, 3, false},
  };
  uint64_t seed = 31;
  for (const GnCase& k : cases) {
    const int64_t n = k.shape.dim(0), c = k.shape.dim(-1), p = k.shape.numel() / (n * c);
    for (double offset : {0.0, 50.0}) {
      for (DType dt : kFloatDTypes) {
        SCOPED_TRACE(absl::StrCat(k.shape.ToString(), " groups ", k.groups, " affine ", k.affine, " offset ", offset,
                                  " ", DTypeName(dt)));
        Tensor x = RandomTensor(k.shape, dt, seed++, offset - 2, offset + 3);
        Tensor dy = RandomTensor(k.shape, dt, seed++);
        Tensor g = RandomTensor(Shape({c}), dt, seed++, 0.5, 1.5);
        std::vector<Tensor> ins{x, dy};
        if (k.affine) ins.push_back(g);
        const double eps = 1e-5;
        ExpectOutputsMatch("group_norm_backward", ins, Attrs{{"groups", k.groups}, {"eps", eps}}, dt,
                           RefGroupNormBackward(ToDoubles(x), ToDoubles(dy), n, p, c, k.groups, eps,
                                                k.affine ? ToDoubles(g) : std::vector<double>{}));
      }
    }
  }
}

// The backward's reductions (dgamma, dbeta, the group sums) use a fixed
// chunking of positions / rows, independent of the thread count: repeated
// runs give the same bits.
TEST(NormBackward, DeterministicRunToRun) {
  const Shape lat({2, 40, 40, 96}), tok({1000, 96});
  for (DType dt : {DType::f32, DType::bf16}) {
    const Tensor x = RandomTensor(lat, dt, 91), dy = RandomTensor(lat, dt, 92);
    const Tensor g = RandomTensor(Shape({96}), dt, 93, 0.5, 1.5);
    const Tensor xt = RandomTensor(tok, dt, 94), dyt = RandomTensor(tok, dt, 95);
    const Tensor xm = RandomTensor(Shape({2, 800, 96}), dt, 96), dym = RandomTensor(Shape({2, 800, 96}), dt, 97);
    const Tensor sc = RandomTensor(Shape({2, 96}), dt, 98);
    const std::pair<std::string, std::vector<Tensor>> runs[] = {
        {"group_norm_backward", {x, dy, g}}, {"layer_norm_backward", {xt, dyt, g}},
        {"adaln_modulate_backward", {xm, sc, dym}}};
    for (const auto& [op, ins] : runs) {
      const Attrs attrs = op == "group_norm_backward" ? Attrs{{"groups", int64_t{32}}} : Attrs{};
      auto a = RunOp(op, ins, attrs), b = RunOp(op, ins, attrs);
      ASSERT_TRUE(a.ok() && b.ok()) << op;
      for (size_t k = 0; k < a->size(); ++k) EXPECT_EQ(ToDoubles((*a)[k]), ToDoubles((*b)[k])) << op << " output " << k;
    }
  }
}

// activation "silu": y = silu(group_norm(x)) in every dtype, with and
// without affine; odd channel counts (tails of any vector loop).
TEST(GroupNorm, SiluActivationMatchesReference) {
  const GnCase cases[] = {{{2, 5, 7, 12}, 4, true}, {{1, 3, 6}, 3, false}, {{2, 17, 11, 33}, 11, true},
                          {{1, 131, 3, 8}, 2, false}};
  uint64_t seed = 61;
  for (const GnCase& k : cases) {
    const int64_t n = k.shape.dim(0), c = k.shape.dim(-1), p = k.shape.numel() / (n * c);
    for (DType dt : kFloatDTypes) {
      Tensor x = RandomTensor(k.shape, dt, seed++, -2, 3);
      std::vector<Tensor> ins{x};
      std::vector<double> gv, bv;
      if (k.affine) {
        ins.push_back(RandomTensor(Shape({c}), dt, seed++, -2, 2));
        ins.push_back(RandomTensor(Shape({c}), dt, seed++, -1, 1));
        gv = ToDoubles(ins[1]);
        bv = ToDoubles(ins[2]);
      }
      std::vector<double> want = RefGroupNorm(ToDoubles(x), n, p, c, k.groups, 1e-5, gv, bv);
      for (double& v : want) v = v / (1 + std::exp(-v));
      auto y = RunOp1("group_norm", ins, Attrs{{"groups", k.groups}, {"activation", std::string("silu")}});
      ASSERT_TRUE(y.ok()) << y.status().message();
      EXPECT_TRUE(AllClose(ToDoubles(*y), want, Tol(dt), ScaledAtol(want, Tol(dt), dt)))
          << k.shape.ToString() << " " << DTypeName(dt);
    }
  }
}

TEST(GroupNorm, SiluActivationVjp) {
  const Attrs silu{{"groups", int64_t{3}}, {"activation", std::string("silu")}};
  Tensor x = RandomTensor(Shape({2, 3, 5, 6}), DType::f64, 71);
  Tensor g = RandomTensor(Shape({6}), DType::f64, 72, 0.5, 1.5);
  Tensor b = RandomTensor(Shape({6}), DType::f64, 73);
  EXPECT_TRUE(CheckVjp("group_norm", {x, g, b}, silu));
  EXPECT_TRUE(CheckVjp("group_norm", {x}, silu));
  Tensor x3 = RandomTensor(Shape({1, 131, 4}), DType::f64, 74);
  Tensor g3 = RandomTensor(Shape({4}), DType::f64, 75);
  Tensor b3 = RandomTensor(Shape({4}), DType::f64, 76);
  EXPECT_TRUE(CheckVjp("group_norm", {x3, g3, b3}, Attrs{{"groups", int64_t{2}}, {"activation", std::string("silu")}}));
}

TEST(GroupNorm, Errors) {
  ExpectError(BuildStatus("group_norm", {{Shape({2, 4, 4, 10}), DType::f32}}, Attrs{{"groups", int64_t{4}}}),
              {"group_norm", "[2, 4, 4, 10]", "divisible"});

  ExpectError(
      BuildStatus("group_norm", {{Shape({2, 4, 4, 8}), DType::f32}, {Shape({4}), DType::f32}, {Shape({8}), DType::f32}},
                  Attrs{{"groups", int64_t{4}}}),
      {"gamma must be [8]"});
  ExpectError(
      BuildStatus("group_norm", {{Shape({2, 4, 4, 8}), DType::f32}, {Shape({8}), DType::f16}, {Shape({8}), DType::f32}},
                  Attrs{{"groups", int64_t{4}}}),
      {"dtype"});
  ExpectError(BuildStatus("group_norm", {{Shape({2, 4, 4, 8}), DType::f32}, {Shape({8}), DType::f32}}), {"group_norm"});
  ExpectError(BuildStatus("group_norm", {{Shape({2, 8}), DType::f32}}, Attrs{{"groups", 4.0}}), {"groups"});
  ExpectError(BuildStatus("group_norm", {{Shape({8}), DType::f32}}), {"rank >= 2"});
  ExpectError(BuildStatus("group_norm", {{Shape({2, 8}), DType::i32}}, Attrs{{"groups", int64_t{2}}}), {"floating"});
  ExpectError(BuildStatus("group_norm", {{Shape({2, 8}), DType::f32}}, Attrs{{"groups", int64_t{2}}, {"affine", true}}),
              {"affine"});
  ExpectError(BuildStatus("group_norm", {{Shape({2, 8}), DType::f32}},
                          Attrs{{"groups", int64_t{2}}, {"activation", std::string("gelu")}}),
              {"activation", "gelu"});
  ExpectError(BuildStatus("group_norm_backward", {{Shape({2, 8}), DType::f32}, {Shape({2, 9}), DType::f32}},
                          Attrs{{"groups", int64_t{2}}}),
              {"dy"});
}

TEST(GroupNorm, Cost) {
  // E = 2*4*4*8 = 256, NG = 2*4 = 8.
  const TensorType x{Shape({2, 4, 4, 8}), DType::f32}, p{Shape({8}), DType::f32};
  Cost c = CostOfOp("group_norm", {x, p, p}, Attrs{{"groups", int64_t{4}}});
  EXPECT_EQ(c.elementwise_flops, 8 * 256 + 8);
  EXPECT_EQ(c.transcendentals, 8);
  EXPECT_EQ(c.mac_flops, 0);
  EXPECT_EQ(c.bytes_read, (256 + 16) * 4);
  EXPECT_EQ(c.bytes_written, 256 * 4);
  c = CostOfOp("group_norm", {x}, Attrs{{"groups", int64_t{4}}});
  EXPECT_EQ(c.elementwise_flops, 6 * 256 + 8);
  // activation "silu": + silu's E2 T1 per element.
  c = CostOfOp("group_norm", {x, p, p}, Attrs{{"groups", int64_t{4}}, {"activation", std::string("silu")}});
  EXPECT_EQ(c.elementwise_flops, 10 * 256 + 8);
  EXPECT_EQ(c.transcendentals, 256 + 8);
  // SD 1.5 latent: [2, 64, 64, 320], 32 groups: E = 2621440, NG = 64.
  c = CostOfOp("group_norm",
               {{Shape({2, 64, 64, 320}), DType::f16}, {Shape({320}), DType::f16}, {Shape({320}), DType::f16}}, {});
  EXPECT_EQ(c.elementwise_flops, 8 * 2621440 + 64);
  EXPECT_EQ(c.bytes_read, 2 * (2621440 + 640));
  // Backward, affine: 14E + NG + 4NC - 2C = 3584 + 8 + 64 - 16.
  c = CostOfOp("group_norm_backward", {x, x, p}, Attrs{{"groups", int64_t{4}}});
  EXPECT_EQ(c.elementwise_flops, 14 * 256 + 8 + 4 * 16 - 16);
  EXPECT_EQ(c.transcendentals, 8);
  EXPECT_EQ(c.bytes_read, (512 + 8) * 4);
  EXPECT_EQ(c.bytes_written, (256 + 16) * 4);
  c = CostOfOp("group_norm_backward", {x, x}, Attrs{{"groups", int64_t{4}}});
  EXPECT_EQ(c.elementwise_flops, 13 * 256 + 8);
}

// ---- layer_norm -----------------------------------------------------------------

TEST(LayerNorm, MatchesReference) {
  const Shape shapes[] = {{2, 9, 320}, {3, 7}, {5, 1153}, {1, 4, 1}, {13}};
  uint64_t seed = 100;
  for (const Shape& s : shapes) {
    const int64_t c = s.dim(-1);
    for (bool affine : {false, true}) {
      for (DType dt : kFloatDTypes) {
        Tensor x = RandomTensor(s, dt, seed++, -3, 2);
        Tensor gamma = RandomTensor(Shape({c}), dt, seed++, 0.5, 1.5);
        Tensor beta = RandomTensor(Shape({c}), dt, seed++);
        std::vector<Tensor> ins{x};
        std::vector<double> gv, bv;
        if (affine) {
          ins = {x, gamma, beta};
          gv = ToDoubles(gamma);
          bv = ToDoubles(beta);
        }
        const double eps = affine ? 1e-5 : 1e-6;
        auto y = RunOp1("layer_norm", ins, Attrs{{"eps", eps}});
        ASSERT_TRUE(y.ok()) << y.status().message();
        EXPECT_TRUE(AllClose(ToDoubles(*y), RefLayerNorm(ToDoubles(x), c, eps, gv, bv), Tol(dt), Tol(dt)))
            << s.ToString() << " " << DTypeName(dt) << " affine " << affine;
      }
    }
  }
}

TEST(LayerNorm, Vjp) {
  Tensor x = RandomTensor(Shape({2, 3, 7}), DType::f64, 41);
  Tensor g = RandomTensor(Shape({7}), DType::f64, 42, 0.5, 1.5);
  Tensor b = RandomTensor(Shape({7}), DType::f64, 43);
  EXPECT_TRUE(CheckVjp("layer_norm", {x, g, b}));
  EXPECT_TRUE(CheckVjp("layer_norm", {x}, Attrs{{"eps", 1e-6}}));
}

TEST(LayerNorm, BackwardMatchesClosedForm) {
  const Shape shapes[] = {{37, 24}, {2, 3, 7}, {5, 1153}, {4, 1}, {13}, {300, 33}};
  uint64_t seed = 51;
  for (const Shape& s : shapes) {
    const int64_t c = s.dim(-1);
    for (bool affine : {false, true}) {
      for (DType dt : kFloatDTypes) {
        SCOPED_TRACE(absl::StrCat(s.ToString(), " affine ", affine, " ", DTypeName(dt)));
        Tensor x = RandomTensor(s, dt, seed++, -3, 2), dy = RandomTensor(s, dt, seed++);
        Tensor g = RandomTensor(Shape({c}), dt, seed++, 0.5, 1.5);
        std::vector<Tensor> ins{x, dy};
        if (affine) ins.push_back(g);
        const double eps = 1e-6;
        ExpectOutputsMatch("layer_norm_backward", ins, Attrs{{"eps", eps}}, dt,
                           RefLayerNormBackward(ToDoubles(x), ToDoubles(dy), c, eps,
                                                affine ? ToDoubles(g) : std::vector<double>{}));
      }
    }
  }
}

TEST(LayerNorm, Errors) {
  ExpectError(
      BuildStatus("layer_norm", {{Shape({2, 5, 6}), DType::f32}, {Shape({5}), DType::f32}, {Shape({6}), DType::f32}}),
      {"layer_norm", "[2, 5, 6]", "gamma must be [6]"});
  EXPECT_FALSE(BuildStatus("layer_norm", {{Shape({2, 6}), DType::f32}, {Shape({6}), DType::f32}}).ok());
  ExpectError(BuildStatus("layer_norm", {{Shape({2, 6}), DType::f32}}, Attrs{{"eps", -1.0}}), {"eps"});
}

TEST(LayerNorm, Cost) {
  // E = 3*4*5 = 60, R = 12, C = 5.
  const TensorType x{Shape({3, 4, 5}), DType::bf16}, p{Shape({5}), DType::bf16};
  Cost c = CostOfOp("layer_norm", {x}, {});
  EXPECT_EQ(c.elementwise_flops, 6 * 60 + 12);
  EXPECT_EQ(c.transcendentals, 12);
  EXPECT_EQ(c.bytes_read, 120);
  EXPECT_EQ(c.bytes_written, 120);
  c = CostOfOp("layer_norm", {x, p, p}, {});
  EXPECT_EQ(c.elementwise_flops, 8 * 60 + 12);
  c = CostOfOp("layer_norm_backward", {x, x, p}, {});
  EXPECT_EQ(c.elementwise_flops, 17 * 60 + 12 - 10);
  EXPECT_EQ(c.bytes_written, 120 + 20);
  c = CostOfOp("layer_norm_backward", {x, x}, {});
  EXPECT_EQ(c.elementwise_flops, 13 * 60 + 12);
}

// ---- adaln_modulate -----------------------------------------------------------------

TEST(AdaLnModulate, MatchesReference) {
  uint64_t seed = 200;
  for (bool three_d : {false, true}) {
    for (const Shape& s : {Shape({2, 7, 12}), Shape({3, 1, 5}), Shape({1, 33, 17})}) {
      const int64_t b = s[0], t = s[1], c = s[2];
      const Shape ps = three_d ? Shape({b, 1, c}) : Shape({b, c});
      for (DType dt : kFloatDTypes) {
        Tensor x = RandomTensor(s, dt, seed++);
        Tensor shift = RandomTensor(ps, dt, seed++);
        Tensor scale = RandomTensor(ps, dt, seed++);
        auto y = RunOp1("adaln_modulate", {x, shift, scale});
        ASSERT_TRUE(y.ok()) << y.status().message();
        std::vector<double> xv = ToDoubles(x), sh = ToDoubles(shift), sc = ToDoubles(scale), want(xv.size());
        for (int64_t i = 0; i < b; ++i)
          for (int64_t j = 0; j < t; ++j)
            for (int64_t k = 0; k < c; ++k)
              want[(i * t + j) * c + k] = xv[(i * t + j) * c + k] * (1 + sc[i * c + k]) + sh[i * c + k];
        EXPECT_TRUE(AllClose(ToDoubles(*y), want, Tol(dt), Tol(dt))) << s.ToString() << " " << DTypeName(dt);
      }
    }
  }
}

TEST(AdaLnModulate, Vjp) {
  Tensor x = RandomTensor(Shape({2, 5, 3}), DType::f64, 61);
  EXPECT_TRUE(CheckVjp("adaln_modulate",
                       {x, RandomTensor(Shape({2, 3}), DType::f64, 62), RandomTensor(Shape({2, 3}), DType::f64, 63)}));
  EXPECT_TRUE(CheckVjp("adaln_modulate", {x, RandomTensor(Shape({2, 1, 3}), DType::f64, 64),
                                          RandomTensor(Shape({2, 1, 3}), DType::f64, 65)}));
}

TEST(AdaLnModulate, BackwardMatchesClosedForm) {
  uint64_t seed = 71;
  for (const Shape& s : {Shape({2, 19, 6}), Shape({3, 1, 5}), Shape({1, 300, 17}), Shape({2, 150, 35})}) {
    const int64_t b = s[0], t = s[1], c = s[2];
    for (bool three_d : {false, true}) {
      for (DType dt : kFloatDTypes) {
        SCOPED_TRACE(absl::StrCat(s.ToString(), " 3-D ", three_d, " ", DTypeName(dt)));
        Tensor x = RandomTensor(s, dt, seed++), dy = RandomTensor(s, dt, seed++);
        Tensor scale = RandomTensor(three_d ? Shape({b, 1, c}) : Shape({b, c}), dt, seed++);
        ExpectOutputsMatch("adaln_modulate_backward", {x, scale, dy}, {}, dt,
                           RefAdaLnBackward(ToDoubles(x), ToDoubles(scale), ToDoubles(dy), b, t, c));
      }
    }
  }
}

TEST(AdaLnModulate, Errors) {
  ExpectError(
      BuildStatus("adaln_modulate",
                  {{Shape({2, 7, 12}), DType::f32}, {Shape({2, 11}), DType::f32}, {Shape({2, 12}), DType::f32}}),
      {"adaln_modulate", "shift must be [2, 12]"});
  ExpectError(
      BuildStatus("adaln_modulate",
                  {{Shape({2, 7, 12}), DType::f32}, {Shape({2, 12}), DType::f32}, {Shape({2, 1, 12}), DType::f32}}),
      {"same shape"});
  ExpectError(BuildStatus("adaln_modulate",
                          {{Shape({14, 12}), DType::f32}, {Shape({2, 12}), DType::f32}, {Shape({2, 12}), DType::f32}}),
              {"[B, T, C]"});
}

TEST(AdaLnModulate, Cost) {
  const TensorType x{Shape({2, 10, 4}), DType::f32}, p{Shape({2, 4}), DType::f32};
  Cost c = CostOfOp("adaln_modulate", {x, p, p}, {});
  EXPECT_EQ(c.elementwise_flops, 2 * 80 + 8);
  EXPECT_EQ(c.bytes_read, (80 + 16) * 4);
  EXPECT_EQ(c.bytes_written, 80 * 4);
  c = CostOfOp("adaln_modulate_backward", {x, p, x}, {});
  EXPECT_EQ(c.elementwise_flops, 4 * 80 - 8);
  EXPECT_EQ(c.bytes_written, (80 + 16) * 4);
}

TEST(NormBuilders, BuildGraphs) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape({2, 8, 8, 64}), DType::f32);
  Value gamma = b.Parameter("gamma", Shape({64}), DType::f32);
  Value beta = b.Parameter("beta", Shape({64}), DType::f32);
  Value y = GroupNorm(x, gamma, beta);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(y.shape(), x.shape());
  Value t = b.Input("t", Shape({2, 64, 64}), DType::f32);
  Value z = LayerNorm(t, {}, {}, 1e-6);
  Value s = b.Input("s", Shape({2, 1, 64}), DType::f32);
  Value m = AdaLnModulate(z, s, s);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(m.shape(), t.shape());
  GroupNorm(x, gamma, {});
  EXPECT_FALSE(b.ok());
}

}  // namespace
}  // namespace cf::testing
