// CPU tests of "conv2d", "conv2d_backward_input" and "conv2d_backward_weight"
// against float64 references written here with plain loops: stride, padding,
// dilation, groups, depthwise 3x3 / 7x7 / 13x13, 1x1, odd spatial sizes,
// several table bands and weight-gradient column chunks of the implicit GEMM,
// every GEMM micro-kernel, the kept packed weight; all storage dtypes; the VJP by finite differences;
// errors; cost formulas.
#include "ops/conv/conv.h"

#include <utility>

#include "graph/builder.h"
#include "ops/conv/conv_cpu.h"
#include "ops/matmul/cpu_gemm.h"
#include "tests/support/conv_geometry.h"
#include "tests/support/conv_reference.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Geo = ConvGeometry;

constexpr DTypeTol Rtol = kStorageTol;
double Atol(DType t, const Geo& g) { return Rtol.ForSum(t, g.taps()); }

// Forward with and without bias, and both backward ops, against the references.
void CheckAll(const Geo& g, DType t, uint64_t seed) {
  SCOPED_TRACE(g.str() + " " + DTypeName(t));
  Tensor x = RandomTensor(g.x(), t, seed), w = RandomTensor(g.wt(), t, seed + 1);
  Tensor bias = RandomTensor(Shape{g.cout}, t, seed + 2), dy = RandomTensor(g.y(), t, seed + 3);
  const std::vector<double> xv = ToDoubles(x), wv = ToDoubles(w), bv = ToDoubles(bias), dyv = ToDoubles(dy);
  const double rtol = Rtol(t), atol = Atol(t, g);

  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("conv2d", {x, w, bias}, g.attrs()));
  ASSERT_EQ(y.shape(), g.y());
  EXPECT_TRUE(AllClose(ToDoubles(y), RefForward(g, xv, wv, &bv), rtol, atol)) << "forward with bias";
  CF_ASSERT_OK_AND_ASSIGN(Tensor y0, RunOp1("conv2d", {x, w}, g.attrs()));
  EXPECT_TRUE(AllClose(ToDoubles(y0), RefForward(g, xv, wv, nullptr), rtol, atol)) << "forward";

  CF_ASSERT_OK_AND_ASSIGN(Tensor dx, RunOp1("conv2d_backward_input", {dy, w}, g.backward_input_attrs()));
  ASSERT_EQ(dx.shape(), g.x());
  EXPECT_TRUE(AllClose(ToDoubles(dx), RefBackwardInput(g, dyv, wv), rtol, atol * 2)) << "backward input";

  CF_ASSERT_OK_AND_ASSIGN(Tensor dw, RunOp1("conv2d_backward_weight", {x, dy}, g.backward_weight_attrs()));
  ASSERT_EQ(dw.shape(), g.wt());
  const double pixels = static_cast<double>(g.pixels());
  EXPECT_TRUE(AllClose(ToDoubles(dw), RefBackwardWeight(g, xv, dyv), rtol, Rtol(t) * std::sqrt(pixels) * 2))
      << "backward weight";
}


std::vector<Geo> DenseCases() {
  std::vector<Geo> v;
  Geo g = SquareConv(2, 7, 9, 5, 6, 3);  // 3x3, pad 1
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(1, 11, 13, 4, 8, 3);  // stride 2, odd sizes
  g.sh = g.sw = 2;
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(1, 10, 9, 3, 4, 3);  // dilation 2
  g.dh = g.dw = 2;
  g.ph = g.pw = 2;
  v.push_back(g);
  g = SquareConv(2, 6, 7, 8, 6, 3);  // groups 2
  g.groups = 2;
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(1, 5, 5, 6, 6, 3);  // groups 3 with 2 channels each (not depthwise)
  g.groups = 3;
  v.push_back(g);
  g = SquareConv(1, 6, 5, 4, 8, 1);  // channel multiplier 2: groups == Cin but Cout = 2·Cin
  g.groups = 4;
  v.push_back(g);
  v.push_back(SquareConv(2, 5, 6, 16, 24, 1));  // 1x1 pointwise: no im2col
  g = SquareConv(1, 9, 7, 6, 5, 1);             // 1x1 with stride 2
  g.sh = g.sw = 2;
  v.push_back(g);
  g = Geo{1, 8, 11, 3, 5, 3, 5};  // 3x5 kernel, stride (2, 1), padding (0, 2)
  g.sh = 2;
  g.pw = 2;
  v.push_back(g);
  g = SquareConv(1, 5, 5, 2, 3, 7);  // kernel larger than the input, heavy padding
  g.ph = g.pw = 4;
  v.push_back(g);
  return v;
}

