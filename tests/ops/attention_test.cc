// CPU tests of attention, attention_backward and attention_probs against a
// naive float64 attention written here (explicit visibility per (query, key),
// the full probability matrix); f16/bf16 against a naive same-precision
// implementation as well; the VJP against central finite differences; both
// the AVX-512 and the portable inner kernels; costs and error messages.
#include <cmath>
#include <limits>
#include <random>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/attention/attention.h"
#include "ops/attention/sdpa_cpu.h"
#include "runtime/thread_pool.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Case {
  int64_t batch = 1, nq = 1, nkv = 1, heads = 1, d = 8;
  bool causal = false;
  int64_t window = -1;
  std::optional<double> scale = std::nullopt;
  // mask[b * nkv + j]: empty for no mask.
  std::vector<uint8_t> mask = {};
  DType mask_dtype = DType::u8;
  double range = 1.0;  // inputs uniform in [-range, range)
};

Attrs AttrsOf(const Case& c) {
  Attrs a{{"heads", c.heads}};
  if (c.causal) a.Set("causal", true);
  if (c.window >= 0) a.Set("window", c.window);
  if (c.scale) a.Set("scale", *c.scale);
  return a;
}
double ScaleOf(const Case& c) { return c.scale ? *c.scale : 1.0 / std::sqrt(static_cast<double>(c.d)); }

bool Visible(const Case& c, int64_t b, int64_t i, int64_t j) {
  if (c.causal && j > i) return false;
  if (c.window >= 0 && std::abs(i - j) > c.window) return false;
  return c.mask.empty() || c.mask[b * c.nkv + j] != 0;
}

struct Inputs {
  Tensor q, k, v, mask;
  std::vector<Tensor> list() const {
    std::vector<Tensor> l{q, k, v};
    if (mask.defined()) l.push_back(mask);
    return l;
  }
};

Inputs MakeInputs(const Case& c, DType dtype, uint64_t seed) {
  const int64_t C = c.heads * c.d;
  Inputs in;
  in.q = RandomTensor({c.batch, c.nq, C}, dtype, seed, -c.range, c.range);
  in.k = RandomTensor({c.batch, c.nkv, C}, dtype, seed + 1, -c.range, c.range);
  in.v = RandomTensor({c.batch, c.nkv, C}, dtype, seed + 2, -1.0, 1.0);
  if (!c.mask.empty())
    in.mask = FromDoubles(std::vector<double>(c.mask.begin(), c.mask.end()), {c.batch, c.nkv}, c.mask_dtype);
  return in;
}

// The reference: probabilities P [b][h][i][j] in float64, out and lse.
struct Ref {
  std::vector<double> p, out, lse;
};

// `round` is applied to S, P and O (the identity for the float64 reference;
// a storage rounding for the naive same-precision implementation, whose dot
// products and sums are f32).
Ref Reference(const Case& c, const Inputs& in, const std::function<double(double)>& round = nullptr) {
  const std::vector<double> q = ToDoubles(in.q), k = ToDoubles(in.k), v = ToDoubles(in.v);
  const int64_t C = c.heads * c.d, H = c.heads, d = c.d;
  const bool low = round != nullptr;
  Ref r;
  r.p.assign(c.batch * H * c.nq * c.nkv, 0.0);
  r.out.assign(c.batch * c.nq * C, 0.0);
  r.lse.assign(c.batch * H * c.nq, kNegInf);
  std::vector<double> s(c.nkv);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < c.nq; ++i) {
        double mx = kNegInf;
        for (int64_t j = 0; j < c.nkv; ++j) {
          s[j] = kNegInf;
          if (!Visible(c, b, i, j)) continue;
          double dot = 0;
          float dotf = 0;
          for (int64_t x = 0; x < d; ++x) {
            const double a = q[(b * c.nq + i) * C + h * d + x], e = k[(b * c.nkv + j) * C + h * d + x];
            dot += a * e;
            dotf += static_cast<float>(a) * static_cast<float>(e);
          }
          s[j] = low ? round(static_cast<float>(dotf * ScaleOf(c))) : dot * ScaleOf(c);
          mx = std::max(mx, s[j]);
        }
        if (mx == kNegInf) continue;  // no visible key: zero output, lse -inf
        double sum = 0;
        for (int64_t j = 0; j < c.nkv; ++j) sum += std::exp(s[j] - mx);
        double* prow = &r.p[((b * H + h) * c.nq + i) * c.nkv];
        for (int64_t j = 0; j < c.nkv; ++j) {
          const double e = std::exp(s[j] - mx) / sum;
          prow[j] = low ? round(static_cast<float>(e)) : e;
        }
        r.lse[(b * H + h) * c.nq + i] = mx + std::log(sum);
        for (int64_t x = 0; x < d; ++x) {
          double o = 0;
          float of = 0;
          for (int64_t j = 0; j < c.nkv; ++j) {
            o += prow[j] * v[(b * c.nkv + j) * C + h * d + x];
            of += static_cast<float>(prow[j]) * static_cast<float>(v[(b * c.nkv + j) * C + h * d + x]);
          }
          r.out[(b * c.nq + i) * C + h * d + x] = low ? round(of) : o;
        }
      }
  return r;
}

