// The CPU GEMM called directly (ops/matmul/cpu_gemm.h): indirect operands
// against the strided-view path on the same data (bit-identical: the packed
// panels are the same), the bf16 k-pair kernel (VDPBF16PS) against a float64
// reference of the bf16 inputs and against the f32-packing path, its
// denormal semantics, kernel naming and switches, the epilogue variants
// (accumulate, strided views, residual, row-group bias) for every kernel, a
// packed B keeping its kernel, and the threads small-M shapes use. "matmul"/"linear" through the op are in
// matmul_test.cc.
#include "ops/matmul/cpu_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/cpu_util.h"
#include "runtime/thread_pool.h"
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

constexpr DTypeTol Rtol = kStorageTol;
double Atol(DType t, int64_t k) { return Rtol.ForSum(DType::f32, k); }

// Uniform in [-1, 1) from a fixed LCG (deterministic across platforms).
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  float Next() {
    s_ = s_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(s_ >> 40) / double(1 << 23) - 1.0);
  }

 private:
  uint64_t s_;
};

template <typename T> T From(float v) {
  T t;
  Store(&t, 0, v);
  return t;
}
template <typename T> double ToD(T v) { return static_cast<double>(Load(&v, 0)); }
template <typename T> std::vector<T> RandomVec(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) x = From<T>(r.Next());
  return v;
}
template <typename T> std::vector<double> ToDoubleVec(const std::vector<T>& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = ToD(v[i]);
  return d;
}

// Forces one float micro-kernel for a scope (and restores the automatic choice).
class ScopedKernel {
 public:
  explicit ScopedKernel(const std::string& name) { EXPECT_TRUE(gemm::ForceKernel(name)) << name; }
  ~ScopedKernel() { gemm::ForceKernel("auto"); }
};
// Sets one of the GEMM's on/off switches (Enable*: returns the previous
// setting) for a scope, and restores it.
template <bool (*kEnable)(bool)> class ScopedSwitch {
 public:
  explicit ScopedSwitch(bool on) : prev_(kEnable(on)) {}
  ~ScopedSwitch() { kEnable(prev_); }

 private:
  bool prev_;
};
using ScopedBf16 = ScopedSwitch<&gemm::EnableBf16Kernel>;       // the bf16 k-pair kernel
using ScopedUnpackedA = ScopedSwitch<&gemm::EnableUnpackedA>;  // A read in place

bool HasBf16Kernel() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512bf16");
}

// Every way a GEMM of T can be packed on this CPU: each float kernel forced
// (the AVX-512 one also with every A packed, not read in place), and for
// bf16 also the automatic choice (the k-pair kernel where there is one).
struct KernelChoice {
  std::string name;        // ForceKernel argument ("auto": nothing forced)
  bool bf16 = false;       // the k-pair kernel allowed
  bool unpacked_a = true;  // EnableUnpackedA
};
template <typename T> std::vector<KernelChoice> Choices() {
  std::vector<KernelChoice> v;
  for (const std::string& n : gemm::FloatKernelNames()) {
    v.push_back({n, false, true});
    if (n == "avx512_14x32") v.push_back({n, false, false});
  }
  if (std::is_same_v<T, bf16_t> && HasBf16Kernel()) v.push_back({"auto", true, true});
  return v;
}
class ScopedChoice {
 public:
  explicit ScopedChoice(const KernelChoice& c) : kernel_(c.name), bf16_(c.bf16), unpacked_(c.unpacked_a) {}

 private:
  ScopedKernel kernel_;
  ScopedBf16 bf16_;
  ScopedUnpackedA unpacked_;
};

// ---- indirect operands -----------------------------------------------------------

