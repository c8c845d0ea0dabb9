// DiTFastAttn's residual window attention module (nn/window_attention.h):
// the semantics of its three modes against a float64 reference written here
// (full and banded softmax attention with diffusers' projections), the
// residual cache round trip, its parameters, the FLOPs the graph accounts
// for each mode, and errors.
#include "nn/window_attention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "graph/accounting.h"
#include "graph/executor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Params = std::map<std::string, std::vector<double>>;  // key without the module scope -> values

// x [N, C] -> x W^T (+ b).
std::vector<double> LinearRef(const std::vector<double>& x, int64_t N, int64_t C, const std::vector<double>& w,
                              const std::vector<double>* bias) {
  std::vector<double> y(N * C);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < C; ++o) {
      double s = bias ? (*bias)[o] : 0.0;
      for (int64_t i = 0; i < C; ++i) s += x[n * C + i] * w[o * C + i];
      y[n * C + o] = s;
    }
  return y;
}

// softmax(q k^T / sqrt(d)) v per head over the keys |i - j| <= window
// (window < 0: all keys), one image [N, C].
std::vector<double> AttentionRef(const std::vector<double>& q, const std::vector<double>& k,
                                 const std::vector<double>& v, int64_t N, int64_t C, int64_t heads, int64_t window) {
  const int64_t d = C / heads;
  std::vector<double> out(N * C, 0.0), p(N);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t lo = window < 0 ? 0 : std::max<int64_t>(0, i - window);
      const int64_t hi = window < 0 ? N : std::min<int64_t>(N, i + window + 1);
      double m = -INFINITY, sum = 0;
      for (int64_t j = lo; j < hi; ++j) {
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += q[i * C + h * d + c] * k[j * C + h * d + c];
        p[j] = s / std::sqrt(static_cast<double>(d));
        m = std::max(m, p[j]);
      }
      for (int64_t j = lo; j < hi; ++j) sum += (p[j] = std::exp(p[j] - m));
      for (int64_t j = lo; j < hi; ++j)
        for (int64_t c = 0; c < d; ++c) out[i * C + h * d + c] += p[j] / sum * v[j * C + h * d + c];
    }
  return out;
}

struct Core {  // one batch's attention cores
  std::vector<double> full, win;
};

// The module's q, k, v and both attention cores for a whole batch [B, N, C].
Core CoresRef(const std::vector<double>& x, int64_t B, int64_t N, int64_t C, Params& p, int64_t heads,
              int64_t window, bool qkv_bias) {
  Core r;
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<double> xb(x.begin() + b * N * C, x.begin() + (b + 1) * N * C);
    auto proj = [&](const std::string& n) {
      return LinearRef(xb, N, C, p[n + ".weight"], qkv_bias ? &p[n + ".bias"] : nullptr);
    };
    const std::vector<double> q = proj("to_q"), k = proj("to_k"), v = proj("to_v");
    const std::vector<double> f = AttentionRef(q, k, v, N, C, heads, -1), w = AttentionRef(q, k, v, N, C, heads, window);
    r.full.insert(r.full.end(), f.begin(), f.end());
    r.win.insert(r.win.end(), w.begin(), w.end());
  }
  return r;
}

std::vector<double> OutRef(const std::vector<double>& core, int64_t B, int64_t N, int64_t C, Params& p) {
  return LinearRef(core, B * N, C, p["to_out.0.weight"], &p["to_out.0.bias"]);
}

struct Module {
  std::unique_ptr<Graph> g = std::make_unique<Graph>();
  std::unique_ptr<Executor> exec;
};

