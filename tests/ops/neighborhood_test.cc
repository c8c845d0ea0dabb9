// CPU tests of neighborhood_attention and its backward against a naive
// float64 full attention whose NATTEN windows are built here as explicit
// masks (by listing the positions congruent mod the dilation and clamping the
// window on that list, independent of NaParams::WindowStart); gradients by
// finite differences; costs and error messages.
#include <cmath>

#include "graph/autodiff.h"
#include "ops/attention/attention.h"
#include "ops/attention/neighborhood_cpu.h"
#include "runtime/thread_pool.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct NaCase {
  Shape x;  // [B, H, W, heads * d]
  int64_t heads;
  Size2 kernel, dilation;
};

Attrs AttrsOf(const NaCase& c, std::optional<double> scale = std::nullopt) {
  Attrs a{{"heads", c.heads},
          {"kernel", std::vector<int64_t>{c.kernel.h, c.kernel.w}},
          {"dilation", std::vector<int64_t>{c.dilation.h, c.dilation.w}}};
  if (scale) a.Set("scale", *scale);
  return a;
}

// mask[i * len + x]: key position x is in query position i's window along one
// axis. The positions congruent to i mod dil, listed in order; i's window is
// k consecutive entries of that list, centred on i and clamped to the list.
std::vector<bool> AxisMask(int64_t len, int64_t k, int64_t dil) {
  std::vector<bool> mask(len * len, false);
  for (int64_t i = 0; i < len; ++i) {
    std::vector<int64_t> same;
    for (int64_t x = i % dil; x < len; x += dil) same.push_back(x);
    const int64_t at = std::find(same.begin(), same.end(), i) - same.begin();
    int64_t start = at - k / 2;
    start = std::max<int64_t>(0, std::min<int64_t>(start, static_cast<int64_t>(same.size()) - k));
    for (int64_t t = start; t < start + k; ++t) mask[i * len + same[t]] = true;
  }
  return mask;
}

// The full attention of every query over all H*W keys with the 2D window as a
// mask, in float64: the forward outputs, and (with dout) the gradients.
struct Reference {
  std::vector<double> out, lse, dq, dk, dv;
};
Reference NaiveAttention(const NaCase& c, double scale, const std::vector<double>& q, const std::vector<double>& k,
                         const std::vector<double>& v, const std::vector<double>* dout = nullptr,
                         const std::vector<double>* dlse = nullptr) {
  const int64_t B = c.x[0], H = c.x[1], W = c.x[2], C = c.x[3], heads = c.heads, d = C / heads, N = H * W;
  const std::vector<bool> mr = AxisMask(H, c.kernel.h, c.dilation.h), mc = AxisMask(W, c.kernel.w, c.dilation.w);
  Reference r;
  r.out.assign(q.size(), 0);
  r.lse.assign(B * N * heads, 0);
  if (dout) r.dq.assign(q.size(), 0), r.dk.assign(q.size(), 0), r.dv.assign(q.size(), 0);
  std::vector<double> s(N), dp(N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t qi = 0; qi < N; ++qi) {
        const int64_t i = qi / W, j = qi % W, qo = (b * N + qi) * C + h * d;
        double m = -INFINITY;
        for (int64_t kj = 0; kj < N; ++kj) {
          const bool visible = mr[i * H + kj / W] && mc[j * W + kj % W];
          if (!visible) {
            s[kj] = -INFINITY;
            continue;
          }
          double dot = 0;
          for (int64_t e = 0; e < d; ++e) dot += q[qo + e] * k[(b * N + kj) * C + h * d + e];
          s[kj] = scale * dot;
          m = std::max(m, s[kj]);
        }
        double sum = 0;
        for (int64_t kj = 0; kj < N; ++kj) sum += std::exp(s[kj] - m);
        const double lse = m + std::log(sum);
        r.lse[(b * N + qi) * heads + h] = lse;
        for (int64_t kj = 0; kj < N; ++kj) {
          const double p = std::exp(s[kj] - lse);
          for (int64_t e = 0; e < d; ++e) r.out[qo + e] += p * v[(b * N + kj) * C + h * d + e];
        }
        if (!dout) continue;
        // dS = P (dP - D), D = <dO, O> - dlse.
        double D = 0;
        for (int64_t e = 0; e < d; ++e) D += (*dout)[qo + e] * r.out[qo + e];
        if (dlse) D -= (*dlse)[(b * N + qi) * heads + h];
        for (int64_t kj = 0; kj < N; ++kj) {
          const double p = std::exp(s[kj] - lse);
          if (p == 0) continue;
          const int64_t ko = (b * N + kj) * C + h * d;
          double dpv = 0;
          for (int64_t e = 0; e < d; ++e) dpv += (*dout)[qo + e] * v[ko + e];
          const double ds = p * (dpv - D);
          for (int64_t e = 0; e < d; ++e) {
            r.dq[qo + e] += scale * ds * k[ko + e];
            r.dk[ko + e] += scale * ds * q[qo + e];
            r.dv[ko + e] += p * (*dout)[qo + e];
          }
        }
      }
  return r;
}

