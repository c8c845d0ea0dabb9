// The ConvBlock module (nn/convblock.h) against a float64 reference written
// here from the definition (docs/paper-facts.md "The ConvBlock as released"):
// odd sizes, every gate, K from 3 to 31, one and two scales; gradients through
// autodiff against central differences; the released gate in f16 at
// magnitudes where multiplying the map by sqrt(C'/2) would overflow; bad
// options and weights; the weight loader; and the golden files made by the
// authors' PyTorch definition (tools/make_convblock_golden.py).
#include "nn/convblock.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/elementwise/elementwise.h"
#include "ops/reduce/reduce.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Params = std::map<std::string, std::vector<double>>;  // key inside the module scope -> values

// A [B, H, W, C] map in float64.
struct Map {
  int64_t B, H, W, C;
  std::vector<double> v;
  Map(int64_t b, int64_t h, int64_t w, int64_t c) : B(b), H(h), W(w), C(c), v(b * h * w * c, 0.0) {}
  double& at(int64_t b, int64_t y, int64_t x, int64_t c) { return v[((b * H + y) * W + x) * C + c]; }
  double at(int64_t b, int64_t y, int64_t x, int64_t c) const { return v[((b * H + y) * W + x) * C + c]; }
};

// Per pixel: x W^T + bias, W [out, in].
Map LinearRef(const Map& x, const std::vector<double>& w, const std::vector<double>& bias, int64_t out) {
  Map y(x.B, x.H, x.W, out);
  const int64_t P = x.B * x.H * x.W;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias[o];
      for (int64_t i = 0; i < x.C; ++i) s += x.v[p * x.C + i] * w[o * x.C + i];
      y.v[p * out + o] = s;
    }
  return y;
}

// PyTorch's adaptive average pool: bin i covers [floor(i*H/oh), ceil((i+1)*H/oh)).
Map AdaptivePoolRef(const Map& x, int64_t oh, int64_t ow) {
  Map y(x.B, oh, ow, x.C);
  for (int64_t b = 0; b < x.B; ++b)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t y0 = i * x.H / oh, y1 = ((i + 1) * x.H + oh - 1) / oh;
        const int64_t x0 = j * x.W / ow, x1 = ((j + 1) * x.W + ow - 1) / ow;
        for (int64_t c = 0; c < x.C; ++c) {
          double s = 0;
          for (int64_t yy = y0; yy < y1; ++yy)
            for (int64_t xx = x0; xx < x1; ++xx) s += x.at(b, yy, xx, c);
          y.at(b, i, j, c) = s / static_cast<double>((y1 - y0) * (x1 - x0));
        }
      }
  return y;
}

// Depthwise cross-correlation with the released [K, K, C] weight, zero padding K/2.
Map DepthwiseRef(const Map& x, const std::vector<double>& w, const std::vector<double>* bias, int64_t K) {
  Map y(x.B, x.H, x.W, x.C);
  const int64_t r = K / 2;
  for (int64_t b = 0; b < x.B; ++b)
    for (int64_t i = 0; i < x.H; ++i)
      for (int64_t j = 0; j < x.W; ++j)
        for (int64_t c = 0; c < x.C; ++c) {
          double s = bias ? (*bias)[c] : 0.0;
          for (int64_t ki = 0; ki < K; ++ki)
            for (int64_t kj = 0; kj < K; ++kj) {
              const int64_t yy = i + ki - r, xx = j + kj - r;
              if (yy >= 0 && yy < x.H && xx >= 0 && xx < x.W) s += x.at(b, yy, xx, c) * w[(ki * K + kj) * x.C + c];
            }
          y.at(b, i, j, c) = s;
        }
  return y;
}

