// Random fills from the Philox stream (runtime/philox.h): the same seed and
// offset give bit-identical tensors on the CPU and on CUDA, whatever the dtype
// of the tensor's storage (f32 values are computed, then rounded to f16/bf16
// or widened to f64).
#pragma once

#include <cstdint>

#include "runtime/tensor.h"

namespace cf {

class Stream;

// Element i of `t` (row-major) gets element offset + i of the stream `seed`,
// so filling with offset k reproduces the tail of a fill from offset 0.
// Dtypes: f32, f16, bf16 on any device; f64 on the CPU. On CUDA the fill is
// asynchronous on `stream` when given, otherwise synchronous.
//
// Uniform in [lo, hi) from 24 random bits; requires lo <= hi.
Status FillUniform(Tensor& t, uint64_t seed, uint64_t offset, float lo, float hi,
                   Stream* stream = nullptr);
// Normal(mean, stddev^2) by Box-Muller; requires stddev >= 0. Samples are
// bounded by |z| < 5.8 standard deviations (24-bit uniforms).
Status FillNormal(Tensor& t, uint64_t seed, uint64_t offset, float mean, float stddev,
                  Stream* stream = nullptr);

// New tensors filled as above from offset 0 (the same seed gives the same
// values on the CPU and on CUDA):
//   CF_ASSIGN_OR_RETURN(Tensor w, RandomNormal({320, 3, 3, 320}, DType::f16, /*seed=*/1, 0.0f, 0.02f));
StatusOr<Tensor> RandomNormal(const Shape& shape, DType dtype, uint64_t seed, float mean = 0.0f,
                              float stddev = 1.0f, Device device = Device::CPU());
StatusOr<Tensor> RandomUniform(const Shape& shape, DType dtype, uint64_t seed, float lo = 0.0f,
                               float hi = 1.0f, Device device = Device::CPU());

namespace detail {
enum class RngDistribution : uint8_t { kUniform, kNormal };
// CUDA side of the fills (rng.cu): n elements of `dtype` (f32, f16 or bf16)
// at `data` on device `ordinal`; `stream` is a cudaStream_t (null: default
// stream, then synchronise). (a, b) is (lo, hi) or (mean, stddev).
Status FillRandomCuda(void* data, DType dtype, int64_t n, RngDistribution dist, uint64_t seed,
                      uint64_t offset, float a, float b, int ordinal, void* stream);
}  // namespace detail

}  // namespace cf