// dq, dk, dv of loss = <out, dout> from the reference P: dV = P^T dO,
// dP = dO V^T, dS = P * (dP - rowsum(P * dP)), dQ = scale dS K, dK = scale dS^T Q.
std::vector<std::vector<double>> ReferenceBackward(const Case& c, const Inputs& in, const Ref& r,
                                                   const std::vector<double>& dout) {
  const std::vector<double> q = ToDoubles(in.q), k = ToDoubles(in.k), v = ToDoubles(in.v);
  const int64_t C = c.heads * c.d, H = c.heads, d = c.d;
  std::vector<double> dq(q.size(), 0.0), dk(k.size(), 0.0), dv(v.size(), 0.0), dp(c.nkv);
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < c.nq; ++i) {
        const double* prow = &r.p[((b * H + h) * c.nq + i) * c.nkv];
        const double* doi = &dout[(b * c.nq + i) * C + h * d];
        double D = 0;
        for (int64_t j = 0; j < c.nkv; ++j) {
          dp[j] = 0;
          for (int64_t x = 0; x < d; ++x) dp[j] += doi[x] * v[(b * c.nkv + j) * C + h * d + x];
          D += prow[j] * dp[j];
        }
        for (int64_t j = 0; j < c.nkv; ++j) {
          const double ds = prow[j] * (dp[j] - D) * ScaleOf(c);
          for (int64_t x = 0; x < d; ++x) {
            const int64_t qi = (b * c.nq + i) * C + h * d + x, kj = (b * c.nkv + j) * C + h * d + x;
            dq[qi] += ds * k[kj];
            dk[kj] += ds * q[qi];
            dv[kj] += prow[j] * doi[x];
          }
        }
      }
  return {dq, dk, dv};
}

double MaxAbsDiff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::vector<uint8_t> RandomMask(int64_t batch, int64_t nkv, uint64_t seed, double keep, int64_t empty_batch = -1) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution bit(keep);
  std::vector<uint8_t> m(batch * nkv);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < nkv; ++j) m[b * nkv + j] = b == empty_batch ? 0 : bit(rng) ? 1 : 0;
  return m;
}

// Runs both inner-kernel sets (AVX-512 where the CPU has it, and the
// portable one) through `body`.
void ForEachKernel(const std::function<void(const char*)>& body) {
  for (bool generic : {false, true}) {
    const bool before = sdpa_cpu::ForceGeneric(generic);
    body(sdpa_cpu::KernelName());
    sdpa_cpu::ForceGeneric(before);
  }
}

// Forward in `dtype` against the float64 reference on the same (rounded)
// inputs: out within 2e-5 of the output's magnitude plus 1e-4 relative
// (f32), lse to 1e-5 relative, -inf exactly where no key is visible.
void CheckForward(const Case& c, DType dtype, uint64_t seed) {
  const Inputs in = MakeInputs(c, dtype, seed);
  const Ref ref = Reference(c, in);
  ForEachKernel([&](const char* kernel) {
    SCOPED_TRACE(absl::StrCat("kernel ", kernel, ", ", DTypeName(dtype), ", B ", c.batch, " Nq ", c.nq, " Nkv ",
                              c.nkv, " heads ", c.heads, " d ", c.d, c.causal ? " causal" : "", " window ",
                              c.window, c.mask.empty() ? "" : " mask"));
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> outs, RunOp("attention", in.list(), AttrsOf(c)));
    ASSERT_EQ(outs.size(), 2u);
    EXPECT_EQ(outs[0].dtype(), dtype);
    EXPECT_EQ(outs[1].dtype(), DType::f32);
    EXPECT_EQ(outs[1].shape(), Shape({c.batch, c.heads, c.nq}));
    const double tol = dtype == DType::f64 ? 1e-12 : 2e-5;
    EXPECT_TRUE(AllClose(ToDoubles(outs[0]), ref.out, dtype == DType::f64 ? 1e-12 : 1e-4,
                         ScaledAtol(ref.out, tol, dtype)));
    EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(outs[1]), ref.lse, 1e-5, 1e-5));
  });
}

