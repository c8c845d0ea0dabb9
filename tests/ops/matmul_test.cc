// CPU tests of "matmul" and "linear" against float64 references written here
// with plain loops: transposes, batch broadcasting, bias and activation
// epilogues, odd sizes that cross every block edge of the blocked GEMM, all
// storage dtypes and every micro-kernel the CPU can run (AVX-512, AVX2,
// generic), forced one by one; VJPs by finite differences; errors; cost
// formulas. The GEMM called directly is tested in cpu_gemm_test.cc.
#include "ops/matmul/matmul.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "ops/matmul/cpu_gemm.h"
#include "tests/support/activation_ref.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

double Act(const std::string& act, double x) {
  if (act == "gelu") return GeluErfRef(x);
  if (act == "gelu_tanh") return GeluTanhRef(x);
  if (act == "silu") return SiluRef(x);
  return x;
}

// The plain reference: out[..., i, j] = act(Σ_k A[..., i, k]·B[..., k, j] + bias[j])
// with A = a or aᵀ, B = b or bᵀ per matrix and right-aligned batch broadcasting.
std::vector<double> RefMatmul(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor* bias,
                              const std::string& act, Shape* out_shape) {
  const std::vector<double> av = ToDoubles(a), bv = ToDoubles(b);
  const std::vector<double> biasv = bias ? ToDoubles(*bias) : std::vector<double>{};
  const Shape& as = a.shape();
  const Shape& bs = b.shape();
  const int64_t m = ta ? as.dim(-1) : as.dim(-2), k = ta ? as.dim(-2) : as.dim(-1);
  const int64_t n = tb ? bs.dim(-2) : bs.dim(-1);
  const int ra = as.rank() - 2, rb = bs.rank() - 2, r = std::max(ra, rb);
  std::vector<int64_t> abat(r, 1), bbat(r, 1), obat(r);
  for (int i = 0; i < ra; ++i) abat[r - ra + i] = as[i];
  for (int i = 0; i < rb; ++i) bbat[r - rb + i] = bs[i];
  int64_t count = 1;
  for (int i = 0; i < r; ++i) {
    obat[i] = std::max(abat[i], bbat[i]);
    count *= obat[i];
  }
  Shape os;
  for (int64_t d : obat) os.push_back(d);
  os.push_back(m);
  os.push_back(n);
  *out_shape = os;
  std::vector<double> out(count * m * n);
  for (int64_t t = 0; t < count; ++t) {
    // Batch coordinates of t, then the operands' matrix indices.
    int64_t rem = t, ai = 0, bi = 0, astride = 1, bstride = 1;
    for (int i = r - 1; i >= 0; --i) {
      const int64_t c = rem % obat[i];
      rem /= obat[i];
      if (abat[i] != 1) ai += c * astride;
      if (bbat[i] != 1) bi += c * bstride;
      astride *= abat[i];
      bstride *= bbat[i];
    }
    const double* A = av.data() + ai * m * k;
    const double* B = bv.data() + bi * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < k; ++q) s += (ta ? A[q * m + i] : A[i * k + q]) * (tb ? B[j * k + q] : B[q * n + j]);
        if (bias) s += biasv[j];
        out[(t * m + i) * n + j] = Act(act, s);
      }
  }
  return out;
}

// Tolerance of the CPU GEMM against the float64 reference: one rounding of
// the output to the storage dtype (relative), plus the f32 accumulation over
// k terms (absolute, growing like sqrt(k)) for every storage dtype but f64:
// the sums are f32 whatever the storage, so f16/bf16 get no more absolute
// slack than f32 (a GEMM accumulating in bf16 fails; see
// RejectsLowPrecisionAccumulation).
constexpr DTypeTol Rtol = kStorageTol;
double Atol(DType t, int64_t k) { return t == DType::f64 ? Rtol.f64 : Rtol.ForSum(DType::f32, k); }

struct Case {
  Shape a, b;
  bool ta = false, tb = false;
  bool bias = false;
  std::string act = "none";
};