// F.interpolate(mode="bilinear", align_corners=False) to (oh, ow).
Map BilinearRef(const Map& x, int64_t oh, int64_t ow) {
  auto src = [](int64_t dst, int64_t in, int64_t out, int64_t* i0, int64_t* i1, double* l) {
    const double s = std::max(0.0, (static_cast<double>(dst) + 0.5) * static_cast<double>(in) / out - 0.5);
    *i0 = std::min(static_cast<int64_t>(s), in - 1);
    *i1 = std::min(*i0 + 1, in - 1);
    *l = s - static_cast<double>(*i0);
  };
  Map y(x.B, oh, ow, x.C);
  for (int64_t b = 0; b < x.B; ++b)
    for (int64_t i = 0; i < oh; ++i) {
      int64_t a0, a1;
      double la;
      src(i, x.H, oh, &a0, &a1, &la);
      for (int64_t j = 0; j < ow; ++j) {
        int64_t c0, c1;
        double lc;
        src(j, x.W, ow, &c0, &c1, &lc);
        for (int64_t c = 0; c < x.C; ++c)
          y.at(b, i, j, c) = (1 - la) * ((1 - lc) * x.at(b, a0, c0, c) + lc * x.at(b, a0, c1, c)) +
                             la * ((1 - lc) * x.at(b, a1, c0, c) + lc * x.at(b, a1, c1, c));
      }
    }
  return y;
}

