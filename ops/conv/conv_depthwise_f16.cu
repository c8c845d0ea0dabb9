// The f16 instantiation of the depthwise conv2d CUDA kernels (one dtype per
// translation unit so they compile in parallel).
#include "ops/conv/conv_depthwise_launch.cuh"

namespace cf {
CF_DEPTHWISE_CUDA_INSTANTIATE(__half)
CF_DEPTHWISE_CUDA_INSTANTIATE_F32_OUT(__half)
}  // namespace cf
