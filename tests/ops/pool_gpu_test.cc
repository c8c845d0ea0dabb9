// CUDA kernels of the pool family against the CPU kernels (outputs poisoned
// first), forward and backward, in f32, f16 and bf16, at odd shapes and the
// ConvBlock shapes ([2, 64, 64, 160] -> 32x32 and back).
#include "ops/pool/pool.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// Forward from `xs`, and the backward op from a dy of the forward's output shape.
void CheckBoth(const std::string& op, const Shape& xs, const Shape& ys, const Attrs& attrs, uint64_t seed) {
  Attrs battrs = attrs;
  battrs.Set("input_hw", std::vector<int64_t>{xs[1], xs[2]});
  for (DType dt : kGpuDTypes) {
    EXPECT_TRUE(CudaMatchesCpu(op, {RandomTensor(xs, DType::f32, seed)}, attrs, dt)) << xs.ToString();
    EXPECT_TRUE(CudaMatchesCpu(op + "_backward", {RandomTensor(ys, DType::f32, seed + 1)}, battrs, dt))
        << ys.ToString();
  }
}

TEST(PoolGpu, AvgPool2d) {
  CF_SKIP_WITHOUT_GPU();
  CheckBoth("avg_pool2d", Shape({2, 64, 64, 160}), Shape({2, 32, 32, 160}), Attrs{{"kernel", std::vector<int64_t>{2}}},
            1);
  CheckBoth("avg_pool2d", Shape({2, 7, 9, 5}), Shape({2, 4, 5, 5}),
            Attrs{{"kernel", std::vector<int64_t>{3}}, {"stride", std::vector<int64_t>{2}},
                  {"padding", std::vector<int64_t>{1}}},
            2);
  CheckBoth("avg_pool2d", Shape({1, 11, 13, 3}), Shape({1, 3, 11, 3}),
            Attrs{{"kernel", std::vector<int64_t>{5, 3}}, {"stride", std::vector<int64_t>{3, 1}},
                  {"padding", std::vector<int64_t>{2, 0}}},
            3);
}

TEST(PoolGpu, AdaptiveAvgPool2d) {
  CF_SKIP_WITHOUT_GPU();
  auto attrs = [](int64_t oh, int64_t ow) { return Attrs{{"output_size", std::vector<int64_t>{oh, ow}}}; };
  CheckBoth("adaptive_avg_pool2d", Shape({2, 64, 64, 160}), Shape({2, 32, 32, 160}), attrs(32, 32), 10);
  CheckBoth("adaptive_avg_pool2d", Shape({2, 64, 64, 160}), Shape({2, 1, 1, 160}), attrs(1, 1), 11);
  CheckBoth("adaptive_avg_pool2d", Shape({2, 9, 7, 5}), Shape({2, 4, 3, 5}), attrs(4, 3), 12);
  CheckBoth("adaptive_avg_pool2d", Shape({1, 5, 4, 3}), Shape({1, 12, 10, 3}), attrs(12, 10), 13);
}

TEST(PoolGpu, ResizeBilinear) {
  CF_SKIP_WITHOUT_GPU();
  auto attrs = [](int64_t oh, int64_t ow) { return Attrs{{"size", std::vector<int64_t>{oh, ow}}}; };
  CheckBoth("resize_bilinear", Shape({2, 32, 32, 160}), Shape({2, 64, 64, 160}), attrs(64, 64), 20);
  CheckBoth("resize_bilinear", Shape({2, 64, 64, 160}), Shape({2, 32, 32, 160}), attrs(32, 32), 21);
  CheckBoth("resize_bilinear", Shape({2, 7, 9, 3}), Shape({2, 13, 5, 3}), attrs(13, 5), 22);
  CheckBoth("resize_bilinear", Shape({1, 1, 1, 2}), Shape({1, 3, 3, 2}), attrs(3, 3), 23);
  CheckBoth("resize_bilinear", Shape({1, 3, 100, 1}), Shape({1, 40, 7, 1}), attrs(40, 7), 24);
}

TEST(PoolGpu, UpsampleNearest2x) {
  CF_SKIP_WITHOUT_GPU();
  // Channel bytes divisible by 16, 8, 4 and 2: every copy unit.
  for (const Shape& xs : {Shape({2, 32, 32, 320}), Shape({1, 3, 5, 6}), Shape({1, 4, 2, 2}), Shape({2, 3, 3, 3})})
    CheckBoth("upsample_nearest2x", xs, Shape({xs[0], 2 * xs[1], 2 * xs[2], xs[3]}), {}, 30);
}

}  // namespace
}  // namespace cf::testing