double DefaultScale(const NaCase& c) { return 1.0 / std::sqrt(static_cast<double>(c.x[3] / c.heads)); }

// |got - want| <= tol * (|want| + max |want|): the storage rounding of the
// output, relative to the output's magnitude.
::testing::AssertionResult Close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  return AllClose(got, want, tol, tol * std::max(MaxAbs(want), 1e-30));
}

const std::vector<NaCase> kCases = {
    {{1, 7, 9, 2 * 8}, 2, 3, 1},                 // corners and edges of a small map
    {{2, 9, 9, 40}, 1, 9, 1},                    // K equal to H and W: every query sees every key
    {{1, 11, 13, 3 * 8}, 3, {5, 7}, 1},          // K_h != K_w
    {{1, 13, 11, 2 * 8}, 2, 3, 2},               // dilation 2, sizes not divisible by it
    {{1, 14, 16, 72}, 1, {3, 5}, 3},             // dilation 3, sizes not divisible by it
    {{1, 12, 9, 2 * 8}, 2, {3, 3}, {2, 3}},      // mixed dilations
    {{1, 20, 37, 2 * 40}, 2, 7, 1},              // several tiles per axis, head dim 40
    {{1, 8, 10, 2 * 6}, 2, {3, 5}, {1, 2}},      // head dim not a multiple of 8 (portable loops)
    {{1, 16, 21, 8}, 1, 13, 1},                  // K = 13, the SD1.5 setting
    {{1, 7, 31, 8}, 1, {7, 31}, 1},              // K = 31 = W
};

// Storage tolerance of out and the gradients (f32 compute, one rounding to
// the storage type at the end); lse is f32 for every non-f64 storage.
constexpr DTypeTol kOutTol{1e-12, 2e-5, 2e-3, 1e-2};
constexpr DTypeTol kLseTol{1e-12, 2e-6, 2e-6, 2e-6};

TEST(NeighborhoodAttentionTest, ForwardMatchesMaskedFullAttention) {
  uint64_t seed = 1;
  for (const NaCase& c : kCases) {
    for (DType t : kFloatDTypes) {
      SCOPED_TRACE(::testing::Message() << c.x.ToString() << " heads " << c.heads << " kernel " << c.kernel.h << "x"
                                        << c.kernel.w << " dilation " << c.dilation.h << "x" << c.dilation.w << " "
                                        << DTypeName(t));
      // Inputs in [-2, 2) so that the softmax rows are far from uniform.
      Tensor q = RandomTensor(c.x, t, seed++, -2, 2), k = RandomTensor(c.x, t, seed++, -2, 2),
             v = RandomTensor(c.x, t, seed++, -1, 1);
      CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunOp("neighborhood_attention", {q, k, v}, AttrsOf(c)));
      ASSERT_EQ(got.size(), 2u);
      EXPECT_EQ(got[0].dtype(), t);
      EXPECT_EQ(got[1].dtype(), t == DType::f64 ? DType::f64 : DType::f32);
      EXPECT_EQ(got[1].shape(), Shape({c.x[0], c.x[1], c.x[2], c.heads}));
      const Reference ref = NaiveAttention(c, DefaultScale(c), ToDoubles(q), ToDoubles(k), ToDoubles(v));
      EXPECT_TRUE(Close(ToDoubles(got[0]), ref.out, kOutTol(t))) << "out";
      EXPECT_TRUE(AllClose(ToDoubles(got[1]), ref.lse, kLseTol(t), kLseTol(t) * std::max(1.0, MaxAbs(ref.lse))))
          << "lse";
    }
  }
}