TEST(Attention, SelfOddTokenCounts) {
  CheckForward({.nq = 77, .nkv = 77, .d = 40}, DType::f32, 1);
  CheckForward({.nq = 4097, .nkv = 4097, .d = 40}, DType::f32, 2);
}

TEST(Attention, EveryHeadDim) {
  for (int64_t d : {40, 64, 72, 80, 128, 160, 8, 1, 17}) {
    CheckForward({.batch = 2, .nq = 70, .nkv = 70, .heads = 2, .d = d}, DType::f32, 10 + d);
    CheckForward({.batch = 1, .nq = 65, .nkv = 77, .heads = 1, .d = d, .range = 3.0}, DType::f32, 30 + d);
  }
}

TEST(Attention, CrossAttentionWithKeyMasks) {
  for (int64_t nkv : {77, 120, 300}) {
    CheckForward({.batch = 2, .nq = 129, .nkv = nkv, .heads = 2, .d = 40}, DType::f32, nkv);
    // Batch row 1 masks every key: zero output, lse = -inf.
    CheckForward({.batch = 3, .nq = 67, .nkv = nkv, .heads = 2, .d = 72, .mask = RandomMask(3, nkv, nkv, 0.6, 1)},
                 DType::f32, nkv + 1);
  }
  CheckForward({.batch = 2, .nq = 33, .nkv = 77, .heads = 3, .d = 16, .mask = RandomMask(2, 77, 5, 0.3),
                .mask_dtype = DType::boolean},
               DType::f32, 7);
}

TEST(Attention, CausalAndWindow) {
  CheckForward({.batch = 2, .nq = 200, .nkv = 200, .heads = 2, .d = 40, .causal = true}, DType::f32, 41);
  // Top-left aligned causal cross attention: queries past Nkv see every key.
  CheckForward({.batch = 1, .nq = 150, .nkv = 77, .heads = 1, .d = 64, .causal = true}, DType::f32, 42);
  for (int64_t w : {0, 5, 64, 100, 400})
    CheckForward({.batch = 1, .nq = 300, .nkv = 300, .heads = 2, .d = 40, .window = w}, DType::f32, 43 + w);
  CheckForward({.batch = 2, .nq = 250, .nkv = 250, .heads = 1, .d = 80, .causal = true, .window = 70,
                .mask = RandomMask(2, 250, 3, 0.5)},
               DType::f32, 44);
  // Causal with the first keys masked: the first queries see nothing.
  std::vector<uint8_t> late(130, 1);
  for (int j = 0; j < 10; ++j) late[j] = 0;
  CheckForward({.batch = 1, .nq = 130, .nkv = 130, .heads = 1, .d = 24, .causal = true, .mask = late},
               DType::f32, 45);
}

TEST(Attention, SharpSoftmaxAndScale) {
  // Large scores make the online max move a lot between key blocks.
  CheckForward({.batch = 1, .nq = 100, .nkv = 500, .heads = 2, .d = 64, .scale = 2.0, .range = 2.0}, DType::f32, 51);
  CheckForward({.batch = 1, .nq = 100, .nkv = 200, .heads = 1, .d = 32, .scale = -0.3}, DType::f32, 52);
}

TEST(Attention, Float64) {
  CheckForward({.batch = 2, .nq = 45, .nkv = 77, .heads = 2, .d = 40, .mask = RandomMask(2, 77, 9, 0.7, 0)},
               DType::f64, 61);
  CheckForward({.batch = 1, .nq = 60, .nkv = 60, .heads = 1, .d = 40, .causal = true, .window = 9}, DType::f64, 62);
}

