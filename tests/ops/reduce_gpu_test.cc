// CUDA kernels of sum, mean, softmax and softmax_backward against the CPU
// ones (outputs poisoned first) in f32, f16 and bf16.
#include "ops/reduce/reduce.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

TEST(ReduceGpuTest, SumAndMean) {
  CF_SKIP_WITHOUT_GPU();
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{7}, {}},
      {{3, 5}, {1}},
      {{3, 5}, {0}},
      {{2, 9, 11, 13}, {1, 2}},       // [A, R, B]
      {{2, 9, 11, 13}, {0, 2}},       // general
      {{2, 9, 11, 13}, {}},
      {{4, 1, 3}, {1}},
      {{}, {}},
      {{3000, 77}, {1}},              // many short rows: one warp per row
      {{2, 600000}, {}},              // one long row: split into chunks
      {{20000, 3}, {0}},              // long narrow columns: split
      {{2, 64, 64, 320}, {1, 2}},     // NHWC spatial mean at SD latent size
  };
  uint64_t seed = 1;
  for (const char* op : {"sum", "mean"}) {
    for (const auto& [s, axes] : cases) {
      for (bool keepdim : {false, true}) {
        for (DType t : kGpuDTypes) {
          EXPECT_TRUE(CudaMatchesCpu(op, {RandomTensor(s, DType::f32, seed++)},
                                     Attrs{{"axes", axes}, {"keepdim", keepdim}}, t))
              << op << " " << s.ToString();
        }
      }
    }
  }
}

TEST(ReduceGpuTest, Softmax) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  // Warp rows (<= 1024) and block rows (256 and 1024 threads).
  for (const Shape& s : std::vector<Shape>{{1}, {13}, {5, 77}, {2, 8, 1024}, {3, 1025}, {2, 4096}, {2, 9000}}) {
    for (DType t : kGpuDTypes) {
      Tensor x = RandomTensor(s, DType::f32, seed++, -20, 40), dy = RandomTensor(s, DType::f32, seed++);
      EXPECT_TRUE(CudaMatchesCpu("softmax", {x}, {}, t)) << s.ToString();
      // softmax_backward takes the softmax output.
      Tensor y = testing::RunOp1("softmax", {x}).value();
      EXPECT_TRUE(CudaMatchesCpu("softmax_backward", {y, dy}, {}, t)) << s.ToString();
    }
  }
}

}  // namespace
}  // namespace cf::testing