// `count` indirect rows of `taps` segments of `seg` elements, pointing at
// random places of `pool` (or null every `null_every`-th segment), and the
// same matrix [count, taps·seg] written out densely.
template <typename T> struct IndirectCase {
  std::vector<T> pool;
  std::vector<const T*> rows;
  std::vector<T> dense;
  int64_t taps, seg;
};
template <typename T>
IndirectCase<T> MakeIndirect(int64_t count, int64_t taps, int64_t seg, int null_every, uint64_t seed) {
  IndirectCase<T> c;
  c.taps = taps;
  c.seg = seg;
  const int64_t pool_n = 4 * seg + 64;
  c.pool = RandomVec<T>(pool_n, seed);
  c.rows.resize(static_cast<size_t>(count * taps));
  c.dense.assign(static_cast<size_t>(count * taps * seg), From<T>(0.0f));
  uint64_t s = seed * 977 + 5;
  for (int64_t r = 0; r < count * taps; ++r) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    if (null_every > 0 && (s >> 33) % null_every == 0) {
      c.rows[r] = nullptr;
      continue;
    }
    const int64_t off = static_cast<int64_t>((s >> 20) % static_cast<uint64_t>(pool_n - seg + 1));
    c.rows[r] = c.pool.data() + off;
    std::copy_n(c.rows[r], seg, c.dense.data() + r * seg);
  }
  return c;
}

struct IndirectShape {
  int64_t m, taps, seg, n;
};
// seg not a multiple of any MR (4, 6, 14) or NR (8, 16, 32) and K blocks
// (AVX-512: KC 384 balanced, a multiple of 8) that end inside a segment;
// M past MC (168) and below MR; odd seg (k-pairs that straddle segments).
const std::vector<IndirectShape> kIndirectShapes = {
    {15, 3, 7, 33}, {169, 9, 45, 70}, {1, 9, 33, 29}, {50, 1, 13, 17}, {100, 4, 100, 65}, {37, 9, 64, 320},
};

template <typename T> void CheckIndirectA(uint64_t seed) {
  for (const IndirectShape& sh : kIndirectShapes) {
    const int64_t k = sh.taps * sh.seg;
    IndirectCase<T> a = MakeIndirect<T>(sh.m, sh.taps, sh.seg, 4, seed++);
    const std::vector<T> b = RandomVec<T>(k * sh.n, seed++);
    for (const KernelChoice& kc : Choices<T>()) {
      SCOPED_TRACE(kc.name + (kc.bf16 ? " bf16" : "") + (kc.unpacked_a ? "" : " A packed") + " m=" +
                   std::to_string(sh.m) + " taps=" + std::to_string(sh.taps) + " seg=" + std::to_string(sh.seg));
      ScopedChoice choice(kc);
      const gemm::PackedB<float> pb = gemm::PackB<T, float>(k, sh.n, gemm::RowMajor(b.data(), sh.n));
      std::vector<float> want(sh.m * sh.n, -3.0f), got(sh.m * sh.n, -5.0f);
      gemm::GemmPacked<T, float>(sh.m, gemm::RowMajor(a.dense.data(), k), pb, want.data(), sh.n);
      gemm::GemmPacked<T, float>(sh.m, gemm::IndirectRef<T>{a.rows.data(), sh.taps, sh.seg}, pb, got.data(), sh.n);
      EXPECT_EQ(got, want);  // the same packed panels, the same kernel
      // And the dense path itself against float64 (so equality means something).
      std::vector<double> ref(sh.m * sh.n, 0.0);
      for (int64_t i = 0; i < sh.m; ++i)
        for (int64_t q = 0; q < k; ++q) {
          const double aq = ToD(a.dense[i * k + q]);
          for (int64_t j = 0; j < sh.n; ++j) ref[i * sh.n + j] += aq * ToD(b[q * sh.n + j]);
        }
      EXPECT_TRUE(AllClose(std::vector<double>(got.begin(), got.end()), ref, Rtol(DType::f32), Atol(DType::f32, k)));
    }
  }
}

TEST(CpuGemmIndirect, AMatchesDenseEveryKernelAndDtype) {
  CheckIndirectA<float>(100);
  CheckIndirectA<f16_t>(200);
  CheckIndirectA<bf16_t>(300);
}

