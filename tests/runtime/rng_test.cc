// Philox RNG on the CPU: known answers, stream/offset semantics, moments, and
// the accuracy of our own log and sincos (the CUDA comparison is in
// runtime_gpu_test.cc).
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/philox.h"
#include "runtime/rng.h"

namespace cf {
namespace {

TEST(PhiloxTest, KnownAnswersFromRandom123) {
  struct Kat {
    uint32_t ctr[4], key[2], out[4];
  };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
       {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
       {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    PhiloxBlock b = Philox4x32_10(k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3], k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(b.x[i], k.out[i]) << "word " << i;
  }
  // The stream layout: counter {lo(block), hi(block), 0, 0}, key {lo(seed), hi(seed)}.
  PhiloxBlock b = PhiloxBlockAt(PhiloxKey{0x299f31d0a4093822ull}, 0x85a308d3243f6a88ull);
  PhiloxBlock r = Philox4x32_10(0x243f6a88, 0x85a308d3, 0, 0, 0xa4093822, 0x299f31d0);
  EXPECT_EQ(std::memcmp(&b, &r, sizeof(b)), 0);
}

std::vector<float> FillF32(int64_t n, uint64_t seed, uint64_t offset, bool normal, float a = 0,
                           float b = 1) {
  auto t = Tensor::Empty({n}, DType::f32);
  EXPECT_TRUE(t.ok());
  Status s = normal ? FillNormal(*t, seed, offset, a, b) : FillUniform(*t, seed, offset, a, b);
  EXPECT_TRUE(s.ok()) << s;
  return std::vector<float>(t->data<float>(), t->data<float>() + n);
}

bool SameBits(float x, float y) { return FloatBits(x) == FloatBits(y); }

TEST(RngTest, DeterministicAndSeedDependent) {
  for (bool normal : {false, true}) {
    auto a = FillF32(10007, 42, 0, normal);
    auto b = FillF32(10007, 42, 0, normal);
    auto c = FillF32(10007, 43, 0, normal);
    int same_as_other_seed = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(SameBits(a[i], b[i])) << i;
      same_as_other_seed += a[i] == c[i];
    }
    EXPECT_LT(same_as_other_seed, 5);
  }
  // High bits of the seed matter too.
  auto lo = FillF32(64, 7, 0, false);
  auto hi = FillF32(64, 7 | (1ull << 40), 0, false);
  EXPECT_NE(lo, hi);
}

TEST(RngTest, OffsetGivesTheTailOfTheStream) {
  const int64_t n = 5003;
  for (bool normal : {false, true}) {
    const auto full = FillF32(n, 9, 0, normal, -2.0f, 3.0f);
    for (int64_t k : {1, 2, 3, 4, 5, 7, 13, 1024, 4097}) {
      const auto tail = FillF32(n - k, 9, static_cast<uint64_t>(k), normal, -2.0f, 3.0f);
      for (int64_t i = 0; i < n - k; ++i) {
        ASSERT_TRUE(SameBits(tail[i], full[i + k])) << "offset " << k << " element " << i;
      }
    }
  }
}

// Every element is the scalar function of (seed, offset + i): checks the
// block/lane bookkeeping and the parallel split over a large tensor.
TEST(RngTest, ElementsMatchTheScalarFunction) {
  const uint64_t seed = 0x0123456789abcdefull;
  for (uint64_t offset : {0ull, 3ull, (1ull << 35) + 2}) {
    const int64_t n = (1 << 20) + 3;
    const auto u = FillF32(n, seed, offset, false, -1.0f, 1.0f);
    const auto z = FillF32(n, seed, offset, true, 0.5f, 2.0f);
    for (int64_t i = 0; i < n; i += (i < 64 ? 1 : 997)) {
      ASSERT_TRUE(SameBits(u[i], PhiloxUniformAt({seed}, offset + i, -1.0f, 1.0f))) << i;
      ASSERT_TRUE(SameBits(z[i], PhiloxNormalAt({seed}, offset + i, 0.5f, 2.0f))) << i;
    }
    ASSERT_TRUE(SameBits(u[n - 1], PhiloxUniformAt({seed}, offset + n - 1, -1.0f, 1.0f)));
    ASSERT_TRUE(SameBits(z[n - 1], PhiloxNormalAt({seed}, offset + n - 1, 0.5f, 2.0f)));
  }
}

TEST(RngTest, OtherDtypesRoundTheF32Values) {
  const int64_t n = 1031;
  for (bool normal : {false, true}) {
    const auto ref = FillF32(n, 5, 11, normal, -1.0f, 4.0f);
    for (DType dt : {DType::f16, DType::bf16, DType::f64}) {
      auto t = Tensor::Empty({n}, dt);
      ASSERT_TRUE(t.ok());
      Status s = normal ? FillNormal(*t, 5, 11, -1.0f, 4.0f) : FillUniform(*t, 5, 11, -1.0f, 4.0f);
      ASSERT_TRUE(s.ok()) << s;
      for (int64_t i = 0; i < n; ++i) {
        if (dt == DType::f16) {
          ASSERT_EQ(t->data<f16_t>()[i].bits, F32ToF16Bits(ref[i])) << i;
        } else if (dt == DType::bf16) {
          ASSERT_EQ(t->data<bf16_t>()[i].bits, F32ToBF16Bits(ref[i])) << i;
        } else {
          ASSERT_EQ(t->data<double>()[i], static_cast<double>(ref[i])) << i;
        }
      }
    }
  }
}

TEST(RngTest, UniformMoments) {
  const int64_t n = 1'000'000;
  const auto u = FillF32(n, 1234, 0, false, -1.0f, 3.0f);
  double sum = 0, sum2 = 0;
  for (float v : u) {
    ASSERT_GE(v, -1.0f);
    ASSERT_LE(v, 3.0f);
    sum += v;
  }
  const double mean = sum / n;
  for (float v : u) sum2 += (v - mean) * (v - mean);
  const double var = sum2 / (n - 1);
  // Expected mean 1, variance 16/12; tolerances are ~5 standard errors.
  EXPECT_NEAR(mean, 1.0, 5 * std::sqrt(16.0 / 12 / n));
  EXPECT_NEAR(var, 16.0 / 12, 5 * 16 * std::sqrt((1.0 / 80 - 1.0 / 144) / n));
  // Each tenth of the range holds ~10% (binomial sd 3e-4).
  std::vector<int64_t> bins(10, 0);
  for (float v : u) ++bins[std::min(9, static_cast<int>((v + 1.0f) / 4.0f * 10))];
  for (int64_t c : bins) EXPECT_NEAR(static_cast<double>(c) / n, 0.1, 0.0015);
}

TEST(RngTest, NormalMoments) {
  const int64_t n = 1'000'000;
  const double mu = 2.0, sigma = 3.0;
  const auto z = FillF32(n, 99, 17, true, static_cast<float>(mu), static_cast<float>(sigma));
  double sum = 0;
  for (float v : z) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
  }
  const double mean = sum / n;
  double m2 = 0, m3 = 0, m4 = 0;
  int64_t within1 = 0;
  for (float v : z) {
    const double d = (v - mean) / sigma;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
    within1 += std::fabs(v - mu) < sigma;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  EXPECT_NEAR(mean, mu, 5 * sigma / std::sqrt(n));
  EXPECT_NEAR(m2, 1.0, 5 * std::sqrt(2.0 / n));
  EXPECT_NEAR(m3, 0.0, 5 * std::sqrt(6.0 / n));
  EXPECT_NEAR(m4 / (m2 * m2), 3.0, 5 * std::sqrt(24.0 / n));
  EXPECT_NEAR(static_cast<double>(within1) / n, 0.682689, 5 * std::sqrt(0.2166 / n));
}

TEST(RngTest, RejectsBadArguments) {
  auto i32 = Tensor::Empty({4}, DType::i32);
  ASSERT_TRUE(i32.ok());
  Status s = FillUniform(*i32, 1, 0, 0, 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("i32[4]"), std::string_view::npos) << s;
  auto f = Tensor::Empty({4}, DType::f32);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(FillUniform(*f, 1, 0, 2, 1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FillNormal(*f, 1, 0, 0, -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FillNormal(*f, 1, ~0ull - 2, 0, 1).code(), absl::StatusCode::kInvalidArgument);
  Tensor undefined;
  EXPECT_EQ(FillNormal(undefined, 1, 0, 0, 1).code(), absl::StatusCode::kInvalidArgument);
  auto empty = Tensor::Empty({0}, DType::f32);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(FillNormal(*empty, 1, 0, 0, 1).ok());
  // The last elements of the 64-bit stream are reachable.
  EXPECT_TRUE(FillNormal(*f, 1, ~0ull - 4, 0, 1).ok());
}

// Distance in units in the last place of the float nearest to `ref`.
double UlpError(float got, double ref) {
  if (ref == 0) return got == 0 ? 0 : INFINITY;
  int e;
  std::frexp(ref, &e);  // |ref| in [2^(e-1), 2^e)
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  return std::fabs(static_cast<double>(got) - ref) / ulp;
}

TEST(PhiloxMathTest, LogIsWithinOneUlp) {
  double worst = 0;
  float worst_x = 0;
  auto check = [&](float x) {
    const double err = UlpError(PhiloxLog(x), std::log(static_cast<double>(x)));
    if (err > worst) {
      worst = err;
      worst_x = x;
    }
  };
  // Every input Box-Muller uses: m / 2^24, m = 1 .. 2^24.
  for (uint32_t m = 1; m <= (1u << 24); ++m) check(static_cast<float>(m) * 0x1p-24f);
  // Random positive floats of every magnitude, subnormals included.
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(1, 0x7f7fffffu);
  for (int i = 0; i < 4'000'000; ++i) check(BitsFloat(bits(rng)));
  for (float x : {1.0f, 2.0f, 0.5f, std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                  1.41421354f, 0.70710677f, std::nextafter(1.0f, 0.0f),
                  std::nextafter(1.0f, 2.0f)}) {
    check(x);
  }
  EXPECT_LE(worst, 1.0) << "worst at x = " << worst_x;
  RecordProperty("log_max_ulp", std::to_string(worst));
  std::printf("PhiloxLog: max error %.3f ulp (x = %a)\n", worst, worst_x);

  EXPECT_EQ(PhiloxLog(1.0f), 0.0f);
  EXPECT_EQ(PhiloxLog(0.0f), -INFINITY);
  EXPECT_EQ(PhiloxLog(-0.0f), -INFINITY);
  EXPECT_EQ(PhiloxLog(INFINITY), INFINITY);
  EXPECT_TRUE(std::isnan(PhiloxLog(-1.0f)));
  EXPECT_TRUE(std::isnan(PhiloxLog(NAN)));
}

TEST(PhiloxMathTest, SinCosIsWithinOneAndAHalfUlpForEveryAngle) {
  double worst_s = 0, worst_c = 0, worst_abs = 0;
  uint32_t worst_sk = 0, worst_ck = 0;
  const long double two_pi = 6.283185307179586476925286766559L;
  for (uint32_t k = 0; k < (1u << 24); ++k) {
    float s, c;
    PhiloxSinCos2Pi(k, &s, &c);
    // Reference 1: long double on the same exact reduction (quadrant q, t turns).
    const uint32_t q = ((k + (1u << 21)) >> 22) & 3;
    const long double t = (static_cast<long double>(k) - ((k + (1u << 21)) >> 22) * 4194304.0L) /
                          16777216.0L;
    const long double sr = std::sin(two_pi * t), cr = std::cos(two_pi * t);
    const long double rs[4] = {sr, cr, -sr, -cr}, rc[4] = {cr, -sr, -cr, sr};
    const double es = UlpError(s, static_cast<double>(rs[q]));
    const double ec = UlpError(c, static_cast<double>(rc[q]));
    if (es > worst_s) worst_s = es, worst_sk = k;
    if (ec > worst_c) worst_c = ec, worst_ck = k;
    // Reference 2, independent of the reduction: double sin/cos of the angle.
    if ((k & 15) == 0) {
      const double angle = 2 * M_PI * k / 16777216.0;
      worst_abs = std::max({worst_abs, std::fabs(s - std::sin(angle)),
                            std::fabs(c - std::cos(angle))});
    }
  }
  // Measured: 1.23 ulp, from the cos polynomial near |t| = 1/8.
  EXPECT_LE(worst_s, 1.5) << "sin worst at k = " << worst_sk;
  EXPECT_LE(worst_c, 1.5) << "cos worst at k = " << worst_ck;
  EXPECT_LT(worst_abs, 1.2e-7);
  std::printf("PhiloxSinCos2Pi: max error sin %.3f ulp (k=%u), cos %.3f ulp (k=%u), abs %.3g\n",
              worst_s, worst_sk, worst_c, worst_ck, worst_abs);
  float s, c;
  PhiloxSinCos2Pi(0, &s, &c);
  EXPECT_EQ(s, 0.0f);
  EXPECT_EQ(c, 1.0f);
  PhiloxSinCos2Pi(1u << 22, &s, &c);  // a quarter turn
  EXPECT_EQ(s, 1.0f);
  EXPECT_EQ(std::fabs(c), 0.0f);
}

TEST(PhiloxMathTest, BoxMullerMatchesDoubleFormula) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> word;
  double worst = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    const uint32_t w1 = word(rng), w2 = word(rng);
    float z0, z1;
    PhiloxNormalPair(w1, w2, &z0, &z1);
    const double u1 = ((w1 >> 8) + 1) / 16777216.0, angle = 2 * M_PI * (w2 >> 8) / 16777216.0;
    const double r = std::sqrt(-2 * std::log(u1));
    worst = std::max({worst, std::fabs(z0 - r * std::cos(angle)),
                      std::fabs(z1 - r * std::sin(angle))});
  }
  // A few ulps of the radius (at most ~5.8).
  EXPECT_LT(worst, 2e-6);
  float z0, z1;
  PhiloxNormalPair(0xffffffffu, 0, &z0, &z1);  // u1 = 1: radius 0
  EXPECT_EQ(z0, 0.0f);
  EXPECT_EQ(z1, 0.0f);
  PhiloxNormalPair(0, 0, &z0, &z1);  // u1 = 2^-24: the largest radius
  EXPECT_NEAR(z0, std::sqrt(48 * std::log(2.0)), 1e-5);
}

}  // namespace
}  // namespace cf
