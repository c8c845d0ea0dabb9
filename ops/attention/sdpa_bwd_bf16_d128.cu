// The bf16, d = 128 instantiation of the attention backward launcher (one
// translation unit per (dtype, head dim): sdpa_cuda.h).
#define CF_SDPA_DEFINE_LAUNCHERS  // the launcher templates of sdpa_kernels.cuh
#include "ops/attention/sdpa_kernels.cuh"

namespace cf {
CF_SDPA_BWD_INSTANTIATE(__nv_bfloat16, 128)
}  // namespace cf