// f16 / bf16: the error against float64 (on the same rounded inputs) is at
// most twice that of a naive same-precision implementation.
TEST(Attention, HalfPrecisionWithinTwiceNaive) {
  for (DType t : {DType::f16, DType::bf16}) {
    const auto round = [t](double x) { return ToDoubles(FromDoubles({x}, {1}, t))[0]; };
    for (const Case& c : {Case{.batch = 2, .nq = 97, .nkv = 97, .heads = 2, .d = 40},
                          Case{.batch = 1, .nq = 64, .nkv = 300, .heads = 2, .d = 72, .range = 2.0},
                          Case{.batch = 2, .nq = 80, .nkv = 80, .heads = 1, .d = 128, .causal = true,
                               .mask = RandomMask(2, 80, 4, 0.8)}}) {
      const Inputs in = MakeInputs(c, t, 70 + c.d);
      const Ref exact = Reference(c, in), naive = Reference(c, in, round);
      const double naive_err = MaxAbsDiff(naive.out, exact.out);
      ForEachKernel([&](const char* kernel) {
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> outs, RunOp("attention", in.list(), AttrsOf(c)));
        const double err = MaxAbsDiff(ToDoubles(outs[0]), exact.out);
        EXPECT_LE(err, 2 * naive_err) << DTypeName(t) << " " << kernel << " d " << c.d << ": error " << err
                                      << ", naive " << naive_err;
        EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(outs[1]), exact.lse, 1e-5, 1e-5));
      });
    }
  }
}

// bf16 with both products on VDPBF16PS (the f32 kernel on other CPUs, for odd
// head dims and under ForceGeneric) against the float64 reference. S is
// exact up to f32 sums; P is rounded to bf16 once (relative 2^-9, so O moves
// by at most 2^-9 max|V|, and the f32 denominator by as much again), O once
// on storage (2^-9 |O|); f32 sums over keys add ~sqrt(keys) f32 epsilons.
TEST(Attention, Bf16DotProductsMatchFloat64) {
  SCOPED_TRACE(absl::StrCat("bf16 forward kernel ", sdpa_cpu::Bf16ForwardKernelName()));
  if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw")) {
    EXPECT_STREQ(sdpa_cpu::Bf16ForwardKernelName(), "avx512bf16");
  }
  std::vector<Case> cases;
  for (int64_t d : {40, 64, 80, 160, 72, 9})
    cases.push_back({.batch = 2, .nq = 131, .nkv = 197, .heads = 2, .d = d, .range = 2.0});
  cases.push_back({.batch = 1, .nq = 1000, .nkv = 1001, .heads = 1, .d = 40});
  cases.push_back({.batch = 1, .nq = 1, .nkv = 3, .heads = 3, .d = 40});
  cases.push_back({.batch = 3, .nq = 67, .nkv = 77, .heads = 2, .d = 80, .mask = RandomMask(3, 77, 8, 0.6, 1)});
  cases.push_back({.batch = 2, .nq = 150, .nkv = 151, .heads = 1, .d = 64, .causal = true});
  cases.push_back({.batch = 1, .nq = 300, .nkv = 300, .heads = 2, .d = 40, .window = 5});
  cases.push_back({.batch = 1, .nq = 300, .nkv = 300, .heads = 1, .d = 160, .window = 64});
  cases.push_back({.batch = 2, .nq = 250, .nkv = 250, .heads = 1, .d = 80, .causal = true, .window = 71,
                   .mask = RandomMask(2, 250, 3, 0.5)});
  cases.push_back({.batch = 1, .nq = 100, .nkv = 500, .heads = 2, .d = 64, .scale = 2.0, .range = 2.0});
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("Nq ", c.nq, " Nkv ", c.nkv, " d ", c.d, c.causal ? " causal" : "", " window ",
                              c.window, c.mask.empty() ? "" : " mask"));
    const Inputs in = MakeInputs(c, DType::bf16, 90 + c.d);
    const Ref ref = Reference(c, in);
    double omax = 0, vmax = 0;
    for (double x : ref.out) omax = std::max(omax, std::abs(x));
    for (double x : ToDoubles(in.v)) vmax = std::max(vmax, std::abs(x));
    const double tol = std::ldexp(omax, -9) + std::ldexp(vmax, -8) + 1e-7 * std::sqrt(double(c.nkv)) * vmax;
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> outs, RunOp("attention", in.list(), AttrsOf(c)));
    const double err = MaxAbsDiff(ToDoubles(outs[0]), ref.out);
    EXPECT_LE(err, tol) << "max |out| " << omax;
    // A wrong pairing or a lost key block errs by ~|V|, far above the bound.
    EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(outs[1]), ref.lse, 1e-5, 1e-5));
  }
}

