// CUDA conv2d and its backward ops against the CPU kernels, f32/f16/bf16,
// outputs poisoned first: cuDNN for dense and grouped convs, our own kernels
// for depthwise ones (the tiled path for stride 1 / dilation 1 / odd kernels
// 3..31, the generic path for everything else).
#include <cmath>
#include <thread>
#include <utility>

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

// Zero channels: Cin = 0 gives y = bias (or zeros) as on the CPU, Cout = 0 a
// zero input gradient, and either an empty weight gradient; none of them may
// reach cuDNN (which takes no empty tensors).
TEST(Conv2dGpu, ZeroChannels) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 300;
  for (auto [cin, cout] : {std::pair<int64_t, int64_t>{0, 8}, {8, 0}, {0, 0}}) {
    Geo g = SquareConv(2, 5, 6, cin, cout, 3);
    g.ph = g.pw = 1;
    SCOPED_TRACE(g.str());
    Tensor x = RandomTensor(g.x(), DType::f32, seed), w = RandomTensor(g.wt(), DType::f32, seed + 1);
    Tensor bias = RandomTensor(Shape{cout}, DType::f32, seed + 2), dy = RandomTensor(g.y(), DType::f32, seed + 3);
    seed += 5;
    for (DType t : kGpuDTypes) {
      EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w, bias}, g.attrs(), t));
      EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w}, g.attrs(), t));
      EXPECT_TRUE(CudaMatchesCpu("conv2d_backward_input", {dy, w}, g.backward_input_attrs(), t));
      EXPECT_TRUE(CudaMatchesCpu("conv2d_backward_weight", {x, dy}, g.backward_weight_attrs(), t));
    }
  }
}

// More samples than gridDim.z allows (65535): the tiled forward and backward
// input kernels loop over the batch.
TEST(Conv2dGpu, DepthwiseTiledBatchBeyondGridZ) {
  CF_SKIP_WITHOUT_GPU();
  Geo g = SquareConv(65536 + 3, 3, 3, 16, 16, 3);
  g.groups = 16;
  g.ph = g.pw = 1;
  SCOPED_TRACE(g.str());
  Tensor x = RandomTensor(g.x(), DType::f32, 400), w = RandomTensor(g.wt(), DType::f32, 401);
  Tensor bias = RandomTensor(Shape{g.cout}, DType::f32, 402), dy = RandomTensor(g.y(), DType::f32, 403);
  const double tol = 2e-6 * std::sqrt(static_cast<double>(g.taps()));
  EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w, bias}, g.attrs(), DType::f32, tol, tol));
  EXPECT_TRUE(CudaMatchesCpu("conv2d_backward_input", {dy, w}, g.backward_input_attrs(), DType::f32, 2 * tol, 2 * tol));
  EXPECT_TRUE(CudaMatchesCpu("conv2d", {x, w, bias}, g.attrs(), DType::bf16));
}

// Host threads launching the same tiled instantiation (kw = 31) with
// different shared memory sizes (kh = 3 and 31) at once: the kernels' shared
// memory limit is set once, not raced per launch.
TEST(Conv2dGpu, DepthwiseConcurrentLaunchesWithDifferentSharedMemory) {
  CF_SKIP_WITHOUT_GPU();
  struct Job {
    Geo g;
    std::vector<Tensor> fwd_in, bwi_in, bww_in;
    std::vector<double> y, dx, dw;
  };
  std::vector<Job> jobs;
  for (int64_t kh : {3, 31}) {
    Geo g{1, 12, 12, 16, 16, kh, 31};
    g.groups = 16;
    g.ph = kh / 2;
    g.pw = 15;
    Job j{g, {}, {}, {}, {}, {}, {}};
    Tensor x = RandomTensor(g.x(), DType::f32, 500 + kh), w = RandomTensor(g.wt(), DType::f32, 501 + kh);
    Tensor dy = RandomTensor(g.y(), DType::f32, 502 + kh);
    j.fwd_in = {x, w};
    j.bwi_in = {dy, w};
    j.bww_in = {x, dy};
    CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("conv2d", j.fwd_in, g.attrs()));
    CF_ASSERT_OK_AND_ASSIGN(Tensor dx, RunOp1("conv2d_backward_input", j.bwi_in, g.backward_input_attrs()));
    CF_ASSERT_OK_AND_ASSIGN(Tensor dw, RunOp1("conv2d_backward_weight", j.bww_in, g.backward_weight_attrs()));
    j.y = ToDoubles(y);
    j.dx = ToDoubles(dx);
    j.dw = ToDoubles(dw);
    for (auto* v : {&j.fwd_in, &j.bwi_in, &j.bww_in})
      for (Tensor& t : *v) t = t.To(Device::CUDA(0)).value();
    jobs.push_back(std::move(j));
  }
  constexpr int kThreads = 4, kRounds = 25;
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int r = 0; r < kRounds && errors[i].empty(); ++r) {
        const Job& j = jobs[(i + r) % jobs.size()];
        const double tol = 1e-4 * std::sqrt(static_cast<double>(j.g.taps()));
        auto y = RunOp1("conv2d", j.fwd_in, j.g.attrs(), Device::CUDA(0));
        auto dx = RunOp1("conv2d_backward_input", j.bwi_in, j.g.backward_input_attrs(), Device::CUDA(0));
        auto dw = RunOp1("conv2d_backward_weight", j.bww_in, j.g.backward_weight_attrs(), Device::CUDA(0));
        if (!y.ok() || !dx.ok() || !dw.ok()) {
          errors[i] = absl::StrCat(j.g.str(), ": ", y.status().message(), " / ", dx.status().message(), " / ",
                                   dw.status().message());
        } else if (!AllClose(ToDoubles(*y), j.y, tol, tol) || !AllClose(ToDoubles(*dx), j.dx, tol, tol) ||
                   !AllClose(ToDoubles(*dw), j.dw, tol, 1e-3 * std::sqrt(double(j.g.pixels())))) {
          errors[i] = absl::StrCat(j.g.str(), ": results differ from the CPU in round ", r);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_TRUE(errors[i].empty()) << "thread " << i << ": " << errors[i];
}

}  // namespace
}  // namespace cf::testing
