// The f32 instantiation of the neighborhood-attention launchers (one
// translation unit per dtype so they compile in parallel; kernels and
// launch geometry in neighborhood_kernels.cuh).
#define CF_NA_DEFINE_LAUNCHERS
#include "ops/attention/neighborhood_kernels.cuh"

namespace cf {
CF_NA_INSTANTIATE(float)
}  // namespace cf
