// The f32, d = 72 instantiation of the attention forward launcher (one
// translation unit per (dtype, head dim): sdpa_cuda.h).
#define CF_SDPA_DEFINE_LAUNCHERS  // the launcher templates of sdpa_kernels.cuh
#include "ops/attention/sdpa_kernels.cuh"

namespace cf {
CF_SDPA_FWD_INSTANTIATE(float, 72)
}  // namespace cf