void CheckCase(const Case& c, DType dtype, uint64_t seed) {
  SCOPED_TRACE(::testing::Message() << "a" << c.a.ToString() << (c.ta ? "ᵀ" : "") << " b" << c.b.ToString()
                                    << (c.tb ? "ᵀ" : "") << " bias " << c.bias << " act " << c.act << " "
                                    << DTypeName(dtype));
  Tensor a = RandomTensor(c.a, dtype, seed), b = RandomTensor(c.b, dtype, seed + 1);
  const int64_t n = c.tb ? c.b.dim(-2) : c.b.dim(-1), k = c.ta ? c.a.dim(-2) : c.a.dim(-1);
  Tensor bias = RandomTensor(Shape{n}, dtype, seed + 2);
  std::vector<Tensor> ins{a, b};
  if (c.bias) ins.push_back(bias);
  Attrs attrs{{"trans_a", c.ta}, {"trans_b", c.tb}, {"activation", c.act}};
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("matmul", ins, attrs));
  Shape want_shape;
  std::vector<double> want = RefMatmul(a, b, c.ta, c.tb, c.bias ? &bias : nullptr, c.act, &want_shape);
  EXPECT_EQ(y.shape(), want_shape);
  EXPECT_TRUE(AllClose(ToDoubles(y), want, Rtol(dtype), Atol(dtype, k)));
}

const std::vector<Case> kShapeCases = {
    {{1, 1}, {1, 1}},
    {{37, 53}, {53, 29}},         // odd, below one block
    {{130, 300}, {300, 270}},     // crosses MC = 96, KC = 256 and NC = 256
    {{7, 600}, {600, 5}},         // K spanning three KC blocks, tiny M and N
    {{200, 3}, {3, 17}},          // K smaller than any register tile
    {{37, 53}, {29, 53}, false, true},
    {{53, 37}, {53, 29}, true, false},
    {{53, 37}, {29, 53}, true, true},
    {{257, 131}, {259, 257}, true, true},
};

TEST(MatmulCpu, ShapesAndTransposesF32F64) {
  uint64_t seed = 10;
  for (const Case& c : kShapeCases)
    for (DType t : {DType::f32, DType::f64}) CheckCase(c, t, seed += 3);
}

TEST(MatmulCpu, LowPrecisionStorage) {
  uint64_t seed = 100;
  for (DType t : {DType::f16, DType::bf16}) {
    CheckCase({{37, 53}, {53, 29}}, t, seed += 3);
    CheckCase({{53, 37}, {29, 53}, true, true, true, "gelu"}, t, seed += 3);
    CheckCase({{2, 19, 300}, {300, 33}, false, false, true, "silu"}, t, seed += 3);
  }
}

TEST(MatmulCpu, BatchBroadcasting) {
  const std::vector<Case> cases = {
      {{3, 5, 7}, {3, 7, 4}},                 // same batch
      {{4, 5, 7}, {7, 6}},                    // shared b: folded into one GEMM
      {{4, 7, 5}, {7, 6}, true, false},       // shared b, transposed a: b packed once
      {{4, 7, 5}, {1, 7, 6}, true, false},    // shared b with a size-1 batch
      {{5, 7}, {3, 7, 6}},                    // shared a
      {{2, 1, 5, 7}, {3, 7, 4}},              // both broadcast
      {{2, 1, 5, 7}, {1, 3, 4, 7}, false, true},
      {{2, 3, 1, 37, 20}, {3, 4, 20, 29}, false, false, true, "gelu_tanh"},
  };
  uint64_t seed = 200;
  for (const Case& c : cases)
    for (DType t : {DType::f32, DType::f64}) CheckCase(c, t, seed += 3);
}

TEST(MatmulCpu, BiasAndActivations) {
  uint64_t seed = 300;
  for (const char* act : {"none", "gelu", "gelu_tanh", "silu"}) {
    for (bool bias : {false, true}) {
      CheckCase({{37, 53}, {53, 29}, false, false, bias, act}, DType::f32, seed += 3);
      CheckCase({{2, 37, 53}, {29, 53}, false, true, bias, act}, DType::f64, seed += 3);
    }
  }
}

