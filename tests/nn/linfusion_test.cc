// The LinFusion attention module (nn/linfusion.h) against a float64
// reference written here from the authors' definition, with random weights:
// [B, N, C] and [B, H, W, C] inputs, f64 and f32; its parameters' checkpoint
// names and shapes; its cost; gradients of the input and of parameters of
// every kind against central differences of the reference.
#include "nn/linfusion.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "graph/accounting.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/elementwise/elementwise.h"
#include "ops/reduce/reduce.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Params = std::map<std::string, std::vector<double>>;  // checkpoint key (without the module scope) -> values

struct Mat {  // row-major [rows, cols]
  int64_t rows, cols;
  std::vector<double> v;
  double& at(int64_t r, int64_t c) { return v[r * cols + c]; }
  double at(int64_t r, int64_t c) const { return v[r * cols + c]; }
};

// x [T, in] -> x W^T + b, W [out, in].
Mat LinearRef(const Mat& x, const std::vector<double>& w, const std::vector<double>* bias, int64_t out) {
  Mat y{x.rows, out, std::vector<double>(x.rows * out)};
  for (int64_t t = 0; t < x.rows; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int64_t i = 0; i < x.cols; ++i) s += x.at(t, i) * w[o * x.cols + i];
      y.at(t, o) = s;
    }
  return y;
}

// PyTorch's LayerNorm over the last dim (biased variance), then LeakyReLU.
Mat LayerNormLeakyRef(Mat x, const std::vector<double>& g, const std::vector<double>& beta, double eps,
                      double slope) {
  for (int64_t t = 0; t < x.rows; ++t) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < x.cols; ++i) mean += x.at(t, i) / x.cols;
    for (int64_t i = 0; i < x.cols; ++i) var += (x.at(t, i) - mean) * (x.at(t, i) - mean) / x.cols;
    for (int64_t i = 0; i < x.cols; ++i) {
      const double y = (x.at(t, i) - mean) / std::sqrt(var + eps) * g[i] + beta[i];
      x.at(t, i) = y > 0 ? y : slope * y;
    }
  }
  return x;
}

double Phi(double x) { return x > 0 ? x + 1.0 : std::exp(x); }

// One image's tokens [N, C] through the module (GeneralizedLinearAttention.forward).
Mat LinFusionRef(const Mat& x, Params& p, int64_t heads, int64_t mid, double eps, double norm_eps, double slope) {
  const int64_t N = x.rows, C = x.cols, d = C / heads;
  auto mlp = [&](const std::string& n) {
    Mat h = LinearRef(x, p[n + ".0.weight"], &p[n + ".0.bias"], mid);
    h = LayerNormLeakyRef(h, p[n + ".1.weight"], p[n + ".1.bias"], norm_eps, slope);
    h = LinearRef(h, p[n + ".3.weight"], &p[n + ".3.bias"], C);
    for (int64_t i = 0; i < N * C; ++i) h.v[i] += x.v[i];  // x + MLP(x)
    return h;
  };
  const Mat q = LinearRef(mlp("to_q_"), p["to_q.weight"], nullptr, C);
  const Mat k = LinearRef(mlp("to_k_"), p["to_k.weight"], nullptr, C);
  const Mat v = LinearRef(x, p["to_v.weight"], nullptr, C);
  Mat a{N, C, std::vector<double>(N * C)};
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t c0 = h * d;
    std::vector<double> kmean(d, 0.0), kv(d * d, 0.0);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < d; ++i) {
        const double pk = Phi(k.at(n, c0 + i)) / std::sqrt(static_cast<double>(N));
        kmean[i] += pk / std::sqrt(static_cast<double>(N));
        for (int64_t j = 0; j < d; ++j) kv[i * d + j] += pk * v.at(n, c0 + j) / std::sqrt(static_cast<double>(N));
      }
    for (int64_t n = 0; n < N; ++n) {
      double z = eps;
      for (int64_t i = 0; i < d; ++i) z += Phi(q.at(n, c0 + i)) * kmean[i];
      for (int64_t j = 0; j < d; ++j) {
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += Phi(q.at(n, c0 + i)) * kv[i * d + j];
        a.at(n, c0 + j) = s / z;
      }
    }
  }
  return LinearRef(a, p["to_out.0.weight"], &p["to_out.0.bias"], C);
}

// Every parameter the module must declare, with its shape.
std::map<std::string, Shape> ExpectedParams(int64_t C, int64_t mid) {
  std::map<std::string, Shape> m = {{"to_q.weight", {C, C}}, {"to_k.weight", {C, C}}, {"to_v.weight", {C, C}},
                                    {"to_out.0.weight", {C, C}}, {"to_out.0.bias", {C}}};
  for (const char* n : {"to_q_", "to_k_"}) {
    const std::string s = n;
    m[s + ".0.weight"] = {mid, C};
    m[s + ".0.bias"] = {mid};
    m[s + ".1.weight"] = {mid};
    m[s + ".1.bias"] = {mid};
    m[s + ".3.weight"] = {C, mid};
    m[s + ".3.bias"] = {C};
  }
  return m;
}

