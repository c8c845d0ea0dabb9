// f16 / bf16 conversions against references computed differently: nearest
// neighbour (ties to even) in a table of every representable value, in double.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/dtype.h"

namespace cf {
namespace {

bool IsNanF16(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool IsNanBF16(uint16_t b) { return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu) != 0; }

// Value of an f16 bit pattern from its fields, in double.
double F16Value(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0x1f) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, -24);
  return sign * std::ldexp(1024 + m, e - 25);
}

double BF16Value(uint16_t b) {
  const int e = (b >> 7) & 0xff, m = b & 0x7f;
  const double sign = (b & 0x8000) ? -1.0 : 1.0;
  if (e == 0xff) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(m, -133);
  return sign * std::ldexp(128 + m, e - 134);
}

// Magnitudes of codes 0 .. inf_code - 1, then one more entry: the value the
// next code would have with an unbounded exponent. Rounding to that entry
// means overflow, so it encodes as inf_code.
struct Table {
  std::vector<double> values;
  uint16_t inf_code;
};

Table MakeTable(double (*value)(uint16_t), uint16_t inf_code, double overflow_value) {
  Table t{{}, inf_code};
  for (uint32_t c = 0; c < inf_code; ++c) t.values.push_back(value(static_cast<uint16_t>(c)));
  t.values.push_back(overflow_value);
  return t;
}

// Round-to-nearest-even by search: the two neighbours of |f|, the closer one,
// on a tie the one with an even code.
uint16_t RefRound(const Table& t, float f) {
  if (std::isnan(f)) return 0xffff;  // callers check NaN separately
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  const double a = std::fabs(static_cast<double>(f));
  if (std::isinf(a)) return sign | t.inf_code;
  auto it = std::upper_bound(t.values.begin(), t.values.end(), a);
  if (it == t.values.end()) return sign | t.inf_code;
  const size_t hi = static_cast<size_t>(it - t.values.begin());
  const size_t lo = hi - 1;  // values[0] == 0 <= a
  const double dlo = a - t.values[lo], dhi = t.values[hi] - a;
  size_t pick = dlo < dhi ? lo : dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi);
  return sign | static_cast<uint16_t>(std::min<size_t>(pick, t.inf_code));
}

const Table& F16Table() {
  static const Table t = MakeTable(F16Value, 0x7c00, 65536.0);
  return t;
}
const Table& BF16Table() {
  static const Table t = MakeTable(BF16Value, 0x7f80, std::ldexp(1.0, 128));
  return t;
}

float FromBits(uint32_t u) { return BitsFloat(u); }

TEST(DTypeTest, NamesRoundTrip) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64, DType::i32, DType::i64,
                  DType::u8, DType::boolean}) {
    auto parsed = ParseDType(DTypeName(t));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(std::string(DTypeName(DType::boolean)), "bool");
  auto bad = ParseDType("float17");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("float17"), std::string_view::npos);
}

TEST(DTypeTest, SizesAndKinds) {
  EXPECT_EQ(DTypeSize(DType::f32), 4);
  EXPECT_EQ(DTypeSize(DType::f16), 2);
  EXPECT_EQ(DTypeSize(DType::bf16), 2);
  EXPECT_EQ(DTypeSize(DType::f64), 8);
  EXPECT_EQ(DTypeSize(DType::i64), 8);
  EXPECT_EQ(DTypeSize(DType::boolean), 1);
  EXPECT_TRUE(IsFloating(DType::bf16));
  EXPECT_FALSE(IsFloating(DType::i32));
}

TEST(DTypeTest, F16ToF32IsExactForAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16BitsToF32(static_cast<uint16_t>(h));
    const double ref = F16Value(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(f)) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), ref) << std::hex << h;
      ASSERT_EQ(std::signbit(f), std::signbit(ref)) << std::hex << h;
    }
  }
}

TEST(DTypeTest, F16RoundTripsThroughF32ForAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t back = F32ToF16Bits(F16BitsToF32(static_cast<uint16_t>(h)));
    if (IsNanF16(static_cast<uint16_t>(h))) {
      ASSERT_TRUE(IsNanF16(back)) << std::hex << h;
      EXPECT_EQ(back & 0x8000, h & 0x8000) << "NaN keeps its sign " << std::hex << h;
      if (h & 0x200) {
        EXPECT_EQ(back, h) << "quiet NaN keeps its payload " << std::hex << h;
      }
    } else {
      ASSERT_EQ(back, h) << std::hex << h;
    }
  }
}

TEST(DTypeTest, BF16RoundTripsThroughF32ForAllPatterns) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = BF16BitsToF32(static_cast<uint16_t>(b));
    const uint16_t back = F32ToBF16Bits(f);
    if (IsNanBF16(static_cast<uint16_t>(b))) {
      ASSERT_TRUE(std::isnan(f));
      ASSERT_TRUE(IsNanBF16(back)) << std::hex << b;
    } else {
      ASSERT_EQ(static_cast<double>(f), BF16Value(static_cast<uint16_t>(b))) << std::hex << b;
      ASSERT_EQ(back, b) << std::hex << b;
    }
  }
}