std::vector<Geo> DepthwiseCases() {
  std::vector<Geo> v;
  for (int64_t k : {3, 7, 13}) {
    Geo g = SquareConv(2, 16, 15, 12, 12, k);
    g.groups = 12;
    g.ph = g.pw = k / 2;
    v.push_back(g);
  }
  Geo g = SquareConv(1, 13, 11, 5, 5, 3);  // stride 2, dilation 2
  g.groups = 5;
  g.sh = g.sw = 2;
  g.dh = g.dw = 2;
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(1, 9, 10, 7, 7, 4);  // even kernel
  g.groups = 7;
  g.ph = 1;
  g.pw = 2;
  v.push_back(g);
  return v;
}

TEST(Conv2dCpu, DenseAllDtypes) {
  uint64_t seed = 1;
  for (const Geo& g : DenseCases())
    for (DType t : kFloatDTypes) CheckAll(g, t, seed += 5);
}

TEST(Conv2dCpu, DepthwiseAllDtypes) {
  uint64_t seed = 100;
  for (const Geo& g : DepthwiseCases())
    for (DType t : kFloatDTypes) CheckAll(g, t, seed += 5);
}

TEST(Conv2dCpu, SeveralWeightGradientBands) {
  // 8192 output pixels with K = 576: the weight gradient packs X_ind in two
  // bands of 7281 pixels, the boundary inside the second image (dW must add
  // across it); and a stride-2 conv of the same width.
  Geo g = SquareConv(2, 64, 64, 64, 8, 3);
  g.ph = g.pw = 1;
  CheckAll(g, DType::f32, 200);
  Geo s = SquareConv(2, 127, 64, 64, 4, 3);  // stride 2, odd height
  s.sh = s.sw = 2;
  s.ph = s.pw = 1;
  CheckAll(s, DType::f32, 210);
}

// The implicit GEMM's geometry: channel counts off the micro-kernels' 14-row
// and 32-column blocks (and odd, so bf16 k-pairs straddle taps), K above the
// 384-deep K block (blocks end inside a tap), more than the 168 pixels of an
// M block, padding 0 / 1 / 2 / 3, strides 2, 3 and (2, 1) with dilation
// (backward input phases with 1, 2 and 4 taps, and phases that no tap reaches:
// kernels smaller than the stride), groups.
std::vector<Geo> ImplicitCases() {
  std::vector<Geo> v;
  Geo g = SquareConv(2, 13, 15, 50, 33, 3);  // K = 450: two K blocks, one boundary inside tap 7
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(1, 17, 12, 17, 46, 3);  // odd channels, no padding
  v.push_back(g);
  g = SquareConv(2, 14, 11, 21, 19, 3);  // the SD downsampler's geometry: stride 2, padding 1
  g.sh = g.sw = 2;
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(1, 16, 13, 9, 10, 2);  // stride 3 > kernel 2: phases without taps
  g.sh = g.sw = 3;
  g.ph = g.pw = 1;
  v.push_back(g);
  g = Geo{1, 15, 14, 11, 7, 5, 3};  // 5x3, stride (2, 1), dilation (1, 2), padding (3, 2)
  g.sh = 2;
  g.dw = 2;
  g.ph = 3;
  g.pw = 2;
  v.push_back(g);
  g = SquareConv(1, 12, 13, 8, 6, 3);  // stride 2 with dilation 2: half the phases get no tap
  g.sh = g.sw = 2;
  g.dh = g.dw = 2;
  g.ph = g.pw = 1;
  v.push_back(g);
  g = SquareConv(2, 9, 10, 30, 45, 3);  // groups 3 (10 -> 15 channels each), padding 2
  g.groups = 3;
  g.ph = g.pw = 2;
  v.push_back(g);
  g = SquareConv(1, 7, 9, 12, 20, 1);  // 1x1 with padding 1: a table with padding taps
  g.ph = g.pw = 1;
  v.push_back(g);
  return v;
}

