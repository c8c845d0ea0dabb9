// The Winograd F(4x4, 3x3) conv path (ops/conv/conv_winograd_cpu.h) against
// the float64 references of tests/support/conv_reference.h, in f32, f16 and
// bf16 storage: partial tiles
// (sizes not multiples of 4, maps smaller than a tile), padding 0 / 1 / 2
// and unequal, channel counts with vector tails, bias and residual (also in
// place), several tile blocks (against the implicit GEMM), the backward
// input, the kept transformed weight, the op-level dispatch and its gate,
// and the rounding error against the implicit GEMM's.
#include "ops/conv/conv_winograd_cpu.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "ops/vec_math_avx512.h"
#include "tests/support/conv_geometry.h"
#include "tests/support/conv_reference.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Geo = ConvGeometry;

// The largest error allowed, as a fraction of the reference's largest
// magnitude: 8 float32 epsilons times the square root of the products
// summed per output (9·Cin; 9·Cout for the backward input: the larger). F(4x4, 3x3) rounds ~5-10x more than the direct
// sum (its transforms carry coefficients up to 8 and 1/30): measured 3.8e-6
// at Cin = 128 against this bound's 1.6e-5, the implicit GEMM's 5e-7
// (WinogradErrorNearDirect).
double RelTol(const Geo& g) {
  return 8 * 5.96e-8 * std::sqrt(9.0 * static_cast<double>(std::max(g.cin, g.cout)));
}

Geo Padded(Geo g, int64_t ph, int64_t pw) {
  g.ph = ph, g.pw = pw;
  return g;
}

std::vector<Geo> Cases() {
  return {
      Padded(SquareConv(2, 7, 9, 16, 17, 3), 1, 1),   // odd W, Cout one past a vector
      Padded(SquareConv(1, 13, 11, 33, 20, 3), 1, 1),  // Cin two vectors and a tail
      Padded(SquareConv(1, 6, 5, 19, 40, 3), 0, 0),    // no padding: a 4x3 output
      Padded(SquareConv(2, 9, 8, 24, 16, 3), 2, 2),    // padding 2: 11x10 outputs
      Padded(SquareConv(1, 3, 2, 16, 16, 3), 1, 1),    // one partial tile
      Padded(SquareConv(1, 10, 7, 5, 3, 3), 1, 0),     // fewer channels than a vector, unequal padding
      Padded(SquareConv(3, 4, 4, 18, 21, 3), 1, 2),    // several images
  };
}

std::vector<double> Doubles(const std::vector<float>& v) { return {v.begin(), v.end()}; }

struct Inputs {
  Tensor x, w, bias, dy, r;
  Inputs(const Geo& g, uint64_t seed)
      : x(RandomTensor(g.x(), DType::f32, seed)),
        w(RandomTensor(g.wt(), DType::f32, seed + 1)),
        bias(RandomTensor(Shape{g.cout}, DType::f32, seed + 2)),
        dy(RandomTensor(g.y(), DType::f32, seed + 3)),
        r(RandomTensor(g.y(), DType::f32, seed + 4)) {}
};

// Within the Winograd bound of the reference (f16 / bf16 storage: also one
// rounding of the output).
::testing::AssertionResult Near(const std::vector<double>& got, const std::vector<double>& want, const Geo& g,
                                DType t = DType::f32) {
  return AllClose(got, want, t == DType::f32 ? 0.0 : kStorageTol(t), RelTol(g) * MaxAbs(want));
}
::testing::AssertionResult Near(const std::vector<float>& got, const std::vector<double>& want, const Geo& g) {
  return Near(Doubles(got), want, g);
}

// The output of dtype T as doubles; outputs start as NaN.
template <typename T> struct Out {
  Tensor t;
  explicit Out(const Shape& shape)
      : t(FromDoubles(std::vector<double>(shape.numel(), std::nan("")), shape, DTypeOf<T>::value)) {}
  T* data() { return t.data<T>(); }
  std::vector<double> values() const { return ToDoubles(t); }
};