struct Built {
  std::unique_ptr<Graph> g = std::make_unique<Graph>();
  Params params;  // values as doubles, keyed without the scope
};

// Builds "attn1" = LinFusionAttention on input "x" of `shape`, gives every
// parameter random values (LayerNorm weights around 1), returns the graph
// and the values.
Built BuildModule(const Shape& shape, DType dt, const LinFusionOptions& o, uint64_t seed, Value* out_value = nullptr,
                  std::unique_ptr<Builder>* keep = nullptr) {
  Built r;
  auto b = std::make_unique<Builder>(r.g.get());
  Value x = b->Input("x", shape, dt);
  Value y;
  {
    auto s = b->scope("attn1");
    y = LinFusionAttention(*b, x, o);
  }
  if (out_value) *out_value = y;
  const int64_t C = shape.dim(-1);
  for (int id : r.g->Parameters()) {
    ValueInfo& v = r.g->mutable_value(id);
    const std::string key = v.name.substr(std::string("attn1.").size());
    const bool ln_gain = key.find(".1.weight") != std::string::npos;
    // Weights ~ U(-1/sqrt(C), 1/sqrt(C)) keep activations O(1).
    const double a = ln_gain ? 0.5 : 1.0 / std::sqrt(static_cast<double>(C));
    Tensor t = RandomTensor(v.type.shape, dt, seed++, ln_gain ? 0.5 : -a, ln_gain ? 1.5 : a);
    r.params[key] = ToDoubles(t);
    v.data = t;
  }
  if (keep) *keep = std::move(b);
  else {
    b->MarkOutput(y, "y");
    EXPECT_TRUE(b->Finish().ok()) << b->status().message();
  }
  return r;
}

std::vector<double> ReferenceBatch(const std::vector<double>& x, const Shape& shape, Params& p,
                                   const LinFusionOptions& o) {
  const int64_t B = shape[0], C = shape.dim(-1), N = shape.numel() / (B * C);
  const int64_t mid = o.mid_dim > 0 ? o.mid_dim : C;
  std::vector<double> out;
  for (int64_t bi = 0; bi < B; ++bi) {
    Mat xb{N, C, std::vector<double>(x.begin() + bi * N * C, x.begin() + (bi + 1) * N * C)};
    Mat y = LinFusionRef(xb, p, o.heads, mid, o.eps, o.norm_eps, o.negative_slope);
    out.insert(out.end(), y.v.begin(), y.v.end());
  }
  return out;
}

TEST(LinFusion, DeclaresTheAuthorsCheckpointKeys) {
  const int64_t C = 24;
  for (int64_t mid : {int64_t{0}, int64_t{16}}) {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", {2, 5, C}, DType::f32);
    {
      auto s = b.scope("down_blocks.0.attentions.0.transformer_blocks.0.attn1");
      Value y = LinFusionAttention(b, x, {.mid_dim = mid});
      EXPECT_EQ(y.type(), x.type());
    }
    CF_ASSERT_OK(b.status());
    std::map<std::string, Shape> got;
    for (int id : g.Parameters()) got[g.value(id).name] = g.value(id).type.shape;
    std::map<std::string, Shape> want;
    for (auto& [k, s] : ExpectedParams(C, mid > 0 ? mid : C))
      want["down_blocks.0.attentions.0.transformer_blocks.0.attn1." + k] = s;
    EXPECT_EQ(got, want);
  }
}

TEST(LinFusion, ForwardMatchesFloat64Reference) {
  struct Case {
    Shape shape;
    LinFusionOptions o;
  };
  const Case cases[] = {
      {{2, 13, 16}, {}},                                          // 8 heads x 2
      {{1, 3, 5, 24}, {.mid_dim = 10}},                           // NHWC map, 15 tokens, narrower MLP
      {{2, 9, 32}, {.heads = 4, .eps = 0.1, .negative_slope = 0.2}},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dt) << " x " << c.shape.ToString());
      Built m = BuildModule(c.shape, dt, c.o, seed * 100);
      Tensor x = RandomTensor(c.shape, dt, seed++, -2.0, 2.0);
      const std::vector<double> want = ReferenceBatch(ToDoubles(x), c.shape, m.params, c.o);
      ExecutorOptions eo;
      eo.poison = true;
      CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(*m.g, eo));
      CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->Run({{"x", x}}));
      ASSERT_EQ(outs[0].shape(), c.shape);
      // Five chained projections of width C plus the attention's sums: f32
      // rounding relative to the output's scale.
      const double tol = dt == DType::f64 ? 1e-12 : 1e-5 * std::sqrt(static_cast<double>(c.shape.dim(-1)));
      EXPECT_TRUE(AllClose(ToDoubles(outs[0]), want, tol, tol * MaxAbs(want)));
    }
  }
}