// Every float micro-kernel the CPU runs, forced (bf16 then goes through f32
// packing), then the automatic choice (bf16 x bf16 through VDPBF16PS where
// the CPU has it): the packers and kernels differ per kernel.
TEST(Conv2dCpu, ImplicitGemmEveryKernel) {
  std::vector<std::string> kernels = gemm::FloatKernelNames();
  ASSERT_FALSE(kernels.empty());
  kernels.push_back("auto");
  for (const std::string& k : kernels) {
    SCOPED_TRACE(k);
    ASSERT_TRUE(gemm::ForceKernel(k));
    uint64_t seed = 400;
    for (const Geo& g : ImplicitCases())
      for (DType t : kFloatDTypes) CheckAll(g, t, seed += 5);
  }
}

TEST(Conv2dCpu, WeightGradientColumnChunks) {
  // Cin = 512: one band of all 9 taps would be 8192 pixels of 4608 columns,
  // above the band size, so the columns go in chunks of 3 taps and the 3200
  // output pixels in two bands of each.
  Geo g = SquareConv(2, 40, 40, 512, 5, 3);
  g.ph = g.pw = 1;
  CheckAll(g, DType::f32, 600);
  CheckAll(g, DType::bf16, 610);
}

// The packed weight kept in a state slot (what the executor passes for a
// parameter weight) gives the results of a fresh packing, for every
// direction and stride phase, and is reused (not repacked) by later calls.
TEST(Conv2dCpu, KeptPackedWeight) {
  for (const Geo& g : {ImplicitCases()[0], ImplicitCases()[2], ImplicitCases()[6]}) {
    SCOPED_TRACE(g.str());
    const ConvParams p = ParamsOf(g);
    Tensor x = RandomTensor(g.x(), DType::f32, 1), w = RandomTensor(g.wt(), DType::f32, 2);
    Tensor dy = RandomTensor(g.y(), DType::f32, 3);
    std::vector<float> y0(g.y().numel()), y1(y0.size()), dx0(g.x().numel()), dx1(dx0.size());
    ConvForwardGemmCpu<float>(p, x.data<float>(), w.data<float>(), nullptr, y0.data());
    ConvBackwardInputGemmCpu<float>(p, dy.data<float>(), w.data<float>(), dx0.data());
    std::shared_ptr<void> fwd_state, bwd_state;
    ConvCpuExtras<float> fwd, bwd;
    fwd.weight_state = &fwd_state;
    bwd.weight_state = &bwd_state;
    for (int run = 0; run < 2; ++run) {
      std::fill(y1.begin(), y1.end(), std::nanf(""));
      std::fill(dx1.begin(), dx1.end(), std::nanf(""));
      ConvForwardGemmCpu<float>(p, x.data<float>(), w.data<float>(), nullptr, y1.data(), fwd);
      ConvBackwardInputGemmCpu<float>(p, dy.data<float>(), w.data<float>(), dx1.data(), bwd);
      EXPECT_EQ(y0, y1) << "run " << run;
      EXPECT_EQ(dx0, dx1) << "run " << run;
    }
    // The same slot contents after the second run: kept, not rebuilt.
    const void* kept = fwd_state.get();
    ConvForwardGemmCpu<float>(p, x.data<float>(), w.data<float>(), nullptr, y1.data(), fwd);
    EXPECT_EQ(fwd_state.get(), kept);
  }
}

