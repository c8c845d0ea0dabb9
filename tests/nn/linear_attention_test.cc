// LinearAttention (LinFusion's generalized linear attention, composed from
// existing ops) against a float64 reference written here from the definition:
// forward for odd token counts, several heads and head dims, f64/f32/f16/bf16;
// the autodiff backward against central differences of the reference; the
// cost the graph accounts; shape errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "graph/accounting.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/attention/attention.h"
#include "ops/elementwise/elementwise.h"
#include "ops/reduce/reduce.h"
#include "runtime/dtype.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Dims {
  int64_t B, N, H, d;
  int64_t C() const { return H * d; }
};

double Phi(double x) { return x > 0 ? x + 1.0 : std::exp(x); }  // elu(x) + 1

// x rounded to `t` (f64: unchanged).
double Round(double x, DType t) {
  switch (t) {
    case DType::f32: return static_cast<float>(x);
    case DType::f16: return F16BitsToF32(F32ToF16Bits(static_cast<float>(x)));
    case DType::bf16: return BF16BitsToF32(F32ToBF16Bits(static_cast<float>(x)));
    default: return x;
  }
}

// The definition, per (batch, head): phi = elu + 1 on q and k,
// z = phi(q) . mean_N(phi(k)) + eps, kv = (phi(k)^T / sqrt(N)) (v / sqrt(N)),
// out = (phi(q) kv) / z. Layout [B, N, H*d]. With `naive` set to a storage
// dtype it is the authors' PyTorch code run in that dtype instead: every
// tensor they store (phi(q), phi(k), the mean, k / sqrt(N), v / sqrt(N), kv,
// z, phi(q) kv, out) rounded to it, sums accumulated exactly.
std::vector<double> Reference(const std::vector<double>& q, const std::vector<double>& k,
                              const std::vector<double>& v, const Dims& s, double eps, DType naive = DType::f64) {
  const int64_t C = s.C();
  const double rn = 1.0 / std::sqrt(static_cast<double>(s.N));
  auto r = [&](double x) { return Round(x, naive); };
  std::vector<double> out(q.size());
  auto at = [&](int64_t b, int64_t n, int64_t h, int64_t i) { return (b * s.N + n) * C + h * s.d + i; };
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> kv(s.d * s.d, 0.0), kmean(s.d, 0.0);
      for (int64_t n = 0; n < s.N; ++n) {
        for (int64_t i = 0; i < s.d; ++i) {
          const double pk = r(Phi(k[at(b, n, h, i)]));
          kmean[i] += pk / s.N;
          for (int64_t j = 0; j < s.d; ++j) kv[i * s.d + j] += r(pk * rn) * r(v[at(b, n, h, j)] * rn);
        }
      }
      for (double& x : kmean) x = r(x);
      for (double& x : kv) x = r(x);
      for (int64_t n = 0; n < s.N; ++n) {
        double z = 0;
        for (int64_t i = 0; i < s.d; ++i) z += r(Phi(q[at(b, n, h, i)])) * kmean[i];
        z = r(r(z) + eps);
        for (int64_t j = 0; j < s.d; ++j) {
          double num = 0;
          for (int64_t i = 0; i < s.d; ++i) num += r(Phi(q[at(b, n, h, i)])) * kv[i * s.d + j];
          out[at(b, n, h, j)] = r(r(num) / z);
        }
      }
    }
  }
  return out;
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// Builds LinearAttention on inputs q, k, v, runs it on the CPU with the arena
// poisoned, returns the output.
StatusOr<Tensor> RunLinearAttention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const LinearAttentionOptions& o) {
  Graph g;
  Builder b(&g);
  Value out = LinearAttention(b.Input("q", q.shape(), q.dtype()), b.Input("k", k.shape(), k.dtype()),
                              b.Input("v", v.shape(), v.dtype()), o);
  b.MarkOutput(out, "out");
  CF_RETURN_IF_ERROR(b.Finish().status());
  ExecutorOptions eo;
  eo.poison = true;
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(g, eo));
  CF_ASSIGN_OR_RETURN(auto outs, exec->Run({{"q", q}, {"k", k}, {"v", v}}));
  return outs[0];
}

struct Case {
  Dims dims;
  double eps;
};