template <typename T> void CheckIndirectB(uint64_t seed) {
  // B [K, N] with its K rows indirect: N = taps·seg (a conv's weight gradient:
  // dW = dyᵀ · X_ind).
  for (const IndirectShape& sh : kIndirectShapes) {
    const int64_t k = sh.m, n = sh.taps * sh.seg, m = sh.n;
    IndirectCase<T> b = MakeIndirect<T>(k, sh.taps, sh.seg, 3, seed++);
    const std::vector<T> a = RandomVec<T>(m * k, seed++);
    for (const KernelChoice& kc : Choices<T>()) {
      SCOPED_TRACE(kc.name + (kc.bf16 ? " bf16" : "") + " k=" + std::to_string(k) + " taps=" +
                   std::to_string(sh.taps) + " seg=" + std::to_string(sh.seg));
      ScopedChoice choice(kc);
      const gemm::PackedB<float> dense = gemm::PackB<T, float>(k, n, gemm::RowMajor(b.dense.data(), n));
      const gemm::PackedB<float> ind =
          gemm::PackB<T, float>(k, n, gemm::IndirectRef<T>{b.rows.data(), sh.taps, sh.seg});
      EXPECT_EQ(ind.bf16_pairs(), kc.bf16);
      // A transposed in memory too (as dyᵀ is): its own packing path.
      const gemm::MatRef<T> at = gemm::Transposed(a.data(), m);  // a holds Aᵀ [K, M]
      std::vector<float> want(m * n, -3.0f), got(m * n, -5.0f);
      gemm::GemmPacked<T, float>(m, at, dense, want.data(), n);
      gemm::GemmPacked<T, float>(m, at, ind, got.data(), n);
      EXPECT_EQ(got, want);
      std::vector<double> ref(m * n, 0.0);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t q = 0; q < k; ++q) {
          const double aq = ToD(a[q * m + i]);
          for (int64_t j = 0; j < n; ++j) ref[i * n + j] += aq * ToD(b.dense[q * n + j]);
        }
      EXPECT_TRUE(AllClose(std::vector<double>(got.begin(), got.end()), ref, Rtol(DType::f32), Atol(DType::f32, k)));
    }
  }
}

TEST(CpuGemmIndirect, BMatchesDenseEveryKernelAndDtype) {
  CheckIndirectB<float>(400);
  CheckIndirectB<f16_t>(500);
  CheckIndirectB<bf16_t>(600);
}

TEST(CpuGemmIndirect, AllTapsNullGivesTheEpilogueOnly) {
  const int64_t m = 20, taps = 3, seg = 11, n = 40, k = taps * seg;
  std::vector<const float*> rows(m * taps, nullptr);
  const std::vector<float> b = RandomVec<float>(k * n, 7), bias = RandomVec<float>(n, 8);
  gemm::Epilogue<float> ep;
  ep.bias = bias.data();
  std::vector<float> c(m * n, 9.0f);
  const gemm::PackedB<float> pb = gemm::PackB<float, float>(k, n, gemm::RowMajor(b.data(), n));
  gemm::GemmPacked<float, float>(m, gemm::IndirectRef<float>{rows.data(), taps, seg}, pb, c.data(), n, ep);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(c[i * n + j], bias[j]) << i << "," << j;
}

// ---- bf16: the VDPBF16PS k-pair kernel --------------------------------------------

TEST(CpuGemmBf16, KernelNameAndSwitch) {
  const std::string best = gemm::FloatKernelNames().front();
  if (HasBf16Kernel()) {
    EXPECT_STREQ(gemm::Bf16KernelName(), "avx512bf16_14x32");
  } else {
    EXPECT_EQ(gemm::Bf16KernelName(), best);
  }
  // Never listed or forceable as a float kernel.
  for (const std::string& n : gemm::FloatKernelNames()) EXPECT_NE(n, "avx512bf16_14x32");
  EXPECT_FALSE(gemm::ForceKernel("avx512bf16_14x32"));
  {
    ScopedBf16 off(false);
    EXPECT_EQ(gemm::Bf16KernelName(), best);
    EXPECT_FALSE(gemm::EnableBf16Kernel(false));  // it was off
  }
  {
    ScopedKernel generic("generic_4x8");  // a forced float kernel wins
    EXPECT_STREQ(gemm::Bf16KernelName(), "generic_4x8");
  }
  EXPECT_TRUE(gemm::EnableBf16Kernel(true));  // back on (the default)
  const std::vector<bf16_t> b = RandomVec<bf16_t>(30 * 40, 3);
  EXPECT_EQ((gemm::PackB<bf16_t, float>(30, 40, gemm::RowMajor(b.data(), 40)).bf16_pairs()), HasBf16Kernel());
  const std::vector<float> bf = RandomVec<float>(30 * 40, 3);
  EXPECT_FALSE((gemm::PackB<float, float>(30, 40, gemm::RowMajor(bf.data(), 40)).bf16_pairs()));
}