TEST(NeighborhoodAttentionTest, PortableLoopsMatchToo) {
  // The f32 path without AVX2 (the loops f64 and other CPUs use).
  const bool before = na_cpu::ForceGeneric(true);
  uint64_t seed = 100;
  for (const NaCase& c : {kCases[0], kCases[4], kCases[6]}) {
    Tensor q = RandomTensor(c.x, DType::f32, seed++, -2, 2), k = RandomTensor(c.x, DType::f32, seed++, -2, 2),
           v = RandomTensor(c.x, DType::f32, seed++);
    auto got = RunOp("neighborhood_attention", {q, k, v}, AttrsOf(c));
    ASSERT_TRUE(got.ok()) << got.status().message();
    const Reference ref = NaiveAttention(c, DefaultScale(c), ToDoubles(q), ToDoubles(k), ToDoubles(v));
    EXPECT_TRUE(Close(ToDoubles((*got)[0]), ref.out, kOutTol(DType::f32)));
    EXPECT_TRUE(AllClose(ToDoubles((*got)[1]), ref.lse, 2e-6, 2e-6 * std::max(1.0, MaxAbs(ref.lse))));
  }
  na_cpu::ForceGeneric(before);
}

TEST(NeighborhoodAttentionTest, EveryForwardKernelMatches) {
  // Each f32 forward forced in turn. The AVX-512 one puts (batch, head) pairs
  // in its 16 lanes: cases with 2 pairs (mostly padding), 16 pairs (one full
  // group) and 18 (a full and a padded group); head dims 40, 72 and ones not
  // a multiple of 8 (the AVX2 forced case then runs the portable loops);
  // K_w = 31 (two key chunks per window row) and dilated columns.
  const std::vector<NaCase> cases = {
      kCases[6],                                  // 2 x 40, K 7
      kCases[4],                                  // 1 x 72, dilation 3
      kCases[7],                                  // d = 6, dilation {1, 2}
      kCases[9],                                  // K 7 x 31
      {{2, 10, 12, 8 * 40}, 8, {5, 3}, {2, 1}},   // 16 pairs
      {{2, 9, 11, 9 * 12}, 9, {5, 5}, {1, 2}},    // 18 pairs, d = 12
  };
  struct Forced {
    na_cpu::Kernel kernel;
    const char* name;
  };
  const Forced kernels[] = {{na_cpu::Kernel::kAvx512, "avx512"},
                            {na_cpu::Kernel::kAvx2, "avx2_fma"},
                            {na_cpu::Kernel::kGeneric, "generic"}};
  uint64_t seed = 300;
  for (const Forced& f : kernels) {
    if (f.kernel == na_cpu::Kernel::kAvx512 && !na_cpu::HasAvx512()) continue;
    const na_cpu::Kernel before = na_cpu::ForceKernel(f.kernel);
    if (f.kernel != na_cpu::Kernel::kAvx2) {
      EXPECT_STREQ(na_cpu::KernelName(), f.name);
    }
    for (const NaCase& c : cases) {
      for (DType t : {DType::f32, DType::bf16}) {
        SCOPED_TRACE(::testing::Message() << f.name << " " << c.x.ToString() << " heads " << c.heads << " "
                                          << DTypeName(t));
        Tensor q = RandomTensor(c.x, t, seed++, -2, 2), k = RandomTensor(c.x, t, seed++, -2, 2),
               v = RandomTensor(c.x, t, seed++, -1, 1);
        auto got = RunOp("neighborhood_attention", {q, k, v}, AttrsOf(c));
        ASSERT_TRUE(got.ok()) << got.status().message();
        const Reference ref = NaiveAttention(c, DefaultScale(c), ToDoubles(q), ToDoubles(k), ToDoubles(v));
        EXPECT_TRUE(Close(ToDoubles((*got)[0]), ref.out, kOutTol(t))) << "out";
        EXPECT_TRUE(AllClose(ToDoubles((*got)[1]), ref.lse, kLseTol(t), kLseTol(t) * std::max(1.0, MaxAbs(ref.lse))))
            << "lse";
      }
    }
    na_cpu::ForceKernel(before);
  }
}