TEST(LinFusion, GradientsMatchCentralDifferences) {
  const Shape shape{2, 5, 16};
  const LinFusionOptions o{.heads = 4};
  Value y;
  std::unique_ptr<Builder> b;
  Built m = BuildModule(shape, DType::f64, o, 500, &y, &b);
  const Tensor x = RandomTensor(shape, DType::f64, 7, -2.0, 2.0);
  const Tensor r = RandomTensor(shape, DType::f64, 8);
  Value loss = Sum(Mul(y, b->Constant(r, "r")));
  // The input and one parameter of each kind: MLP linear, LayerNorm gain and shift,
  // the q and v projections, the output bias.
  const std::vector<std::string> keys = {"to_q_.0.weight", "to_k_.1.weight", "to_q_.1.bias", "to_k_.3.bias",
                                         "to_q.weight",    "to_v.weight",    "to_out.0.bias"};
  std::vector<Value> wrt = {Value{b.get(), m.g->FindInput("x")}};
  for (const std::string& k : keys) wrt.push_back(Value{b.get(), m.g->FindParameter("attn1." + k)});
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(*b, loss, wrt));
  ASSERT_TRUE(b->ok()) << b->status().message();
  for (size_t i = 0; i < grads.size(); ++i) {
    ASSERT_TRUE(grads[i].valid()) << i;
    b->MarkOutput(grads[i], "g" + std::to_string(i));
  }
  CF_ASSERT_OK(b->Finish().status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(*m.g));
  CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->RunNamed({{"x", x}}));

  const std::vector<double> rd = ToDoubles(r);
  std::vector<double> xd = ToDoubles(x);
  auto loss_at = [&] {
    const std::vector<double> yv = ReferenceBatch(xd, shape, m.params, o);
    double l = 0;
    for (size_t i = 0; i < yv.size(); ++i) l += yv[i] * rd[i];
    return l;
  };
  constexpr double h = 1e-6;
  for (size_t w = 0; w < wrt.size(); ++w) {
    std::vector<double>& target = w == 0 ? xd : m.params[keys[w - 1]];
    SCOPED_TRACE(w == 0 ? std::string("x") : keys[w - 1]);
    const std::vector<double> analytic = ToDoubles(outs["g" + std::to_string(w)]);
    ASSERT_EQ(analytic.size(), target.size());
    // Every element of the small ones, an evenly spaced subset of the large ones.
    const size_t stride = std::max<size_t>(1, target.size() / 24);
    std::vector<double> numeric, picked;
    for (size_t e = 0; e < target.size(); e += stride) {
      const double t0 = target[e];
      target[e] = t0 + h;
      const double up = loss_at();
      target[e] = t0 - h;
      const double down = loss_at();
      target[e] = t0;
      numeric.push_back((up - down) / (2 * h));
      picked.push_back(analytic[e]);
    }
    EXPECT_TRUE(AllClose(picked, numeric, 1e-5, 1e-7 * std::max(1.0, MaxAbs(numeric))));
  }
}

TEST(LinFusion, CostOfTheModule) {
  // Multiply-adds per token: the two MLPs (2 C mid each), to_q, to_k, to_v,
  // to_out (C^2 each) and the linear attention per head (2 d^2 + d); bias
  // adds: the MLPs (mid + C each) and to_out (C).
  const int64_t B = 2, N = 4096, C = 320, H = 8, d = C / H;
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {B, 64, 64, C}, DType::f16);
  {
    auto s = b.scope("attn1");
    b.MarkOutput(LinFusionAttention(b, x), "y");
  }
  CF_ASSERT_OK(b.Finish().status());
  CF_ASSERT_OK_AND_ASSIGN(CostReport r, Account(g));
  const ScopeCost* s = r.Find("attn1");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->cost.mac_flops, 2 * B * N * (4 * C * C + 4 * C * C + H * (2 * d * d + d)));
  EXPECT_EQ(s->cost.bias_flops, B * N * (2 * (C + C) + C));
  EXPECT_EQ(s->params, 4 * C * C + C + 2 * (2 * C * C + 4 * C));
  EXPECT_EQ(s->tokens, N);
}

TEST(LinFusion, ErrorsNameTheModule) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 24}, DType::f32);
  EXPECT_FALSE(LinFusionAttention(b, x).valid());
  ExpectError(b.status(), {"LinFusionAttention", "f32[2, 24]"});

  Graph g2;
  Builder b2(&g2);
  auto s = b2.scope("attn1");
  EXPECT_FALSE(LinFusionAttention(b2, b2.Input("x", {2, 4, 20}, DType::f32)).valid());  // 20 channels, 8 heads
  ExpectError(b2.status(), {"attn1", "linear_attention", "divisible by heads"});
}

}  // namespace
}  // namespace cf::testing
