// Microbenchmarks of the data-movement ops at SD1.5 shapes (batch 2):
// the attention head permute [2, N, 8, 40] -> [2, 8, N, 40], NHWC <-> NCHW at
// [2, H, W, 320], the U-Net skip concat [2, H, W, 640] + [2, H, W, 320] on
// channels, and the 3x3-conv zero pad, for the 512x512 (64x64 latent) and
// 1024x1024 (128x128) resolutions. The kernel is called directly (no
// executor); counters and timing as in bench/support/bench_harness.h (GB/s:
// bytes read + written per second of kernel time). CPU runs use the 512x512
// shapes in f32 only, so the binary stays well under a minute.
#include "bench/support/bench_harness.h"

namespace cf::bench {
namespace {

// Latent side s (64 or 128), tokens s*s.
std::vector<OpCase> Cases(int64_t s) {
  const int64_t n = s * s;
  using Ints = std::vector<int64_t>;
  return {
      {"heads [2,N,8,40]->[2,8,N,40]", "permute", {{"perm", Ints{0, 2, 1, 3}}}, {{2, n, 8, 40}}},
      {"NHWC->NCHW", "permute", {{"perm", Ints{0, 3, 1, 2}}}, {{2, s, s, 320}}},
      {"NCHW->NHWC", "permute", {{"perm", Ints{0, 2, 3, 1}}}, {{2, 320, s, s}}},
      {"skip concat C 640+320", "concat", {{"axis", int64_t{3}}}, {{2, s, s, 640}, {2, s, s, 320}}},
      {"conv pad 1", "pad", {{"pads", Ints{0, 0, 1, 1, 1, 1, 0, 0}}}, {{2, s, s, 320}}},
  };
}

[[maybe_unused]] const bool kRegistered = RegisterLatentCaseBenchmarks("Shape", Cases, /*cpu_min_time=*/0.2);

}  // namespace
}  // namespace cf::bench
