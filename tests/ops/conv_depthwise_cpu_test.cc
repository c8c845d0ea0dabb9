// The tiled depthwise conv of the CPU backend (ops/conv/conv_depthwise_tiled_cpu.h)
// against float64 loops written here, on every path (AVX-512 where the CPU
// has it, with and without the Winograd path for wide kernels, and the
// portable one, forced): the tiled forward with every
// epilogue, bias or none, a pixel stride wider than dense (untouched
// channels must keep their values), cropping (negative) padding; conv2d's
// three depthwise ops end to end through the executor (stride 1, dilation 1
// take the tiled kernels) with K from 1 to 31, kh != kw, odd maps, K larger
// than the map, channel counts around the 16-lane blocks, batch 1 and 3,
// padding 0 / K/2 / K-1 / above K-1; NaN propagation; f32/f16/bf16.
#include "ops/conv/conv_depthwise_tiled_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ops/cpu_util.h"
#include "tests/support/conv_geometry.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// The geometry of one tiled call (stride 1, dilation 1; padding may be negative).
struct DwCase {
  int64_t n, h, w, c, kh, kw, ph, pw;
  int64_t ho() const { return h + 2 * ph - kh + 1; }
  int64_t wo() const { return w + 2 * pw - kw + 1; }
  std::string str() const {
    return absl::StrCat("x[", n, ", ", h, ", ", w, ", ", c, "] k ", kh, "x", kw, " pad ", ph, "x", pw);
  }
};

// d[n, oy, ox, ch] (before the epilogue) in float64; wt tap-major [kh·kw, c].
std::vector<double> RefDepthwise(const DwCase& g, const std::vector<double>& x, const std::vector<float>& wt,
                                 const std::vector<float>* bias) {
  std::vector<double> d(g.n * g.ho() * g.wo() * g.c);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.ho(); ++oy)
      for (int64_t ox = 0; ox < g.wo(); ++ox)
        for (int64_t ch = 0; ch < g.c; ++ch) {
          double s = bias ? (*bias)[ch] : 0.0;
          for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t iy = oy - g.ph + ky, ix = ox - g.pw + kx;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              s += double{wt[(ky * g.kw + kx) * g.c + ch]} * x[((n * g.h + iy) * g.w + ix) * g.c + ch];
            }
          d[((n * g.ho() + oy) * g.wo() + ox) * g.c + ch] = s;
        }
  return d;
}

// The epilogue applied to the reference d: [pixels, c] or [pixels, c/2].
std::vector<double> RefEpilogue(const std::vector<double>& d, int64_t c, DwEpilogue ep, double factor) {
  if (ep == DwEpilogue::kNone) return d;
  const int64_t half = c / 2, pixels = static_cast<int64_t>(d.size()) / c;
  std::vector<double> y(pixels * half);
  for (int64_t p = 0; p < pixels; ++p)
    for (int64_t ch = 0; ch < half; ++ch) {
      const double a = d[p * c + ch], b = d[p * c + half + ch];
      y[p * half + ch] = ep == DwEpilogue::kProduct ? a * b * factor : a / (1.0 + std::exp(-b));
    }
  return y;
}

// Runs fn(T{}) for the storage type of t (f32, f16, bf16).
template <typename F> void WithStorage(DType t, F&& fn) {
  if (t == DType::f32) fn(float{});
  else if (t == DType::f16) fn(f16_t{});
  else fn(bf16_t{});
}

constexpr DType kStorage[] = {DType::f32, DType::f16, DType::bf16};

// The paths to test: the automatic one (AVX-512 with Winograd for kw >= 9),
// AVX-512 with the direct taps only, and the forced portable one (all the
// same where the CPU has no AVX-512).
enum class Path { kAuto, kDirect, kPortable };
constexpr Path kPaths[] = {Path::kAuto, Path::kDirect, Path::kPortable};
struct ScopedPath {
  explicit ScopedPath(Path p)
      : portable(ForceDepthwisePortable(p == Path::kPortable)), winograd(EnableDepthwiseWinograd(p == Path::kAuto)) {}
  ~ScopedPath() {
    ForceDepthwisePortable(portable);
    EnableDepthwiseWinograd(winograd);
  }
  bool portable, winograd;
};
struct ScopedPortable : ScopedPath {
  explicit ScopedPortable(bool force) : ScopedPath(force ? Path::kPortable : Path::kAuto) {}
};

