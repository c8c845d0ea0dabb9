// CPU tests of the pool family (avg_pool2d, adaptive_avg_pool2d,
// resize_bilinear, upsample_nearest2x and their backward ops) against float64
// references that implement PyTorch's formulas independently, here, as a list
// of (input pixel, weight) taps per output pixel: the forward sums the taps,
// the reference backward scatters through them (the kernels gather).
#include <cmath>
#include <functional>

#include "ops/pool/pool.h"
#include "ops/pool/pool_internal.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// One rounding of the output (docs/conventions.md); the absolute part scales
// with the output (a 64x64 -> 1x1 backward writes dy / 4096).
constexpr DTypeTol Tol = kStorageTol;

struct Tap {
  int64_t iy, ix;
  double w;
};
// The taps of output pixel (oy, ox).
using TapFn = std::function<std::vector<Tap>(int64_t oy, int64_t ox)>;

// PyTorch's avg_pool2d (count_include_pad, no ceil_mode): the divisor is the
// window clipped to the padded input, then the window is clipped to the input.
TapFn AvgTaps(int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw) {
  return [=](int64_t oy, int64_t ox) {
    int64_t hs = oy * sh - ph, ws = ox * sw - pw;
    int64_t he = std::min(hs + kh, h + ph), we = std::min(ws + kw, w + pw);
    const double size = double((he - hs) * (we - ws));
    hs = std::max<int64_t>(hs, 0);
    ws = std::max<int64_t>(ws, 0);
    he = std::min(he, h);
    we = std::min(we, w);
    std::vector<Tap> t;
    for (int64_t i = hs; i < he; ++i)
      for (int64_t j = ws; j < we; ++j) t.push_back({i, j, 1.0 / size});
    return t;
  };
}

TapFn AdaptiveTaps(int64_t h, int64_t w, int64_t oh, int64_t ow) {
  return [=](int64_t oy, int64_t ox) {
    const int64_t hs = int64_t(std::floor(double(oy) * h / oh)), he = int64_t(std::ceil(double(oy + 1) * h / oh));
    const int64_t ws = int64_t(std::floor(double(ox) * w / ow)), we = int64_t(std::ceil(double(ox + 1) * w / ow));
    std::vector<Tap> t;
    for (int64_t i = hs; i < he; ++i)
      for (int64_t j = ws; j < we; ++j) t.push_back({i, j, 1.0 / double((he - hs) * (we - ws))});
    return t;
  };
}

// align_corners=False: src = (dst + 0.5) * in / out - 0.5, negative -> 0.
void Linear1d(int64_t dst, int64_t in, int64_t out, int64_t* i0, int64_t* i1, double* l1) {
  const double src = std::max(0.0, (dst + 0.5) * double(in) / double(out) - 0.5);
  *i0 = std::min<int64_t>(int64_t(std::floor(src)), in - 1);
  *i1 = std::min<int64_t>(*i0 + 1, in - 1);
  *l1 = src - double(*i0);
}

TapFn BilinearTaps(int64_t h, int64_t w, int64_t oh, int64_t ow) {
  return [=](int64_t oy, int64_t ox) {
    int64_t y0, y1, x0, x1;
    double ly, lx;
    Linear1d(oy, h, oh, &y0, &y1, &ly);
    Linear1d(ox, w, ow, &x0, &x1, &lx);
    return std::vector<Tap>{{y0, x0, (1 - ly) * (1 - lx)}, {y0, x1, (1 - ly) * lx}, {y1, x0, ly * (1 - lx)},
                            {y1, x1, ly * lx}};
  };
}

TapFn NearestTaps() {
  return [](int64_t oy, int64_t ox) { return std::vector<Tap>{{oy / 2, ox / 2, 1.0}}; };
}

