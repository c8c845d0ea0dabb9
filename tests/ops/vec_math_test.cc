// The AVX-512 vector math of ops/vec_math_avx512.h against float64
// references: the max error in ulps of the f32 result over a range of inputs
// (a dense sweep of the float bit patterns in the range by default; every
// float of it with CF_VEC_MATH_EXHAUSTIVE=1, which docs/vec-math.md quotes),
// held to the bound stated per function; special values (0, -0, subnormals,
// +-inf, NaN, the overflow / underflow thresholds); the f16 / bf16 loads and
// stores bit for bit against runtime/dtype.h; the masked tails of Map.
#include "ops/vec_math_avx512.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "ops/cpu_util.h"
#include "runtime/thread_pool.h"

namespace cf::testing {
namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Each function through a plain pointer (the test calls them on 16-float arrays).
#define CF_VM_WRAP(name) \
  CF_VM_TARGET void name##16(const float* x, float* y) { _mm512_storeu_ps(y, vm::name(_mm512_loadu_ps(x))); }
CF_VM_WRAP(Exp)
CF_VM_WRAP(Exp2)
CF_VM_WRAP(Erf)
CF_VM_WRAP(Erfc)
CF_VM_WRAP(Tanh)
CF_VM_WRAP(Sigmoid)
CF_VM_WRAP(Silu)
CF_VM_WRAP(GeluErf)
CF_VM_WRAP(GeluTanh)
#undef CF_VM_WRAP

#pragma GCC diagnostic pop

using Fn16 = void (*)(const float*, float*);

double Ulp(double r) {
  const double a = std::fabs(r);
  if (!(a >= std::numeric_limits<float>::min())) return std::ldexp(1.0, -149);  // subnormal or 0
  int e;
  std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

// Error of y against r in ulps of r rounded to f32 (inf / NaN must match exactly).
double UlpError(float y, double r) {
  if (std::isnan(r)) return std::isnan(y) ? 0 : 1e9;
  const double rf = static_cast<float>(r);  // the reference as the f32 it rounds to
  if (std::isinf(rf)) {
    // Overflow: the correctly rounded result is inf; FLT_MAX is 1 ulp off.
    if (y == rf) return 0;
    return std::fabs(y) == std::numeric_limits<float>::max() && std::signbit(y) == std::signbit(rf) ? 1 : 1e9;
  }
  if (std::isinf(y) || std::isnan(y)) return 1e9;
  return std::fabs(double(y) - r) / Ulp(r);
}

struct Case {
  const char* name;
  Fn16 fn;
  double (*ref)(double);
  float lo, hi;  // the range swept
  double bound;  // max ulps allowed there
};

double RefExp(double x) { return std::exp(x); }
double RefExp2(double x) { return std::exp2(x); }
double RefErf(double x) { return std::erf(x); }
double RefErfc(double x) { return std::erfc(x); }
double RefTanh(double x) { return std::tanh(x); }
double RefSigmoid(double x) { return 1 / (1 + std::exp(-x)); }
double RefSilu(double x) { return x / (1 + std::exp(-x)); }
double RefGelu(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double RefGeluTanh(double x) {
  const double u = std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x);
  return x / (1 + std::exp(-2 * u));  // 0.5 x (1 + tanh u), no cancellation for u << 0
}

// Ranges: where the result is normal or the function's limit (exp, erfc and
// sigmoid sweep into their subnormal results, where the ulp is 2^-149). Below
// the lower ends of silu and the gelus the results are subnormal or 0 (x
// e^x with |x| > 1 loses the ulps of the subnormal e^x; see
// TailsUnderflow). gelu_tanh's bound is stated on [-4, inf): below, the
// rounding of its f32 argument 2u is amplified by |2u| (any f32 evaluation
// of the formula, PyTorch's included, has this), see GeluTanhTail.
const Case kCases[] = {
    {"exp", Exp16, RefExp, -104.0f, 89.0f, 1.5},
    {"exp2", Exp216, RefExp2, -149.0f, 127.99f, 1},
    {"erf", Erf16, RefErf, -12.0f, 12.0f, 3},
    {"erfc", Erfc16, RefErfc, -12.0f, 11.0f, 6},
    {"tanh", Tanh16, RefTanh, -20.0f, 20.0f, 2},
    {"sigmoid", Sigmoid16, RefSigmoid, -104.0f, 40.0f, 3},
    {"silu", Silu16, RefSilu, -85.0f, 1e30f, 3.5},
    {"gelu", GeluErf16, RefGelu, -13.0f, 1e30f, 7},
    {"gelu_tanh", GeluTanh16, RefGeluTanh, -9.0f, 1e15f, 4},
};

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

struct Worst {
  double ulps = 0;
  float at = 0;
};

// Max ulp error of c.fn over the floats of [lo, hi] whose bit pattern is a
// multiple of `stride` (1: every float), split over the thread pool.
Worst Sweep(const Case& c, float lo, float hi, uint32_t stride) {
  // Bit patterns of non-negative floats in [max(lo, 0), hi] and of negative ones in [lo, min(hi, -0)].
  struct Span {
    uint32_t a, b;  // [a, b] of bit patterns
  };
  std::vector<Span> spans;
  if (hi >= 0) spans.push_back({lo > 0 ? Bits(lo) : 0u, Bits(hi)});
  if (lo < 0) spans.push_back({hi < 0 ? Bits(hi) : 0x80000000u, Bits(lo)});
  Worst worst;
  std::mutex mu;
  for (const Span& sp : spans) {
    const int64_t first = (int64_t(sp.a) + stride - 1) / stride, last = int64_t(sp.b) / stride;
    if (last < first) continue;
    ParallelFor(first, last + 1, 1 << 16, [&](int64_t b, int64_t e) {
      Worst w;
      float x[16], y[16];
      for (int64_t k = b; k < e; k += 16) {
        const int n = int(std::min<int64_t>(16, e - k));
        for (int j = 0; j < 16; ++j) x[j] = FromBits(uint32_t((k + std::min(j, n - 1)) * stride));
        c.fn(x, y);
        for (int j = 0; j < n; ++j) {
          const double err = UlpError(y[j], c.ref(double(x[j])));
          if (err > w.ulps) w = {err, x[j]};
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      if (w.ulps > worst.ulps) worst = w;
    });
  }
  return worst;
}

bool Exhaustive() {
  const char* e = std::getenv("CF_VEC_MATH_EXHAUSTIVE");
  return e != nullptr && std::string(e) == "1";
}

TEST(VecMath, UlpErrorWithinBound) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (const Case& c : kCases) {
    // The whole range (dense, or every float), and every float near 0 and
    // around the branch points (erf / erfc at 1/2, tanh at 0.55, gelu at
    // +-1/sqrt 2 ... covered by [-2, 2] at a finer stride).
    const Worst all = Sweep(c, c.lo, c.hi, Exhaustive() ? 1 : 401);
    const Worst mid = Sweep(c, std::max(c.lo, -2.0f), std::min(c.hi, 2.0f), Exhaustive() ? 1 : 61);
    const Worst w = all.ulps >= mid.ulps ? all : mid;
    std::printf("%-10s max %.3f ulp at %.9g over [%g, %g]%s\n", c.name, w.ulps, double(w.at), double(c.lo),
                double(c.hi), Exhaustive() ? " (every float)" : "");
    EXPECT_LE(w.ulps, c.bound) << c.name << " at x = " << w.at;
  }
}

// Special values: the limits, NaN, signed zeros, subnormal inputs, and the
// overflow / underflow thresholds of exp.
TEST(VecMath, SpecialValues) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float den = std::numeric_limits<float>::denorm_min(), fmin = std::numeric_limits<float>::min();
  const float xs[16] = {0.0f, -0.0f, den, -den, fmin, -fmin, inf, -inf, nan, 88.72283f, 88.72284f, -87.33655f,
                        -103.27893f, -103.97208f, -104.5f, 1e-30f};
  for (const Case& c : kCases) {
    float y[16];
    c.fn(xs, y);
    for (int j = 0; j < 16; ++j) {
      const float x = xs[j];
      double r = c.ref(double(x));
      if (std::isinf(x) && x < 0 && (std::string(c.name) == "silu" || std::string(c.name).rfind("gelu", 0) == 0))
        r = -0.0;  // the limit x sigmoid(x) -> 0 (double's -inf * 0 is NaN)
      if (std::isnan(r)) {
        EXPECT_TRUE(std::isnan(y[j])) << c.name << "(" << x << ") = " << y[j];
        continue;
      }
      const double tol = std::fabs(r) < fmin ? 2 * 512.0 : 2 * c.bound;  // subnormal results: x e^x scaling
      EXPECT_LE(UlpError(y[j], r), tol) << c.name << "(" << x << ") = " << y[j] << ", want " << r;
    }
  }
  // Exactly the limits.
  float y[16];
  const float big[16] = {inf, 100.0f, 89.0f, 1e30f, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf, inf};
  Exp16(big, y);
  for (float v : y) EXPECT_EQ(v, inf);
  const float small[16] = {-inf, -200.0f, -104.0f, -1e30f, -inf, -inf, -inf, -inf,
                           -inf, -inf,    -inf,    -inf,   -inf, -inf, -inf, -inf};
  Exp16(small, y);
  for (float v : y) EXPECT_EQ(v, 0.0f);
  Tanh16(big, y);
  for (float v : y) EXPECT_EQ(v, 1.0f);
  Erf16(small, y);
  for (float v : y) EXPECT_EQ(v, -1.0f);
  Erfc16(small, y);
  for (float v : y) EXPECT_EQ(v, 2.0f);
  const float tiny2[16] = {-inf, -200.0f, -1e30f, -151.0f, -inf, -inf, -inf, -inf,
                           -inf, -inf,    -inf,   -inf,    -inf, -inf, -inf, -inf};
  Exp216(tiny2, y);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

// Below the ranges above, silu and gelu are subnormal or 0: the error is
// then at most a few ulps of the smallest normal (absolute 2^-126 scale).
TEST(VecMath, TailsUnderflow) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (const Case& c : kCases) {
    const std::string n = c.name;
    if (n != "silu" && n != "gelu") continue;
    float x[16], y[16];
    for (float v = -200.0f; v < c.lo; v += 0.37f) {
      for (int j = 0; j < 16; ++j) x[j] = v + 0.01f * j;
      c.fn(x, y);
      for (int j = 0; j < 16; ++j) {
        const double r = c.ref(double(x[j]));
        EXPECT_LE(std::fabs(double(y[j]) - r), 4 * double(std::numeric_limits<float>::min())) << n << "(" << x[j] << ")";
        EXPECT_LE(y[j], 0.0f) << n << "(" << x[j] << ")";
      }
    }
  }
}

// gelu_tanh below -4: the relative error stays within |2u| ulps (the
// conditioning of e^(2u) on the f32 argument), and 0 where it underflows.
TEST(VecMath, GeluTanhTail) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  float x[16], y[16];
  for (float v = -12.0f; v < -4.0f; v += 0.013f) {
    for (int j = 0; j < 16; ++j) x[j] = v + 0.0007f * j;
    GeluTanh16(x, y);
    for (int j = 0; j < 16; ++j) {
      const double r = RefGeluTanh(double(x[j]));
      const double two_u = 2 * std::sqrt(2 / M_PI) * std::fabs(x[j] + 0.044715 * x[j] * x[j] * x[j]);
      if (std::fabs(r) < std::numeric_limits<float>::min()) {
        EXPECT_LE(std::fabs(double(y[j]) - r), 4 * double(std::numeric_limits<float>::min()));
      } else {
        EXPECT_LE(UlpError(y[j], r), 3 + 2 * two_u) << "gelu_tanh(" << x[j] << ")";
      }
    }
  }
}

// f16 / bf16 loads and stores against runtime/dtype.h, bit for bit, over
// every 16-bit pattern (loads) and a sweep of f32 patterns (stores, with
// NaN, inf, ties and subnormal halves among them).
CF_VM_TARGET void RoundTrip16(const float* x, uint16_t* h, uint16_t* b, int n) {
  const __mmask16 m = vm::FirstLanes(n);
  const __m512 v = vm::Load(x, m);
  vm::Store(reinterpret_cast<f16_t*>(h), v, m);
  vm::Store(reinterpret_cast<bf16_t*>(b), v, m);
}
CF_VM_TARGET void Widen16(const uint16_t* h, const uint16_t* b, float* fh, float* fb) {
  _mm512_storeu_ps(fh, vm::Load(reinterpret_cast<const f16_t*>(h)));
  _mm512_storeu_ps(fb, vm::Load(reinterpret_cast<const bf16_t*>(b)));
}

TEST(VecMath, HalfLoadsAndStoresMatchRuntime) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  for (uint32_t base = 0; base < 65536; base += 16) {
    uint16_t h[16], b[16];
    float fh[16], fb[16];
    for (int j = 0; j < 16; ++j) h[j] = b[j] = uint16_t(base + j);
    Widen16(h, b, fh, fb);
    for (int j = 0; j < 16; ++j) {
      const float wh = F16BitsToF32(h[j]), wb = BF16BitsToF32(b[j]);
      EXPECT_TRUE(Bits(fh[j]) == Bits(wh) || (std::isnan(wh) && std::isnan(fh[j]))) << base + j;
      EXPECT_EQ(Bits(fb[j]), Bits(wb)) << base + j;
    }
  }
  for (uint64_t u = 0; u < (uint64_t(1) << 32); u += 4099 * 16) {
    float x[16];
    uint16_t h[16] = {}, b[16] = {};
    for (int j = 0; j < 16; ++j) x[j] = FromBits(uint32_t(u + uint64_t(j) * 4099));
    x[0] = FromBits(0x3f808000u);  // a bf16 tie
    x[1] = FromBits(0x33000001u);  // just above half the smallest f16 subnormal
    RoundTrip16(x, h, b, 16);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(h[j], F32ToF16Bits(x[j])) << std::hex << Bits(x[j]);
      EXPECT_EQ(b[j], F32ToBF16Bits(x[j])) << std::hex << Bits(x[j]);
    }
  }
}

