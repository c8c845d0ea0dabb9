// CUDA kernels of the elementwise family against the CPU ones (outputs
// poisoned first) in f32, f16 and bf16.
#include <algorithm>
#include <cmath>

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
        // Wide divisors (tiny, huge, zero, inf) are in EdgeValues, compared
        // relatively.
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

// Edge values against the CPU kernels: zeros, subnormals, tiny and huge
// magnitudes, overflow to inf, infinities and NaN (the same pattern of NaN
// and inf on both sides; the rest relative, with an absolute floor of one
// subnormal spacing of the storage or of the f32 arithmetic).
double EdgeAtol(DType t) { return std::max(ScaledAtol({0.0}, 0, t), 2 * std::ldexp(1.0, -149)); }

::testing::AssertionResult CudaMatchesCpuWithSpecials(const std::string& op, const std::vector<Tensor>& ins,
                                                      const Attrs& attrs, DType t) {
  std::vector<Tensor> cpu, gpu;
  for (const Tensor& x : ins) {
    cpu.push_back(testing::CastTo(x, t));
    gpu.push_back(cpu.back().To(Device::CUDA(0)).value());
  }
  auto want = RunOp1(op, cpu, attrs);
  auto got = RunOp1(op, gpu, attrs, Device::CUDA(0));
  if (!want.ok() || !got.ok()) return ::testing::AssertionFailure() << op << ": a run failed";
  return AllCloseWithSpecials(ToDoubles(*got), ToDoubles(*want), DefaultRtol(t), EdgeAtol(t));
}

TEST(ElementwiseGpuTest, EdgeValues) {
  CF_SKIP_WITHOUT_GPU();
  const double inf = INFINITY, nan = NAN;
  const std::vector<double> exps = {-inf, -1e4, -746, -104, -103, -100, -88, -20, -1e-30, 0, 1e-30,
                                    11,   12,   88,   89,   709,  710,  inf, nan};
  const std::vector<double> roots = {-inf, -1, -1e-30, -0.0, 0, 1e-45, 1e-40, 6e-8, 1e-30, 2, 1e30, 3e38, inf, nan};
  const std::vector<double> num = {1, -1, 0, 0, 1, 1e30, 1e-30, inf, inf, 1e-40, 3, nan, -5, 65504, 1e38, 1e-38};
  const std::vector<double> den = {0, 0, 0, -0.0, inf, 1e-30, 1e30, inf, 2, 3, 7, 1, 1e-40, 1e-4, 0.1, 1e10};
  auto vec = [](const std::vector<double>& v) {
    return testing::FromDoubles(v, {static_cast<int64_t>(v.size())}, DType::f32);
  };
  uint64_t seed = 500;
  for (DType t : kGpuDTypes) {
    SCOPED_TRACE(DTypeName(t));
    EXPECT_TRUE(CudaMatchesCpuWithSpecials("exp", {vec(exps)}, {}, t));
    EXPECT_TRUE(CudaMatchesCpuWithSpecials("exp", {LogUniformTensor({3, 4099}, DType::f32, seed++, -6, 3)}, {}, t));
    for (const char* op : {"sqrt", "rsqrt"}) {
      EXPECT_TRUE(CudaMatchesCpuWithSpecials(op, {vec(roots)}, {}, t)) << op;
      EXPECT_TRUE(CudaMatchesCpuWithSpecials(op, {LogUniformTensor({3, 4099}, DType::f32, seed++, -40, 38, true)},
                                             {}, t))
          << op;
    }
    EXPECT_TRUE(CudaMatchesCpuWithSpecials("div", {vec(num), vec(den)}, {}, t));
    EXPECT_TRUE(CudaMatchesCpuWithSpecials(
        "div", {LogUniformTensor({3, 4099}, DType::f32, seed++, -20, 20), LogUniformTensor({3, 4099}, DType::f32, seed++, -20, 20)},
        {}, t));
    // A broadcast divisor of wide magnitudes (the per-channel path).
    EXPECT_TRUE(CudaMatchesCpuWithSpecials(
        "div", {RandomTensor({4, 6, 320}, DType::f32, seed++), LogUniformTensor({320}, DType::f32, seed++, -20, 20)},
        {}, t));
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

// Casts of NaN, infinities, overflow (f32 -> f16 / bf16 goes to inf),
// underflow to subnormals and zero, ties of the rounding, and the saturation
// of float -> integer (NaN -> 0) and i64 -> i32: the same values as the CPU.
TEST(ElementwiseGpuTest, CastSpecialsOverflowAndSaturation) {
  CF_SKIP_WITHOUT_GPU();
  const double inf = INFINITY, nan = NAN;
  const std::vector<double> floats = {nan, inf, -inf, 1e10, -1e10, 3e9, -3e9, 65504, 65520, -65520, 1e5, 3.4e38,
                                      3.3e38, 1e-8, 3e-8, -6e-8, 1e-40, 1e-45, -0.0, 0, 2.5, -2.5, 2.7, -2.7,
                                      2147483647.0, -2147483648.0, 1 + 1.0 / 1024 + 1.0 / 2048, 1 + 1.0 / 256 + 1.0 / 512};
  const DType float_types[] = {DType::f32, DType::f16, DType::bf16};
  const DType all[] = {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64};
  for (DType from : float_types) {
    Tensor x = testing::FromDoubles(floats, {static_cast<int64_t>(floats.size())}, from);
    for (DType to : all) {
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("cast", {x}, Attrs{{"dtype", to}}));
      CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunOp1("cast", {x.To(Device::CUDA()).value()}, Attrs{{"dtype", to}},
                                                 Device::CUDA()));
      EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(got), ToDoubles(want), 0, 0))
          << DTypeName(from) << " -> " << DTypeName(to);
    }
  }
  Tensor big = testing::FromDoubles({5e9, -5e9, 2147483648.0, -2147483649.0, 7, -7, 9.007199254740993e15}, {7},
                                    DType::i64);
  for (DType to : all) {
    CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("cast", {big}, Attrs{{"dtype", to}}));
    CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunOp1("cast", {big.To(Device::CUDA()).value()}, Attrs{{"dtype", to}},
                                               Device::CUDA()));
    EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(got), ToDoubles(want), 0, 0)) << "i64 -> " << DTypeName(to);
  }
  // The saturation itself (the CPU behaviour the GPU is compared with).
  CF_ASSERT_OK_AND_ASSIGN(Tensor sat, RunOp1("cast", {testing::FromDoubles({1e10, -1e10, nan}, {3}, DType::f32).To(
                                                         Device::CUDA()).value()},
                                             Attrs{{"dtype", DType::i32}}, Device::CUDA()));
  EXPECT_EQ(ToDoubles(sat), (std::vector<double>{2147483647.0, -2147483648.0, 0}));
}

}  // namespace
}  // namespace cf::testing