std::vector<float> RandomFloats(int64_t n, uint64_t seed, double scale = 1.0) {
  const std::vector<double> v = ToDoubles(RandomTensor(Shape{n}, DType::f32, seed, -scale, scale));
  return std::vector<float>(v.begin(), v.end());
}

// The tiled forward of case g in dtype t with epilogue ep, optional bias and
// y written at channel offset `offset` of pixels `extra` elements wider than
// dense; elements it must not write are checked to keep their sentinel.
void CheckTiledForward(const DwCase& g, DType t, DwEpilogue ep, bool with_bias, int64_t extra, uint64_t seed) {
  const bool gate = ep != DwEpilogue::kNone;
  const int64_t cout = gate ? g.c / 2 : g.c, offset = extra > 0 ? 3 : 0;
  const int64_t stride = cout + extra, pixels = g.n * g.ho() * g.wo();
  const float factor = ep == DwEpilogue::kProduct ? 0.75f : 1.f;
  SCOPED_TRACE(absl::StrCat(g.str(), " ", DTypeName(t), " epilogue ", static_cast<int>(ep), with_bias ? " bias" : "",
                            " stride ", stride, " path ", DepthwiseTiledPath()));
  const Tensor x = RandomTensor(Shape{g.n, g.h, g.w, g.c}, t, seed);
  const std::vector<float> wt = RandomFloats(g.kh * g.kw * g.c, seed + 1), bias = RandomFloats(g.c, seed + 2);
  const std::vector<double> d = RefDepthwise(g, ToDoubles(x), wt, with_bias ? &bias : nullptr);
  const std::vector<double> want = RefEpilogue(d, g.c, ep, factor);
  WithStorage(t, [&](auto tag) {
    using T = decltype(tag);
    const T sentinel = FromAcc<T>(777.f);
    std::vector<T> y(pixels * stride + offset, sentinel);
    DwForwardArgs a{.n = g.n, .h = g.h, .w = g.w, .c = g.c, .kh = g.kh, .kw = g.kw, .ph = g.ph, .pw = g.pw};
    a.wt = wt.data();
    a.bias = with_bias ? bias.data() : nullptr;
    a.epilogue = ep;
    a.factor = factor;
    a.y_pixel_stride = extra > 0 ? stride : 0;
    DepthwiseForwardTiledCpu<T>(a, x.data<T>(), y.data() + offset);
    std::vector<double> got(pixels * cout);
    int64_t clobbered = 0;
    for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i) {
      const int64_t j = i - offset, p = j / stride, ch = j % stride;
      if (j >= 0 && ch < cout) got[p * cout + ch] = Load(y.data(), i);
      else clobbered += std::memcmp(&y[i], &sentinel, sizeof(T)) != 0;
    }
    EXPECT_EQ(clobbered, 0) << "elements outside the output slice were written";
    // Rounding grows like sqrt(taps) times the terms (|x|, |w| < 1); a gate
    // multiplies one half's error by the other half's magnitude.
    const double tol = kStorageTol(t), mag = MaxAbs(d);
    double atol = tol * std::sqrt(static_cast<double>(g.kh * g.kw));
    if (ep == DwEpilogue::kProduct) atol *= 2 * mag * factor;
    if (ep == DwEpilogue::kSigmoid) atol *= 1 + mag;
    EXPECT_TRUE(AllClose(got, want, tol, atol));
  });
}