TEST(LinearAttention, ForwardMatchesFloat64Reference) {
  const Case cases[] = {
      {{2, 37, 2, 8}, 1e-4},  // odd N
      {{1, 77, 8, 5}, 1e-4},  // 8 heads x 5 (odd head dim)
      {{2, 9, 1, 16}, 1e-4},  // one head
      {{1, 1, 4, 3}, 1e-4},   // one token: out = v exactly (up to eps)
      {{3, 65, 8, 40}, 0.5},  // SD1.5's head dim; a large eps so that it visibly matters
  };
  // Relative to the output's largest magnitude: phi(q) kv and z are sums of
  // d products of sums over N, so rounding grows like sqrt(N + d).
  constexpr DTypeTol kTol{1e-13, 2e-6, 1.5e-3, 1.2e-2};
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const Dims& s = c.dims;
    const Shape shape{s.B, s.N, s.C()};
    for (DType t : kFloatDTypes) {
      SCOPED_TRACE(::testing::Message() << DTypeName(t) << " B " << s.B << " N " << s.N << " heads " << s.H << " x "
                                        << s.d << " eps " << c.eps);
      // Values beyond [-1, 1] exercise both branches of elu and make the
      // rows of phi(q) differ in scale.
      Tensor q = RandomTensor(shape, t, seed++, -2.0, 2.0);
      Tensor k = RandomTensor(shape, t, seed++, -2.0, 2.0);
      Tensor v = RandomTensor(shape, t, seed++, -1.5, 1.5);
      const std::vector<double> want = Reference(ToDoubles(q), ToDoubles(k), ToDoubles(v), s, c.eps);
      CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunLinearAttention(q, k, v, {.heads = s.H, .eps = c.eps}));
      ASSERT_EQ(got.dtype(), t);
      ASSERT_EQ(got.shape(), shape);
      const double tol = kTol(t) * std::sqrt(static_cast<double>(s.N + s.d));
      EXPECT_TRUE(AllClose(ToDoubles(got), want, tol, tol * MaxAbs(want)));
      if (t == DType::f16 || t == DType::bf16) {
        // At most twice the error of the authors' code run in the same dtype.
        const std::vector<double> naive = Reference(ToDoubles(q), ToDoubles(k), ToDoubles(v), s, c.eps, t);
        const double ours = MaxAbsDiff(ToDoubles(got), want), theirs = MaxAbsDiff(naive, want);
        EXPECT_LE(ours, 2 * theirs) << "naive " << DTypeName(t) << " error " << theirs;
      }
    }
  }
}

TEST(LinearAttention, OneTokenReturnsValueScaledByNormaliser) {
  // With N = 1: kv = phi(k)^T v, z = phi(q).phi(k) + eps, so out = v * s / (s + eps).
  const Dims s{1, 1, 2, 4};
  Tensor q = RandomTensor({1, 1, 8}, DType::f64, 1), k = RandomTensor({1, 1, 8}, DType::f64, 2);
  Tensor v = RandomTensor({1, 1, 8}, DType::f64, 3);
  CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunLinearAttention(q, k, v, {.heads = s.H, .eps = 0.0}));
  EXPECT_TRUE(AllClose(ToDoubles(got), ToDoubles(v), 1e-14, 1e-15));
}

// d/dx of sum(out * r) by central differences of the float64 reference, at
// every element of q, k and v, against the autodiff gradient run through the
// executor.
TEST(LinearAttention, BackwardMatchesCentralDifferences) {
  for (const Case& c : {Case{{2, 5, 2, 3}, 1e-4}, Case{{1, 7, 3, 2}, 0.3}}) {
    const Dims& s = c.dims;
    SCOPED_TRACE(::testing::Message() << "B " << s.B << " N " << s.N << " heads " << s.H << " x " << s.d);
    const Shape shape{s.B, s.N, s.C()};
    std::vector<Tensor> x = {RandomTensor(shape, DType::f64, 11, -2, 2), RandomTensor(shape, DType::f64, 12, -2, 2),
                             RandomTensor(shape, DType::f64, 13, -2, 2)};
    const Tensor r = RandomTensor(shape, DType::f64, 14);

    Graph g;
    Builder b(&g);
    std::vector<Value> p = {b.Parameter("q", shape, DType::f64, x[0]), b.Parameter("k", shape, DType::f64, x[1]),
                            b.Parameter("v", shape, DType::f64, x[2])};
    Value loss = Sum(Mul(LinearAttention(p[0], p[1], p[2], {.heads = s.H, .eps = c.eps}), b.Constant(r, "r")));
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, p));
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(grads[i].valid()) << "no gradient for input " << i;
      b.MarkOutput(grads[i], "d" + std::to_string(i));
    }
    CF_ASSERT_OK(b.Finish().status());
    ExecutorOptions eo;
    eo.poison = true;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed({}));

    const std::vector<double> rd = ToDoubles(r);
    std::vector<std::vector<double>> xd = {ToDoubles(x[0]), ToDoubles(x[1]), ToDoubles(x[2])};
    auto loss_at = [&] {
      const std::vector<double> y = Reference(xd[0], xd[1], xd[2], s, c.eps);
      double l = 0;
      for (size_t i = 0; i < y.size(); ++i) l += y[i] * rd[i];
      return l;
    };
    constexpr double h = 1e-5;
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE(::testing::Message() << "input " << "qkv"[i]);
      std::vector<double> numeric(xd[i].size());
      for (size_t e = 0; e < xd[i].size(); ++e) {
        const double x0 = xd[i][e];
        xd[i][e] = x0 + h;
        const double up = loss_at();
        xd[i][e] = x0 - h;
        const double down = loss_at();
        xd[i][e] = x0;
        numeric[e] = (up - down) / (2 * h);
      }
      // Central differences are accurate to O(h^2) ~ 1e-10 here, relative to
      // the gradient's scale.
      EXPECT_TRUE(AllClose(ToDoubles(outs["d" + std::to_string(i)]), numeric, 1e-6, 1e-8 * std::max(1.0, MaxAbs(numeric))));
    }
  }
}