TEST(NeighborhoodAttentionTest, ScaleAttributeAndBuilderFunction) {
  const NaCase c{{2, 10, 12, 3 * 8}, 3, {5, 3}, {1, 2}};
  Tensor q = RandomTensor(c.x, DType::f64, 7), k = RandomTensor(c.x, DType::f64, 8),
         v = RandomTensor(c.x, DType::f64, 9);
  Graph g;
  Builder b(&g);
  Value qv = b.Input("q", c.x, DType::f64), kv = b.Input("k", c.x, DType::f64), vv = b.Input("v", c.x, DType::f64);
  Value out = NeighborhoodAttention(qv, kv, vv, {.heads = 3, .kernel = {5, 3}, .dilation = {1, 2}, .scale = 0.7});
  ASSERT_TRUE(out.valid()) << b.status().message();
  EXPECT_EQ(out.shape(), c.x);
  b.MarkOutput(out, "out");
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, {Device::CPU(), {}, true, false}));
  CF_ASSERT_OK_AND_ASSIGN(auto res, exec->RunNamed({{"q", q}, {"k", k}, {"v", v}}));
  const Reference ref = NaiveAttention(c, 0.7, ToDoubles(q), ToDoubles(k), ToDoubles(v));
  EXPECT_TRUE(Close(ToDoubles(res.at("out")), ref.out, 1e-12));
}

TEST(NeighborhoodAttentionTest, BackwardMatchesReference) {
  uint64_t seed = 200;
  for (const NaCase& c : kCases) {
    for (DType t : kFloatDTypes) {
      for (bool with_dlse : {false, true}) {
        SCOPED_TRACE(::testing::Message() << c.x.ToString() << " kernel " << c.kernel.h << "x" << c.kernel.w
                                          << " dilation " << c.dilation.h << "x" << c.dilation.w << " "
                                          << DTypeName(t) << (with_dlse ? " with dlse" : ""));
        Tensor q = RandomTensor(c.x, t, seed++, -2, 2), k = RandomTensor(c.x, t, seed++, -2, 2),
               v = RandomTensor(c.x, t, seed++), dout = RandomTensor(c.x, t, seed++);
        const DType lt = t == DType::f64 ? DType::f64 : DType::f32;
        Tensor dlse = RandomTensor({c.x[0], c.x[1], c.x[2], c.heads}, lt, seed++);
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> fwd, RunOp("neighborhood_attention", {q, k, v}, AttrsOf(c)));
        std::vector<Tensor> ins{q, k, v, fwd[0], fwd[1], dout};
        if (with_dlse) ins.push_back(dlse);
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunOp("neighborhood_attention_backward", ins, AttrsOf(c)));
        ASSERT_EQ(got.size(), 3u);
        // The reference differentiates the stored forward output (as the
        // kernel does): out enters only through D = <dO, O>.
        const std::vector<double> dod = ToDoubles(dout), dl = ToDoubles(dlse);
        Reference ref = NaiveAttention(c, DefaultScale(c), ToDoubles(q), ToDoubles(k), ToDoubles(v), &dod,
                                       with_dlse ? &dl : nullptr);
        EXPECT_TRUE(Close(ToDoubles(got[0]), ref.dq, 2 * kOutTol(t))) << "dq";
        EXPECT_TRUE(Close(ToDoubles(got[1]), ref.dk, 2 * kOutTol(t))) << "dk";
        EXPECT_TRUE(Close(ToDoubles(got[2]), ref.dv, 2 * kOutTol(t))) << "dv";
      }
    }
  }
}