// The flash backward (f32 compute for f32/f16/bf16) against the float64
// reference gradients on the same inputs.
void CheckBackward(const Case& c, DType dtype, uint64_t seed) {
  const Inputs in = MakeInputs(c, dtype, seed);
  const Ref ref = Reference(c, in);
  const Tensor dout = RandomTensor({c.batch, c.nq, c.heads * c.d}, dtype, seed + 7);
  const std::vector<std::vector<double>> want = ReferenceBackward(c, in, ref, ToDoubles(dout));
  ForEachKernel([&](const char* kernel) {
    SCOPED_TRACE(absl::StrCat("kernel ", kernel, ", ", DTypeName(dtype), ", Nq ", c.nq, " Nkv ", c.nkv, " d ", c.d,
                              c.causal ? " causal" : "", " window ", c.window, c.mask.empty() ? "" : " mask"));
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> fwd, RunOp("attention", in.list(), AttrsOf(c)));
    std::vector<Tensor> bin{in.q, in.k, in.v, fwd[0], fwd[1], dout};
    if (in.mask.defined()) bin.push_back(in.mask);
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> g, RunOp("attention_backward", bin, AttrsOf(c)));
    ASSERT_EQ(g.size(), 3u);
    // f32 compute; f16/bf16 add one rounding of the gradient and the
    // rounding of the saved out (which D uses).
    const double rel = dtype == DType::f32 ? 2e-5 : dtype == DType::f16 ? 3e-3 : 2e-2;
    for (int x = 0; x < 3; ++x) {
      const std::vector<double> got = ToDoubles(g[x]);
      EXPECT_TRUE(AllClose(got, want[x], dtype == DType::f32 ? 1e-4 : rel, ScaledAtol(want[x], rel, dtype)))
          << "gradient " << "qkv"[x];
      for (double y : got) ASSERT_TRUE(std::isfinite(y)) << "gradient " << "qkv"[x];
    }
  });
}

TEST(AttentionBackward, MatchesReference) {
  CheckBackward({.batch = 2, .nq = 77, .nkv = 77, .heads = 2, .d = 40}, DType::f32, 101);
  CheckBackward({.batch = 1, .nq = 130, .nkv = 300, .heads = 1, .d = 72, .range = 2.0}, DType::f32, 102);
  for (int64_t d : {64, 80, 128, 160})
    CheckBackward({.batch = 1, .nq = 70, .nkv = 99, .heads = 2, .d = d}, DType::f32, 103 + d);
  // A fully masked batch row: zero gradients, no NaN.
  CheckBackward({.batch = 2, .nq = 66, .nkv = 120, .heads = 2, .d = 40, .mask = RandomMask(2, 120, 8, 0.6, 1)},
                DType::f32, 104);
  CheckBackward({.batch = 1, .nq = 200, .nkv = 200, .heads = 2, .d = 40, .causal = true}, DType::f32, 105);
  CheckBackward({.batch = 1, .nq = 300, .nkv = 300, .heads = 1, .d = 64, .window = 37,
                 .mask = RandomMask(1, 300, 9, 0.7)},
                DType::f32, 106);
  // One (b, h) with many key blocks: dQ from several partial groups.
  CheckBackward({.batch = 1, .nq = 150, .nkv = 1000, .heads = 1, .d = 40}, DType::f32, 107);
  CheckBackward({.batch = 1, .nq = 90, .nkv = 90, .heads = 2, .d = 40, .causal = true}, DType::f16, 108);
  CheckBackward({.batch = 1, .nq = 90, .nkv = 90, .heads = 2, .d = 40, .window = 20}, DType::bf16, 109);
}

