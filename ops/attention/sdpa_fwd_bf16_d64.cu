// The bf16, d = 64 instantiation of the attention forward launcher (one
// translation unit per (dtype, head dim): sdpa_cuda.h).
#define CF_SDPA_DEFINE_LAUNCHERS  // the launcher templates of sdpa_kernels.cuh
#include "ops/attention/sdpa_kernels.cuh"

namespace cf {
CF_SDPA_FWD_INSTANTIATE(__nv_bfloat16, 64)
}  // namespace cf