// Forces one float micro-kernel for a scope (and restores the automatic choice).
class ScopedKernel {
 public:
  explicit ScopedKernel(const std::string& name) { EXPECT_TRUE(gemm::ForceKernel(name)) << name; }
  ~ScopedKernel() { gemm::ForceKernel("auto"); }
};

TEST(MatmulCpu, KernelSelection) {
  const std::vector<std::string> names = gemm::FloatKernelNames();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.back(), "generic_4x8");  // always available, the last fallback
  EXPECT_EQ(names.front(), gemm::FloatKernelName());  // the automatic choice is the best one
  auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_EQ(has("avx512_14x32"), __builtin_cpu_supports("avx512f") != 0);
  EXPECT_EQ(has("avx2_fma_6x16"), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  EXPECT_FALSE(gemm::ForceKernel("avx1024_99x99"));
  EXPECT_EQ(gemm::FloatKernelName(), names.front());  // an unknown name changes nothing
  for (const std::string& n : names) {
    EXPECT_TRUE(gemm::ForceKernel(n));
    EXPECT_EQ(gemm::FloatKernelName(), n);
  }
  EXPECT_TRUE(gemm::ForceKernel("auto"));
  EXPECT_FALSE(gemm::ForceGenericKernel(true));
  EXPECT_STREQ(gemm::FloatKernelName(), "generic_4x8");
  EXPECT_TRUE(gemm::ForceGenericKernel(false));
  EXPECT_EQ(gemm::FloatKernelName(), names.front());
}

// Edge sizes for every register block (4x8, 6x16, 14x32) and cache block
// (AVX-512: MC = 168, KC = 384 balanced over K, NC = 1024; others 96/256/256),
// and shapes small enough in M that the tiles split over N for the threads.
const std::vector<Case> kKernelEdgeCases = {
    {{15, 33}, {33, 31}},                                   // one past 14 rows, one short of 32 columns
    {{113, 385}, {385, 545}},                               // K = 385: two K blocks (200 + 185), N past 512
    {{169, 385}, {385, 1057}, false, false, true, "gelu"},  // one past the AVX-512 MC, KC and NC
    {{337, 770}, {545, 770}, false, true, true, "silu"},    // two MC tiles + 1 row; K = 770: 3 (AVX-512) / 4 K blocks
    {{77, 768}, {320, 768}, false, true, true, "none"},     // the text encoder's 77 tokens: M < MC, split over N
    {{5, 40}, {1000, 40}, false, true},                     // tiny M, wide N
    {{29, 300}, {29, 14}, true, false, true, "silu"},       // transposed A (M = 300), N < NR
    {{41, 130}, {70, 41}, true, true, true, "gelu_tanh"},   // both transposed
};

TEST(MatmulCpu, EveryMicroKernelMatches) {
  // Each kernel this CPU can run (the AVX-512, AVX2 and portable ones on an
  // AVX-512 machine) against the float64 reference, at the block edges, with
  // transposed views, every epilogue and low-precision storage.
  uint64_t seed = 400;
  for (const std::string& name : gemm::FloatKernelNames()) {
    SCOPED_TRACE(name);
    ScopedKernel force(name);
    ASSERT_EQ(gemm::FloatKernelName(), name);
    for (const Case& c : kShapeCases) CheckCase(c, DType::f32, seed += 3);
    for (const Case& c : kKernelEdgeCases) CheckCase(c, DType::f32, seed += 3);
    for (const char* act : {"none", "gelu", "gelu_tanh", "silu"})
      CheckCase({{2, 37, 53}, {53, 45}, false, false, true, act}, DType::f32, seed += 3);
    for (DType t : {DType::f16, DType::bf16}) {
      CheckCase({{2, 37, 53}, {53, 29}, false, false, true, "gelu"}, t, seed += 3);
      CheckCase({{113, 385}, {45, 385}, false, true, true, "silu"}, t, seed += 3);
    }
  }
}