std::vector<DwCase> TiledCases() {
  return {
      {1, 7, 5, 16, 3, 3, 1, 1},       // one block, odd map
      {3, 7, 5, 34, 5, 5, 2, 2},       // batch 3, 17 channel pairs (a tail block in each half)
      {1, 45, 37, 30, 13, 13, 6, 6},   // K = 13, odd map, 15 pairs
      {1, 1, 40, 2, 1, 31, 0, 15},     // 1 x N map, 1 x 31 kernel, one pair
      {2, 9, 11, 32, 13, 13, 12, 12},  // K larger than the map, padding K - 1
      {1, 12, 20, 160, 25, 25, 12, 12},
      {1, 5, 9, 34, 3, 7, 0, 3},       // kh != kw, no row padding
      {1, 33, 33, 20, 31, 31, 15, 15},
      {1, 6, 150, 16, 5, 5, 2, 2},     // wo > 128: two column tiles
      {1, 3, 3, 16, 1, 1, 0, 0},       // 1 x 1
      {1, 10, 12, 18, 3, 3, -1, -2},   // negative padding crops (backward input with p > k - 1)
      // Winograd (kw >= 9): wo not a multiple of 4, wo < 4 (direct), kw not a multiple of 4, tiles split.
      {2, 11, 23, 40, 9, 9, 4, 4},
      {1, 8, 14, 16, 11, 11, 5, 3},    // wo = 6
      {1, 9, 3, 16, 3, 9, 1, 4},       // wo = 3 < 4: the direct taps
      {1, 5, 140, 34, 7, 17, 3, 8},    // wo = 140: two column tiles
      {1, 20, 20, 16, 13, 13, -2, 3},  // cropping rows (ho = 4), padded columns
  };
}

TEST(DepthwiseTiledCpu, ForwardEveryEpilogueBothPaths) {
  struct Variant {
    DwEpilogue ep;
    bool bias;
    int64_t extra;
  };
  const Variant variants[] = {{DwEpilogue::kNone, true, 0},     {DwEpilogue::kNone, false, 5},
                              {DwEpilogue::kProduct, true, 7},  {DwEpilogue::kProduct, false, 0},
                              {DwEpilogue::kSigmoid, false, 0}, {DwEpilogue::kSigmoid, true, 4}};
  uint64_t seed = 1;
  for (Path p : kPaths) {
    ScopedPath path(p);
    for (const DwCase& g : TiledCases())
      for (DType t : kStorage)
        for (const Variant& v : variants) CheckTiledForward(g, t, v.ep, v.bias, v.extra, seed += 3);
  }
}

TEST(DepthwiseTiledCpu, OddChannelCounts) {
  uint64_t seed = 500;
  for (bool portable : {false, true}) {
    ScopedPortable path(portable);
    for (int64_t c : {1, 15, 17, 33})
      for (DType t : kStorage) CheckTiledForward({2, 9, 8, c, 5, 3, 2, 1}, t, DwEpilogue::kNone, true, 0, seed += 3);
  }
}