// Zero channels: Cin = 0 gives y = bias (or zeros), Cout = 0 a zero input
// gradient, and either an empty weight gradient (the CUDA kernels are
// checked against this in conv_gpu_test).
TEST(Conv2dCpu, ZeroChannels) {
  for (auto [cin, cout] : {std::pair<int64_t, int64_t>{0, 8}, {8, 0}, {0, 0}}) {
    ConvGeometry g = SquareConv(2, 5, 6, cin, cout, 3);
    g.ph = g.pw = 1;
    SCOPED_TRACE(g.str());
    for (DType t : kFloatDTypes) {
      Tensor x = RandomTensor(g.x(), t, 1), w = RandomTensor(g.wt(), t, 2), bias = RandomTensor(Shape{cout}, t, 3);
      Tensor dy = RandomTensor(g.y(), t, 4);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("conv2d", {x, w, bias}, g.attrs()));
      ASSERT_EQ(y.shape(), g.y());
      std::vector<double> want(g.y().numel()), bv = ToDoubles(bias);
      for (size_t i = 0; i < want.size(); ++i) want[i] = bv[i % std::max<int64_t>(cout, 1)];
      EXPECT_TRUE(AllClose(ToDoubles(y), want, 0, 0)) << DTypeName(t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y0, RunOp1("conv2d", {x, w}, g.attrs()));
      EXPECT_TRUE(AllClose(ToDoubles(y0), std::vector<double>(g.y().numel(), 0.0), 0, 0)) << DTypeName(t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor dx, RunOp1("conv2d_backward_input", {dy, w}, g.backward_input_attrs()));
      ASSERT_EQ(dx.shape(), g.x());
      EXPECT_TRUE(AllClose(ToDoubles(dx), std::vector<double>(g.x().numel(), 0.0), 0, 0)) << DTypeName(t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor dw, RunOp1("conv2d_backward_weight", {x, dy}, g.backward_weight_attrs()));
      EXPECT_EQ(dw.shape(), g.wt());
    }
  }
}

TEST(Conv2dVjp, FiniteDifferences) {
  std::vector<Geo> cases = {DenseCases()[0], DenseCases()[1], DenseCases()[2], DenseCases()[3], DenseCases()[6],
                            DepthwiseCases()[0], DepthwiseCases()[3]};
  uint64_t seed = 300;
  for (Geo g : cases) {
    g.n = 1;  // keep the finite differences quick
    SCOPED_TRACE(g.str());
    std::vector<Tensor> ins{RandomTensor(g.x(), DType::f64, seed++), RandomTensor(g.wt(), DType::f64, seed++),
                            RandomTensor(Shape{g.cout}, DType::f64, seed++)};
    EXPECT_TRUE(CheckVjp("conv2d", ins, g.attrs(), {}, 1e-6, 20));
  }
}

// ---- errors -----------------------------------------------------------------------------