TEST(LinearAttention, CostIsLinearInTokens) {
  // Multiply-adds: phi(k)^T v and phi(q) kv (N d^2 each) and z (N d), per
  // (batch, head); no N x N term.
  const Dims s{2, 4096, 8, 40};
  Graph g;
  Builder b(&g);
  const Shape shape{s.B, s.N, s.C()};
  Value out = LinearAttention(b.Input("q", shape, DType::f16), b.Input("k", shape, DType::f16),
                              b.Input("v", shape, DType::f16), {.heads = s.H});
  b.MarkOutput(out, "out");
  CF_ASSERT_OK(b.Finish().status());
  CF_ASSERT_OK_AND_ASSIGN(CostReport r, Account(g));
  const int64_t bh = s.B * s.H;
  EXPECT_EQ(r.root().cost.mac_flops, bh * 2 * (2 * s.N * s.d * s.d + s.N * s.d));
  EXPECT_EQ(r.root().cost.bias_flops, 0);
  // elu on q and k: one exponential per element each.
  EXPECT_EQ(r.root().cost.transcendentals, 2 * shape.numel());
}

TEST(LinearAttention, ShapeErrorsNameTheOpAndShapes) {
  auto build = [](Shape qs, Shape ks, Shape vs, int64_t heads, DType kt = DType::f32) {
    Graph g;
    Builder b(&g);
    Value out = LinearAttention(b.Input("q", qs, DType::f32), b.Input("k", ks, kt), b.Input("v", vs, DType::f32),
                                {.heads = heads});
    EXPECT_FALSE(out.valid());
    return b.status();
  };
  ExpectError(build({2, 16, 24}, {2, 16, 24}, {2, 16, 24}, 5), {"linear_attention", "divisible by heads",
                                                                 "f32[2, 16, 24]", "heads 5"});
  ExpectError(build({2, 16, 24}, {1, 16, 24}, {2, 16, 24}, 8), {"linear_attention", "same shape", "k f32[1, 16, 24]"});
  ExpectError(build({2, 16, 24}, {2, 16, 24}, {2, 15, 24}, 8), {"linear_attention", "v f32[2, 15, 24]"});
  ExpectError(build({2, 4, 4, 24}, {2, 4, 4, 24}, {2, 4, 4, 24}, 8), {"linear_attention", "[B, N, heads*d]"});
  ExpectError(build({2, 16, 24}, {2, 16, 24}, {2, 16, 24}, 8, DType::f16), {"linear_attention", "dtype"});
  ExpectError(build({2, 16, 24}, {2, 16, 24}, {2, 16, 24}, 0), {"linear_attention", "heads 0"});
}

// SD1.5's highest-resolution layer (B 2, N 4096, 8 heads x 40, f32): checks
// sampled rows against the reference and prints the time of the composition
// (docs/linfusion-and-window.md records it).
TEST(LinearAttention, Sd15TopLevelShapeMatchesReferenceAndIsTimed) {
  const Dims s{2, 4096, 8, 40};
  const Shape shape{s.B, s.N, s.C()};
  Tensor q = RandomTensor(shape, DType::f32, 21, -2, 2), k = RandomTensor(shape, DType::f32, 22, -2, 2);
  Tensor v = RandomTensor(shape, DType::f32, 23);
  Graph g;
  Builder b(&g);
  b.MarkOutput(LinearAttention(b.Input("q", shape, DType::f32), b.Input("k", shape, DType::f32),
                               b.Input("v", shape, DType::f32), {.heads = s.H}),
               "out");
  CF_ASSERT_OK(b.Finish().status());
  ExecutorOptions eo;
  eo.time_nodes = true;
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, eo));
  std::vector<double> ms;
  Tensor got;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->Run({{"q", q}, {"k", k}, {"v", v}}));
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    got = outs[0];
  }
  std::sort(ms.begin(), ms.end());
  std::printf("linear_attention f32 B %lld N %lld heads %lld x %lld: median %.2f ms over %zu runs; per node:\n",
              static_cast<long long>(s.B), static_cast<long long>(s.N), static_cast<long long>(s.H),
              static_cast<long long>(s.d), ms[ms.size() / 2], ms.size());
  for (const NodeTiming& t : exec->timings()) std::printf("  %-10s %8.3f ms\n", t.op.c_str(), t.ms);

  // The full reference is cheap enough (O(N d^2) per head) to compare every element.
  const std::vector<double> want = Reference(ToDoubles(q), ToDoubles(k), ToDoubles(v), s, 1e-4);
  const double tol = 2e-6 * std::sqrt(static_cast<double>(s.N + s.d));
  EXPECT_TRUE(AllClose(ToDoubles(got), want, tol, tol * MaxAbs(want)));
}

}  // namespace
}  // namespace cf::testing
