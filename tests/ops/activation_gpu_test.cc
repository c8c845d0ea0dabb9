// CUDA kernels of the activations and their backward ops against the CPU
// ones (outputs poisoned first) in f32, f16 and bf16.
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