// The k-pair kernel against float64 of the bf16 inputs. Inputs are exact in
// f32 and so are the products (8-bit significands); what remains is the f32
// accumulation: a few ulps per pair, growing like sqrt(k) (random signs), so
// |err| <= 4e-7 · sqrt(k) · max|C| (half of Rtol.f32's slack) plus f32 ulps.
struct Bf16Case {
  int64_t m, k, n;
  bool ta, tb;
};
const std::vector<Bf16Case> kBf16Cases = {
    {15, 33, 31, false, false},  {169, 385, 545, false, true}, {77, 768, 320, false, true},
    {1, 1, 1, false, false},     {3, 2, 64, true, false},       {113, 770, 45, false, true},
    {41, 129, 70, true, true},   {300, 320, 320, false, true},
};

TEST(CpuGemmBf16, PairKernelMatchesFloat64AndTheF32Path) {
  if (!HasBf16Kernel()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  uint64_t seed = 900;
  for (const Bf16Case& bc : kBf16Cases) {
    SCOPED_TRACE(std::to_string(bc.m) + "x" + std::to_string(bc.k) + "x" + std::to_string(bc.n) +
                 (bc.ta ? " ta" : "") + (bc.tb ? " tb" : ""));
    const std::vector<bf16_t> a = RandomVec<bf16_t>(bc.m * bc.k, seed++), b = RandomVec<bf16_t>(bc.k * bc.n, seed++);
    const gemm::MatRef<bf16_t> av = bc.ta ? gemm::Transposed(a.data(), bc.m) : gemm::RowMajor(a.data(), bc.k);
    const gemm::MatRef<bf16_t> bv = bc.tb ? gemm::Transposed(b.data(), bc.k) : gemm::RowMajor(b.data(), bc.n);
    std::vector<double> ref(bc.m * bc.n, 0.0);
    double max_ref = 0;
    for (int64_t i = 0; i < bc.m; ++i)
      for (int64_t j = 0; j < bc.n; ++j) {
        double s = 0;
        for (int64_t q = 0; q < bc.k; ++q) s += ToD(av.p[i * av.rs + q * av.cs]) * ToD(bv.p[q * bv.rs + j * bv.cs]);
        ref[i * bc.n + j] = s;
        max_ref = std::max(max_ref, std::abs(s));
      }
    std::vector<float> pairs(bc.m * bc.n, -1.0f), f32(bc.m * bc.n, -2.0f);
    ASSERT_STREQ(gemm::Bf16KernelName(), "avx512bf16_14x32");
    gemm::Gemm<bf16_t, bf16_t, float>(bc.m, bc.n, bc.k, av, bv, pairs.data(), bc.n);
    {
      ScopedBf16 off(false);
      gemm::Gemm<bf16_t, bf16_t, float>(bc.m, bc.n, bc.k, av, bv, f32.data(), bc.n);
    }
    const double atol = 4e-7 * std::sqrt(static_cast<double>(bc.k)) * max_ref + 1e-30;
    EXPECT_TRUE(AllClose(std::vector<double>(pairs.begin(), pairs.end()), ref, 2e-7, atol));
    EXPECT_TRUE(AllClose(std::vector<double>(f32.begin(), f32.end()), ref, 2e-7, atol));
    // bf16 output: one rounding of the f32 sum.
    std::vector<bf16_t> ch(bc.m * bc.n);
    gemm::Gemm<bf16_t, bf16_t, bf16_t>(bc.m, bc.n, bc.k, av, bv, ch.data(), bc.n);
    EXPECT_TRUE(AllClose(ToDoubleVec(ch), ref, Rtol(DType::bf16), atol));
  }
}

TEST(CpuGemmBf16, EpiloguesOnThePairKernel) {
  // bias (per column and per row group), activations, residual in place, and
  // the accumulate form, rounded once to bf16.
  const int64_t m = 203, n = 45, k = 37, group = 29;
  const std::vector<bf16_t> a = RandomVec<bf16_t>(m * k, 11), b = RandomVec<bf16_t>(k * n, 12);
  const std::vector<bf16_t> bias = RandomVec<bf16_t>((m / group) * n, 13), r = RandomVec<bf16_t>(m * n, 14);
  for (const std::string act : {"none", "gelu", "silu"}) {
    SCOPED_TRACE(act);
    std::vector<double> want(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = ToD(bias[(i / group) * n + j]);
        for (int64_t q = 0; q < k; ++q) s += ToD(a[i * k + q]) * ToD(b[q * n + j]);
        want[i * n + j] = Act(act, s) + ToD(r[i * n + j]);
      }
    std::vector<bf16_t> c = r;
    gemm::Epilogue<bf16_t> ep;
    CF_ASSERT_OK_AND_ASSIGN(ep.act, gemm::ParseActivation(act));
    ep.bias = bias.data();
    ep.bias_rows = group;
    ep.residual = c.data();
    ep.ldr = n;
    gemm::Gemm<bf16_t, bf16_t, bf16_t>(m, n, k, gemm::RowMajor(a.data(), k), gemm::RowMajor(b.data(), n), c.data(), n,
                                       ep);
    EXPECT_TRUE(AllClose(ToDoubleVec(c), want, Rtol(DType::bf16), Atol(DType::bf16, k)));
  }
  // C += A·B into an f32 C (conv2d's weight gradient over bands).
  std::vector<float> c(m * n, 0.5f);
  std::vector<double> want(m * n, 0.5);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t q = 0; q < k; ++q) want[i * n + j] += ToD(a[i * k + q]) * ToD(b[q * n + j]);
  gemm::Epilogue<float> acc;
  acc.accumulate = true;
  gemm::Gemm<bf16_t, bf16_t, float>(m, n, k, gemm::RowMajor(a.data(), k), gemm::RowMajor(b.data(), n), c.data(), n,
                                    acc);
  EXPECT_TRUE(AllClose(std::vector<double>(c.begin(), c.end()), want, Rtol(DType::f32), Atol(DType::f32, k)));
}

