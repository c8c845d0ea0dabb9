// CUDA kernels of mse_loss and mse_loss_backward against the CPU ones
// (outputs poisoned first) in f32, f16 and bf16.
#include "ops/loss/loss.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

TEST(LossGpuTest, Mse) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const Shape& s : std::vector<Shape>{{1}, {7}, {3, 5}, {2, 64, 64, 4}, {4, 128, 128, 4}}) {
    for (bool weighted : {false, true}) {
      for (DType t : kGpuDTypes) {
        std::vector<Tensor> ins = {RandomTensor(s, DType::f32, seed++), RandomTensor(s, DType::f32, seed++)};
        std::vector<Tensor> back = ins;
        back.push_back(RandomTensor({}, DType::f32, seed++, 0.5, 2));  // dy
        if (weighted) {
          Tensor w = RandomTensor({s[0]}, DType::f32, seed++, 0.1, 5);
          ins.push_back(w);
          back.push_back(w);
        }
        EXPECT_TRUE(CudaMatchesCpu("mse_loss", ins, {}, t)) << s.ToString() << " weighted " << weighted;
        EXPECT_TRUE(CudaMatchesCpu("mse_loss_backward", back, {}, t)) << s.ToString() << " weighted " << weighted;
      }
    }
  }
}

}  // namespace
}  // namespace cf::testing