// The sigmoid gate saturates without NaN (|b| ~ 100: exp overflows to inf or
// underflows to 0), and a NaN input reaches exactly the outputs whose window
// covers it.
TEST(DepthwiseTiledCpu, SigmoidSaturatesNanPropagates) {
  for (bool portable : {false, true}) {
    ScopedPortable path(portable);
    SCOPED_TRACE(DepthwiseTiledPath());
    const int64_t c = 40;
    std::vector<float> x(2 * c), wt(c, 1.f);
    for (int64_t ch = 0; ch < c / 2; ++ch) {
      x[ch] = x[c + ch] = 0.5f + ch;
      x[c / 2 + ch] = 100.f;       // pixel 0: sigmoid(100) = 1
      x[c + c / 2 + ch] = -100.f;  // pixel 1: sigmoid(-100) ~ 4e-44
    }
    std::vector<float> y(c, -1.f);
    DwForwardArgs a{.n = 1, .h = 1, .w = 2, .c = c, .kh = 1, .kw = 1};
    a.wt = wt.data();
    a.epilogue = DwEpilogue::kSigmoid;
    DepthwiseForwardTiledCpu<float>(a, x.data(), y.data());
    for (int64_t ch = 0; ch < c / 2; ++ch) {
      EXPECT_FLOAT_EQ(y[ch], 0.5f + ch) << ch;
      EXPECT_LE(std::abs(y[c / 2 + ch]), 1e-30f) << ch;
    }

    const DwCase g{1, 9, 10, 20, 3, 5, 1, 2};
    std::vector<float> xs = RandomFloats(g.n * g.h * g.w * g.c, 7), w3 = RandomFloats(g.kh * g.kw * g.c, 8);
    xs[(4 * g.w + 6) * g.c + 17] = std::numeric_limits<float>::quiet_NaN();  // pixel (4, 6), channel 17
    std::vector<float> out(g.ho() * g.wo() * g.c);
    DwForwardArgs b{.n = g.n, .h = g.h, .w = g.w, .c = g.c, .kh = g.kh, .kw = g.kw, .ph = g.ph, .pw = g.pw};
    b.wt = w3.data();
    DepthwiseForwardTiledCpu<float>(b, xs.data(), out.data());
    for (int64_t oy = 0; oy < g.ho(); ++oy)
      for (int64_t ox = 0; ox < g.wo(); ++ox)
        for (int64_t ch = 0; ch < g.c; ++ch) {
          const bool covers = ch == 17 && std::abs(oy - 4) <= 1 && std::abs(ox - 6) <= 2;
          EXPECT_EQ(std::isnan(out[(oy * g.wo() + ox) * g.c + ch]), covers) << oy << " " << ox << " " << ch;
        }
  }
}

// The AVX-512 epilogue rounds to f16 / bf16 exactly as runtime/dtype.h does
// (the portable path's Store): a 1x1 conv with unit taps and the product
// gate gives d = a·b, exact in f32 for f16/bf16 inputs, on both paths, so
// their outputs must match bit for bit (ties, subnormals, overflow to Inf,
// Inf and NaN among them).
TEST(DepthwiseTiledCpu, RoundingMatchesPortableBitForBit) {
  if (std::string(DepthwiseTiledPath()) != "avx512") GTEST_SKIP() << "no AVX-512 on this CPU";
  const int64_t c = 2 * 37, pixels = 300;
  std::vector<float> x = RandomFloats(pixels * c, 11, 300.0), ones(c, 1.f);
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 7e4f, 65504.f, 1e-6f, 3e-8f, 1e-40f, 0.f,
                            -0.f, 1.00390625f, 1.01171875f, 2049.f, 2051.f};
  for (size_t i = 0; i < std::size(specials); ++i) {
    x[i * c + i] = specials[i];          // a at pixel i, with b = x[i * c + c/2 + i] (random)
    x[(i + 20) * c + i] = specials[i];   // and at pixel i + 20 with b = 1 (below)
    x[(i + 20) * c + c / 2 + i] = 1.f;
  }
  DwForwardArgs a{.n = 1, .h = 15, .w = 20, .c = c, .kh = 1, .kw = 1};
  a.wt = ones.data();
  a.epilogue = DwEpilogue::kProduct;
  auto run = [&](auto tag, bool portable) {
    using T = decltype(tag);
    ScopedPortable path(portable);
    std::vector<T> in(x.size()), y(pixels * c / 2);
    for (size_t i = 0; i < x.size(); ++i) Store(in.data(), static_cast<int64_t>(i), x[i]);
    DepthwiseForwardTiledCpu<T>(a, in.data(), y.data());
    std::vector<uint16_t> bits(y.size());
    for (size_t i = 0; i < y.size(); ++i) std::memcpy(&bits[i], &y[i], 2);
    return bits;
  };
  EXPECT_EQ(run(f16_t{}, false), run(f16_t{}, true)) << "f16";
  EXPECT_EQ(run(bf16_t{}, false), run(bf16_t{}, true)) << "bf16";
}

// ---- conv2d's depthwise ops end to end -------------------------------------------------

using Geo = ConvGeometry;

Geo Depthwise(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t ph, int64_t pw) {
  Geo g{n, h, w, c, c, kh, kw};
  g.groups = c;
  g.ph = ph;
  g.pw = pw;
  return g;
}

