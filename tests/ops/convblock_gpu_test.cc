// convblock_pyramid on CUDA (ops/convblock/convblock_pyramid.cu) against its
// CPU kernel, outputs poisoned first (CudaMatchesCpu): f32/f16/bf16, both
// gates, scales {1, 0.5} and {1, 0.5, 0.25} (and pooled-only stages), odd
// map sizes, K from 3 to 31 (larger than the pooled maps), C' = 2 .. 160,
// with and without bias. Then the nn ConvBlock (the fused node, its
// recomputing backward) forward and gradients on CUDA against the CPU.
// The kernels' logic runs interpreted in convblock_interp_test.cc; this file
// has not run on a GPU yet.
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "nn/convblock.h"
#include "ops/elementwise/elementwise.h"
#include "ops/reduce/reduce.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Case {
  int64_t b, h, w, c;
  int64_t k;
  std::vector<double> scales;
  bool bias;
};

// PyTorch's pooled size int(H·s), as nn/convblock.cc computes it.
std::vector<int64_t> SizesOf(const Case& c) {
  std::vector<int64_t> sizes;
  for (double s : c.scales) {
    sizes.push_back(std::max<int64_t>(1, int64_t(double(c.h) * s)));
    sizes.push_back(std::max<int64_t>(1, int64_t(double(c.w) * s)));
  }
  return sizes;
}

void CheckPyramid(const Case& c, uint64_t seed) {
  const std::vector<int64_t> sizes = SizesOf(c);
  const int64_t S = int64_t(c.scales.size());
  // Taps ~ U(-1/K, 1/K) keep the depthwise outputs O(1) at every K.
  std::vector<Tensor> in = {RandomTensor(Shape{c.b, c.h, c.w, c.c}, DType::f32, seed)};
  for (int64_t n = 0; n < S; ++n)
    in.push_back(RandomTensor(Shape{c.k, c.k, c.c}, DType::f32, seed + 1 + n, -1.0 / c.k, 1.0 / c.k));
  if (c.bias)
    for (int64_t n = 0; n < S; ++n) in.push_back(RandomTensor(Shape{c.c}, DType::f32, seed + 11 + n, -0.5, 0.5));
  for (const char* gate : {"product", "sigmoid"}) {
    const Attrs a{{"sizes", sizes},
                  {"kernel", c.k},
                  {"gate", std::string(gate)},
                  {"factor", 1.9},
                  {"has_bias", c.bias}};
    SCOPED_TRACE(absl::StrCat(c.b, "x", c.h, "x", c.w, "x", c.c, " K ", c.k, " ", a.ToString()));
    for (DType t : kGpuDTypes) {
      // f32: both sides sum K² products in f32 in different orders. Low
      // precision: the CUDA kernel rounds the pooled map to the storage type
      // (the CPU kernel keeps it in f32); the default per-dtype bounds.
      const double tol = t == DType::f32 ? 2e-6 * double(c.k) : -1;
      EXPECT_TRUE(CudaMatchesCpu("convblock_pyramid", in, a, t, tol, tol)) << DTypeName(t);
    }
  }
}

TEST(ConvBlockPyramidGpu, MatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  CheckPyramid({2, 45, 37, 34, 13, {1.0, 0.5}, true}, seed += 20);      // odd map, 2 channel chunks
  CheckPyramid({1, 45, 37, 30, 13, {1.0, 0.5, 0.25}, false}, seed += 20);
  CheckPyramid({2, 19, 23, 160, 25, {1.0, 0.5}, true}, seed += 20);     // C' = 160, K = 25
  CheckPyramid({1, 7, 5, 32, 31, {1.0, 0.5, 0.25}, true}, seed += 20);  // K larger than every map
  CheckPyramid({1, 1, 9, 2, 3, {1.0, 0.5}, true}, seed += 20);          // one row (pooled 1x4), C' = 2
  CheckPyramid({1, 12, 10, 16, 5, {0.5, 0.25}, false}, seed += 20);     // pooled stages only
  CheckPyramid({2, 64, 64, 160, 13, {1.0, 0.5}, false}, seed += 20);    // SD1.5's top level at 512
}

// The whole block: forward and the gradients of x and of every parameter,
// CUDA against CPU (the fused node forward, the composition's VJPs backward).
TEST(ConvBlockPyramidGpu, ModuleForwardAndGradientsMatchCpu) {
  CF_SKIP_WITHOUT_GPU();
  const Shape shape{2, 17, 13, 32};
  for (ConvBlockGate gate : {ConvBlockGate::kReleased, ConvBlockGate::kSigmoid}) {
    SCOPED_TRACE(ConvBlockGateName(gate));
    const ConvBlockOptions o{.kernel = 13,
                             .scales = {1.0, 0.5, 0.25},
                             .gate = gate,
                             .depthwise_bias = gate == ConvBlockGate::kSigmoid};
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", shape, DType::f32);
    Value y;
    {
      auto s = b.scope("conv1");
      y = ConvBlock(b, x, o);
    }
    ASSERT_TRUE(b.ok()) << b.status().message();
    uint64_t seed = 40;
    for (int id : g.Parameters()) {
      ValueInfo& v = g.mutable_value(id);
      const bool dw = v.name.find("conv_spatial") != std::string::npos;
      const double a = 1.0 / std::sqrt(double(dw ? o.kernel * o.kernel : v.type.shape.dim(-1)));
      v.data = RandomTensor(v.type.shape, DType::f32, seed++, -a, a);
    }
    Value loss = Sum(Mul(y, b.Constant(RandomTensor(shape, DType::f32, 9), "r")));
    std::vector<Value> wrt = {x};
    for (int id : g.Parameters()) wrt.push_back(Value{&b, id});
    CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, wrt));
    b.MarkOutput(y, "y");
    for (size_t i = 0; i < grads.size(); ++i) b.MarkOutput(grads[i], "g" + std::to_string(i));
    CF_ASSERT_OK(b.Finish().status());

    ExecutorOptions cpu_o, gpu_o;
    cpu_o.poison = gpu_o.poison = true;
    gpu_o.device = Device::CUDA();
    CF_ASSERT_OK_AND_ASSIGN(auto cpu, Executor::Create(g, cpu_o));
    CF_ASSERT_OK_AND_ASSIGN(auto gpu, Executor::Create(g, gpu_o));
    const Tensor xin = RandomTensor(shape, DType::f32, 8, -2.0, 2.0);
    CF_ASSERT_OK_AND_ASSIGN(auto want, cpu->RunNamed({{"x", xin}}));
    CF_ASSERT_OK_AND_ASSIGN(auto got, gpu->RunNamed({{"x", xin}}));
    for (const auto& [name, t] : want) {
      SCOPED_TRACE(name);
      ASSERT_TRUE(got.count(name));
      const std::vector<double> w = ToDoubles(t);
      // Weight gradients sum over all 2·17·13 pixels.
      EXPECT_TRUE(AllClose(ToDoubles(got.at(name)), w, 1e-4, 1e-4 * MaxAbs(w)));
    }
  }
}

}  // namespace
}  // namespace cf::testing