template <typename T> void CheckForward(const Geo& g, uint64_t seed) {
  const DType t = DTypeOf<T>::value;
  SCOPED_TRACE(g.str() + " " + DTypeName(t));
  Tensor x = RandomTensor(g.x(), t, seed), w = RandomTensor(g.wt(), t, seed + 1);
  Tensor bias = RandomTensor(Shape{g.cout}, t, seed + 2), r = RandomTensor(g.y(), t, seed + 4);
  const ConvParams p = ParamsOf(g);
  const std::vector<double> xv = ToDoubles(x), wv = ToDoubles(w), bv = ToDoubles(bias), rv = ToDoubles(r);
  Out<T> y0(g.y()), y1(g.y()), y2(g.y());
  ConvForwardWinogradCpu<T>(p, x.data<T>(), w.data<T>(), nullptr, y0.data());
  EXPECT_TRUE(Near(y0.values(), RefForward(g, xv, wv, nullptr), g, t)) << "no bias";
  ConvForwardWinogradCpu<T>(p, x.data<T>(), w.data<T>(), bias.data<T>(), y1.data());
  const std::vector<double> want = RefForward(g, xv, wv, &bv);
  EXPECT_TRUE(Near(y1.values(), want, g, t)) << "bias";

  // + residual, from another buffer and in place (the residual is y itself).
  std::vector<double> want_r = want;
  for (size_t i = 0; i < want_r.size(); ++i) want_r[i] += rv[i];
  ConvCpuExtras<T> extras;
  extras.residual = r.data<T>();
  ConvForwardWinogradCpu<T>(p, x.data<T>(), w.data<T>(), bias.data<T>(), y2.data(), extras);
  EXPECT_TRUE(Near(y2.values(), want_r, g, t)) << "residual";
  Tensor inplace = FromDoubles(rv, g.y(), t);
  extras.residual = inplace.data<T>();
  ConvForwardWinogradCpu<T>(p, x.data<T>(), w.data<T>(), bias.data<T>(), inplace.data<T>(), extras);
  EXPECT_TRUE(Near(ToDoubles(inplace), want_r, g, t)) << "residual in place";
}

template <typename T> void CheckBackwardInput(const Geo& g, uint64_t seed) {
  const DType t = DTypeOf<T>::value;
  SCOPED_TRACE(g.str() + " " + DTypeName(t));
  Tensor dy = RandomTensor(g.y(), t, seed), w = RandomTensor(g.wt(), t, seed + 1);
  Out<T> dx(g.x());
  ConvBackwardInputWinogradCpu<T>(ParamsOf(g), dy.data<T>(), w.data<T>(), dx.data());
  EXPECT_TRUE(Near(dx.values(), RefBackwardInput(g, ToDoubles(dy), ToDoubles(w)), g, t));
}

TEST(ConvWinograd, ForwardMatchesReference) {
  uint64_t seed = 10;
  for (const Geo& g : Cases()) {
    CheckForward<float>(g, seed += 7);
    CheckForward<f16_t>(g, seed += 7);
    CheckForward<bf16_t>(g, seed += 7);
  }
}

TEST(ConvWinograd, BackwardInputMatchesReference) {
  uint64_t seed = 100;
  for (const Geo& g : Cases()) {
    CheckBackwardInput<float>(g, seed += 7);
    CheckBackwardInput<f16_t>(g, seed += 7);
    CheckBackwardInput<bf16_t>(g, seed += 7);
  }
}

// 132 tiles of 256 -> 240 channels: two blocks (112 + 20 tiles), against the
// implicit GEMM (itself tested against the float64 reference in conv_test).
TEST(ConvWinograd, SeveralBlocksMatchImplicitGemm) {
  const Geo g = Padded(SquareConv(1, 48, 44, 256, 240, 3), 1, 1);
  Inputs in(g, 300);
  const ConvParams p = ParamsOf(g);
  std::vector<float> y(g.y().numel()), y_gemm(y.size()), dx(g.x().numel()), dx_gemm(dx.size());
  ConvForwardWinogradCpu<float>(p, in.x.data<float>(), in.w.data<float>(), in.bias.data<float>(), y.data());
  ConvForwardGemmCpu<float>(p, in.x.data<float>(), in.w.data<float>(), in.bias.data<float>(), y_gemm.data());
  EXPECT_TRUE(Near(y, Doubles(y_gemm), g)) << "forward";
  ConvBackwardInputWinogradCpu<float>(p, in.dy.data<float>(), in.w.data<float>(), dx.data());
  ConvBackwardInputGemmCpu<float>(p, in.dy.data<float>(), in.w.data<float>(), dx_gemm.data());
  EXPECT_TRUE(Near(dx, Doubles(dx_gemm), g)) << "backward input";
}