TEST(NeighborhoodAttentionTest, VjpMatchesFiniteDifferences) {
  // Float64 throughout; the loss includes lse, so the dlse path is checked.
  uint64_t seed = 300;
  for (const NaCase& c : {NaCase{{1, 5, 6, 2 * 4}, 2, 3, 1}, NaCase{{1, 7, 8, 8}, 1, {3, 5}, {2, 1}},
                          NaCase{{2, 6, 7, 2 * 3}, 2, {5, 3}, 1}}) {
    Tensor q = RandomTensor(c.x, DType::f64, seed++, -2, 2), k = RandomTensor(c.x, DType::f64, seed++, -2, 2),
           v = RandomTensor(c.x, DType::f64, seed++);
    EXPECT_TRUE(CheckVjp("neighborhood_attention", {q, k, v}, AttrsOf(c), {}, 1e-6, 30)) << c.x.ToString();
  }
}

TEST(NeighborhoodAttentionTest, GradThroughBuilderFunction) {
  // Only out is used: the VJP emits the 6-input backward (no dlse).
  const NaCase c{{1, 6, 7, 2 * 8}, 2, 3, 1};
  Tensor q = RandomTensor(c.x, DType::f64, 11, -2, 2), k = RandomTensor(c.x, DType::f64, 12, -2, 2),
         v = RandomTensor(c.x, DType::f64, 13), dout = RandomTensor(c.x, DType::f64, 14);
  Graph g;
  Builder b(&g);
  Value qv = b.Input("q", c.x, DType::f64), kv = b.Input("k", c.x, DType::f64), vv = b.Input("v", c.x, DType::f64);
  Value seed = b.Input("dout", c.x, DType::f64);
  Value out = NeighborhoodAttention(qv, kv, vv, {.heads = 2, .kernel = 3});
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Gradients(b, {out}, {seed}, {qv, kv, vv}));
  ASSERT_EQ(grads.size(), 3u);
  int backward_nodes = 0;
  for (const Node& n : g.nodes())
    if (n.op->name == "neighborhood_attention_backward") {
      ++backward_nodes;
      EXPECT_EQ(n.inputs.size(), 6u);
    }
  EXPECT_EQ(backward_nodes, 1);
  b.MarkOutput(grads[0], "dq");
  b.MarkOutput(grads[1], "dk");
  b.MarkOutput(grads[2], "dv");
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, {Device::CPU(), {}, true, false}));
  CF_ASSERT_OK_AND_ASSIGN(auto res, exec->RunNamed({{"q", q}, {"k", k}, {"v", v}, {"dout", dout}}));
  const std::vector<double> dod = ToDoubles(dout);
  const Reference ref = NaiveAttention(c, DefaultScale(c), ToDoubles(q), ToDoubles(k), ToDoubles(v), &dod);
  EXPECT_TRUE(Close(ToDoubles(res.at("dq")), ref.dq, 1e-11));
  EXPECT_TRUE(Close(ToDoubles(res.at("dk")), ref.dk, 1e-11));
  EXPECT_TRUE(Close(ToDoubles(res.at("dv")), ref.dv, 1e-11));
}

TEST(NeighborhoodAttentionTest, UsesSeveralThreads) {
  if (NumThreads() < 2) GTEST_SKIP() << "one thread";
  const NaCase c{{1, 16, 32, 2 * 8}, 2, 5, 1};
  Tensor q = RandomTensor(c.x, DType::f32, 21), k = RandomTensor(c.x, DType::f32, 22),
         v = RandomTensor(c.x, DType::f32, 23);
  Tensor out = RandomTensor(c.x, DType::f32, 24), lse = RandomTensor({1, 16, 32, 2}, DType::f32, 25);
  NaParams p{.batch = 1, .height = 16, .width = 32, .heads = 2, .head_dim = 8, .kh = 5, .kw = 5, .scale = 0.5};
  EXPECT_GE(ThreadsUsedBy([&] {
              na_cpu::Forward<float>(p, q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(),
                                     lse.data<float>());
            }),
            2);
}