double Sigm(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// The block, step by step as in the definition; `max_gate` gets the largest
// |gate output| (before any folding) when not null.
Map ConvBlockRef(const Map& x, Params& p, const ConvBlockOptions& o, double* max_gate = nullptr) {
  const int64_t C = x.C, Ci = static_cast<int64_t>(static_cast<double>(C) * o.inter_ratio), half = Ci / 2;
  const int64_t S = static_cast<int64_t>(o.scales.size());
  const Map u = LinearRef(x, p["conv_up.weight"], p["conv_up.bias"], Ci);
  Map cat(x.B, x.H, x.W, S * half);
  for (int64_t n = 0; n < S; ++n) {
    const double s = o.scales[n];
    const std::string g = "gates." + std::to_string(n) + ".conv_spatial.";
    const Map pooled = s == 1.0 ? u
                                : AdaptivePoolRef(u, static_cast<int64_t>(static_cast<double>(x.H) * s),
                                                  static_cast<int64_t>(static_cast<double>(x.W) * s));
    const Map d = DepthwiseRef(pooled, p[g + "weight"], o.depthwise_bias ? &p[g + "bias"] : nullptr, o.kernel);
    Map gated(d.B, d.H, d.W, half);
    for (int64_t q = 0; q < d.B * d.H * d.W; ++q)
      for (int64_t c = 0; c < half; ++c) {
        const double x1 = d.v[q * Ci + c], x2 = d.v[q * Ci + half + c];
        const double sq = std::sqrt(static_cast<double>(Ci) / 2.0);
        double v = 0;
        switch (o.gate) {
          case ConvBlockGate::kPaper: v = x1 * x2 / sq; break;
          case ConvBlockGate::kReleased: v = x1 * (x2 / (1.0 / sq)); break;
          case ConvBlockGate::kSigmoid: v = x1 * Sigm(x2); break;
        }
        if (max_gate) *max_gate = std::max(*max_gate, std::abs(v));
        gated.v[q * half + c] = v;
      }
    const Map up = s == 1.0 ? gated : BilinearRef(gated, x.H, x.W);
    for (int64_t q = 0; q < x.B * x.H * x.W; ++q)
      for (int64_t c = 0; c < half; ++c) cat.v[q * S * half + n * half + c] = up.v[q * half + c];
  }
  Map y = LinearRef(cat, p["conv_out.weight"], p["conv_out.bias"], C);
  Map mean(x.B, 1, 1, C);
  for (int64_t b = 0; b < x.B; ++b)
    for (int64_t i = 0; i < x.H; ++i)
      for (int64_t j = 0; j < x.W; ++j)
        for (int64_t c = 0; c < C; ++c) mean.at(b, 0, 0, c) += x.at(b, i, j, c) / static_cast<double>(x.H * x.W);
  const Map pool = LinearRef(mean, p["conv_pool.weight"], p["conv_pool.bias"], C);
  for (int64_t b = 0; b < x.B; ++b)
    for (int64_t i = 0; i < x.H; ++i)
      for (int64_t j = 0; j < x.W; ++j)
        for (int64_t c = 0; c < C; ++c) y.at(b, i, j, c) += pool.at(b, 0, 0, c);
  return y;
}

struct Built {
  std::unique_ptr<Graph> g = std::make_unique<Graph>();
  Params params;
};

// "conv1" = ConvBlock on input "x"; random weights ~ U(-a, a) with a =
// 1/sqrt(fan_in) (times `weight_gain`), which keeps activations O(1).
Built BuildModule(const Shape& shape, DType dt, const ConvBlockOptions& o, uint64_t seed, Value* out = nullptr,
                  std::unique_ptr<Builder>* keep = nullptr, const std::map<std::string, double>& gain = {}) {
  Built r;
  auto b = std::make_unique<Builder>(r.g.get());
  Value x = b->Input("x", shape, dt);
  Value y;
  {
    auto s = b->scope("conv1");
    y = ConvBlock(*b, x, o);
  }
  EXPECT_TRUE(b->ok()) << b->status().message();
  if (out) *out = y;
  for (int id : r.g->Parameters()) {
    ValueInfo& v = r.g->mutable_value(id);
    const std::string key = v.name.substr(std::string("conv1.").size());
    const Shape& s = v.type.shape;
    const int64_t fan_in = key.find("conv_spatial") != std::string::npos ? o.kernel * o.kernel : s.dim(-1);
    double a = 1.0 / std::sqrt(static_cast<double>(fan_in));
    for (const auto& [k, f] : gain)
      if (key.rfind(k, 0) == 0) a *= f;
    Tensor t = RandomTensor(s, dt, seed++, -a, a);
    r.params[key] = ToDoubles(t);
    v.data = t;
  }
  if (keep) {
    *keep = std::move(b);
  } else {
    b->MarkOutput(y, "y");
    EXPECT_TRUE(b->Finish().ok()) << b->status().message();
  }
  return r;
}

Map FromShape(const Shape& s, std::vector<double> v) {
  Map m(s[0], s[1], s[2], s[3]);
  m.v = std::move(v);
  return m;
}

TEST(ConvBlock, DeclaresTheAuthorsCheckpointKeys) {
  const int64_t C = 40, Ci = 20;
  for (bool dw_bias : {false, true}) {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", {2, 9, 7, C}, DType::f32);
    {
      auto s = b.scope("transformer_blocks.0.conv1");
      Value y = ConvBlock(b, x, {.kernel = 7, .scales = {1.0, 0.5, 0.25}, .depthwise_bias = dw_bias});
      EXPECT_EQ(y.type(), x.type());
    }
    CF_ASSERT_OK(b.status());
    std::map<std::string, Shape> got;
    for (int id : g.Parameters()) got[g.value(id).name] = g.value(id).type.shape;
    const std::string p = "transformer_blocks.0.conv1.";
    std::map<std::string, Shape> want = {{p + "conv_up.weight", {Ci, C}},      {p + "conv_up.bias", {Ci}},
                                         {p + "conv_out.weight", {C, 3 * Ci / 2}}, {p + "conv_out.bias", {C}},
                                         {p + "conv_pool.weight", {C, C}},     {p + "conv_pool.bias", {C}}};
    for (int n = 0; n < 3; ++n) {
      want[p + "gates." + std::to_string(n) + ".conv_spatial.weight"] = {7, 7, Ci};
      if (dw_bias) want[p + "gates." + std::to_string(n) + ".conv_spatial.bias"] = {Ci};
    }
    EXPECT_EQ(got, want);
  }
}

TEST(ConvBlock, ForwardMatchesFloat64Reference) {
  struct Case {
    Shape shape;
    ConvBlockOptions o;
  };
  const std::vector<Case> cases = {
      {{1, 45, 37, 16}, {.kernel = 13}},                                           // released gate, {1, 1/2}
      {{2, 45, 37, 8}, {.kernel = 31, .scales = {1.0}, .gate = ConvBlockGate::kPaper}},
      {{2, 7, 5, 12}, {.kernel = 3, .gate = ConvBlockGate::kSigmoid}},
      {{2, 7, 5, 8}, {.kernel = 31, .gate = ConvBlockGate::kPaper}},               // K > the pooled 3x2 map
      {{1, 7, 5, 12}, {.kernel = 5, .scales = {1.0, 0.5}, .inter_ratio = 1.0, .depthwise_bias = true}},
      {{2, 45, 37, 8}, {.kernel = 9, .scales = {0.5}, .gate = ConvBlockGate::kSigmoid}},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dt) << " x " << c.shape.ToString() << " K=" << c.o.kernel
                                        << " gate=" << ConvBlockGateName(c.o.gate));
      Built m = BuildModule(c.shape, dt, c.o, seed * 100);
      const Tensor x = RandomTensor(c.shape, dt, seed++, -2.0, 2.0);
      const Map want = ConvBlockRef(FromShape(c.shape, ToDoubles(x)), m.params, c.o);
      ExecutorOptions eo;
      eo.poison = true;
      CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(*m.g, eo));
      CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->Run({{"x", x}}));
      ASSERT_EQ(outs[0].shape(), c.shape);
      // Three chained reductions (C, K^2, S·C'/2 terms) in f32: relative to the output's scale.
      const double tol = dt == DType::f64 ? 1e-12 : 2e-6 * c.o.kernel;
      EXPECT_TRUE(AllClose(ToDoubles(outs[0]), want.v, tol, tol * MaxAbs(want.v)));
    }
  }
}