// Forward (with bias), backward input and backward weight of g in dtype t
// against float64 loops.
void CheckOps(const Geo& g, DType t, uint64_t seed) {
  SCOPED_TRACE(g.str() + " " + DTypeName(t) + " path " + DepthwiseTiledPath());
  const Tensor x = RandomTensor(g.x(), t, seed), w = RandomTensor(g.wt(), t, seed + 1);
  const Tensor bias = RandomTensor(Shape{g.cout}, t, seed + 2), dy = RandomTensor(g.y(), t, seed + 3);
  const std::vector<double> xv = ToDoubles(x), wv = ToDoubles(w), bv = ToDoubles(bias), dyv = ToDoubles(dy);
  const int64_t c = g.cin, taps = g.kh * g.kw;
  std::vector<double> y(g.y().numel()), dx(g.x().numel(), 0.0), dw(g.wt().numel(), 0.0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.ho(); ++oy)
      for (int64_t ox = 0; ox < g.wo(); ++ox)
        for (int64_t ch = 0; ch < c; ++ch) {
          const int64_t yi = ((n * g.ho() + oy) * g.wo() + ox) * c + ch;
          double s = bv[ch];
          for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t iy = oy - g.ph + ky, ix = ox - g.pw + kx;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              const int64_t xi = ((n * g.h + iy) * g.w + ix) * c + ch, wi = ch * taps + ky * g.kw + kx;
              s += wv[wi] * xv[xi];
              dx[xi] += wv[wi] * dyv[yi];
              dw[wi] += xv[xi] * dyv[yi];
            }
          y[yi] = s;
        }
  const double tol = kStorageTol(t), sum_tol = kStorageTol.ForSum(t, taps);
  CF_ASSERT_OK_AND_ASSIGN(Tensor got_y, RunOp1("conv2d", {x, w, bias}, g.attrs()));
  EXPECT_TRUE(AllClose(ToDoubles(got_y), y, tol, sum_tol)) << "forward";
  CF_ASSERT_OK_AND_ASSIGN(Tensor got_dx, RunOp1("conv2d_backward_input", {dy, w}, g.backward_input_attrs()));
  EXPECT_TRUE(AllClose(ToDoubles(got_dx), dx, tol, sum_tol)) << "backward input";
  CF_ASSERT_OK_AND_ASSIGN(Tensor got_dw, RunOp1("conv2d_backward_weight", {x, dy}, g.backward_weight_attrs()));
  EXPECT_TRUE(AllClose(ToDoubles(got_dw), dw, tol, kStorageTol.ForSum(t, g.pixels()))) << "backward weight";
}

std::vector<Geo> OpCases() {
  std::vector<Geo> v;
  for (int64_t k : {1, 3, 5, 13, 25, 31}) v.push_back(Depthwise(1, 19, 17, 16, k, k, k / 2, k / 2));
  v.push_back(Depthwise(3, 7, 5, 17, 3, 3, 0, 0));      // batch 3, padding 0, a 1-channel tail block
  v.push_back(Depthwise(1, 7, 5, 15, 5, 5, 4, 4));      // padding K - 1, a partial block
  v.push_back(Depthwise(2, 45, 37, 1, 13, 13, 6, 6));   // one channel
  v.push_back(Depthwise(1, 1, 37, 20, 1, 13, 0, 6));    // 1 x N map
  v.push_back(Depthwise(1, 6, 7, 24, 13, 13, 12, 12));  // K larger than the map, padding K - 1
  v.push_back(Depthwise(1, 11, 9, 18, 3, 7, 1, 3));     // kh != kw
  v.push_back(Depthwise(1, 9, 13, 16, 7, 3, 6, 0));     // kh != kw, padding K - 1 x 0
  v.push_back(Depthwise(2, 8, 6, 20, 3, 3, 3, 4));      // padding above K - 1 (backward input crops)
  v.push_back(Depthwise(1, 16, 16, 160, 13, 13, 6, 6)); // the ConvBlock's channel count
  return v;
}