TEST(NeighborhoodAttentionTest, NanReachesExactlyTheWindowsThatSeeIt) {
  // A NaN key makes every query whose window holds it NaN (out and lse), and
  // no other; f32 (vectorised exp; AVX2 and AVX-512 forwards) and f64
  // (std::exp).
  const NaCase c{{1, 12, 20, 2 * 8}, 2, 3, 1};
  for (const auto& [t, kernel] : {std::pair{DType::f32, na_cpu::Kernel::kAvx2},
                                  std::pair{DType::f32, na_cpu::Kernel::kAvx512},
                                  std::pair{DType::f64, na_cpu::Kernel::kAuto}}) {
    if (kernel == na_cpu::Kernel::kAvx512 && !na_cpu::HasAvx512()) continue;
    const na_cpu::Kernel before = na_cpu::ForceKernel(kernel);
    Tensor q = RandomTensor(c.x, t, 31), k = RandomTensor(c.x, t, 32), v = RandomTensor(c.x, t, 33);
    std::vector<double> kd = ToDoubles(k);
    const int64_t ki = 5, kj = 9;  // key (5, 9), head 0
    kd[(ki * 20 + kj) * 16 + 3] = std::nan("");
    k = FromDoubles(kd, c.x, t);
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunOp("neighborhood_attention", {q, k, v}, AttrsOf(c)));
    const std::vector<double> out = ToDoubles(got[0]), lse = ToDoubles(got[1]);
    const std::vector<bool> mr = AxisMask(12, 3, 1), mc = AxisMask(20, 3, 1);
    for (int64_t i = 0; i < 12; ++i)
      for (int64_t j = 0; j < 20; ++j) {
        const bool sees = mr[i * 12 + ki] && mc[j * 20 + kj];
        const int64_t tok = i * 20 + j;
        EXPECT_EQ(std::isnan(lse[tok * 2]), sees) << DTypeName(t) << " query " << i << ", " << j;
        EXPECT_EQ(std::isnan(out[tok * 16]), sees) << DTypeName(t) << " query " << i << ", " << j;
        EXPECT_FALSE(std::isnan(lse[tok * 2 + 1]) || std::isnan(out[tok * 16 + 8]));  // head 1 is clean
      }
    na_cpu::ForceKernel(before);
  }
}

TEST(NeighborhoodAttentionTest, CostIsExact) {
  // SD1.5's top level at 512: B = 2, 64 x 64 tokens, 8 heads x 40, K = 13.
  const Shape x{2, 64, 64, 320};
  const int64_t rows = 2 * 64 * 64 * 8, n = 13 * 13, d = 40;
  const NaCase c{x, 8, 13, 1};
  Cost f = CostOfOp("neighborhood_attention", {{x, DType::f16}, {x, DType::f16}, {x, DType::f16}}, AttrsOf(c));
  EXPECT_EQ(f.mac_flops, 2 * (2 * (2 * 4096) * 8 * n * d));  // QK and AV (B = 2), 2 FLOPs per multiply-add
  EXPECT_EQ(f.mac_flops, 1772093440);
  EXPECT_EQ(f.elementwise_flops, rows * (4 * n + d));
  EXPECT_EQ(f.transcendentals, rows * (n + 1));
  EXPECT_EQ(f.bias_flops, 0);
  EXPECT_EQ(f.bytes_read, 3 * x.numel() * 2);
  EXPECT_EQ(f.bytes_written, x.numel() * 2 + rows * 4);

  const TensorType t{x, DType::f16}, lse{{2, 64, 64, 8}, DType::f32};
  Cost bwd = CostOfOp("neighborhood_attention_backward", {t, t, t, t, lse, t}, AttrsOf(c));
  EXPECT_EQ(bwd.mac_flops, rows * (2 * d + 10 * n * d));
  EXPECT_EQ(bwd.elementwise_flops, rows * (4 * n + 2 * d));
  EXPECT_EQ(bwd.transcendentals, rows * n);
  EXPECT_EQ(bwd.bytes_read, 5 * x.numel() * 2 + rows * 4);
  EXPECT_EQ(bwd.bytes_written, 3 * x.numel() * 2);
  Cost bwd7 = CostOfOp("neighborhood_attention_backward", {t, t, t, t, lse, t, lse}, AttrsOf(c));
  EXPECT_EQ(bwd7.elementwise_flops, rows * (4 * n + 2 * d + 1));
  EXPECT_EQ(bwd7.bytes_read, 5 * x.numel() * 2 + 2 * rows * 4);

  // Dilation and K_h != K_w change n only.
  const NaCase c2{{1, 20, 30, 2 * 16}, 2, {3, 7}, {2, 3}};
  const TensorType t2{c2.x, DType::f32};
  Cost f2 = CostOfOp("neighborhood_attention", {t2, t2, t2}, AttrsOf(c2));
  EXPECT_EQ(f2.mac_flops, 4 * (20 * 30 * 2) * 21 * 16);
}

