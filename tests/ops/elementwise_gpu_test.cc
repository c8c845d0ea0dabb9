// CUDA kernels of the elementwise family against the CPU ones (outputs
// poisoned first) in f32, f16 and bf16.
#include "ops/elementwise/elementwise.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

TEST(ElementwiseGpuTest, Binary) {
  CF_SKIP_WITHOUT_GPU();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{7}, {7}},                       // flat, tail only
      {{3, 5, 1024}, {3, 5, 1024}},     // flat, vectorised
      {{3, 5, 1027}, {3, 5, 1027}},     // flat, vectorised + tail
      {{4, 6, 320}, {320}},             // per-channel vector
      {{2, 3, 5, 7}, {}},               // scalar
      {{1}, {5, 3}},
      {{2, 5, 1}, {2, 1, 7}},
      {{3, 1, 4, 1, 5}, {2, 1, 2, 1}},
      {{2, 8, 8, 64}, {2, 1, 1, 64}},   // time embedding add
      {{2, 1, 2, 1, 2, 1, 2, 3}, {2, 1, 2, 1, 2, 1, 3}},
  };
  uint64_t seed = 1;
  for (const char* op : {"add", "sub", "mul", "div"}) {
    for (const auto& [sa, sb] : cases) {
      for (DType t : kGpuDTypes) {
        Tensor a = RandomTensor(sa, DType::f32, seed++);
        Tensor b = std::string(op) == "div" ? RandomTensor(sb, DType::f32, seed++, 0.5, 2)
                                            : RandomTensor(sb, DType::f32, seed++);
        EXPECT_TRUE(CudaMatchesCpu(op, {a, b}, {}, t)) << op << " " << sa.ToString() << " x " << sb.ToString();
      }
    }
  }
}

TEST(ElementwiseGpuTest, Unary) {
  CF_SKIP_WITHOUT_GPU();
  struct U {
    const char* op;
    Attrs attrs;
    double lo, hi;
  };
  uint64_t seed = 100;
  for (const U& u : std::vector<U>{{"scale", Attrs{{"mul", 1.5}, {"add", -0.25}}, -2, 2},
                                   {"exp", {}, -3, 3},
                                   {"sqrt", {}, 0.1, 4},
                                   {"rsqrt", {}, 0.1, 4},
                                   {"neg", {}, -2, 2},
                                   {"square", {}, -2, 2}}) {
    for (const Shape& s : std::vector<Shape>{{}, {13}, {3, 7, 11}, {2, 4099}, {64, 1024}}) {
      for (DType t : kGpuDTypes) {
        EXPECT_TRUE(CudaMatchesCpu(u.op, {RandomTensor(s, DType::f32, seed++, u.lo, u.hi)}, u.attrs, t))
            << u.op << " " << s.ToString();
      }
    }
  }
}

TEST(ElementwiseGpuTest, SumToAndBroadcastTo) {
  CF_SKIP_WITHOUT_GPU();
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{5, 7}, {7}},          {{5, 7}, {5, 1}},          {{3, 4, 5}, {3, 1, 5}},
      {{2, 9, 10, 13}, {13}}, {{3, 4, 5, 6}, {4, 1, 6}}, {{3, 4}, {}},
      {{2, 300000}, {1}},     // one long row: split, partial sums in the workspace
      {{20000, 5}, {5}},      // long columns: split
      {{2, 64, 64, 320}, {320}},  // bias gradient at SD latent size
  };
  uint64_t seed = 200;
  for (const auto& [sx, st] : cases) {
    const std::vector<int64_t> target(st.dims().begin(), st.dims().end());
    const std::vector<int64_t> full(sx.dims().begin(), sx.dims().end());
    for (DType t : kGpuDTypes) {
      EXPECT_TRUE(CudaMatchesCpu("sum_to", {RandomTensor(sx, DType::f32, seed++)}, Attrs{{"shape", target}}, t))
          << sx.ToString() << " -> " << st.ToString();
      EXPECT_TRUE(CudaMatchesCpu("broadcast_to", {RandomTensor(st, DType::f32, seed++)}, Attrs{{"shape", full}}, t))
          << st.ToString() << " -> " << sx.ToString();
    }
  }
  Attrs axes{{"shape", std::vector<int64_t>{3, 4, 5, 2}}, {"axes", std::vector<int64_t>{1, 3}}};
  for (DType t : kGpuDTypes)
    EXPECT_TRUE(CudaMatchesCpu("broadcast_to", {RandomTensor({3, 5}, DType::f32, 300)}, axes, t));
}

TEST(ElementwiseGpuTest, Cast) {
  CF_SKIP_WITHOUT_GPU();
  const DType all[] = {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64};
  uint64_t seed = 400;
  for (DType from : all) {
    for (DType to : all) {
      Tensor x = IsFloating(from) ? testing::CastTo(RandomTensor({3, 1001}, DType::f32, seed++, -300, 300), from)
                                  : RandomIndices({3, 1001}, from, seed++, 1000);
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("cast", {x}, Attrs{{"dtype", to}}));
      CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunOp1("cast", {x.To(Device::CUDA()).value()}, Attrs{{"dtype", to}},
                                                 Device::CUDA()));
      EXPECT_TRUE(testing::AllClose(ToDoubles(got), ToDoubles(want), 0, 0))
          << DTypeName(from) << " -> " << DTypeName(to);
    }
  }
}

}  // namespace
}  // namespace cf::testing
