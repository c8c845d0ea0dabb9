#include "runtime/rng.h"

#include <limits>

#include "runtime/philox.h"
#include "runtime/stream.h"
#include "runtime/thread_pool.h"

namespace cf {
namespace {

using detail::RngDistribution;

CF_HD void Store(float* out, float v) { *out = v; }
CF_HD void Store(double* out, float v) { *out = v; }
CF_HD void Store(f16_t* out, float v) { out->bits = F32ToF16Bits(v); }
CF_HD void Store(bf16_t* out, float v) { out->bits = F32ToBF16Bits(v); }

// Fills out[0, n) with stream elements [offset, offset + n), one Philox
// block (4 elements) at a time, blocks spread over the thread pool.
template <typename T>
void FillCpu(T* out, int64_t n, RngDistribution dist, PhiloxKey key, uint64_t offset, float a,
             float b) {
  const uint64_t end = offset + static_cast<uint64_t>(n);
  const uint64_t first_block = offset >> 2;
  const int64_t num_blocks = static_cast<int64_t>(((end - 1) >> 2) - first_block + 1);
  ParallelFor(0, num_blocks, 1024, [&](int64_t jb, int64_t je) {
    for (int64_t j = jb; j < je; ++j) {
      const uint64_t block = first_block + static_cast<uint64_t>(j);
      float v[4];
      if (dist == RngDistribution::kUniform) {
        PhiloxUniformBlock(key, block, a, b, v);
      } else {
        PhiloxNormalBlock(key, block, a, b, v);
      }
      for (int lane = 0; lane < 4; ++lane) {
        const uint64_t g = block * 4 + static_cast<uint64_t>(lane);
        if (g >= offset && g < end) Store(out + (g - offset), v[lane]);
      }
    }
  });
}

Status Fill(const char* op, Tensor& t, RngDistribution dist, uint64_t seed, uint64_t offset,
            float a, float b, Stream* stream) {
  CF_CHECK_ARG(t.defined(), op, ": undefined tensor");
  const DType dt = t.dtype();
  CF_CHECK_ARG(dt == DType::f32 || dt == DType::f16 || dt == DType::bf16 ||
                   (dt == DType::f64 && t.device().is_cpu()),
               op, ": unsupported tensor ", t.DebugString(),
               " (f32, f16, bf16 on any device, f64 on the CPU)");
  const int64_t n = t.numel();
  CF_CHECK_ARG(offset <= std::numeric_limits<uint64_t>::max() - static_cast<uint64_t>(n), op,
               ": offset ", offset, " + ", n, " elements overflows the 64-bit stream index");
  if (stream != nullptr) {
    CF_CHECK_ARG(stream->device() == t.device(), op, ": stream on ", stream->device().ToString(),
                 " for ", t.DebugString());
  }
  if (n == 0) return absl::OkStatus();
  if (t.device().is_cuda()) {
    return detail::FillRandomCuda(t.raw(), dt, n, dist, seed, offset, a, b, t.device().ordinal,
                                  stream != nullptr ? stream->native() : nullptr);
  }
  const PhiloxKey key{seed};
  switch (dt) {
    case DType::f32: FillCpu(t.data<float>(), n, dist, key, offset, a, b); break;
    case DType::f64: FillCpu(t.data<double>(), n, dist, key, offset, a, b); break;
    case DType::f16: FillCpu(t.data<f16_t>(), n, dist, key, offset, a, b); break;
    case DType::bf16: FillCpu(t.data<bf16_t>(), n, dist, key, offset, a, b); break;
    default: break;  // rejected above
  }
  return absl::OkStatus();
}

}  // namespace

Status FillUniform(Tensor& t, uint64_t seed, uint64_t offset, float lo, float hi, Stream* stream) {
  CF_CHECK_ARG(lo <= hi, "FillUniform: need lo <= hi, got [", lo, ", ", hi, ")");
  return Fill("FillUniform", t, RngDistribution::kUniform, seed, offset, lo, hi, stream);
}

Status FillNormal(Tensor& t, uint64_t seed, uint64_t offset, float mean, float stddev,
                  Stream* stream) {
  CF_CHECK_ARG(stddev >= 0, "FillNormal: need stddev >= 0, got ", stddev);
  return Fill("FillNormal", t, RngDistribution::kNormal, seed, offset, mean, stddev, stream);
}

StatusOr<Tensor> RandomNormal(const Shape& shape, DType dtype, uint64_t seed, float mean, float stddev,
                              Device device) {
  CF_ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(shape, dtype, device));
  CF_RETURN_IF_ERROR(FillNormal(t, seed, 0, mean, stddev));
  return t;
}

StatusOr<Tensor> RandomUniform(const Shape& shape, DType dtype, uint64_t seed, float lo, float hi, Device device) {
  CF_ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(shape, dtype, device));
  CF_RETURN_IF_ERROR(FillUniform(t, seed, 0, lo, hi));
  return t;
}

#if !CF_HAS_CUDA
Status detail::FillRandomCuda(void*, DType, int64_t, RngDistribution, uint64_t, uint64_t, float,
                              float, int ordinal, void*) {
  return absl::FailedPreconditionError(absl::StrCat(
      "random fill on cuda:", ordinal, " requested but this build has no CUDA backend"));
}
#endif

}  // namespace cf