// Map and Map2 over every length 0..70 (tails), in place and not, each dtype.
template <typename T>
CF_VM_TARGET void MapSilu(const T* x, T* y, int64_t n) {
  const float k = 1.0f;
  vm::Map(x, y, n, [k](__m512 v) CF_VM_TARGET { return vm::Silu(_mm512_mul_ps(v, _mm512_set1_ps(k))); });
}
template <typename T>
CF_VM_TARGET void MapAdd(const T* a, const T* b, T* y, int64_t n) {
  const float k = 1.0f;
  vm::Map2(a, b, y, n, [k](__m512 u, __m512 v) CF_VM_TARGET { return _mm512_fmadd_ps(u, _mm512_set1_ps(k), v); });
}

template <typename T>
void CheckMaps() {
  for (int64_t n = 0; n <= 70; ++n) {
    std::vector<T> x(n + 1), b(n + 1), y(n + 1);
    for (int64_t i = 0; i <= n; ++i) {
      Store(x.data(), i, float(i) * 0.37f - 9.0f);
      Store(b.data(), i, float(i) * -0.11f);
      Store(y.data(), i, 123.0f);
    }
    MapSilu(x.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const float v = Load(x.data(), i);
      EXPECT_NEAR(Load(y.data(), i), v / (1 + std::exp(-v)), 1e-2 * (1 + std::fabs(v))) << n << " " << i;
    }
    EXPECT_EQ(Load(y.data(), n), 123.0f) << "wrote past the end, n = " << n;
    MapAdd(x.data(), b.data(), x.data(), n);  // in place
    for (int64_t i = 0; i < n; ++i)
      EXPECT_NEAR(Load(x.data(), i), float(i) * 0.37f - 9.0f + float(i) * -0.11f, 0.1) << n << " " << i;
  }
}

TEST(VecMath, MapTails) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "no AVX-512 on this CPU";
  CheckMaps<float>();
  CheckMaps<f16_t>();
  CheckMaps<bf16_t>();
}

}  // namespace
}  // namespace cf::testing