TEST(DepthwiseTiledCpu, Conv2dOpsBothPaths) {
  uint64_t seed = 1000;
  for (Path p : kPaths) {
    ScopedPath path(p);
    for (const Geo& g : OpCases())
      for (DType t : kStorage) CheckOps(g, t, seed += 5);
  }
}

// f64 and other geometries keep the direct loops; the tiled f32 result agrees
// with the f64 one on the same (f32-exact) values.
TEST(DepthwiseTiledCpu, AgreesWithF64DirectLoops) {
  const Geo g = Depthwise(2, 21, 18, 48, 13, 11, 6, 5);
  const Tensor x64 = RandomTensor(g.x(), DType::f32, 3), w64 = RandomTensor(g.wt(), DType::f32, 4);
  const Tensor x = CastTo(x64, DType::f32), w = CastTo(w64, DType::f32);
  CF_ASSERT_OK_AND_ASSIGN(Tensor y32, RunOp1("conv2d", {x, w}, g.attrs()));
  CF_ASSERT_OK_AND_ASSIGN(Tensor y64, RunOp1("conv2d", {CastTo(x, DType::f64), CastTo(w, DType::f64)}, g.attrs()));
  EXPECT_TRUE(AllClose(ToDoubles(y32), ToDoubles(y64), 1e-5, 1e-5 * std::sqrt(13.0 * 11.0)));
}

// The Winograd F(4, 4) path's rounding at a ConvBlock-like magnitude (unit
// inputs, taps ~ 1/K as trained kernels), against float64 and against the
// direct taps' error on the same values: every odd K from 9 to 31. Its error
// stays within a small multiple of the direct path's.
TEST(DepthwiseTiledCpu, WinogradErrorNearDirect) {
  if (std::string(DepthwiseWideKernelPath()) != "winograd_f4x4") GTEST_SKIP() << "no Winograd path on this CPU";
  for (int64_t k = 9; k <= 31; k += 2) {
    const DwCase g{2, 37, 45, 48, k, k, k / 2, k / 2};
    SCOPED_TRACE(g.str());
    const Tensor x = RandomTensor(Shape{g.n, g.h, g.w, g.c}, DType::f32, 7 + k);
    const std::vector<float> wt = RandomFloats(k * k * g.c, 8 + k, 2.0 / static_cast<double>(k));
    const std::vector<double> want = RefDepthwise(g, ToDoubles(x), wt, nullptr);
    auto run = [&](bool winograd) {
      const bool before = EnableDepthwiseWinograd(winograd);
      std::vector<float> y(want.size());
      DwForwardArgs a{.n = g.n, .h = g.h, .w = g.w, .c = g.c, .kh = k, .kw = k, .ph = g.ph, .pw = g.pw};
      a.wt = wt.data();
      DepthwiseForwardTiledCpu<float>(a, x.data<float>(), y.data());
      EnableDepthwiseWinograd(before);
      double err = 0.0;
      for (size_t i = 0; i < y.size(); ++i) err = std::max(err, std::abs(y[i] - want[i]));
      return err;
    };
    const double mag = MaxAbs(want), direct = run(false), wino = run(true);
    std::printf("K = %2lld: max |d| %.3f, max error direct %.2e, Winograd %.2e (%.1fx)\n",
                static_cast<long long>(k), mag, direct, wino, wino / direct);
    EXPECT_LE(wino, 1e-5 * mag) << "relative to the output's magnitude";
    EXPECT_LE(wino, 16 * direct + 1e-7 * mag) << "against the direct taps' error";
  }
}

TEST(DepthwiseTiledCpu, PathSwitch) {
  const bool before_w = EnableDepthwiseWinograd(false);
  EXPECT_STREQ(DepthwiseWideKernelPath(), "direct");
  EnableDepthwiseWinograd(before_w);
  const bool before = ForceDepthwisePortable(true);
  EXPECT_STREQ(DepthwiseTiledPath(), "portable");
  EXPECT_TRUE(ForceDepthwisePortable(before));
  const std::string path = DepthwiseTiledPath();
  EXPECT_TRUE(path == "avx512" || path == "portable") << path;
}

}  // namespace
}  // namespace cf::testing
