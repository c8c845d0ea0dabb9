// CUDA kernels of mse_loss and mse_loss_backward against the CPU ones
// (outputs poisoned first) in f32, f16 and bf16.
#include <cmath>

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

// No elements, with per-sample weights: the mean of nothing is NaN on both
// sides, and the finishing kernel must not read the (possibly empty) weights.
TEST(LossGpuTest, MseOfNothingWithWeights) {
  CF_SKIP_WITHOUT_GPU();
  for (const Shape& s : {Shape({0, 3}), Shape({3, 0}), Shape({0})}) {
    for (DType t : kGpuDTypes) {
      Tensor p = CastTo(RandomTensor(s, DType::f32, 1), t), y = CastTo(RandomTensor(s, DType::f32, 2), t);
      Tensor w = CastTo(RandomTensor({s[0]}, DType::f32, 3, 0.5, 2), t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor cpu, RunOp1("mse_loss", {p, y, w}));
      CF_ASSERT_OK_AND_ASSIGN(Tensor gpu, RunOp1("mse_loss",
                                                 {p.To(Device::CUDA(0)).value(), y.To(Device::CUDA(0)).value(),
                                                  w.To(Device::CUDA(0)).value()},
                                                 {}, Device::CUDA(0)));
      EXPECT_TRUE(std::isnan(ToDoubles(cpu)[0])) << s.ToString();
      EXPECT_TRUE(std::isnan(ToDoubles(gpu)[0])) << s.ToString() << " " << DTypeName(t);
      Tensor dy = CastTo(RandomTensor({}, DType::f32, 4), t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor dp, RunOp1("mse_loss_backward",
                                                {p.To(Device::CUDA(0)).value(), y.To(Device::CUDA(0)).value(),
                                                 dy.To(Device::CUDA(0)).value(), w.To(Device::CUDA(0)).value()},
                                                {}, Device::CUDA(0)));
      EXPECT_EQ(dp.shape(), s);
    }
  }
}

}  // namespace
}  // namespace cf::testing