// The VJP end to end in float64: loss = <out, r> through Gradients, against
// central finite differences of the forward (lse is not part of the loss).
void CheckVjpByDifferences(const Case& c, uint64_t seed) {
  SCOPED_TRACE(absl::StrCat("Nq ", c.nq, " Nkv ", c.nkv, " d ", c.d, c.causal ? " causal" : "", " window ",
                            c.window, c.mask.empty() ? "" : " mask"));
  const Inputs in = MakeInputs(c, DType::f64, seed);
  const Tensor r = RandomTensor({c.batch, c.nq, c.heads * c.d}, DType::f64, seed + 5);
  Graph g;
  Builder b(&g);
  std::map<std::string, Tensor> bind{{"q", in.q}, {"k", in.k}, {"v", in.v}, {"r", r}};
  Value q = b.Input("q", in.q.shape(), DType::f64), k = b.Input("k", in.k.shape(), DType::f64),
        v = b.Input("v", in.v.shape(), DType::f64);
  AttentionOptions o{.heads = c.heads, .scale = c.scale, .causal = c.causal, .window = c.window};
  if (in.mask.defined()) {
    o.key_mask = b.Input("mask", in.mask.shape(), in.mask.dtype());
    bind["mask"] = in.mask;
  }
  Value out = Attention(q, k, v, o);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads,
                          Gradients(b, {out}, {b.Input("r", r.shape(), DType::f64)}, {q, k, v}));
  for (int x = 0; x < 3; ++x) b.MarkOutput(grads[x], absl::StrCat("g", x));
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, {Device::CPU(), {}, true, false}));
  CF_ASSERT_OK_AND_ASSIGN(auto got, exec->RunNamed(bind));

  const std::vector<double> rv = ToDoubles(r);
  auto loss = [&](const Inputs& x) {
    auto outs = RunOp("attention", x.list(), AttrsOf(c));
    EXPECT_TRUE(outs.ok());
    const std::vector<double> y = ToDoubles((*outs)[0]);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * rv[i];
    return l;
  };
  std::mt19937_64 rng(seed);
  const double h = 1e-5;
  for (int x = 0; x < 3; ++x) {
    const std::vector<double> analytic = ToDoubles(got.at(absl::StrCat("g", x)));
    const Tensor& base = x == 0 ? in.q : x == 1 ? in.k : in.v;
    std::uniform_int_distribution<int64_t> pick(0, base.numel() - 1);
    for (int n = 0; n < 25; ++n) {
      const int64_t at = pick(rng);
      std::vector<double> vals = ToDoubles(base);
      Inputs plus = in, minus = in;
      vals[at] += h;
      (x == 0 ? plus.q : x == 1 ? plus.k : plus.v) = FromDoubles(vals, base.shape(), DType::f64);
      vals[at] -= 2 * h;
      (x == 0 ? minus.q : x == 1 ? minus.k : minus.v) = FromDoubles(vals, base.shape(), DType::f64);
      const double numeric = (loss(plus) - loss(minus)) / (2 * h);
      EXPECT_NEAR(analytic[at], numeric, 1e-7 * (1 + std::abs(numeric))) << "d" << "qkv"[x] << " at " << at;
    }
  }
}

TEST(AttentionBackward, VjpMatchesFiniteDifferences) {
  CheckVjpByDifferences({.batch = 2, .nq = 7, .nkv = 11, .heads = 2, .d = 5, .range = 2.0}, 201);
  CheckVjpByDifferences({.batch = 2, .nq = 9, .nkv = 13, .heads = 1, .d = 6, .mask = RandomMask(2, 13, 3, 0.5, 1)},
                        202);
  CheckVjpByDifferences({.batch = 1, .nq = 12, .nkv = 12, .heads = 2, .d = 4, .causal = true, .scale = 0.7}, 203);
  CheckVjpByDifferences({.batch = 1, .nq = 14, .nkv = 14, .heads = 1, .d = 8, .window = 3}, 204);
}

TEST(AttentionBackward, GradientIntoLseIsAnError) {
  Graph g;
  Builder b(&g);
  Value q = b.Input("q", {1, 4, 8}, DType::f32), k = b.Input("k", {1, 5, 8}, DType::f32),
        v = b.Input("v", {1, 5, 8}, DType::f32);
  std::vector<Value> outs = AttentionWithLse(q, k, v, {.heads = 2});
  ASSERT_EQ(outs.size(), 2u);
  auto grads = Gradients(b, {outs[1]}, {b.Input("r", {1, 2, 4}, DType::f32)}, {q});
  ASSERT_FALSE(grads.ok());
  EXPECT_NE(grads.status().message().find("attention"), std::string::npos) << grads.status().message();
  EXPECT_NE(grads.status().message().find("lse"), std::string::npos) << grads.status().message();
}