TEST(NeighborhoodAttentionTest, BadInputsNameOpAndShapes) {
  const TensorType x{{1, 8, 8, 16}, DType::f32};
  const std::string xs = "f32[1, 8, 8, 16]";
  const char* op = "neighborhood_attention";
  auto attrs = [](int64_t heads, std::vector<int64_t> kernel, std::vector<int64_t> dil = {1}) {
    return Attrs{{"heads", heads}, {"kernel", kernel}, {"dilation", dil}};
  };
  ExpectError(op, {x, x, x}, attrs(2, {4}), {op, "odd", xs});                   // even K
  ExpectError(op, {x, x, x}, attrs(2, {3, 6}), {op, "odd", xs});                // even K_w
  ExpectError(op, {x, x, x}, attrs(2, {1}), {op, "[3, 31]", xs});               // K < 3
  const TensorType big{{1, 40, 40, 16}, DType::f32};
  ExpectError(op, {big, big, big}, attrs(2, {33}), {op, "[3, 31]", "f32[1, 40, 40, 16]"});  // K > 31
  ExpectError(op, {x, x, x}, attrs(2, {9}), {op, "does not fit", xs});          // K > H
  ExpectError(op, {x, x, x}, attrs(2, {3}, {3}), {op, "does not fit", xs});     // 3 * 3 > 8
  ExpectError(op, {x, x, x}, attrs(3, {3}), {op, "not divisible by heads 3", xs});
  const TensorType k2{{2, 8, 8, 16}, DType::f32};
  ExpectError(op, {x, k2, x}, attrs(2, {3}), {op, "same shape", xs, "f32[2, 8, 8, 16]"});  // batch mismatch
  const TensorType v2{{1, 8, 8, 32}, DType::f32};
  ExpectError(op, {x, x, v2}, attrs(2, {3}), {op, "same shape", "f32[1, 8, 8, 32]"});
  const TensorType h16{{1, 8, 8, 16}, DType::f16};
  ExpectError(op, {x, h16, x}, attrs(2, {3}), {op, "dtype", "f16[1, 8, 8, 16]"});
  ExpectError(op, {{{8, 8, 16}, DType::f32}, {{8, 8, 16}, DType::f32}, {{8, 8, 16}, DType::f32}}, attrs(2, {3}),
              {op, "[B, H, W, heads*d]", "f32[8, 8, 16]"});
  ExpectError(op, {x, x, x}, Attrs{{"kernel", std::vector<int64_t>{3}}}, {"heads"});
  // The backward checks its extra inputs.
  const char* bop = "neighborhood_attention_backward";
  const TensorType lse{{1, 8, 8, 2}, DType::f32}, bad_lse{{1, 8, 8, 3}, DType::f32};
  ExpectError(bop, {x, x, x, x, bad_lse, x}, attrs(2, {3}), {bop, "lse", "f32[1, 8, 8, 3]"});
  ExpectError(bop, {x, x, x, x, lse, k2}, attrs(2, {3}), {bop, "dout", "f32[2, 8, 8, 16]"});
  ExpectError(bop, {x, x, x, x, lse, x, bad_lse}, attrs(2, {3}), {bop, "dlse", "f32[1, 8, 8, 3]"});
  CF_EXPECT_OK(BuildStatus(bop, {x, x, x, x, lse, x, lse}, attrs(2, {3})));
}

}  // namespace
}  // namespace cf::testing