// Builds the module in scope "attn1" in `mode` on input "x" (and input
// "residual" for window steps), with the parameter values `p` (filled with
// random values, the same for every mode, on first use).
StatusOr<Module> Make(const Shape& xs, DType dt, WindowAttentionOptions o, Params& p, uint64_t seed) {
  Module m;
  Builder b(m.g.get());
  Value x = b.Input("x", xs, dt);
  const int64_t B = xs[0], N = xs.prod(1, xs.rank() - 1), C = xs.dim(-1);
  if (o.mode == WindowAttentionMode::kWindowWithResidual) o.residual = b.Input("residual", {B, N, C}, dt);
  WindowAttentionOutputs y;
  {
    auto s = b.scope("attn1");
    y = WindowAttention(b, x, o);
  }
  b.MarkOutput(y.out, "out");
  if (o.mode == WindowAttentionMode::kFullAndCache) b.MarkOutput(y.residual, "residual");
  CF_RETURN_IF_ERROR(b.Finish().status());
  for (int id : m.g->Parameters()) {
    ValueInfo& v = m.g->mutable_value(id);
    const std::string key = v.name.substr(std::string("attn1.").size());
    if (!p.count(key)) {
      // Weights ~ U(-1.5/sqrt(C), 1.5/sqrt(C)): scores of a few units, so the
      // softmax rows are far from uniform and the band visibly matters.
      const double a = 1.5 / std::sqrt(static_cast<double>(C));
      p[key] = ToDoubles(RandomTensor(v.type.shape, DType::f64, seed++, -a, a));
    }
    v.data = FromDoubles(p[key], v.type.shape, dt);
  }
  ExecutorOptions eo;
  eo.poison = true;
  CF_ASSIGN_OR_RETURN(m.exec, Executor::Create(*m.g, eo));
  return m;
}

constexpr WindowAttentionMode kFull = WindowAttentionMode::kFull;
constexpr WindowAttentionMode kCache = WindowAttentionMode::kFullAndCache;
constexpr WindowAttentionMode kWindow = WindowAttentionMode::kWindowWithResidual;

TEST(WindowAttention, ModesMatchTheFloat64Reference) {
  struct Case {
    Shape shape;
    int64_t heads, window;
    bool qkv_bias;
  };
  // 37 and 7 x 9 tokens with bands narrower than the sequence; a band wider
  // than it (window attention is then full attention, r = 0).
  const Case cases[] = {{{2, 37, 16}, 2, 5, false}, {{1, 7, 9, 24}, 3, 10, true}, {{1, 11, 8}, 1, 64, false}};
  uint64_t seed = 1;
  for (const Case& c : cases) {
    const int64_t B = c.shape[0], N = c.shape.prod(1, c.shape.rank() - 1), C = c.shape.dim(-1);
    for (DType dt : {DType::f64, DType::f32}) {
      SCOPED_TRACE(::testing::Message() << DTypeName(dt) << " x " << c.shape.ToString() << " heads " << c.heads
                                        << " window " << c.window);
      Params p;
      const WindowAttentionOptions base{.heads = c.heads, .window = c.window, .qkv_bias = c.qkv_bias};
      auto with = [&](WindowAttentionMode mode) {
        WindowAttentionOptions o = base;
        o.mode = mode;
        return o;
      };
      CF_ASSERT_OK_AND_ASSIGN(Module full, Make(c.shape, dt, with(kFull), p, seed * 1000));
      CF_ASSERT_OK_AND_ASSIGN(Module cache, Make(c.shape, dt, with(kCache), p, 0));
      CF_ASSERT_OK_AND_ASSIGN(Module window, Make(c.shape, dt, with(kWindow), p, 0));

      const Tensor x = RandomTensor(c.shape, dt, seed++, -1.5, 1.5);
      const Tensor x2 = RandomTensor(c.shape, dt, seed++, -1.5, 1.5);  // a later step's input
      const Core ref = CoresRef(ToDoubles(x), B, N, C, p, c.heads, c.window, c.qkv_bias);
      const Core ref2 = CoresRef(ToDoubles(x2), B, N, C, p, c.heads, c.window, c.qkv_bias);
      const std::vector<double> want_full = OutRef(ref.full, B, N, C, p);
      std::vector<double> want_r(ref.full.size());
      for (size_t i = 0; i < want_r.size(); ++i) want_r[i] = ref.full[i] - ref.win[i];
      std::vector<double> core2(ref2.win);
      for (size_t i = 0; i < core2.size(); ++i) core2[i] += want_r[i];  // o_win(x') + r(x)
      const std::vector<double> want_window2 = OutRef(core2, B, N, C, p);

      // f32: storage and compute through three chained GEMMs of width C and
      // a softmax, a few f32 roundings relative to the output's scale.
      const double tol = dt == DType::f64 ? 1e-12 : 1e-5 * std::sqrt(static_cast<double>(C));
      CF_ASSERT_OK_AND_ASSIGN(auto of, full.exec->RunNamed({{"x", x}}));
      EXPECT_TRUE(AllClose(ToDoubles(of["out"]), want_full, tol, tol * MaxAbs(want_full)));

      // The caching step returns the full output (the same graph nodes, so
      // bit for bit) and r = o_full - o_win.
      CF_ASSERT_OK_AND_ASSIGN(auto oc, cache.exec->RunNamed({{"x", x}}));
      EXPECT_EQ(ToDoubles(oc["out"]), ToDoubles(of["out"]));
      ASSERT_EQ(oc["residual"].shape(), (Shape{B, N, C}));
      EXPECT_TRUE(AllClose(ToDoubles(oc["residual"]), want_r, tol, tol * MaxAbs(ref.full)));
      if (c.window + 1 >= N) {
        EXPECT_LE(MaxAbs(ToDoubles(oc["residual"])), tol * MaxAbs(ref.full));
      }

      // A window step on the same input with that residual gives back the
      // full output up to rounding ...
      CF_ASSERT_OK_AND_ASSIGN(auto ow, window.exec->RunNamed({{"x", x}, {"residual", oc["residual"]}}));
      EXPECT_TRUE(AllClose(ToDoubles(ow["out"]), ToDoubles(of["out"]), tol, tol * MaxAbs(want_full)));
      // ... and on another input it is to_out(o_win(x') + r), which differs
      // from the full attention of x' where the band cuts keys off.
      CF_ASSERT_OK_AND_ASSIGN(auto ow2, window.exec->RunNamed({{"x", x2}, {"residual", oc["residual"]}}));
      EXPECT_TRUE(AllClose(ToDoubles(ow2["out"]), want_window2, tol, tol * MaxAbs(want_window2)));
      if (c.window + 1 < N) {
        const std::vector<double> full2 = OutRef(ref2.full, B, N, C, p);
        EXPECT_FALSE(AllClose(ToDoubles(ow2["out"]), full2, tol, tol * MaxAbs(full2)));
      }
    }
  }
}

