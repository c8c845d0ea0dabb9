// The bf16 instantiation of the depthwise conv2d CUDA kernels (one dtype per
// translation unit so they compile in parallel).
#include "ops/conv/conv_depthwise_launch.cuh"

namespace cf {
CF_DEPTHWISE_CUDA_INSTANTIATE(__nv_bfloat16)
CF_DEPTHWISE_CUDA_INSTANTIATE_F32_OUT(__nv_bfloat16)
}  // namespace cf
