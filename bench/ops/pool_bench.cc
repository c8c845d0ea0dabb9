// Microbenchmarks of the pool family at ConvBlock and U-Net shapes: adaptive
// average pooling [2, 64, 64, 160] -> 32x32 (and global), bilinear resize
// 32x32 -> 64x64 and 64x64 -> 32x32 with 160 channels, avg_pool2d 2x2, and
// nearest 2x upsampling of SD's [2, 32, 32, 640] and [2, 64, 64, 320]
// decoder activations; forward and backward. The kernel is called directly
// (no executor); counters and timing as in bench/support/bench_harness.h.
// CPU runs use f32 so the whole binary takes well under a minute.
#include "bench/support/bench_harness.h"

namespace cf::bench {
namespace {

const std::vector<OpCase>& Cases() {
  static const std::vector<OpCase> cases = [] {
    using Ints = std::vector<int64_t>;
    const Shape a64{2, 64, 64, 160}, a32{2, 32, 32, 160}, a1{2, 1, 1, 160};
    const Attrs to32{{"size", Ints{32, 32}}}, to64{{"size", Ints{64, 64}}};
    const Attrs hw64{{"input_hw", Ints{64, 64}}}, hw32{{"input_hw", Ints{32, 32}}};
    return std::vector<OpCase>{
        {"adaptive_avg_pool2d [2,64,64,160] -> 32x32", "adaptive_avg_pool2d", {{"output_size", Ints{32, 32}}}, {a64},
         true},
        {"adaptive_avg_pool2d [2,64,64,160] -> 1x1", "adaptive_avg_pool2d", {{"output_size", Ints{1, 1}}}, {a64},
         true},
        {"adaptive_avg_pool2d_backward 32x32 -> [2,64,64,160]", "adaptive_avg_pool2d_backward", hw64, {a32}, true},
        {"adaptive_avg_pool2d_backward 1x1 -> [2,64,64,160]", "adaptive_avg_pool2d_backward", hw64, {a1}, true},
        {"resize_bilinear [2,32,32,160] -> 64x64", "resize_bilinear", to64, {a32}, true},
        {"resize_bilinear [2,64,64,160] -> 32x32", "resize_bilinear", to32, {a64}, true},
        {"resize_bilinear_backward 64x64 -> [2,32,32,160]", "resize_bilinear_backward", hw32, {a64}, true},
        {"resize_bilinear_backward 32x32 -> [2,64,64,160]", "resize_bilinear_backward", hw64, {a32}, true},
        {"avg_pool2d [2,64,64,160] k2", "avg_pool2d", {{"kernel", Ints{2}}}, {a64}, true},
        {"avg_pool2d_backward k2 -> [2,64,64,160]", "avg_pool2d_backward", {{"kernel", Ints{2}}, {"input_hw", Ints{64, 64}}},
         {a32}, true},
        {"upsample_nearest2x [2,32,32,640]", "upsample_nearest2x", {}, {{2, 32, 32, 640}}, true},
        {"upsample_nearest2x [2,64,64,320]", "upsample_nearest2x", {}, {{2, 64, 64, 320}}, false},
        {"upsample_nearest2x_backward -> [2,32,32,640]", "upsample_nearest2x_backward", {}, {{2, 64, 64, 640}}, true},
    };
  }();
  return cases;
}

[[maybe_unused]] const bool kRegistered = RegisterCaseBenchmarks("Pool", Cases, /*cpu_min_time=*/0.05);

}  // namespace
}  // namespace cf::bench