TEST(AttentionProbs, RowsEqualReferenceSoftmax) {
  for (const Case& c : {Case{.batch = 2, .nq = 100, .nkv = 77, .heads = 2, .d = 40, .mask = RandomMask(2, 77, 1, 0.6, 1)},
                        Case{.batch = 1, .nq = 90, .nkv = 90, .heads = 3, .d = 16, .causal = true, .window = 10}}) {
    for (DType t : {DType::f32, DType::bf16}) {
      const Inputs in = MakeInputs(c, t, 300);
      const Ref ref = Reference(c, in);
      const std::vector<int64_t> queries = {0, 5, c.nq - 1, 5, 42};
      Attrs a = AttrsOf(c);
      a.Set("queries", queries);
      std::vector<Tensor> ins{in.q, in.k};
      if (in.mask.defined()) ins.push_back(in.mask);
      CF_ASSERT_OK_AND_ASSIGN(Tensor probs, RunOp1("attention_probs", ins, a));
      ASSERT_EQ(probs.shape(), Shape({c.batch, c.heads, 5, c.nkv}));
      ASSERT_EQ(probs.dtype(), DType::f32);
      std::vector<double> want;
      for (int64_t b = 0; b < c.batch; ++b)
        for (int64_t h = 0; h < c.heads; ++h)
          for (int64_t i : queries)
            for (int64_t j = 0; j < c.nkv; ++j) want.push_back(ref.p[((b * c.heads + h) * c.nq + i) * c.nkv + j]);
      EXPECT_TRUE(AllClose(ToDoubles(probs), want, 1e-6, 1e-7));
    }
  }
}

// The numbers of docs/ops/attention.md's cost rule, with the visible pairs
// counted here by brute force.
TEST(Attention, CostIsExact) {
  const int64_t B = 2, H = 3, N = 20, d = 8, w = 4, C = H * d;
  int64_t pairs = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) pairs += (j <= i && std::abs(i - j) <= w) ? 1 : 0;
  ASSERT_EQ(pairs, 20 * 5 - 10);  // every row sees 5 keys, except the first 4 rows (1 + 2 + 3 + 4)
  const int64_t V = B * H * pairs, rows = B * H * N;
  const TensorType x{{B, N, C}, DType::f32}, lse{{B, H, N}, DType::f32}, m{{B, N}, DType::u8};
  const Attrs a{{"heads", H}, {"causal", true}, {"window", w}};

  const Cost f = CostOfOp("attention", {x, x, x, m}, a);
  EXPECT_EQ(f.mac_flops, 4 * V * d);
  EXPECT_EQ(f.elementwise_flops, 4 * V + rows * d + rows);
  EXPECT_EQ(f.transcendentals, V + rows);
  EXPECT_EQ(f.bias_flops, 0);
  EXPECT_EQ(f.bytes_read, 3 * x.bytes() + m.bytes());
  EXPECT_EQ(f.bytes_written, x.bytes() + lse.bytes());

  const Cost bw = CostOfOp("attention_backward", {x, x, x, x, lse, x}, a);
  EXPECT_EQ(bw.mac_flops, 10 * V * d + 2 * rows * d);
  EXPECT_EQ(bw.elementwise_flops, 4 * V + rows * d + B * H * N * d);
  EXPECT_EQ(bw.transcendentals, V);

  Attrs pa = a;
  pa.Set("queries", std::vector<int64_t>{0, 10});
  const Cost p = CostOfOp("attention_probs", {x, x}, pa);
  const int64_t ppairs = B * H * (1 + 5);
  EXPECT_EQ(p.mac_flops, 2 * ppairs * d);
  EXPECT_EQ(p.elementwise_flops, 5 * ppairs);
  EXPECT_EQ(p.transcendentals, ppairs);

  // Cross attention without limits: every pair.
  const TensorType kv{{B, 77, C}, DType::f32};
  const Cost cross = CostOfOp("attention", {x, kv, kv}, {{"heads", H}});
  EXPECT_EQ(cross.mac_flops, 4 * B * H * N * 77 * d);
}