TEST(MatmulCpu, ZeroInnerDimension) {
  // K = 0: the product is 0, so the output is act(bias).
  Tensor a = RandomTensor(Shape{3, 0}, DType::f32, 1), b = RandomTensor(Shape{0, 4}, DType::f32, 2);
  Tensor bias = RandomTensor(Shape{4}, DType::f32, 3);
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("matmul", {a, b, bias}, Attrs{{"activation", std::string("silu")}}));
  std::vector<double> want(12), bv = ToDoubles(bias);
  for (int i = 0; i < 12; ++i) want[i] = Act("silu", bv[i % 4]);
  EXPECT_TRUE(AllClose(ToDoubles(y), want, 1e-6, 1e-6));
}

TEST(LinearCpu, MatchesReference) {
  uint64_t seed = 500;
  for (DType t : kFloatDTypes) {
    for (bool with_bias : {false, true}) {
      Tensor x = RandomTensor(Shape{2, 3, 41}, t, seed++), w = RandomTensor(Shape{19, 41}, t, seed++);
      Tensor bias = RandomTensor(Shape{19}, t, seed++);
      std::vector<Tensor> ins{x, w};
      if (with_bias) ins.push_back(bias);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("linear", ins, Attrs{{"activation", std::string("gelu")}}));
      EXPECT_EQ(y.shape(), Shape({2, 3, 19}));
      Shape s;
      std::vector<double> want = RefMatmul(x, w, false, true, with_bias ? &bias : nullptr, "gelu", &s);
      EXPECT_TRUE(AllClose(ToDoubles(y), want, Rtol(t), Atol(t, 41))) << DTypeName(t);
    }
  }
  // A 1-D input is one row: [6] x [4, 6]^T (+ bias) = [4].
  for (DType t : kFloatDTypes) {
    Tensor x = RandomTensor(Shape{6}, t, 1), w = RandomTensor(Shape{4, 6}, t, 2), bias = RandomTensor(Shape{4}, t, 3);
    for (bool with_bias : {false, true}) {
      std::vector<Tensor> ins{x, w};
      if (with_bias) ins.push_back(bias);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("linear", ins, Attrs{{"activation", std::string("silu")}}));
      EXPECT_EQ(y.shape(), Shape({4}));
      Shape s;
      CF_ASSERT_OK_AND_ASSIGN(Tensor row, x.Reshape(Shape{1, 6}));
      std::vector<double> want = RefMatmul(row, w, false, true, with_bias ? &bias : nullptr, "silu", &s);
      EXPECT_EQ(s, Shape({1, 4}));
      EXPECT_TRUE(AllClose(ToDoubles(y), want, Rtol(t), Atol(t, 6))) << DTypeName(t) << " bias " << with_bias;
    }
  }
}

// The tolerance is tight enough to reject a GEMM that accumulates in the
// storage dtype: the same sums with every partial sum rounded to bf16 (or
// f16) fail clearly, while the f32-accumulated result of the CPU kernel passes.
TEST(MatmulCpu, RejectsLowPrecisionAccumulation) {
  for (DType t : {DType::f16, DType::bf16}) {
    const int64_t m = 38, k = 300, n = 33;
    Tensor a = RandomTensor(Shape{m, k}, t, 11), b = RandomTensor(Shape{k, n}, t, 12);
    Shape s;
    const std::vector<double> want = RefMatmul(a, b, false, false, nullptr, "none", &s);
    const std::vector<double> av = ToDoubles(a), bv = ToDoubles(b);
    auto round = [t](double v) {
      const float f = static_cast<float>(v);
      return t == DType::bf16 ? double(BF16BitsToF32(F32ToBF16Bits(f))) : double(F16BitsToF32(F32ToF16Bits(f)));
    };
    std::vector<double> low(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t q = 0; q < k; ++q) acc = round(acc + round(av[i * k + q] * bv[q * n + j]));
        low[i * n + j] = acc;
      }
    auto r = AllClose(low, want, Rtol(t), Atol(t, k));
    EXPECT_FALSE(r) << DTypeName(t) << ": low-precision accumulation passed";
    int64_t bad = 0;
    for (int64_t i = 0; i < m * n; ++i)
      bad += std::fabs(low[i] - want[i]) > Atol(t, k) + Rtol(t) * std::fabs(want[i]);
    EXPECT_GT(bad, m * n / 4) << DTypeName(t) << ": only " << bad << " of " << m * n << " elements fail";
    CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("matmul", {a, b}));
    EXPECT_TRUE(AllClose(ToDoubles(y), want, Rtol(t), Atol(t, k))) << DTypeName(t);
  }
}

