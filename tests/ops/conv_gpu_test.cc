// CUDA conv2d and its backward ops against the CPU kernels, f32/f16/bf16,
// outputs poisoned first: cuDNN for dense and grouped convs, our own kernels
// for depthwise ones (the tiled path for stride 1 / dilation 1 / odd kernels
// 3..31, the generic path for everything else).
#include <cmath>

#include "tests/support/conv_geometry.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

using Geo = ConvGeometry;

// Forward (with and without bias), backward input and backward weight in
// every dtype. f32 tolerances scale with the length of the sums.
void CheckAll(const Geo& g, uint64_t seed) {
  SCOPED_TRACE(g.str());
  Tensor x = RandomTensor(g.x(), DType::f32, seed), w = RandomTensor(g.wt(), DType::f32, seed + 1);
  Tensor bias = RandomTensor(Shape{g.cout}, DType::f32, seed + 2), dy = RandomTensor(g.y(), DType::f32, seed + 3);
  const double taps = static_cast<double>(g.taps()), pixels = static_cast<double>(g.pixels());
  const Attrs bi = g.backward_input_attrs(), bw = g.backward_weight_attrs();
  for (DType t : kGpuDTypes) {
    const bool f32 = t == DType::f32;
    const double fwd = f32 ? 2e-6 * std::sqrt(taps) : -1;
    const double bwd_w = f32 ? 2e-6 * std::sqrt(pixels) : -1;
    EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w, bias}, g.attrs(), t, fwd, fwd));
    EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w}, g.attrs(), t, fwd, fwd));
    EXPECT_TRUE(CudaMatchesCpu("conv2d_backward_input", {dy, w}, bi, t, fwd * 2, fwd * 2));
    // Sums over all pixels: low precision keeps the default relative bound
    // and gets an absolute one that grows like the sum's rounding.
    EXPECT_TRUE(CudaMatchesCpu("conv2d_backward_weight", {x, dy}, bw, t, f32 ? bwd_w : -1,
                               f32 ? bwd_w : (t == DType::f16 ? 5e-3 : 2e-2) * std::sqrt(pixels) / 4));
  }
}

TEST(Conv2dGpu, DenseCudnn) {
  CF_SKIP_WITHOUT_GPU();
  std::vector<Geo> cases;
  Geo g = SquareConv(2, 9, 11, 16, 24, 3);
  g.ph = g.pw = 1;
  cases.push_back(g);
  g = SquareConv(1, 13, 15, 8, 16, 3);  // stride 2, odd sizes
  g.sh = g.sw = 2;
  g.ph = g.pw = 1;
  cases.push_back(g);
  g = SquareConv(1, 12, 10, 8, 8, 3);  // dilation 2
  g.dh = g.dw = 2;
  g.ph = g.pw = 2;
  cases.push_back(g);
  g = SquareConv(2, 8, 8, 16, 32, 3);  // groups 4
  g.groups = 4;
  g.ph = g.pw = 1;
  cases.push_back(g);
  cases.push_back(SquareConv(2, 7, 9, 32, 48, 1));  // 1x1
  g = SquareConv(1, 8, 8, 8, 16, 3);                // channel multiplier 2 (not our depthwise kernel)
  g.groups = 8;
  g.ph = g.pw = 1;
  cases.push_back(g);
  g = SquareConv(1, 16, 16, 3, 8, 7);  // odd channel count, large kernel
  g.ph = g.pw = 3;
  cases.push_back(g);
  uint64_t seed = 1;
  for (const Geo& c : cases) CheckAll(c, seed += 5);
}

TEST(Conv2dGpu, DepthwiseTiled) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  // Same padding, every ConvBlock kernel size and the limits; channel counts
  // that are not multiples of 16 and spatial sizes that are not multiples of
  // the 8x16 tile.
  for (int64_t k : {3, 5, 7, 13, 25, 31}) {
    Geo g = SquareConv(2, 19, 23, 20, 20, k);
    g.groups = 20;
    g.ph = g.pw = k / 2;
    CheckAll(g, seed += 5);
  }
  // Valid padding (pad 0) and partial padding.
  Geo g = SquareConv(1, 20, 21, 16, 16, 5);
  g.groups = 16;
  CheckAll(g, seed += 5);
  g.ph = g.pw = 1;
  CheckAll(g, seed += 5);
  // SD-sized: 13x13 on 64x64x160 (the weight-gradient blocks loop over tiles).
  g = SquareConv(2, 64, 64, 160, 160, 13);
  g.groups = 160;
  g.ph = g.pw = 6;
  CheckAll(g, seed += 5);
}

TEST(Conv2dGpu, DepthwiseGeneric) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 200;
  Geo g = SquareConv(2, 15, 17, 12, 12, 4);  // even kernel
  g.groups = 12;
  g.ph = g.pw = 2;
  CheckAll(g, seed += 5);
  g = SquareConv(1, 17, 13, 10, 10, 3);  // stride 2
  g.groups = 10;
  g.sh = g.sw = 2;
  g.ph = g.pw = 1;
  CheckAll(g, seed += 5);
  g = SquareConv(1, 17, 19, 10, 10, 3);  // dilation 3
  g.groups = 10;
  g.dh = g.dw = 3;
  g.ph = g.pw = 3;
  CheckAll(g, seed += 5);
  g = SquareConv(1, 9, 9, 8, 8, 3);  // padding larger than the kernel: generic backward input
  g.groups = 8;
  g.ph = g.pw = 3;
  CheckAll(g, seed += 5);
  g = SquareConv(1, 40, 40, 4, 4, 33);  // beyond the tiled kernels' 31
  g.groups = 4;
  g.ph = g.pw = 16;
  CheckAll(g, seed += 5);
}

TEST(Conv2dGpu, Tf32OnlyWhenAllowed) {
  CF_SKIP_WITHOUT_GPU();
  Geo g = SquareConv(1, 16, 16, 64, 64, 3);
  g.ph = g.pw = 1;
  Tensor x = RandomTensor(g.x(), DType::f32, 7), w = RandomTensor(g.wt(), DType::f32, 8);
  EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w}, g.attrs(), DType::f32, 1e-5, 2e-4));
  Attrs tf32 = g.attrs();
  tf32.Set("allow_tf32", true);
  EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w}, tf32, DType::f32, 3e-3, 3e-4 * 24));
}

}  // namespace
}  // namespace cf::testing