TEST(CpuGemmBf16, DenormalInputsFlushToZeroOnThePairKernel) {
  // VDPBF16PS treats denormal bf16 inputs as zero (DAZ, whatever MXCSR says);
  // the f32-packing path multiplies them exactly. A denormal (2^-129) times
  // 2^100 is 2^-29 in f32; the k-pair kernel gives 0.
  if (!HasBf16Kernel()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  const int64_t m = 14, k = 4, n = 32;
  std::vector<bf16_t> a(m * k), b(k * n);
  for (bf16_t& v : a) v.bits = 0x0010;  // 16 · 2^-133 = 2^-129: a bf16 denormal (exponent field 0)
  for (bf16_t& v : b) v = From<bf16_t>(std::ldexp(1.0f, 100));
  std::vector<float> pairs(m * n, -1.0f), f32(m * n, -1.0f);
  gemm::Gemm<bf16_t, bf16_t, float>(m, n, k, gemm::RowMajor(a.data(), k), gemm::RowMajor(b.data(), n), pairs.data(),
                                    n);
  {
    ScopedBf16 off(false);
    gemm::Gemm<bf16_t, bf16_t, float>(m, n, k, gemm::RowMajor(a.data(), k), gemm::RowMajor(b.data(), n), f32.data(),
                                      n);
  }
  EXPECT_EQ(f32[0], 4 * std::ldexp(1.0f, -29));
  for (float v : pairs) ASSERT_EQ(v, 0.0f);
}

TEST(CpuGemmBf16, PackedBKeepsThePairLayout) {
  // A B packed as k-pairs multiplies correctly after the switch is turned off.
  if (!HasBf16Kernel()) GTEST_SKIP() << "no AVX512-BF16 on this CPU";
  const int64_t m = 50, n = 45, k = 71;
  const std::vector<bf16_t> a = RandomVec<bf16_t>(m * k, 21), b = RandomVec<bf16_t>(k * n, 22);
  const gemm::PackedB<float> pb = gemm::PackB<bf16_t, float>(k, n, gemm::RowMajor(b.data(), n));
  ASSERT_TRUE(pb.bf16_pairs());
  std::vector<float> before(m * n), after(m * n);
  gemm::GemmPacked<bf16_t, float>(m, gemm::RowMajor(a.data(), k), pb, before.data(), n);
  ScopedBf16 off(false);
  ScopedKernel generic("generic_4x8");
  gemm::GemmPacked<bf16_t, float>(m, gemm::RowMajor(a.data(), k), pb, after.data(), n);
  EXPECT_EQ(before, after);
}

// ---- epilogues and packed B, every float kernel ------------------------------------

// The GEMM called directly: C += A·B (the accumulate epilogue, used by conv2d's
// weight gradient), with strided views (a column slice of a wider A, row
// stride ldc > N), for every kernel.
TEST(CpuGemm, AccumulateAndStridedViewsEveryKernel) {
  const int64_t m = 115, n = 70, k = 400, lda = 450, ldc = 83;
  std::vector<float> a(m * lda), bt(n * k), c0(m * ldc);
  uint64_t state = 12345;
  auto next = [&] {  // uniform in [-1, 1)
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(state >> 40) / double(1 << 23) - 1.0);
  };
  for (float& v : a) v = next();
  for (float& v : bt) v = next();
  for (float& v : c0) v = next();
  const int64_t a_off = 17;  // A = a[:, 17:417]
  std::vector<double> want(m * ldc);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      double s = c0[i * ldc + j];
      if (j < n)
        for (int64_t q = 0; q < k; ++q) s += double(a[i * lda + a_off + q]) * double(bt[j * k + q]);
      want[i * ldc + j] = s;
    }
  for (const KernelChoice& choice : Choices<float>()) {
    SCOPED_TRACE(choice.name + (choice.unpacked_a ? "" : ", A packed"));
    ScopedChoice force(choice);
    std::vector<float> c = c0;
    gemm::Epilogue<float> ep;
    ep.accumulate = true;
    gemm::Gemm<float, float, float>(m, n, k, {a.data() + a_off, lda, 1}, gemm::Transposed(bt.data(), k), c.data(),
                                    ldc, ep);
    std::vector<double> got(c.begin(), c.end());
    // Columns past N (the row padding of C) must stay untouched: compared too.
    EXPECT_TRUE(AllClose(got, want, Rtol(DType::f32), Atol(DType::f32, k)));
  }
}