TEST(ConvBlock, GradientsMatchCentralDifferences) {
  const Shape shape{2, 7, 5, 8};
  for (ConvBlockGate gate : {ConvBlockGate::kReleased, ConvBlockGate::kSigmoid}) {
    SCOPED_TRACE(ConvBlockGateName(gate));
    const ConvBlockOptions o{.kernel = 3, .gate = gate, .depthwise_bias = gate == ConvBlockGate::kSigmoid};
    Value y;
    std::unique_ptr<Builder> b;
    Built m = BuildModule(shape, DType::f64, o, 500, &y, &b);
    const Tensor x = RandomTensor(shape, DType::f64, 7, -2.0, 2.0);
    const Tensor r = RandomTensor(shape, DType::f64, 8);
    Value loss = Sum(Mul(y, b->Constant(r, "r")));
    std::vector<std::string> keys = {"conv_up.weight",  "conv_up.bias", "gates.0.conv_spatial.weight",
                                     "gates.1.conv_spatial.weight", "conv_out.weight", "conv_out.bias",
                                     "conv_pool.weight", "conv_pool.bias"};
    if (o.depthwise_bias) keys.push_back("gates.1.conv_spatial.bias");
    std::vector<Value> wrt = {Value{b.get(), m.g->FindInput("x")}};
    for (const std::string& k : keys) wrt.push_back(Value{b.get(), m.g->FindParameter("conv1." + k)});
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
      const Map yv = ConvBlockRef(FromShape(shape, xd), m.params, o);
      double l = 0;
      for (size_t i = 0; i < yv.v.size(); ++i) l += yv.v[i] * rd[i];
      return l;
    };
    constexpr double h = 1e-6;
    for (size_t w = 0; w < wrt.size(); ++w) {
      std::vector<double>& target = w == 0 ? xd : m.params[keys[w - 1]];
      SCOPED_TRACE(w == 0 ? std::string("x") : keys[w - 1]);
      const std::vector<double> analytic = ToDoubles(outs["g" + std::to_string(w)]);
      ASSERT_EQ(analytic.size(), target.size());
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
}

// SD1.5's top level has C' = 160: the released gate multiplies by sqrt(80) ≈
// 8.9. With depthwise outputs of a few hundred (as LayerNorm'd hidden states
// times trained weights can reach) x1·x2·8.9 passes f16's 65504 while x1·x2
// and the block's output do not; the module must stay finite and accurate.
TEST(ConvBlock, ReleasedGateStaysInF16Range) {
  const Shape shape{1, 7, 9, 320};
  const ConvBlockOptions o{.kernel = 3};
  // conv_up and conv_spatial weights large (depthwise outputs ~±200), conv_out small.
  Built m = BuildModule(shape, DType::f16, o, 900, nullptr, nullptr,
                        {{"conv_up", 25.0}, {"gates", 6.0}, {"conv_out", 0.01}});
  const Tensor x = RandomTensor(shape, DType::f16, 901, -2.0, 2.0);
  double max_gate = 0;
  const Map want = ConvBlockRef(FromShape(shape, ToDoubles(x)), m.params, o, &max_gate);
  ASSERT_GT(max_gate, 65504.0) << "the case must overflow f16 when the factor is applied to the map";
  ASSERT_LT(max_gate / std::sqrt(80.0), 30000.0) << "x1*x2 itself must fit f16";
  ASSERT_LT(MaxAbs(want.v), 10000.0);
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(*m.g));
  CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->Run({{"x", x}}));
  const std::vector<double> got = ToDoubles(outs[0]);
  for (double v : got) ASSERT_TRUE(std::isfinite(v));
  // f16 storage of every intermediate: a few units of f16's 2^-11 relative to the output's scale.
  EXPECT_TRUE(AllClose(got, want.v, 1e-2, 1e-2 * MaxAbs(want.v)));
}

