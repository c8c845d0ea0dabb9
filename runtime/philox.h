// Philox-4x32-10 counter-based RNG and the float math that turns its words into
// uniform and normal samples, identically on the host and on CUDA devices.
//
// Streams: element g of the stream `seed` comes from Philox block g / 4, lane
// g % 4 (counter = {lo32(g/4), hi32(g/4), 0, 0}, key = {lo32(seed),
// hi32(seed)}), so it depends only on (seed, g). A fill with `offset` writes
// elements offset, offset + 1, ... of the stream: any slice can be produced
// on its own, in parallel, on either backend.
//
// Bit-identical results on host and device need every float operation to be
// one correctly rounded IEEE operation in the same order. Device code uses the
// __f*_rn intrinsics (never contracted into FMA); host code is compiled with
// -ffp-contract=off, so plain * and + are the same operations. log and sincos
// are ours (libm and CUDA's differ): exact range reduction, then polynomials.
#pragma once

#include <cstdint>

#include "runtime/dtype.h"

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

namespace cf {

struct PhiloxKey {
  uint64_t seed;
};

struct PhiloxBlock {
  uint32_t x[4];
};

namespace rn {  // one correctly rounded operation each, never fused

CF_HD float Mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
CF_HD float Add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
CF_HD float Sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
CF_HD float Div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
CF_HD float Sqrt(float a) {
#if defined(__CUDA_ARCH__)
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

}  // namespace rn

CF_HD uint32_t MulHi32(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

// Philox-4x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11); matches Random123's known-answer vectors.
CF_HD PhiloxBlock Philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    const uint32_t hi0 = MulHi32(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = MulHi32(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  return {{c0, c1, c2, c3}};
}

// The 4 words of block `block` of the stream `key`.
CF_HD PhiloxBlock PhiloxBlockAt(PhiloxKey key, uint64_t block) {
  return Philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u,
                       static_cast<uint32_t>(key.seed), static_cast<uint32_t>(key.seed >> 32));
}

// Natural log of a float, within about 1 ulp for positive finite x (subnormals
// included); log(0) = -inf, log(x < 0) = NaN, log(inf) = inf. Writes
// x = 2^k * (1 + f) with 1 + f in [sqrt(1/2), sqrt(2)); then, with
// s = f / (2 + f), log(1 + f) = 2 atanh(s) = f - (f^2/2 - s (f^2/2 + R(s^2)))
// where the Taylor series R(z) = 2z/3 + 2z^2/5 + 2z^3/7 + 2z^4/9 is exact to
// ~1e-9 for |s| <= 0.172.
CF_HD float PhiloxLog(float x) {
  uint32_t u = FloatBits(x);
  if (u >= 0x7f800000u) {                     // negative, NaN or +inf
    if (u == 0x7f800000u) return x;           // +inf
    if ((u & 0x7fffffffu) == 0) return BitsFloat(0xff800000u);  // -0: -inf
    return BitsFloat(0x7fc00000u);            // NaN
  }
  if (u == 0) return BitsFloat(0xff800000u);  // +0: -inf
  int k = 0;
  if (u < 0x00800000u) {  // subnormal: scale by 2^23 (exact)
    u = FloatBits(rn::Mul(x, 8388608.0f));
    k = -23;
  }
  k += static_cast<int>(u >> 23) - 127;
  uint32_t m = u & 0x7fffffu;
  if (m >= 0x3504f3u) {  // mantissa >= sqrt(2): use (1 + f) / 2
    m |= 0x3f000000u;
    ++k;
  } else {
    m |= 0x3f800000u;
  }
  const float f = rn::Sub(BitsFloat(m), 1.0f);  // exact (Sterbenz)
  const float s = rn::Div(f, rn::Add(2.0f, f));
  const float z = rn::Mul(s, s);
  const float r = rn::Mul(
      z, rn::Add(0.666666667f,
                 rn::Mul(z, rn::Add(0.4f, rn::Mul(z, rn::Add(0.285714286f,
                                                             rn::Mul(z, 0.222222222f)))))));
  const float hfsq = rn::Mul(0.5f, rn::Mul(f, f));
  // ln 2 = kLn2Hi + kLn2Lo; kLn2Hi has 15 significant bits, so k * kLn2Hi is exact.
  constexpr float kLn2Hi = 0.693145751953125f;
  constexpr float kLn2Lo = 1.428606765330187e-06f;
  const float kf = static_cast<float>(k);
  const float small = rn::Sub(hfsq, rn::Add(rn::Mul(s, rn::Add(hfsq, r)), rn::Mul(kf, kLn2Lo)));
  return rn::Sub(rn::Mul(kf, kLn2Hi), rn::Sub(small, f));
}

// sin and cos of 2*pi*k/2^24 for k in [0, 2^24), within 1.25 ulp. The
// angle is a 24-bit fixed-point number of turns, so range reduction is exact
// integer arithmetic: k = q * 2^22 + r with r in [-2^21, 2^21), i.e. a
// quadrant q and t = r / 2^24 in [-1/8, 1/8) turns (|2*pi*t| <= pi/4), where
// Taylor polynomials in t (coefficients (2*pi)^n / n!) are accurate to ~3e-9.
// The leading term of sin, 2*pi*t, is summed in parts that are exact products
// (t = th + tl with 10- and 11-bit halves, 2*pi = kHi + kLo with a 12-bit kHi),
// so the rounding of 2*pi and of that product do not add up.
CF_HD void PhiloxSinCos2Pi(uint32_t k, float* sin_out, float* cos_out) {
  k &= 0xffffffu;
  const uint32_t q = (k + (1u << 21)) >> 22;  // 0..4; 4 is a full turn, same as 0
  const int32_t r = static_cast<int32_t>(k) - static_cast<int32_t>(q << 22);
  // Split toward zero, so both parts have the sign of r and never cancel.
  const int32_t r_hi = r / 2048 * 2048, r_lo = r - r_hi;  // |r_lo| < 2^11
  constexpr float kTurnUnit = 5.9604644775390625e-8f;      // 2^-24
  const float t = rn::Mul(static_cast<float>(r), kTurnUnit);  // all three exact
  const float th = rn::Mul(static_cast<float>(r_hi), kTurnUnit);
  const float tl = rn::Mul(static_cast<float>(r_lo), kTurnUnit);
  const float t2 = rn::Mul(t, t);
  // sin(2 pi t) = 2 pi t + t^3 * (S3 + t2 * (S5 + t2 * (S7 + t2 * S9)))
  constexpr float kTwoPiHi = 6.283203125f;             // 3217 / 512
  constexpr float kTwoPiLo = -1.7817820413768004e-05f;  // 2*pi - kTwoPiHi
  float ps = rn::Add(-76.7058597530613f, rn::Mul(t2, 42.0586939448976f));
  ps = rn::Add(81.6052492760750f, rn::Mul(t2, ps));
  ps = rn::Add(-41.3417022403998f, rn::Mul(t2, ps));
  float small = rn::Add(rn::Mul(t, kTwoPiLo), rn::Mul(rn::Mul(t, t2), ps));
  small = rn::Add(rn::Mul(tl, kTwoPiHi), small);
  const float sn = rn::Add(rn::Mul(th, kTwoPiHi), small);
  // cos(2 pi t) = 1 + t2 * (C2 + t2 * (C4 + t2 * (C6 + t2 * (C8 + t2 * C10))))
  float pc = rn::Add(60.2446413718766f, rn::Mul(t2, -26.4262567833744f));
  pc = rn::Add(-85.4568172066937f, rn::Mul(t2, pc));
  pc = rn::Add(64.9393940226683f, rn::Mul(t2, pc));
  pc = rn::Add(-19.7392088021787f, rn::Mul(t2, pc));
  const float cs = rn::Add(1.0f, rn::Mul(t2, pc));
  switch (q & 3u) {
    case 0: *sin_out = sn; *cos_out = cs; break;
    case 1: *sin_out = cs; *cos_out = -sn; break;
    case 2: *sin_out = -sn; *cos_out = -cs; break;
    default: *sin_out = -cs; *cos_out = sn; break;
  }
}

// Uniform in [lo, hi) from the top 24 bits of a word: lo + (hi - lo) * m/2^24
// (rounding can give hi itself when hi - lo is large relative to lo).
CF_HD float PhiloxUniform(uint32_t word, float lo, float hi) {
  const float u = rn::Mul(static_cast<float>(word >> 8), 5.9604644775390625e-8f);
  return rn::Add(lo, rn::Mul(u, rn::Sub(hi, lo)));
}

// Box-Muller on two words: radius from u1 = (m1 + 1)/2^24 in (0, 1], angle
// 2*pi*m2/2^24. Writes two independent N(0, 1) samples (|z| < 5.8).
CF_HD void PhiloxNormalPair(uint32_t w1, uint32_t w2, float* z0, float* z1) {
  const float u1 = rn::Mul(static_cast<float>((w1 >> 8) + 1u), 5.9604644775390625e-8f);
  const float radius = rn::Sqrt(rn::Mul(-2.0f, PhiloxLog(u1)));
  float s, c;
  PhiloxSinCos2Pi(w2 >> 8, &s, &c);
  *z0 = rn::Mul(radius, c);
  *z1 = rn::Mul(radius, s);
}

// Elements 4*block .. 4*block+3 of the uniform stream.
CF_HD void PhiloxUniformBlock(PhiloxKey key, uint64_t block, float lo, float hi, float out[4]) {
  const PhiloxBlock b = PhiloxBlockAt(key, block);
  for (int i = 0; i < 4; ++i) out[i] = PhiloxUniform(b.x[i], lo, hi);
}

// Elements 4*block .. 4*block+3 of the normal stream: lanes 0, 1 from words
// (0, 1) (cos, sin), lanes 2, 3 from words (2, 3).
CF_HD void PhiloxNormalBlock(PhiloxKey key, uint64_t block, float mean, float stddev,
                             float out[4]) {
  const PhiloxBlock b = PhiloxBlockAt(key, block);
  float z[4];
  PhiloxNormalPair(b.x[0], b.x[1], &z[0], &z[1]);
  PhiloxNormalPair(b.x[2], b.x[3], &z[2], &z[3]);
  for (int i = 0; i < 4; ++i) out[i] = rn::Add(mean, rn::Mul(stddev, z[i]));
}

// Element `index` of a stream, one at a time (tests, scalars).
CF_HD float PhiloxUniformAt(PhiloxKey key, uint64_t index, float lo, float hi) {
  return PhiloxUniform(PhiloxBlockAt(key, index >> 2).x[index & 3], lo, hi);
}
CF_HD float PhiloxNormalAt(PhiloxKey key, uint64_t index, float mean, float stddev) {
  const PhiloxBlock b = PhiloxBlockAt(key, index >> 2);
  const int pair = static_cast<int>(index & 2);
  float z0, z1;
  PhiloxNormalPair(b.x[pair], b.x[pair + 1], &z0, &z1);
  return rn::Add(mean, rn::Mul(stddev, (index & 1) ? z1 : z0));
}

}  // namespace cf