// x [N, H, W, C] -> y [N, oh, ow, C].
std::vector<double> RefForward(const std::vector<double>& x, const Shape& xs, int64_t oh, int64_t ow, const TapFn& taps) {
  const int64_t n = xs[0], h = xs[1], w = xs[2], c = xs[3];
  std::vector<double> y(n * oh * ow * c, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (const Tap& t : taps(oy, ox))
          for (int64_t k = 0; k < c; ++k)
            y[((b * oh + oy) * ow + ox) * c + k] += t.w * x[((b * h + t.iy) * w + t.ix) * c + k];
  return y;
}

// dy [N, oh, ow, C] -> dx [N, H, W, C], scattering through the taps.
std::vector<double> RefBackward(const std::vector<double>& dy, const Shape& dys, int64_t h, int64_t w,
                                const TapFn& taps) {
  const int64_t n = dys[0], oh = dys[1], ow = dys[2], c = dys[3];
  std::vector<double> dx(n * h * w * c, 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oy = 0; oy < oh; ++oy)
      for (int64_t ox = 0; ox < ow; ++ox)
        for (const Tap& t : taps(oy, ox))
          for (int64_t k = 0; k < c; ++k)
            dx[((b * h + t.iy) * w + t.ix) * c + k] += t.w * dy[((b * oh + oy) * ow + ox) * c + k];
  return dx;
}

// Checks `op` forward and `op`_backward in every dtype against the references.
void CheckOp(const std::string& op, const Shape& xs, int64_t oh, int64_t ow, const Attrs& attrs, const TapFn& taps,
             uint64_t seed) {
  const Shape ys({xs[0], oh, ow, xs[3]});
  Attrs battrs = attrs;
  battrs.Set("input_hw", std::vector<int64_t>{xs[1], xs[2]});
  for (DType dt : kFloatDTypes) {
    Tensor x = RandomTensor(xs, dt, seed);
    auto y = RunOp1(op, {x}, attrs);
    ASSERT_TRUE(y.ok()) << op << ": " << y.status().message();
    ASSERT_EQ(y->shape(), ys) << op;
    EXPECT_EQ(y->dtype(), dt);
    const std::vector<double> want_y = RefForward(ToDoubles(x), xs, oh, ow, taps);
    EXPECT_TRUE(AllClose(ToDoubles(*y), want_y, Tol(dt), ScaledAtol(want_y, Tol(dt), dt)))
        << op << " " << xs.ToString() << " -> " << oh << "x" << ow << " " << DTypeName(dt);
    Tensor dy = RandomTensor(ys, dt, seed + 1);
    auto dx = RunOp1(op + "_backward", {dy}, battrs);
    ASSERT_TRUE(dx.ok()) << op << "_backward: " << dx.status().message();
    ASSERT_EQ(dx->shape(), xs);
    const std::vector<double> want_dx = RefBackward(ToDoubles(dy), ys, xs[1], xs[2], taps);
    EXPECT_TRUE(AllClose(ToDoubles(*dx), want_dx, Tol(dt), ScaledAtol(want_dx, Tol(dt), dt)))
        << op << "_backward " << xs.ToString() << " -> " << oh << "x" << ow << " " << DTypeName(dt);
  }
}

// Building `op` on an f32 input of shape `in` fails naming the op, the shape and `needle`.
void ExpectPoolError(const std::string& op, const Shape& in, const Attrs& attrs, const std::string& needle) {
  ExpectError(op, {{in, DType::f32}}, attrs, {op, in.ToString(), needle});
}

// ---- avg_pool2d -----------------------------------------------------------------

TEST(AvgPool2d, MatchesReference) {
  struct Case {
    Shape xs;
    std::vector<int64_t> k, s, p;
  };
  const Case cases[] = {
      {{2, 7, 9, 5}, {3, 3}, {2, 2}, {1, 1}}, {{1, 8, 8, 3}, {2, 2}, {}, {0, 0}},
      {{1, 5, 6, 4}, {2, 3}, {1, 2}, {1, 1}}, {{2, 4, 4, 1}, {4, 4}, {}, {0, 0}},
      {{1, 11, 13, 2}, {5, 3}, {3, 1}, {2, 0}},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    const std::vector<int64_t> s = c.s.empty() ? c.k : c.s;
    const int64_t oh = (c.xs[1] + 2 * c.p[0] - c.k[0]) / s[0] + 1, ow = (c.xs[2] + 2 * c.p[1] - c.k[1]) / s[1] + 1;
    Attrs a{{"kernel", c.k}, {"padding", c.p}};
    if (!c.s.empty()) a.Set("stride", c.s);
    CheckOp("avg_pool2d", c.xs, oh, ow, a, AvgTaps(c.xs[1], c.xs[2], c.k[0], c.k[1], s[0], s[1], c.p[0], c.p[1]),
            seed += 10);
  }
}

TEST(AvgPool2d, Vjp) {
  Tensor x = RandomTensor(Shape({2, 5, 6, 3}), DType::f64, 3);
  EXPECT_TRUE(CheckVjp("avg_pool2d", {x}, Attrs{{"kernel", std::vector<int64_t>{3, 2}},
                                                {"stride", std::vector<int64_t>{2, 1}},
                                                {"padding", std::vector<int64_t>{1, 1}}}));
}

TEST(AvgPool2d, Errors) {
  ExpectPoolError("avg_pool2d", Shape({1, 2, 5, 3}), Attrs{{"kernel", std::vector<int64_t>{3, 3}}}, "does not fit");
  ExpectPoolError("avg_pool2d", Shape({1, 6, 6, 3}),
                  Attrs{{"kernel", std::vector<int64_t>{2, 2}}, {"padding", std::vector<int64_t>{2, 0}}}, "half");
  ExpectPoolError("avg_pool2d", Shape({1, 6, 6, 3}), Attrs{}, "kernel");
  ExpectPoolError("avg_pool2d", Shape({6, 6, 3}), Attrs{{"kernel", std::vector<int64_t>{2, 2}}}, "[N, H, W, C]");
  ExpectPoolError("avg_pool2d", Shape({1, 6, 6, 3}),
                  Attrs{{"kernel", std::vector<int64_t>{2, 2}}, {"stride", std::vector<int64_t>{0, 1}}}, "stride");
  ExpectPoolError("avg_pool2d", Shape({1, 6, 6, 3}), Attrs{{"kernel", std::vector<int64_t>{2}}, {"ceil_mode", true}},
                  "ceil_mode");
  ExpectPoolError("avg_pool2d_backward", Shape({1, 3, 2, 3}),
                  Attrs{{"kernel", std::vector<int64_t>{2}}, {"input_hw", std::vector<int64_t>{6, 6}}}, "[1, 3, 3, 3]");
}

TEST(AvgPool2d, Cost) {
  // [1, 4, 4, 2], kernel 2: 2x2 outputs of 4 taps per channel: 32.
  Cost c = CostOfOp("avg_pool2d", {{Shape({1, 4, 4, 2}), DType::f32}}, Attrs{{"kernel", std::vector<int64_t>{2}}});
  EXPECT_EQ(c.elementwise_flops, 32);
  EXPECT_EQ(c.bytes_read, 32 * 4);
  EXPECT_EQ(c.bytes_written, 8 * 4);
  // [1, 5, 5, 1], kernel 3, stride 2, padding 1: windows hold 2, 3, 2 rows: taps 7 per axis.
  const Attrs a{{"kernel", std::vector<int64_t>{3}}, {"stride", std::vector<int64_t>{2}},
                {"padding", std::vector<int64_t>{1}}};
  c = CostOfOp("avg_pool2d", {{Shape({1, 5, 5, 1}), DType::f32}}, a);
  EXPECT_EQ(c.elementwise_flops, 49);
  Attrs b = a;
  b.Set("input_hw", std::vector<int64_t>{5, 5});
  c = CostOfOp("avg_pool2d_backward", {{Shape({1, 3, 3, 1}), DType::f32}}, b);
  EXPECT_EQ(c.elementwise_flops, 9 + 49 - 25);
  EXPECT_EQ(c.bytes_written, 25 * 4);
}

// ---- adaptive_avg_pool2d -----------------------------------------------------------------

TEST(AdaptiveAvgPool2d, MatchesReference) {
  struct Case {
    Shape xs;
    int64_t oh, ow;
  };
  const Case cases[] = {{{2, 9, 7, 5}, 4, 3},  {{2, 9, 7, 5}, 1, 1},  {{1, 5, 4, 3}, 12, 10},
                        {{1, 16, 16, 3}, 8, 8}, {{1, 5, 5, 2}, 5, 5}, {{1, 13, 3, 4}, 7, 2}};
  uint64_t seed = 100;
  for (const Case& c : cases)
    CheckOp("adaptive_avg_pool2d", c.xs, c.oh, c.ow, Attrs{{"output_size", std::vector<int64_t>{c.oh, c.ow}}},
            AdaptiveTaps(c.xs[1], c.xs[2], c.oh, c.ow), seed += 10);
}

// Known PyTorch values: adaptive_avg_pool1d([1, 2, 3, 4, 5], 3) = [1.5, 3, 4.5]
// (bins [0, 2), [1, 4), [3, 5)), here along W with H = 1.
TEST(AdaptiveAvgPool2d, KnownValues) {
  Tensor x = FromDoubles({1, 2, 3, 4, 5}, Shape({1, 1, 5, 1}), DType::f32);
  auto y = RunOp1("adaptive_avg_pool2d", {x}, Attrs{{"output_size", std::vector<int64_t>{1, 3}}});
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_TRUE(AllClose(ToDoubles(*y), {1.5, 3.0, 4.5}, 1e-7, 1e-7));
}

TEST(AdaptiveAvgPool2d, Vjp) {
  Tensor x = RandomTensor(Shape({2, 7, 5, 2}), DType::f64, 7);
  EXPECT_TRUE(CheckVjp("adaptive_avg_pool2d", {x}, Attrs{{"output_size", std::vector<int64_t>{3, 4}}}));
  EXPECT_TRUE(CheckVjp("adaptive_avg_pool2d", {x}, Attrs{{"output_size", std::vector<int64_t>{9, 8}}}));
}

TEST(AdaptiveAvgPool2d, Errors) {
  ExpectPoolError("adaptive_avg_pool2d", Shape({1, 4, 4, 3}), Attrs{{"output_size", std::vector<int64_t>{0, 2}}},
                  "output_size");
  ExpectPoolError("adaptive_avg_pool2d", Shape({1, 4, 4, 3}), Attrs{}, "output_size");
  ExpectPoolError("adaptive_avg_pool2d", Shape({1, 0, 4, 3}), Attrs{{"output_size", std::vector<int64_t>{1}}}, ">= 1");
}

TEST(AdaptiveAvgPool2d, Cost) {
  // [1, 5, 5, 1] -> 3x3: bins [0, 2), [1, 4), [3, 5): 7 taps per axis.
  Cost c = CostOfOp("adaptive_avg_pool2d", {{Shape({1, 5, 5, 1}), DType::f32}},
                    Attrs{{"output_size", std::vector<int64_t>{3}}});
  EXPECT_EQ(c.elementwise_flops, 49);
  c = CostOfOp("adaptive_avg_pool2d_backward", {{Shape({1, 3, 3, 1}), DType::f32}},
               Attrs{{"input_hw", std::vector<int64_t>{5, 5}}});
  EXPECT_EQ(c.elementwise_flops, 9 + 49 - 25);
  // Global pooling of [2, 64, 64, 160]: H W adds-or-divides per (n, c).
  c = CostOfOp("adaptive_avg_pool2d", {{Shape({2, 64, 64, 160}), DType::f16}},
               Attrs{{"output_size", std::vector<int64_t>{1, 1}}});
  EXPECT_EQ(c.elementwise_flops, 2 * 160 * 4096);
  EXPECT_EQ(c.bytes_written, 2 * 160 * 2);
}

// ---- resize_bilinear -----------------------------------------------------------------

TEST(ResizeBilinear, MatchesReference) {
  struct Case {
    Shape xs;
    int64_t oh, ow;
  };
  const Case cases[] = {{{2, 7, 9, 3}, 13, 5}, {{2, 7, 9, 3}, 3, 4},  {{1, 7, 9, 2}, 14, 18}, {{1, 1, 1, 2}, 3, 3},
                        {{1, 6, 6, 4}, 6, 6},  {{1, 8, 8, 3}, 4, 4},  {{1, 4, 4, 5}, 8, 8},   {{1, 3, 17, 1}, 1, 40}};
  uint64_t seed = 200;
  for (const Case& c : cases)
    CheckOp("resize_bilinear", c.xs, c.oh, c.ow, Attrs{{"size", std::vector<int64_t>{c.oh, c.ow}}},
            BilinearTaps(c.xs[1], c.xs[2], c.oh, c.ow), seed += 10);
}

// Known PyTorch values: F.interpolate([[1, 2], [3, 4]], size=(4, 4),
// mode="bilinear", align_corners=False).
TEST(ResizeBilinear, KnownValues) {
  Tensor x = FromDoubles({1, 2, 3, 4}, Shape({1, 2, 2, 1}), DType::f32);
  auto y = RunOp1("resize_bilinear", {x}, Attrs{{"size", std::vector<int64_t>{4, 4}}});
  ASSERT_TRUE(y.ok()) << y.status().message();
  EXPECT_TRUE(AllClose(ToDoubles(*y),
                       {1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0}, 1e-7,
                       1e-7));
}

TEST(ResizeBilinear, Vjp) {
  Tensor x = RandomTensor(Shape({2, 5, 4, 2}), DType::f64, 9);
  EXPECT_TRUE(CheckVjp("resize_bilinear", {x}, Attrs{{"size", std::vector<int64_t>{9, 7}}}));
  EXPECT_TRUE(CheckVjp("resize_bilinear", {x}, Attrs{{"size", std::vector<int64_t>{2, 3}}}));
}

TEST(ResizeBilinear, Errors) {
  ExpectPoolError("resize_bilinear", Shape({1, 4, 4, 3}), Attrs{{"size", std::vector<int64_t>{0, 2}}}, "size");
  ExpectPoolError("resize_bilinear", Shape({1, 4, 4, 3}), Attrs{}, "size");
  ExpectPoolError("resize_bilinear", Shape({1, 4, 4, 3}),
                  Attrs{{"size", std::vector<int64_t>{8}}, {"align_corners", true}}, "align_corners");
  ExpectPoolError("resize_bilinear_backward", Shape({1, 4, 4, 3}), Attrs{}, "input_hw");
}

TEST(ResizeBilinear, Cost) {
  Cost c = CostOfOp("resize_bilinear", {{Shape({1, 4, 4, 2}), DType::f32}}, Attrs{{"size", std::vector<int64_t>{8}}});
  EXPECT_EQ(c.elementwise_flops, 9 * 64 * 2);
  EXPECT_EQ(c.bytes_read, 32 * 4);
  EXPECT_EQ(c.bytes_written, 128 * 4);
  // 2x upsampling touches every input row and column.
  c = CostOfOp("resize_bilinear_backward", {{Shape({1, 8, 8, 2}), DType::f32}},
               Attrs{{"input_hw", std::vector<int64_t>{4, 4}}});
  EXPECT_EQ(c.elementwise_flops, 2 * (12 * 64 - 16));
  // 4x downsampling of 8 -> 2: src = 1.5, 5.5: rows 1, 2, 5, 6 are touched.
  c = CostOfOp("resize_bilinear_backward", {{Shape({1, 2, 2, 1}), DType::f32}},
               Attrs{{"input_hw", std::vector<int64_t>{8, 8}}});
  EXPECT_EQ(c.elementwise_flops, 12 * 4 - 16);
}

// ---- upsample_nearest2x -----------------------------------------------------------------

TEST(UpsampleNearest2x, MatchesReference) {
  uint64_t seed = 300;
  for (const Shape& xs : {Shape({2, 3, 5, 4}), Shape({1, 1, 1, 3}), Shape({1, 4, 2, 33})})
    CheckOp("upsample_nearest2x", xs, 2 * xs[1], 2 * xs[2], {}, NearestTaps(), seed += 10);
}

TEST(UpsampleNearest2x, Vjp) {
  EXPECT_TRUE(CheckVjp("upsample_nearest2x", {RandomTensor(Shape({2, 3, 2, 3}), DType::f64, 11)}));
}

TEST(UpsampleNearest2x, Errors) {
  ExpectPoolError("upsample_nearest2x", Shape({4, 4, 3}), {}, "[N, H, W, C]");
  ExpectPoolError("upsample_nearest2x_backward", Shape({1, 5, 4, 3}), {}, "even");
}

TEST(UpsampleNearest2x, Cost) {
  Cost c = CostOfOp("upsample_nearest2x", {{Shape({2, 3, 5, 4}), DType::bf16}}, {});
  EXPECT_EQ(c.total_flops(), 0);
  EXPECT_EQ(c.bytes_read, 120 * 2);
  EXPECT_EQ(c.bytes_written, 480 * 2);
  c = CostOfOp("upsample_nearest2x_backward", {{Shape({2, 6, 10, 4}), DType::bf16}}, {});
  EXPECT_EQ(c.elementwise_flops, 3 * 120);
}

// ---- index helpers shared with the CUDA kernels -----------------------------------

// The CUDA backward of resize_bilinear gathers over BilinearRangeOf, which
// must contain every output whose taps read the input index.
TEST(PoolIndexHelpers, BilinearRangeCoversEveryReader) {
  std::vector<std::pair<int64_t, int64_t>> sizes;
  for (int64_t in = 1; in <= 40; ++in)
    for (int64_t out = 1; out <= 40; ++out) sizes.push_back({in, out});
  for (auto p : std::vector<std::pair<int64_t, int64_t>>{{64, 32}, {32, 64}, {3, 1000}, {1000, 3}, {128, 17},
                                                         {17, 128}, {4096, 64}, {64, 4096}, {999, 1001}})
    sizes.push_back(p);
  for (auto [in, out] : sizes) {
    const float scale = pool_internal::BilinearScale<float>(in, out);
    std::vector<int64_t> lo(in), hi(in);
    for (int64_t i = 0; i < in; ++i) pool_internal::BilinearRangeOf(i, out, scale, &lo[i], &hi[i]);
    for (int64_t o = 0; o < out; ++o) {
      const auto t = pool_internal::BilinearTapOf(o, in, scale);
      ASSERT_TRUE(t.i0 >= 0 && t.i1 < in && t.i0 <= t.i1) << in << " -> " << out << " at " << o;
      for (int64_t i : {t.i0, t.i1})
        ASSERT_TRUE(lo[i] <= o && o <= hi[i]) << in << " -> " << out << ": output " << o << " reads input " << i
                                              << " outside [" << lo[i] << ", " << hi[i] << "]";
    }
  }
}

// PoolWindowsOf and AdaptiveBinsOf (the gathers of the backward kernels) are
// exactly the windows / bins that contain an input index.
TEST(PoolIndexHelpers, WindowsAndBinsAreExact) {
  for (int64_t in = 1; in <= 12; ++in) {
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 4; ++s)
        for (int64_t p = 0; p <= k / 2; ++p) {
          const int64_t out = pool_internal::PoolOutLen(in, k, s, p);
          for (int64_t i = 0; i < in; ++i) {
            int64_t lo, hi;
            pool_internal::PoolWindowsOf(i, k, s, p, out, &lo, &hi);
            for (int64_t o = 0; o < out; ++o) {
              const bool inside = o * s - p <= i && i < o * s - p + k;
              ASSERT_EQ(inside, lo <= o && o <= hi) << in << " " << k << " " << s << " " << p << " " << i << " " << o;
            }
          }
        }
    for (int64_t out = 1; out <= 15; ++out)
      for (int64_t i = 0; i < in; ++i) {
        int64_t lo, hi;
        pool_internal::AdaptiveBinsOf(i, in, out, &lo, &hi);
        for (int64_t o = 0; o < out; ++o) {
          const bool inside =
              pool_internal::AdaptiveStart(o, in, out) <= i && i < pool_internal::AdaptiveEnd(o, in, out);
          ASSERT_EQ(inside, lo <= o && o <= hi) << in << " -> " << out << " " << i << " " << o;
        }
      }
  }
}

TEST(PoolBuilders, BuildGraphs) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape({2, 64, 64, 160}), DType::f16);
  EXPECT_EQ(AvgPool2d(x, {2, 2}).shape(), Shape({2, 32, 32, 160}));
  EXPECT_EQ(AvgPool2d(x, 3, {.stride = 1, .padding = 1}).shape(), Shape({2, 64, 64, 160}));
  Value p = AdaptiveAvgPool2d(x, 32, 32);
  EXPECT_EQ(p.shape(), Shape({2, 32, 32, 160}));
  EXPECT_EQ(ResizeBilinear(p, 64, 64).shape(), Shape({2, 64, 64, 160}));
  EXPECT_EQ(UpsampleNearest2x(p).shape(), Shape({2, 64, 64, 160}));
  EXPECT_TRUE(b.ok()) << b.status().message();
}

}  // namespace
}  // namespace cf::testing