TEST(ConvBlock, BadOptionsNameTheModuleAndTheValue) {
  struct Case {
    Shape shape;
    ConvBlockOptions o;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {{1, 8, 8, 16}, {.kernel = 4}, {"conv1", "ConvBlock", "kernel 4", "odd"}},
      {{1, 8, 8, 16}, {.kernel = 33}, {"ConvBlock", "kernel 33", "[3, 31]"}},
      {{1, 8, 8, 10}, {.kernel = 3}, {"ConvBlock", "= 5", "must be even"}},
      {{1, 8, 8, 16}, {.kernel = 3, .scales = {}}, {"ConvBlock", "at least one scale"}},
      {{1, 8, 8, 16}, {.kernel = 3, .scales = {1.0, 1.5}}, {"ConvBlock", "scale 1.5"}},
      {{1, 1, 8, 16}, {.kernel = 3}, {"ConvBlock", "scale 0.5", "to 0x4"}},
      {{8, 8, 16}, {.kernel = 3}, {"ConvBlock", "[B, H, W, C]", "f32[8, 8, 16]"}},
  };
  for (const Case& c : cases) {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", c.shape, DType::f32);
    auto s = b.scope("conv1");
    const Value y = ConvBlock(b, x, c.o);
    EXPECT_FALSE(y.valid());
    ExpectError(b.status(), c.parts);
  }
}

// ---- The loader and the golden files ------------------------------------------------

std::string TempPath(const std::string& name) {
  std::string dir = ::testing::TempDir() + "convblock_test.XXXXXX";
  EXPECT_NE(::mkdtemp(dir.data()), nullptr);
  return dir + "/" + name;
}

TEST(ConvBlock, LoaderAcceptsBothLayoutsAndNamesBadKeys) {
  const int64_t C = 8, Ci = 4, K = 3;
  const ConvBlockOptions o{.kernel = K, .scales = {1.0}};
  // Released layouts, then the NCHW block's ([out, in, 1, 1], [C', 1, K, K]).
  std::vector<double> wk(K * K * Ci), wc(Ci * K * K);
  for (int64_t i = 0; i < K * K; ++i)
    for (int64_t c = 0; c < Ci; ++c) wk[i * Ci + c] = wc[c * K * K + i] = static_cast<double>(i * 10 + c);
  const Tensor up = RandomTensor({Ci, C}, DType::f32, 1), out = RandomTensor({C, Ci / 2}, DType::f32, 2);
  const Tensor pool = RandomTensor({C, C}, DType::f32, 3), bias_c = RandomTensor({C}, DType::f32, 4);
  const Tensor bias_ci = RandomTensor({Ci}, DType::f32, 5);
  auto as4d = [](const Tensor& t) { return t.Reshape({t.shape()[0], t.shape()[1], 1, 1}).value(); };
  for (bool nchw : {false, true}) {
    SCOPED_TRACE(nchw ? "nchw" : "released");
    std::vector<std::pair<std::string, Tensor>> ts = {
        {"blk.conv1.conv_up.weight", nchw ? as4d(up) : up},
        {"blk.conv1.conv_up.bias", bias_ci},
        {"blk.conv1.gates.0.conv_spatial.weight",
         nchw ? FromDoubles(wc, {Ci, 1, K, K}, DType::f32) : FromDoubles(wk, {K, K, Ci}, DType::f32)},
        {"blk.conv1.conv_out.weight", nchw ? as4d(out) : out},
        {"blk.conv1.conv_out.bias", bias_c},
        {"blk.conv1.conv_pool.weight", nchw ? as4d(pool) : pool},
        {"blk.conv1.conv_pool.bias", bias_c}};
    const std::string path = TempPath("w.safetensors");
    CF_ASSERT_OK(WriteSafetensors(path, ts));
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile f, SafetensorsFile::Open(path));
    CF_ASSERT_OK_AND_ASSIGN(auto got, LoadConvBlockParameters(f, "blk.conv1", C, o, DType::f64));
    std::map<std::string, Tensor> m(got.begin(), got.end());
    ASSERT_EQ(m.size(), 7u);
    EXPECT_EQ(m["blk.conv1.conv_up.weight"].shape(), (Shape{Ci, C}));
    EXPECT_EQ(m["blk.conv1.conv_up.weight"].dtype(), DType::f64);
    EXPECT_EQ(ToDoubles(m["blk.conv1.conv_up.weight"]), ToDoubles(up));
    EXPECT_EQ(m["blk.conv1.conv_pool.weight"].shape(), (Shape{C, C}));
    EXPECT_EQ(m["blk.conv1.gates.0.conv_spatial.weight"].shape(), (Shape{K, K, Ci}));
    EXPECT_EQ(ToDoubles(m["blk.conv1.gates.0.conv_spatial.weight"]), wk);

    // Another K, another C, a missing depthwise bias.
    ExpectError(LoadConvBlockParameters(f, "blk.conv1", C, {.kernel = 5, .scales = {1.0}}, DType::f32).status(),
                {"blk.conv1.gates.0.conv_spatial.weight", "[5, 5, 4]", "[4, 1, 5, 5]",
                 nchw ? "[4, 1, 3, 3]" : "[3, 3, 4]"});
    ExpectError(LoadConvBlockParameters(f, "blk.conv1", 16, o, DType::f32).status(),
                {"blk.conv1.conv_up.weight", "[8, 16]", "[8, 16, 1, 1]"});
    ExpectError(
        LoadConvBlockParameters(f, "blk.conv1", C, {.kernel = K, .scales = {1.0}, .depthwise_bias = true}, DType::f32)
            .status(),
        {"has no tensor", "blk.conv1.gates.0.conv_spatial.bias", "[4]"});
    ExpectError(LoadConvBlockParameters(f, "blk.conv2", C, o, DType::f32).status(),
                {"has no tensor 'blk.conv2.conv_up.weight'"});
  }
}