TEST(Attention, BadInputsNameTheOpAndShapes) {
  const TensorType q{{2, 10, 24}, DType::f32}, k{{2, 7, 24}, DType::f32};
  ExpectError("attention", {q, k, k}, {{"heads", int64_t{5}}},
              {"attention", "not divisible by heads 5", "f32[2, 10, 24]"});
  ExpectError("attention", {q, TensorType{{3, 7, 24}, DType::f32}, k}, {{"heads", int64_t{2}}},
              {"attention", "batch mismatch", "f32[3, 7, 24]"});
  ExpectError("attention", {q, k, k, TensorType{{2, 10}, DType::u8}}, {{"heads", int64_t{2}}},
              {"attention", "key_mask must be [B, Nkv]", "u8[2, 10]"});
  ExpectError("attention", {q, k, k, TensorType{{2, 7}, DType::f32}}, {{"heads", int64_t{2}}},
              {"attention", "boolean or u8"});
  ExpectError("attention", {q, k, k}, {{"heads", int64_t{2}}, {"window", int64_t{3}}},
              {"attention", "Nq == Nkv", "f32[2, 10, 24]", "f32[2, 7, 24]"});
  ExpectError("attention", {q, k, TensorType{{2, 7, 24}, DType::f16}}, {{"heads", int64_t{2}}},
              {"attention", "one floating dtype"});
  ExpectError("attention", {q, k, k}, {}, {"heads"});
  const TensorType lse{{2, 2, 10}, DType::f32};
  ExpectError("attention_backward", {q, k, k, q, TensorType{{2, 2, 9}, DType::f32}, q}, {{"heads", int64_t{2}}},
              {"attention_backward", "lse must be f32[2, 2, 10]"});
  ExpectError("attention_backward", {q, k, k, q, lse, k}, {{"heads", int64_t{2}}},
              {"attention_backward", "dout"});
  ExpectError("attention_probs", {q, k}, {{"heads", int64_t{2}}, {"queries", std::vector<int64_t>{3, 10}}},
              {"attention_probs", "query 10", "[0, 10)"});
  ExpectError("attention_probs", {q, k}, {{"heads", int64_t{2}}}, {"attention_probs", "queries"});
}

TEST(Attention, BuilderFunctions) {
  Graph g;
  Builder b(&g);
  Value q = b.Input("q", {2, 6, 16}, DType::f32), k = b.Input("k", {2, 9, 16}, DType::f32),
        m = b.Input("m", {2, 9}, DType::boolean);
  Value out = Attention(q, k, k, {.heads = 4, .scale = 0.5, .key_mask = m});
  ASSERT_TRUE(out.valid()) << b.status().message();
  EXPECT_EQ(out.type(), q.type());
  std::vector<Value> both = AttentionWithLse(q, k, k, {.heads = 2, .causal = true});
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].type(), (TensorType{{2, 2, 6}, DType::f32}));
  Value probs = AttentionProbs(q, k, {1, 4, 5}, {.heads = 4, .key_mask = m});
  ASSERT_TRUE(probs.valid()) << b.status().message();
  EXPECT_EQ(probs.type(), (TensorType{{2, 4, 3, 9}, DType::f32}));
  EXPECT_FALSE(Attention(q, k, k, {.heads = 3}).valid());
  EXPECT_FALSE(b.ok());
}

// A NaN in one key reaches exactly the outputs of the queries (of its head)
// that see that key, for both kernel sets.
TEST(Attention, NanReachesTheQueriesThatSeeIt) {
  const Case c{.batch = 1, .nq = 70, .nkv = 70, .heads = 2, .d = 16, .causal = true};
  Inputs in = MakeInputs(c, DType::f32, 77);
  std::vector<double> k = ToDoubles(in.k);
  const int64_t key = 5;
  k[key * 32 + 3] = std::numeric_limits<double>::quiet_NaN();  // head 0, channel 3
  in.k = FromDoubles(k, in.k.shape(), DType::f32);
  ForEachKernel([&](const char* kernel) {
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> outs, RunOp("attention", in.list(), AttrsOf(c)));
    const std::vector<double> out = ToDoubles(outs[0]);
    for (int64_t i = 0; i < c.nq; ++i)
      for (int64_t x = 0; x < 32; ++x)
        EXPECT_EQ(std::isnan(out[i * 32 + x]), x < 16 && i >= key) << kernel << " query " << i << " channel " << x;
  });
}

TEST(Attention, UsesSeveralThreads) {
  if (NumThreads() < 2) GTEST_SKIP() << "one thread";
  const Case c{.batch = 1, .nq = 256, .nkv = 256, .heads = 2, .d = 40};
  const Inputs in = MakeInputs(c, DType::f32, 5);
  EXPECT_GE(ThreadsUsedBy([&] { ASSERT_TRUE(RunOp("attention", in.list(), AttrsOf(c)).ok()); }), 2);
}

}  // namespace
}  // namespace cf::testing