// ---- VJPs ---------------------------------------------------------------------------

TEST(MatmulVjp, AllOperands) {
  const std::vector<Case> cases = {
      {{5, 7}, {7, 4}},
      {{5, 7}, {4, 7}, false, true, true},
      {{7, 5}, {7, 4}, true, false, true},
      {{7, 5}, {4, 7}, true, true},
      {{3, 5, 7}, {7, 4}, false, false, true},      // shared b: folded weight gradient
      {{3, 5, 7}, {4, 7}, false, true},
      {{3, 7, 5}, {7, 4}, true, false},             // shared b, transposed a: SumTo path
      {{5, 7}, {2, 7, 4}, false, false, true},      // shared a
      {{2, 1, 5, 7}, {3, 7, 4}, false, false},      // both broadcast
  };
  uint64_t seed = 600;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.a.ToString() << " x " << c.b.ToString() << " ta " << c.ta << " tb "
                                      << c.tb);
    const int64_t n = c.tb ? c.b.dim(-2) : c.b.dim(-1);
    std::vector<Tensor> ins{RandomTensor(c.a, DType::f64, seed++), RandomTensor(c.b, DType::f64, seed++)};
    if (c.bias) ins.push_back(RandomTensor(Shape{n}, DType::f64, seed++));
    EXPECT_TRUE(CheckVjp("matmul", ins, Attrs{{"trans_a", c.ta}, {"trans_b", c.tb}}));
  }
}

TEST(MatmulVjp, ActivationEpilogues) {
  uint64_t seed = 700;
  for (const char* act : {"gelu", "gelu_tanh", "silu"}) {
    SCOPED_TRACE(act);
    std::vector<Tensor> ins{RandomTensor(Shape{2, 5, 7}, DType::f64, seed++),
                            RandomTensor(Shape{4, 7}, DType::f64, seed++),
                            RandomTensor(Shape{4}, DType::f64, seed++)};
    EXPECT_TRUE(CheckVjp("matmul", ins, Attrs{{"trans_b", true}, {"activation", std::string(act)}}));
    EXPECT_TRUE(CheckVjp("linear", ins, Attrs{{"activation", std::string(act)}}));
  }
}

TEST(LinearVjp, AllOperands) {
  uint64_t seed = 800;
  for (bool with_bias : {false, true}) {
    std::vector<Tensor> ins{RandomTensor(Shape{2, 3, 6}, DType::f64, seed++),
                            RandomTensor(Shape{5, 6}, DType::f64, seed++)};
    if (with_bias) ins.push_back(RandomTensor(Shape{5}, DType::f64, seed++));
    EXPECT_TRUE(CheckVjp("linear", ins));
  }
  EXPECT_TRUE(CheckVjp("linear", {RandomTensor(Shape{6}, DType::f64, 1), RandomTensor(Shape{5, 6}, DType::f64, 2)}));
}

// ---- errors ---------------------------------------------------------------------------

