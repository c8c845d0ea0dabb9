// Storage dtypes and exact f32 <-> f16 / bf16 conversions (round to nearest even).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "runtime/status.h"

#if defined(__CUDACC__)
#define CF_HD __host__ __device__ __forceinline__
#else
#define CF_HD inline
#endif

namespace cf {

// f64 is a CPU-only dtype used by tests (float64 references, finite differences).
enum class DType : uint8_t { f32, f16, bf16, f64, i32, i64, u8, boolean };

constexpr int64_t DTypeSize(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
    case DType::boolean: return 1;
  }
  return 0;
}
constexpr bool IsFloating(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::f64;
}
const char* DTypeName(DType t);
StatusOr<DType> ParseDType(std::string_view name);

// Bit patterns of IEEE binary16 and bfloat16, used on the host. Device code
// uses __half / __nv_bfloat16, which have the same layout.
struct f16_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

CF_HD uint32_t FloatBits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
CF_HD float BitsFloat(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// f32 -> bf16: round to nearest even; NaN stays NaN (quiet), Inf stays Inf.
CF_HD uint16_t F32ToBF16Bits(float f) {
  uint32_t u = FloatBits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  uint32_t lsb = (u >> 16) & 1u;
  u += 0x7fffu + lsb;
  return static_cast<uint16_t>(u >> 16);
}
CF_HD float BF16BitsToF32(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

// f32 -> f16: round to nearest even, with subnormals, overflow to Inf, NaN kept quiet.
CF_HD uint16_t F32ToF16Bits(float f) {
  uint32_t u = FloatBits(f);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u | static_cast<uint16_t>((a >> 13) & 0x1ffu);  // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65536: Inf (also Inf input)
  if (a >= 0x38800000u) {                        // normal half: exponent >= -14
    uint32_t lsb = (a >> 13) & 1u;
    a += 0xfffu + lsb;
    return sign | static_cast<uint16_t>((a - 0x38000000u) >> 13);
  }
  if (a < 0x33000000u) return sign;  // below half the smallest subnormal (2^-25): zero
  // Subnormal half: value = m * 2^-24 with m = round(a_value * 2^24).
  uint32_t e = a >> 23;                 // biased f32 exponent, 102..112
  uint32_t mant = (a & 0x7fffffu) | 0x800000u;
  uint32_t shift = 126 - e;             // bits to drop so the result is in units of 2^-24
  uint32_t q = mant >> shift;
  uint32_t rem = mant & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return sign | static_cast<uint16_t>(q);
}
CF_HD float F16BitsToF32(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return BitsFloat(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return BitsFloat(sign);
    // Subnormal: m * 2^-24, exact in f32.
    float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return BitsFloat(sign | ((e + 112u) << 23) | (m << 13));
}

inline float ToFloat(f16_t v) { return F16BitsToF32(v.bits); }
inline float ToFloat(bf16_t v) { return BF16BitsToF32(v.bits); }
inline float ToFloat(float v) { return v; }
inline double ToFloat(double v) { return v; }

template <typename T> struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::f32; };
template <> struct DTypeOf<double> { static constexpr DType value = DType::f64; };
template <> struct DTypeOf<f16_t> { static constexpr DType value = DType::f16; };
template <> struct DTypeOf<bf16_t> { static constexpr DType value = DType::bf16; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::i32; };
template <> struct DTypeOf<int64_t> { static constexpr DType value = DType::i64; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::u8; };
template <> struct DTypeOf<bool> { static constexpr DType value = DType::boolean; };

}  // namespace cf