// The residual and per-row-group bias epilogue (what graph fusion folds a
// following add into): C = act(A·B + bias[m / bias_rows]) + R, with R a
// strided view or C itself, for every kernel, an activation, and bf16 storage
// (one rounding at the end).
TEST(CpuGemm, ResidualAndRowGroupBiasEveryKernel) {
  const int64_t m = 203, n = 45, k = 37, rows_per_group = 29, ldr = 50;  // 7 groups of rows
  uint64_t state = 777;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<double>(state >> 40) / double(1 << 23) - 1.0);
  };
  std::vector<float> a(m * k), b(k * n), bias((m / rows_per_group) * n), r(m * ldr);
  for (float& v : a) v = next();
  for (float& v : b) v = next();
  for (float& v : bias) v = next();
  for (float& v : r) v = next();
  for (const std::string& act : {std::string("none"), std::string("silu")}) {
    std::vector<double> want(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = bias[(i / rows_per_group) * n + j];
        for (int64_t q = 0; q < k; ++q) s += double(a[i * k + q]) * double(b[q * n + j]);
        want[i * n + j] = Act(act, s) + double(r[i * ldr + j]);
      }
    for (const std::string& name : gemm::FloatKernelNames()) {
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(name + " " + act + (in_place ? " in place" : ""));
        ScopedKernel force(name);
        gemm::Epilogue<float> ep;
        CF_ASSERT_OK_AND_ASSIGN(ep.act, gemm::ParseActivation(act));
        ep.bias = bias.data();
        ep.bias_rows = rows_per_group;
        std::vector<float> c(m * n, -7.0f);
        if (in_place) {
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * n + j] = r[i * ldr + j];
          ep.residual = c.data();
          ep.ldr = n;
        } else {
          ep.residual = r.data();
          ep.ldr = ldr;
        }
        gemm::Gemm<float, float, float>(m, n, k, gemm::RowMajor(a.data(), k), gemm::RowMajor(b.data(), n), c.data(),
                                        n, ep);
        EXPECT_TRUE(AllClose(std::vector<double>(c.begin(), c.end()), want, Rtol(DType::f32), Atol(DType::f32, k)));
      }
    }
    // bf16 storage: the sum is formed in f32 and rounded once.
    auto to_bf16 = [](const std::vector<float>& v) {
      std::vector<bf16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i].bits = F32ToBF16Bits(v[i]);
      return h;
    };
    std::vector<bf16_t> ah = to_bf16(a), bh = to_bf16(b), biash = to_bf16(bias), rh = to_bf16(r), ch(m * n);
    std::vector<double> want_h(m * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = ToFloat(biash[(i / rows_per_group) * n + j]);
        for (int64_t q = 0; q < k; ++q)
          s += double(ToFloat(ah[i * k + q])) * double(ToFloat(bh[q * n + j]));
        want_h[i * n + j] = Act(act, s) + double(ToFloat(rh[i * ldr + j]));
      }
    gemm::Epilogue<bf16_t> eph;
    CF_ASSERT_OK_AND_ASSIGN(eph.act, gemm::ParseActivation(act));
    eph.bias = biash.data();
    eph.bias_rows = rows_per_group;
    eph.residual = rh.data();
    eph.ldr = ldr;
    gemm::Gemm<bf16_t, bf16_t, bf16_t>(m, n, k, gemm::RowMajor(ah.data(), k), gemm::RowMajor(bh.data(), n), ch.data(),
                                       n, eph);
    std::vector<double> got_h(m * n);
    for (int64_t i = 0; i < m * n; ++i) got_h[i] = ToFloat(ch[i]);
    EXPECT_TRUE(AllClose(got_h, want_h, Rtol(DType::bf16), Atol(DType::bf16, k)));
  }
}