TEST(MatmulErrors, NameOpAndShapes) {
  const DType f = DType::f32;
  ExpectError("matmul", {{{3, 4}, f}, {{5, 6}, f}}, {}, {"matmul", "[3, 4]", "[5, 6]"});
  ExpectError("matmul", {{{3, 4}, f}, {{3, 6}, f}}, Attrs{{"trans_b", true}}, {"matmul", "K"});
  ExpectError("matmul", {{{2, 3, 4}, f}, {{3, 4, 6}, f}}, {}, {"matmul", "broadcast", "[2, 3, 4]"});
  ExpectError("matmul", {{{4}, f}, {{4, 6}, f}}, {}, {"matmul", "rank"});
  ExpectError("matmul", {{{3, 4}, f}, {{4, 6}, f}, {{5}, f}}, {}, {"matmul", "bias", "[5]"});
  ExpectError("matmul", {{{3, 4}, f}, {{4, 6}, DType::f16}}, {}, {"matmul", "dtype"});
  ExpectError("matmul", {{{3, 4}, f}, {{4, 6}, f}}, Attrs{{"activation", std::string("relu6")}},
              {"matmul", "relu6"});
  ExpectError("linear", {{{2, 3, 8}, f}, {{5, 7}, f}}, {}, {"linear", "[2, 3, 8]", "[5, 7]"});
  ExpectError("linear", {{{2, 8}, f}, {{5, 8, 1}, f}}, {}, {"linear", "weight"});
  ExpectError("matmul", {{{3, 4}, DType::i32}, {{4, 6}, DType::i32}}, {}, {"matmul", "floating"});
}

// ---- cost ------------------------------------------------------------------------------

Cost CostOfOne(const std::function<Value(Builder&)>& build) {
  Graph g;
  Builder b(&g);
  Value y = build(b);
  EXPECT_TRUE(b.ok()) << b.status().message();
  EXPECT_TRUE(y.valid());
  return g.nodes().back().cost;
}

TEST(MatmulCost, Formulas) {
  // [2, 3, 5, 7] x [7, 4] + bias, gelu: 6 matrices of 5x4 outputs, K = 7.
  Cost c = CostOfOne([](Builder& b) {
    return MatMul(b.Input("a", {2, 3, 5, 7}, DType::f32), b.Input("b", {7, 4}, DType::f32),
                  b.Input("bias", {4}, DType::f32), {.activation = "gelu"});
  });
  EXPECT_EQ(c.mac_flops, 2 * 6 * 5 * 4 * 7);
  EXPECT_EQ(c.bias_flops, 6 * 5 * 4);
  EXPECT_EQ(c.elementwise_flops, 4 * 6 * 5 * 4);
  EXPECT_EQ(c.transcendentals, 6 * 5 * 4);
  EXPECT_EQ(c.bytes_read, (2 * 3 * 5 * 7 + 7 * 4 + 4) * 4);
  EXPECT_EQ(c.bytes_written, 6 * 5 * 4 * 4);

  // SD1.5 attention projection: 4096 tokens, 320 -> 320, f16, no bias.
  c = CostOfOne([](Builder& b) {
    return Linear(b.Input("x", {1, 4096, 320}, DType::f16), b.Input("w", {320, 320}, DType::f16));
  });
  EXPECT_EQ(c.mac_flops, 2LL * 4096 * 320 * 320);
  EXPECT_EQ(c.bias_flops, 0);
  EXPECT_EQ(c.table1_flops(), 2LL * 4096 * 320 * 320);
  EXPECT_EQ(c.bytes_read, (4096LL * 320 + 320 * 320) * 2);

  // Broadcast batches: [2, 1, 5, 7] x [3, 7, 4] -> 6 products; silu, tanh-gelu counts.
  c = CostOfOne([](Builder& b) {
    return MatMul(b.Input("a", {2, 1, 5, 7}, DType::f32), b.Input("b", {3, 7, 4}, DType::f32),
                  std::nullopt, {.activation = "silu"});
  });
  EXPECT_EQ(c.mac_flops, 2 * 6 * 5 * 4 * 7);
  EXPECT_EQ(c.elementwise_flops, 2 * 6 * 5 * 4);
  EXPECT_EQ(c.transcendentals, 6 * 5 * 4);
  c = CostOfOne([](Builder& b) {
    return Linear(b.Input("x", {10, 8}, DType::f32), b.Input("w", {3, 8}, DType::f32),
                  b.Input("bias", {3}, DType::f32), {.activation = "gelu_tanh"});
  });
  EXPECT_EQ(c.mac_flops, 2 * 10 * 3 * 8);
  EXPECT_EQ(c.bias_flops, 30);
  EXPECT_EQ(c.elementwise_flops, 8 * 30);
  EXPECT_EQ(c.transcendentals, 30);
}

}  // namespace
}  // namespace cf::testing
