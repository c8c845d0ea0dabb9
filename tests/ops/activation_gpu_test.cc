// CUDA kernels of the activations and their backward ops against the CPU
// ones (outputs poisoned first) in f32, f16 and bf16.
#include <cmath>
#include <utility>

#include "ops/activation/activation.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Act {
  const char* op;
  Attrs attrs;
};
std::vector<Act> Acts() {
  return {{"silu", {}},
          {"gelu", {}},
          {"gelu", Attrs{{"approximate", std::string("tanh")}}},
          {"quick_gelu", {}},
          {"leaky_relu", Attrs{{"negative_slope", 0.2}}},
          {"elu", Attrs{{"alpha", 0.7}}},
          {"sigmoid", {}}};
}

TEST(ActivationGpuTest, ForwardAndBackward) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const Act& a : Acts()) {
    for (const Shape& s : std::vector<Shape>{{}, {13}, {3, 5, 7}, {2, 16, 16, 321}}) {
      for (DType t : kGpuDTypes) {
        Tensor x = RandomTensor(s, DType::f32, seed++, -5, 5), dy = RandomTensor(s, DType::f32, seed++);
        EXPECT_TRUE(CudaMatchesCpu(a.op, {x}, a.attrs, t)) << a.op << " " << s.ToString();
        EXPECT_TRUE(CudaMatchesCpu(absl::StrCat(a.op, "_backward"), {x, dy}, a.attrs, t)) << a.op << " " << s.ToString();
      }
    }
  }
}

// The far tails, where the values are tiny (GELU is 1e-32 at -12): compared
// relatively (an absolute bound scaled by the largest value would pass
// zeros). f32 allows the tails' condition number (~x^2, ~0.07 |x|^3 for the
// tanh form) times a few ulps of summation-order / FMA differences.
TEST(ActivationGpuTest, FarTails) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 50;
  for (const Act& a : Acts()) {
    for (auto [lo, hi] : {std::pair<double, double>{-12, -6}, {6, 12}}) {
      for (DType t : kGpuDTypes) {
        Tensor x = RandomTensor({4001}, DType::f32, seed++, lo, hi), dy = RandomTensor({4001}, DType::f32, seed++);
        const double rtol = t == DType::f32 ? 1e-4 : DefaultRtol(t);
        const double atol = t == DType::f32 ? 16 * std::ldexp(1.0, -149) : ScaledAtol({0.0}, 0, t);
        EXPECT_TRUE(CudaMatchesCpu(a.op, {x}, a.attrs, t, rtol, atol)) << a.op << " [" << lo << ", " << hi << "]";
        EXPECT_TRUE(CudaMatchesCpu(absl::StrCat(a.op, "_backward"), {x, dy}, a.attrs, t, rtol, atol))
            << a.op << " [" << lo << ", " << hi << "]";
      }
    }
  }
}

TEST(ActivationGpuTest, Geglu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  for (const char* approx : {"none", "tanh"}) {
    Attrs attrs{{"approximate", std::string(approx)}};
    for (const Shape& s : std::vector<Shape>{{2}, {3, 10}, {2, 7, 26}, {2, 256, 2560}}) {
      Shape half = s;
      half[s.rank() - 1] /= 2;
      for (DType t : kGpuDTypes) {
        Tensor x = RandomTensor(s, DType::f32, seed++, -4, 4), dy = RandomTensor(half, DType::f32, seed++);
        EXPECT_TRUE(CudaMatchesCpu("geglu", {x}, attrs, t)) << s.ToString();
        EXPECT_TRUE(CudaMatchesCpu("geglu_backward", {x, dy}, attrs, t)) << s.ToString();
      }
    }
  }
}

}  // namespace
}  // namespace cf::testing