// Edge cases named by value; each is checked against the table reference and,
// where it matters, against the expected bits written out.
TEST(DTypeTest, F32ToF16EdgeCases) {
  struct Case {
    float f;
    uint16_t bits;
  };
  const float sub = std::ldexp(1.0f, -24);  // smallest f16 subnormal
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {INFINITY, 0x7c00},
      {-INFINITY, 0xfc00},
      {65504.0f, 0x7bff},                         // max finite
      {std::nextafter(65520.0f, 0.0f), 0x7bff},   // just under the overflow threshold
      {65520.0f, 0x7c00},                         // halfway to 65536: ties to even = inf
      {-65520.0f, 0xfc00},
      {65536.0f, 0x7c00},
      {1e30f, 0x7c00},
      {std::numeric_limits<float>::max(), 0x7c00},
      {sub, 0x0001},                              // smallest subnormal
      {-sub, 0x8001},
      {sub / 2, 0x0000},                          // halfway to zero: ties to even = 0
      {std::nextafter(sub / 2, 1.0f), 0x0001},    // just above halfway
      {std::nextafter(sub / 2, 0.0f), 0x0000},
      {sub * 1.5f, 0x0002},                       // 1.5 units: tie to even = 2
      {sub * 2.5f, 0x0002},                       // 2.5 units: tie to even = 2
      {sub * 3.5f, 0x0004},
      {std::ldexp(1.0f, -14), 0x0400},            // smallest normal
      {std::ldexp(1023.5f, -24), 0x0400},         // halfway max subnormal / min normal
      {std::ldexp(1023.0f, -24), 0x03ff},         // max subnormal
      {std::numeric_limits<float>::denorm_min(), 0x0000},
      {std::numeric_limits<float>::min(), 0x0000},
      {1.0f, 0x3c00},
      {1.0f + std::ldexp(1.0f, -11), 0x3c00},     // tie between 1 and 1+2^-10: even = 1
      {1.0f + 3 * std::ldexp(1.0f, -11), 0x3c02}, // tie: even = 1+2^-9
      {std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f), 0x3c01},
      {2047.0f / 1024.0f + std::ldexp(1.0f, -11), 0x4000},  // rounds up into the next binade
      {-2.0f, 0xc000},
      {0.1f, 0x2e66},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(F32ToF16Bits(c.f), c.bits) << c.f;
    EXPECT_EQ(RefRound(F16Table(), c.f), c.bits) << "reference disagrees on " << c.f;
  }
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fbfffffu, 0xff812345u}) {
    const uint16_t h = F32ToF16Bits(FromBits(nan));
    EXPECT_TRUE(IsNanF16(h)) << std::hex << nan;
    EXPECT_EQ(h & 0x8000u, (nan >> 16) & 0x8000u) << std::hex << nan;
  }
}

TEST(DTypeTest, F32ToBF16EdgeCases) {
  struct Case {
    float f;
    uint16_t bits;
  };
  const Case cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {INFINITY, 0x7f80},
      {-INFINITY, 0xff80},
      {1.0f, 0x3f80},
      {1.0f + std::ldexp(1.0f, -8), 0x3f80},      // tie: even = 1
      {1.0f + 3 * std::ldexp(1.0f, -8), 0x3f82},  // tie: even
      {std::nextafter(1.0f + std::ldexp(1.0f, -8), 2.0f), 0x3f81},
      {std::numeric_limits<float>::max(), 0x7f80},  // above the last midpoint: inf
      {BitsFloat(0x7f7f7fffu), 0x7f7f},              // just under the midpoint to inf
      {BitsFloat(0x7f7f8000u), 0x7f80},              // midpoint, odd below: rounds up to inf
      {std::numeric_limits<float>::denorm_min(), 0x0000},  // f32 subnormals round like normals
      {BitsFloat(0x00008000u), 0x0000},                    // tie: even = 0
      {BitsFloat(0x00018000u), 0x0002},                    // tie: even = 2
      {BitsFloat(0x00008001u), 0x0001},
      {std::numeric_limits<float>::min(), 0x0080},
      {-3.0f, 0xc040},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(F32ToBF16Bits(c.f), c.bits) << c.f;
    EXPECT_EQ(RefRound(BF16Table(), c.f), c.bits) << "reference disagrees on " << c.f;
  }
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fffffffu, 0xff800001u}) {
    const uint16_t b = F32ToBF16Bits(FromBits(nan));
    EXPECT_TRUE(IsNanBF16(b)) << std::hex << nan;
    EXPECT_EQ(b & 0x8000u, (nan >> 16) & 0x8000u) << std::hex << nan;
  }
}

// Random f32 bit patterns (all exponents), plus patterns concentrated near the
// f16 range where the interesting rounding happens.
TEST(DTypeTest, RandomF32AgainstReference) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<uint32_t> any;
  std::uniform_int_distribution<uint32_t> near_f16(0x32000000u, 0x48000000u);
  for (int i = 0; i < 2'000'000; ++i) {
    uint32_t u = (i % 2 == 0) ? any(rng) : (near_f16(rng) | (any(rng) & 0x80000000u));
    if (i % 7 == 0) u &= 0xffffe000u | (any(rng) & 0x1000u);  // exact f16 ties and neighbours
    const float f = FromBits(u);
    const uint16_t h = F32ToF16Bits(f), b = F32ToBF16Bits(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(IsNanF16(h) && IsNanBF16(b)) << std::hex << u;
      continue;
    }
    ASSERT_EQ(h, RefRound(F16Table(), f)) << std::hex << "f16 of 0x" << u;
    ASSERT_EQ(b, RefRound(BF16Table(), f)) << std::hex << "bf16 of 0x" << u;
#if defined(__FLT16_MAX__)
    // The compiler's own conversion (libgcc soft-float) as a third opinion.
    const _Float16 c = static_cast<_Float16>(f);
    uint16_t cbits;
    std::memcpy(&cbits, &c, 2);
    ASSERT_EQ(h, cbits) << std::hex << "f16 vs _Float16 of 0x" << u;
#endif
  }
}

}  // namespace
}  // namespace cf
