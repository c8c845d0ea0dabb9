// The kernels of kdev_samples.cuh compiled by nvcc: the check that code
// written against runtime/kdev/kdev.h builds for the GPU and lowers to the
// plain instructions (docs/kernel-interpreter.md, "nvcc lowering"). The same
// source runs on the CPU interpreter in tests/runtime/kdev_samples_interp_test.cc.
#include "runtime/kdev/kdev_samples.cuh"

namespace cf::kdev_samples {

template __global__ void BlockSum<float>(kd::Ptr<const float>, kd::Ptr<float>, int64_t);
template __global__ void BlockSum<kd::half>(kd::Ptr<const kd::half>, kd::Ptr<float>, int64_t);
template __global__ void Transpose<float>(kd::Ptr<const float>, kd::Ptr<float>, int, int);
template __global__ void MmaGemm<kd::half>(kd::Ptr<const kd::half>, kd::Ptr<const kd::half>, kd::Ptr<float>, int, int,
                                           int);
template __global__ void MmaGemm<kd::bfloat16>(kd::Ptr<const kd::bfloat16>, kd::Ptr<const kd::bfloat16>,
                                               kd::Ptr<float>, int, int, int);

}  // namespace cf::kdev_samples