// The transformed weight kept in a state slot gives a fresh transform's
// results, is reused by later calls, and is rebuilt for another weight.
TEST(ConvWinograd, KeptTransformedWeight) {
  const Geo g = Padded(SquareConv(2, 9, 10, 20, 24, 3), 1, 1);
  Inputs in(g, 400);
  const ConvParams p = ParamsOf(g);
  std::vector<float> y0(g.y().numel()), y1(y0.size()), dx0(g.x().numel()), dx1(dx0.size());
  ConvForwardWinogradCpu<float>(p, in.x.data<float>(), in.w.data<float>(), nullptr, y0.data());
  ConvBackwardInputWinogradCpu<float>(p, in.dy.data<float>(), in.w.data<float>(), dx0.data());
  std::shared_ptr<void> fwd_state, bwd_state;
  ConvCpuExtras<float> fwd, bwd;
  fwd.weight_state = &fwd_state;
  bwd.weight_state = &bwd_state;
  const void* kept = nullptr;
  for (int run = 0; run < 2; ++run) {
    std::fill(y1.begin(), y1.end(), std::nanf(""));
    std::fill(dx1.begin(), dx1.end(), std::nanf(""));
    ConvForwardWinogradCpu<float>(p, in.x.data<float>(), in.w.data<float>(), nullptr, y1.data(), fwd);
    ConvBackwardInputWinogradCpu<float>(p, in.dy.data<float>(), in.w.data<float>(), dx1.data(), bwd);
    EXPECT_EQ(y0, y1) << "run " << run;
    EXPECT_EQ(dx0, dx1) << "run " << run;
    if (run == 0) kept = fwd_state.get();
  }
  EXPECT_EQ(fwd_state.get(), kept) << "rebuilt although nothing changed";
  // Another weight (another address): a new transform with that weight's results.
  Tensor w2 = RandomTensor(g.wt(), DType::f32, 401);
  ConvForwardWinogradCpu<float>(p, in.x.data<float>(), w2.data<float>(), nullptr, y1.data(), fwd);
  EXPECT_TRUE(Near(y1, RefForward(g, ToDoubles(in.x), ToDoubles(w2), nullptr), g));
}

// conv2d and conv2d_backward_input take the Winograd path where the gate
// says so, and the implicit GEMM when it is turned off; both match the reference.
TEST(ConvWinograd, OpDispatch) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "the Winograd path needs AVX-512";
  // 128 tiles: the fewest the gate takes for a weight transformed at every call (a one-node graph's input).
  const Geo g = Padded(SquareConv(2, 32, 32, 16, 16, 3), 1, 1);
  Inputs in(g, 500);
  const std::vector<double> want = RefForward(g, ToDoubles(in.x), ToDoubles(in.w), nullptr);
  const std::vector<double> want_dx = RefBackwardInput(g, ToDoubles(in.dy), ToDoubles(in.w));
  for (bool on : {true, false}) {
    SCOPED_TRACE(on ? "winograd" : "implicit gemm");
    const bool before = EnableConvWinograd(on);
    EXPECT_STREQ(ConvForwardPath(ParamsOf(g)), on ? "winograd_f4x4" : "implicit_gemm");
    EXPECT_EQ(ConvWinogradApplies(ParamsOf(g), true), on);
    CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("conv2d", {in.x, in.w}, g.attrs()));
    EXPECT_TRUE(Near(ToDoubles(y), want, g));
    CF_ASSERT_OK_AND_ASSIGN(Tensor dx, RunOp1("conv2d_backward_input", {in.dy, in.w}, g.backward_input_attrs()));
    EXPECT_TRUE(Near(ToDoubles(dx), want_dx, g));
    EnableConvWinograd(before);
  }
}

