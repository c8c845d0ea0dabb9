// The CUDA epilogue kernels of conv2d (ops/conv/conv_epilogue_kernels.cuh) on
// the kdev interpreter: each kernel applied to the unfused convolution (the
// CPU conv rounded to the storage type, as cuDNN / the depthwise kernel write
// it) against the fused CPU conv2d, f32 / f16 / bf16, odd channel counts and
// images, the launchers' geometry and a short grid (the grid-stride loop),
// operands one element off alignment; the interpreter reports races and
// out-of-bounds accesses as errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/conv/conv_epilogue_kernels.cuh"
#include "ops/grid_for.h"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

constexpr const char* kActs[] = {"none", "gelu", "gelu_tanh", "silu"};  // index = the kernels' code

struct Case {
  bool add_bias;  // AddBias (conv + bias), else FusedEpilogue
  Shape x;        // [N, H, W, Cin]
  int64_t cout, k;
  int act;
  bool bias, image_bias, residual;
  bool bias_in_product;  // the depthwise path: the bias added before the epilogue, post_bias null
};

Attrs ConvAttrs(const Case& c) {
  Attrs a{{"padding", std::vector<int64_t>{c.k / 2, c.k / 2}}};
  if (!c.add_bias) {
    a.Set("activation", std::string(kActs[c.act]));
    a.Set("image_bias", c.image_bias);
    a.Set("residual", c.residual);
  }
  return a;
}

// x, w [cout, k, k, Cin], [bias], [image_bias [N, 1, 1, cout]], [residual].
std::vector<Tensor> Inputs(const Case& c, uint64_t seed) {
  std::vector<Tensor> in{RandomTensor(c.x, DType::f32, seed),
                         RandomTensor({c.cout, c.k, c.k, c.x[3]}, DType::f32, seed + 1)};
  if (c.bias) in.push_back(RandomTensor({c.cout}, DType::f32, seed + 2));
  if (c.image_bias) in.push_back(RandomTensor({c.x[0], 1, 1, c.cout}, DType::f32, seed + 3));
  if (c.residual) in.push_back(RandomTensor({c.x[0], c.x[1], c.x[2], c.cout}, DType::f32, seed + 4, -2, 2));
  return in;
}

StatusOr<std::vector<Tensor>> RunKernel(const Case& c, const std::vector<Tensor>& in, unsigned grid, int64_t offset) {
  const DType t = in[0].dtype();
  std::vector<Tensor> conv_in{CastTo(in[0], DType::f32), CastTo(in[1], DType::f32)};
  if (c.bias && c.bias_in_product) conv_in.push_back(CastTo(in[2], DType::f32));
  CF_ASSIGN_OR_RETURN(Tensor conv, RunOp1("conv2d", conv_in, Attrs{{"padding", std::vector<int64_t>{c.k / 2, c.k / 2}}}));
  DevTensor y(CastTo(conv, t), "y", offset);
  const int64_t count = conv.numel(), image = conv.shape()[1] * conv.shape()[2];
  int next = 2;
  DevTensor bias(c.bias ? in[next++] : in[0], "bias", offset);
  DevTensor image_bias(c.image_bias ? in[next++] : in[0], "image_bias", offset);
  DevTensor residual(c.residual ? in[next++] : in[0], "residual", offset);
  CF_RETURN_IF_ERROR(DispatchKdFloat(t, [&](auto tag) -> Status {
    using T = decltype(tag);
    const auto cfg = KdConfig("conv_epilogue", grid ? grid : GridFor(count), 256);
    kd::Ptr<const T> none;
    if (c.add_bias) return ki::Launch(cfg, &epilogue::AddBias<T>, y.ptr<T>(), kd::Ptr<const T>(bias.ptr<T>()), count, c.cout);
    return ki::Launch(cfg, &epilogue::FusedEpilogue<T>, y.ptr<T>(), count, c.cout, image,
                      c.bias && !c.bias_in_product ? kd::Ptr<const T>(bias.ptr<T>()) : none,
                      c.image_bias ? kd::Ptr<const T>(image_bias.ptr<T>()) : none, c.act,
                      c.residual ? kd::Ptr<const T>(residual.ptr<T>()) : none);
  }));
  return std::vector<Tensor>{y.ToTensor()};
}

std::vector<Case> Cases() {
  std::vector<Case> cases{
      {true, {2, 5, 7, 3}, 13, 3, 0, true, false, false, false},
      {true, {1, 1, 1, 1}, 1, 1, 0, true, false, false, false},
      {true, {3, 9, 6, 4}, 33, 1, 0, true, false, false, false},
  };
  for (int a = 0; a < 4; ++a) {
    cases.push_back({false, {2, 5, 7, 3}, 13, 3, a, true, true, false, false});   // ResNet conv1: + temb
    cases.push_back({false, {3, 4, 5, 6}, 7, 1, a, true, false, true, false});    // conv2: + shortcut
    cases.push_back({false, {2, 3, 3, 5}, 11, 3, a, false, true, true, false});
    cases.push_back({false, {2, 6, 5, 4}, 9, 3, a, true, true, true, true});      // bias before the epilogue
    cases.push_back({false, {1, 1, 1, 2}, 1, 1, a, true, true, true, false});     // one output element
  }
  cases.push_back({false, {2, 17, 15, 5}, 19, 3, 3, true, true, true, false});  // several blocks
  return cases;
}

TEST(ConvEpilogueInterp, MatchesFusedCpuConv) {
  uint64_t seed = 1;
  for (const Case& c : Cases()) {
    for (DType t : kInterpDTypes) {
      for (unsigned grid : {0u, 3u}) {
        const int64_t offset = grid == 0 ? 0 : 1;
        const std::vector<Tensor> in = Inputs(c, seed += 5);
        auto run = [&](const std::vector<Tensor>& rin) { return RunKernel(c, rin, grid, offset); };
        EXPECT_TRUE(MatchesCpuReference("conv2d", in, ConvAttrs(c), t, run))
            << (c.add_bias ? "AddBias" : "FusedEpilogue") << " x " << c.x.ToString() << " cout " << c.cout << " k "
            << c.k << " act " << kActs[c.act] << " bias " << c.bias << " image_bias " << c.image_bias << " residual "
            << c.residual << " bias in product " << c.bias_in_product << " " << DTypeName(t) << " grid " << grid;
      }
    }
  }
}

}  // namespace
}  // namespace cf::testing