TEST(WindowAttention, DeclaresDiffusersParameterNames) {
  for (bool qkv_bias : {false, true}) {
    Graph g;
    Builder b(&g);
    auto s = b.scope("transformer_blocks.0.attn1");
    WindowAttentionOutputs y =
        WindowAttention(b, b.Input("x", {2, 6, 4, 32}, DType::f16), {.mode = kCache, .qkv_bias = qkv_bias});
    CF_ASSERT_OK(b.status());
    EXPECT_EQ(y.out.type(), (TensorType{{2, 6, 4, 32}, DType::f16}));
    EXPECT_EQ(y.residual.type(), (TensorType{{2, 24, 32}, DType::f16}));
    std::map<std::string, Shape> got;
    for (int id : g.Parameters()) got[g.value(id).name] = g.value(id).type.shape;
    std::map<std::string, Shape> want;
    for (const char* n : {"to_q", "to_k", "to_v", "to_out.0"}) {
      want[std::string("transformer_blocks.0.attn1.") + n + ".weight"] = Shape{32, 32};
      if (qkv_bias || std::string(n) == "to_out.0") want[std::string("transformer_blocks.0.attn1.") + n + ".bias"] = {32};
    }
    EXPECT_EQ(got, want);
  }
}

// The attention-core FLOPs (QK^T and PV, what DiTFastAttn counts) of a window
// step are the full step's times the band's share of the (query, key) pairs;
// the projections are the same in every mode.
TEST(WindowAttention, WindowStepCostsTheBandRatio) {
  const int64_t B = 2, N = 4096, C = 320, heads = 8, w = 64;
  auto costs = [&](WindowAttentionMode mode, const std::vector<std::string>& ops) -> Cost {
    Graph g;
    Builder b(&g);
    WindowAttentionOptions o{.heads = heads, .window = w, .mode = mode};
    if (mode == kWindow) o.residual = b.Input("residual", {B, N, C}, DType::f16);
    WindowAttentionOutputs y = WindowAttention(b, b.Input("x", {B, 64, 64, C}, DType::f16), o);
    b.MarkOutput(y.out, "out");
    if (y.residual.valid()) b.MarkOutput(y.residual, "residual");
    EXPECT_TRUE(b.Finish().ok()) << b.status().message();
    auto r = Account(g, {.ops = ops});
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r->root().cost : Cost{};
  };
  int64_t band_pairs = 0;  // sum over queries of the keys in |i - j| <= w
  for (int64_t i = 0; i < N; ++i) band_pairs += std::min(N, i + w + 1) - std::max<int64_t>(0, i - w);
  const Cost full = costs(kFull, {"attention"}), cache = costs(kCache, {"attention"});
  const Cost window = costs(kWindow, {"attention"});
  ASSERT_GT(full.mac_flops, 0);
  EXPECT_EQ(full.mac_flops, B * heads * 2 * 2 * N * N * (C / heads));  // QK^T and PV
  // window / full == band_pairs / N^2, in integers.
  EXPECT_EQ(window.mac_flops * N * N, full.mac_flops * band_pairs);
  EXPECT_LT(window.transcendentals, full.transcendentals);  // the exponentials of the band only
  EXPECT_EQ(cache.mac_flops, full.mac_flops + window.mac_flops);
  std::printf("attention core, B %lld N %lld C %lld window %lld: full %.3f GFLOP, window %.3f GFLOP (%.4f)\n",
              static_cast<long long>(B), static_cast<long long>(N), static_cast<long long>(C),
              static_cast<long long>(w), full.mac_flops * 1e-9, window.mac_flops * 1e-9,
              static_cast<double>(window.mac_flops) / static_cast<double>(full.mac_flops));

  // Whole module: the same projections, and the window step adds r (B N C
  // elementwise adds) to the band's cost.
  const Cost lin_full = costs(kFull, {"linear"}), lin_window = costs(kWindow, {"linear"});
  EXPECT_EQ(lin_full.mac_flops, 2 * B * N * 4 * C * C);
  EXPECT_EQ(lin_window.mac_flops, lin_full.mac_flops);
  const Cost all_full = costs(kFull, {}), all_window = costs(kWindow, {});
  EXPECT_EQ(all_window.mac_flops, lin_full.mac_flops + window.mac_flops);
  EXPECT_LT(all_window.total_flops(), all_full.total_flops());
  EXPECT_EQ(all_full.mac_flops, lin_full.mac_flops + full.mac_flops);
}