TEST(ConvWinograd, GateRefusesOtherGeometries) {
  if (!vm::HasAvx512()) GTEST_SKIP() << "the Winograd path needs AVX-512";
  const Geo base = Padded(SquareConv(2, 64, 64, 320, 320, 3), 1, 1);
  EXPECT_TRUE(ConvWinogradApplies(ParamsOf(base)));
  auto refused = [&](Geo g, const char* why, bool backward = false) {
    EXPECT_FALSE(ConvWinogradApplies(ParamsOf(g), backward)) << why;
  };
  Geo g = base;
  g.sh = g.sw = 2;
  refused(g, "stride 2");
  g = base;
  g.dh = g.dw = 2;
  refused(g, "dilation 2");
  g = base;
  g.groups = 2;
  refused(g, "groups 2");
  refused(Padded(SquareConv(2, 64, 64, 320, 320, 5), 2, 2), "5x5");
  refused(Padded(SquareConv(2, 64, 64, 8, 320, 3), 1, 1), "8 input channels");
  refused(Padded(SquareConv(2, 16, 16, 320, 320, 3), 1, 1), "32 tiles, weight transformed per call");
  EXPECT_TRUE(ConvWinogradApplies(ParamsOf(Padded(SquareConv(2, 16, 16, 320, 320, 3), 1, 1)), false, true))
      << "32 tiles, weight kept";
  EXPECT_FALSE(ConvWinogradApplies(ParamsOf(Padded(SquareConv(1, 4, 8, 320, 320, 3), 1, 1)), false, true))
      << "2 tiles, weight kept";
  refused(Padded(SquareConv(2, 64, 64, 2560, 1280, 3), 1, 1), "a 450 MiB transformed weight");
  EXPECT_TRUE(ConvWinogradApplies(ParamsOf(Padded(SquareConv(2, 32, 32, 1280, 1280, 3), 1, 1)))) << "225 MiB";
  EXPECT_FALSE(ConvWinogradApplies(ParamsOf(Padded(SquareConv(2, 16, 16, 1280, 1280, 3), 1, 1)), false, true))
      << "225 MiB for 32 tiles";
  EXPECT_TRUE(ConvWinogradApplies(ParamsOf(Padded(SquareConv(2, 16, 16, 640, 640, 3), 1, 1)), false, true))
      << "56 MiB for 32 tiles";
  refused(Padded(base, 3, 3), "padding 3 (backward)", true);
}

// The path's rounding error next to the implicit GEMM's on a realistic
// layer, both against float64: within 12x, and within RelTol of the magnitude.
TEST(ConvWinograd, WinogradErrorNearDirect) {
  const Geo g = Padded(SquareConv(1, 16, 16, 128, 64, 3), 1, 1);
  Inputs in(g, 600);
  const ConvParams p = ParamsOf(g);
  const std::vector<double> want = RefForward(g, ToDoubles(in.x), ToDoubles(in.w), nullptr);
  std::vector<float> yw(want.size()), yd(want.size());
  ConvForwardWinogradCpu<float>(p, in.x.data<float>(), in.w.data<float>(), nullptr, yw.data());
  ConvForwardGemmCpu<float>(p, in.x.data<float>(), in.w.data<float>(), nullptr, yd.data());
  double ew = 0, ed = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ew = std::max(ew, std::abs(yw[i] - want[i]));
    ed = std::max(ed, std::abs(yd[i] - want[i]));
  }
  const double scale = MaxAbs(want);
  RecordProperty("winograd_rel_error", std::to_string(ew / scale));
  RecordProperty("direct_rel_error", std::to_string(ed / scale));
  EXPECT_LE(ew, 12 * ed) << "winograd " << ew / scale << " direct " << ed / scale << " of " << scale;
  EXPECT_LE(ew, RelTol(g) * scale);
  if (vm::HasAvx512()) {
    EXPECT_NE(yw, yd) << "the same roundings as the implicit GEMM: the Winograd path did not run";
  }
}

}  // namespace
}  // namespace cf::testing