std::string GoldenDir() {
  return (std::filesystem::path(CF_SOURCE_DIR) / "tests" / "data" / "convblock").string();
}

// Each golden file: `input` [B, H, W, C], the weights under "conv1.", the
// PyTorch output `output`, and the options as metadata.
TEST(ConvBlock, MatchesTheAuthorsPyTorchBlock) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(GoldenDir())) {
    if (entry.path().extension() != ".safetensors") continue;
    ++files;
    SCOPED_TRACE(entry.path().filename().string());
    CF_ASSERT_OK_AND_ASSIGN(SafetensorsFile f, SafetensorsFile::Open(entry.path().string()));
    const auto& meta = f.metadata();
    ConvBlockOptions o;
    o.kernel = std::stoi(meta.at("kernel"));
    CF_ASSERT_OK_AND_ASSIGN(o.gate, ParseConvBlockGate(meta.at("gate")));
    o.depthwise_bias = meta.at("depthwise_bias") == "1";
    o.scales.clear();
    for (absl::string_view s : absl::StrSplit(meta.at("scales"), ',')) o.scales.push_back(std::stod(std::string(s)));
    if (o.depthwise_bias) {  // the file's biases must not be dropped silently
      ConvBlockOptions no_bias = o;
      no_bias.depthwise_bias = false;
      ExpectError(LoadConvBlockParameters(f, "conv1", 16, no_bias, DType::f32).status(),
                  {"conv1.gates.0.conv_spatial.bias", "no depthwise bias"});
    }
    CF_ASSERT_OK_AND_ASSIGN(Tensor x, f.Read("input"));
    CF_ASSERT_OK_AND_ASSIGN(Tensor want, f.Read("output"));
    const int64_t C = x.shape()[3];
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(DTypeName(dt));
      CF_ASSERT_OK_AND_ASSIGN(auto params, LoadConvBlockParameters(f, "conv1", C, o, dt));
      Graph g;
      Builder b(&g);
      Value xv = b.Input("x", x.shape(), dt);
      {
        auto s = b.scope("conv1");
        b.MarkOutput(ConvBlock(b, xv, o), "y");
      }
      CF_ASSERT_OK(b.Finish().status());
      CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
      for (const auto& [name, t] : params) CF_ASSERT_OK(exec->SetParameter(name, t));
      CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->Run({{"x", CastTo(x, dt)}}));
      const std::vector<double> w = ToDoubles(want);
      // The file holds PyTorch's float64 result.
      const double tol = dt == DType::f64 ? 1e-10 : 2e-6 * o.kernel;
      EXPECT_TRUE(AllClose(ToDoubles(outs[0]), w, tol, tol * MaxAbs(w)));
    }
  }
  EXPECT_GE(files, 2) << "golden files in " << GoldenDir();
}

}  // namespace
}  // namespace cf::testing