TEST(WindowAttention, ErrorsNameTheModeAndShapes) {
  auto status = [](WindowAttentionOptions o, Shape xs = {2, 16, 32}, std::optional<Shape> rs = std::nullopt) {
    Graph g;
    Builder b(&g);
    if (rs) o.residual = b.Input("r", *rs, DType::f32);
    WindowAttentionOutputs y = WindowAttention(b, b.Input("x", xs, DType::f32), o);
    EXPECT_FALSE(y.out.valid());
    EXPECT_FALSE(y.residual.valid());
    return b.status();
  };
  ExpectError(status({.mode = kWindow}), {"WindowAttention", "window_with_residual", "needs the residual"});
  ExpectError(status({.mode = kWindow}, {2, 4, 4, 32}, Shape{2, 4, 4, 32}),
              {"window_with_residual", "f32[2, 16, 32]", "got f32[2, 4, 4, 32]"});
  ExpectError(status({.mode = kFull}, {2, 16, 32}, Shape{2, 16, 32}), {"full", "only read by window_with_residual"});
  ExpectError(status({.window = -1}), {"WindowAttention", "window must be >= 0"});
  ExpectError(status({}, {2, 32}), {"WindowAttention", "f32[2, 32]"});
  ExpectError(status({.heads = 5}), {"attention"});  // 32 channels, 5 heads: the attention op's error
}

}  // namespace
}  // namespace cf::testing
