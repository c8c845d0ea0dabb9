// Microbenchmarks of the norm family at the models' shapes: group_norm on SD
// latents [2, 64, 64, 320] (512x512) and [2, 128, 128, 320] (1024x1024) with
// 32 groups, layer_norm on [2, 4096, 320] (SD tokens) and [2, 4096, 1152]
// (PixArt, no affine, eps 1e-6), adaln_modulate on PixArt tokens; forward and
// backward. The kernel is called directly (no executor); counters and timing
// as in bench/support/bench_harness.h. CPU runs use f32 and the smaller
// shapes so the whole binary takes well under a minute.
#include "bench/support/bench_harness.h"

namespace cf::bench {
namespace {

const std::vector<OpCase>& Cases() {
  static const std::vector<OpCase> cases = [] {
    const Shape l64{2, 64, 64, 320}, l128{2, 128, 128, 320}, c320{320};
    const Shape t320{2, 4096, 320}, t1152{2, 4096, 1152}, mod{2, 1, 1152};
    const Attrs g32{{"groups", int64_t{32}}}, pixart{{"eps", 1e-6}};
    return std::vector<OpCase>{
        {"group_norm [2,64,64,320] g32 affine", "group_norm", g32, {l64, c320, c320}, true},
        {"group_norm [2,128,128,320] g32 affine", "group_norm", g32, {l128, c320, c320}, false},
        {"group_norm_backward [2,64,64,320]", "group_norm_backward", g32, {l64, l64, c320}, true},
        {"group_norm_backward [2,128,128,320]", "group_norm_backward", g32, {l128, l128, c320}, false},
        {"layer_norm [2,4096,320] affine", "layer_norm", {}, {t320, c320, c320}, true},
        {"layer_norm [2,4096,1152] no affine", "layer_norm", pixart, {t1152}, true},
        {"layer_norm_backward [2,4096,320] affine", "layer_norm_backward", {}, {t320, t320, c320}, true},
        {"layer_norm_backward [2,4096,1152]", "layer_norm_backward", pixart, {t1152, t1152}, false},
        {"adaln_modulate [2,4096,1152]", "adaln_modulate", {}, {t1152, mod, mod}, true},
        {"adaln_modulate_backward [2,4096,1152]", "adaln_modulate_backward", {}, {t1152, mod, t1152}, false},
    };
  }();
  return cases;
}

[[maybe_unused]] const bool kRegistered = RegisterCaseBenchmarks("Norm", Cases, /*cpu_min_time=*/0.05);

}  // namespace
}  // namespace cf::bench
