// CUDA kernels of sum, mean, softmax and softmax_backward against the CPU
// ones (outputs poisoned first) in f32, f16 and bf16.
#include <cmath>

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

// A NaN anywhere in a row makes the whole row NaN, as on the CPU, also when
// it is the first value a lane (warp rows) or a thread (block rows) sees: the
// online maximum once skipped it there ([NaN, 1, 2] gave [NaN, 0.27, 0.73]).
TEST(ReduceGpuTest, SoftmaxNanPoisonsTheRow) {
  CF_SKIP_WITHOUT_GPU();
  struct Case {
    int64_t L;
    std::vector<int64_t> nan_at;  // NaN positions in row 1 (row 0 and row 2 stay finite)
  };
  const Case cases[] = {
      {3, {0}},        {3, {2}},     {40, {0}},    {40, {33}},  {1024, {5, 700}},  // warp rows
      {2000, {0}},     {2000, {255}}, {2000, {1999}}, {9000, {1023}},              // block rows
  };
  for (const Case& c : cases) {
    for (DType t : kGpuDTypes) {
      std::vector<double> v = ToDoubles(RandomTensor({3, c.L}, DType::f32, 7 + c.L, -3, 3));
      for (int64_t i : c.nan_at) v[c.L + i] = NAN;
      Tensor x = FromDoubles(v, {3, c.L}, t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("softmax", {CastTo(x, DType::f32)}));
      CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunOp1("softmax", {x.To(Device::CUDA(0)).value()}, {}, Device::CUDA(0)));
      const std::vector<double> w = ToDoubles(want), g = ToDoubles(got);
      for (int64_t r = 0; r < 3; ++r) {
        const std::vector<double> wr(w.begin() + r * c.L, w.begin() + (r + 1) * c.L);
        const std::vector<double> gr(g.begin() + r * c.L, g.begin() + (r + 1) * c.L);
        if (r == 1) {
          for (int64_t i = 0; i < c.L; ++i) {
            ASSERT_TRUE(std::isnan(wr[i])) << "cpu, L " << c.L << " element " << i;
            ASSERT_TRUE(std::isnan(gr[i])) << "cuda " << DTypeName(t) << ", L " << c.L << " element " << i << ": "
                                           << gr[i];
          }
        } else {
          EXPECT_TRUE(AllClose(gr, wr, DefaultRtol(t), ScaledAtol(wr, DefaultAtol(t), t))) << "row " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace cf::testing