TEST(Conv2dErrors, NameOpAndShapes) {
  const DType f = DType::f32;
  ExpectError("conv2d", {{{1, 8, 8, 4}, f}, {{6, 3, 3, 5}, f}}, {}, {"conv2d", "channel", "[1, 8, 8, 4]",
                                                                     "[6, 3, 3, 5]"});
  ExpectError("conv2d", {{{1, 8, 8, 6}, f}, {{6, 3, 3, 2}, f}}, Attrs{{"groups", int64_t{4}}},
              {"conv2d", "groups", "divide"});
  ExpectError("conv2d", {{{1, 8, 8, 4}, f}, {{6, 3, 3, 4}, f}}, Attrs{{"groups", int64_t{4}}}, {"conv2d", "groups"});
  ExpectError("conv2d", {{{1, 2, 2, 4}, f}, {{6, 3, 3, 4}, f}}, {}, {"conv2d", "empty", "[1, 2, 2, 4]"});
  ExpectError("conv2d", {{{8, 8, 4}, f}, {{6, 3, 3, 4}, f}}, {}, {"conv2d", "NHWC"});
  ExpectError("conv2d", {{{1, 8, 8, 4}, f}, {{6, 3, 3, 4}, f}, {{5}, f}}, {}, {"conv2d", "bias", "[5]"});
  ExpectError("conv2d", {{{1, 8, 8, 4}, f}, {{6, 3, 3, 4}, f}}, Attrs{{"stride", std::vector<int64_t>{0, 1}}},
              {"conv2d", "stride"});
  ExpectError("conv2d", {{{1, 8, 8, 4}, f}, {{6, 3, 3, 4}, DType::bf16}}, {}, {"conv2d", "dtype"});
  ExpectError("conv2d_backward_input", {{{1, 7, 7, 6}, f}, {{6, 3, 3, 4}, f}},
              Attrs{{"input_shape", std::vector<int64_t>{1, 8, 8, 4}}}, {"conv2d_backward_input", "grad_out"});
  ExpectError("conv2d_backward_weight", {{{1, 8, 8, 4}, f}, {{1, 6, 6, 6}, f}}, {},
              {"conv2d_backward_weight", "weight_shape"});
}

// ---- cost --------------------------------------------------------------------------------

TEST(Conv2dCost, Formulas) {
  Graph g;
  Builder b(&g);
  // SD1.5 conv 3x3 320 -> 320 on 64x64, batch 2, with bias.
  Value x = b.Input("x", {2, 64, 64, 320}, DType::f16);
  Value w = b.Input("w", {320, 3, 3, 320}, DType::f16);
  Value bias = b.Input("bias", {320}, DType::f16);
  Value y = Conv2d(x, w, bias, {.padding = 1});
  ASSERT_TRUE(b.ok()) << b.status().message();
  Cost c = g.nodes().back().cost;
  EXPECT_EQ(c.mac_flops, 2LL * 2 * 64 * 64 * 320 * 3 * 3 * 320);
  EXPECT_EQ(c.bias_flops, 2LL * 64 * 64 * 320);
  EXPECT_EQ(c.elementwise_flops, 0);
  EXPECT_EQ(c.bytes_read, (2LL * 64 * 64 * 320 + 320 * 9 * 320 + 320) * 2);
  EXPECT_EQ(c.bytes_written, 2LL * 64 * 64 * 320 * 2);

  // Depthwise 13x13 on 64x64x160, stride 2 with padding 6: Ho = Wo = 32.
  Value xd = b.Input("xd", {1, 64, 64, 160}, DType::f32);
  Value wd = b.Input("wd", {160, 13, 13, 1}, DType::f32);
  Conv2d(xd, wd, std::nullopt, {.stride = 2, .padding = 6, .groups = 160});
  ASSERT_TRUE(b.ok());
  c = g.nodes().back().cost;
  EXPECT_EQ(c.mac_flops, 2LL * 32 * 32 * 160 * 169);
  EXPECT_EQ(c.bias_flops, 0);

  // Backward ops count the forward's multiply-adds; bias grad is a SumTo.
  Value dy = b.Input("dy", {2, 64, 64, 320}, DType::f16);
  Conv2dBackwardInput(dy, w, x.shape(), Attrs{{"padding", std::vector<int64_t>{1, 1}}});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(g.nodes().back().cost.mac_flops, 2LL * 2 * 64 * 64 * 320 * 9 * 320);
  Conv2dBackwardWeight(x, dy, w.shape(), Attrs{{"padding", std::vector<int64_t>{1, 1}}});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(g.nodes().back().cost.mac_flops, 2LL * 2 * 64 * 64 * 320 * 9 * 320);
  EXPECT_EQ(g.nodes().back().cost.bytes_written, 320LL * 9 * 320 * 2);
  (void)y;
}

}  // namespace
}  // namespace cf::testing