TEST(CpuGemm, PackedBKeepsItsKernel) {
  // A B packed for one kernel multiplies correctly after another is forced
  // (conv2d packs its weight once and runs GemmPacked per band).
  const std::vector<std::string> names = gemm::FloatKernelNames();
  const int64_t m = 50, n = 45, k = 70;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(static_cast<int>(i % 13) - 6) * 0.125f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(static_cast<int>(i % 7) - 3) * 0.25f;
  std::vector<double> want(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t q = 0; q < k; ++q) want[i * n + j] += double(a[i * k + q]) * double(b[q * n + j]);
  for (const std::string& pack_with : names) {
    gemm::PackedB<float> pb;
    {
      ScopedKernel force(pack_with);
      pb = gemm::PackB<float, float>(k, n, gemm::RowMajor(b.data(), n));
    }
    for (const std::string& run_with : names) {
      SCOPED_TRACE(pack_with + " then " + run_with);
      ScopedKernel force(run_with);
      std::fill(c.begin(), c.end(), -1.0f);
      gemm::GemmPacked<float, float>(m, gemm::RowMajor(a.data(), k), pb, c.data(), n);
      // Products of multiples of 1/8 and 1/4 summed in f32 are exact here.
      EXPECT_TRUE(AllClose(std::vector<double>(c.begin(), c.end()), want, 0.0, 0.0));
    }
  }
}

// ---- threads ------------------------------------------------------------------------

TEST(CpuGemm, SmallMUsesEveryThread) {
  // 77 tokens (one MC tile) and a batch-1 linear: N is split so every thread works.
  if (NumThreads() < 2) GTEST_SKIP() << "one thread";
  for (const KernelChoice& kc : Choices<bf16_t>()) {
    SCOPED_TRACE(kc.name);
    ScopedChoice choice(kc);
    for (const auto& [m, k, n] : {std::tuple<int64_t, int64_t, int64_t>{77, 768, 320}, {1, 320, 1280}}) {
      const std::vector<bf16_t> a = RandomVec<bf16_t>(m * k, 1), b = RandomVec<bf16_t>(n * k, 2);
      const gemm::PackedB<float> pb = gemm::PackB<bf16_t, float>(k, n, gemm::Transposed(b.data(), k));
      std::vector<bf16_t> c(m * n);
      const int used = ThreadsUsedBy(
          [&] { gemm::GemmPacked<bf16_t, bf16_t>(m, gemm::RowMajor(a.data(), k), pb, c.data(), n); });
      EXPECT_GE(used, 2) << m << "x" << k << "x" << n;
    }
  }
}

}  // namespace
}  // namespace cf::testing
