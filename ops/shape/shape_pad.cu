// CUDA launcher of `pad` (definition in shape_pad.cc; the kernel and its plan
// in shape_pad_kernels.cuh).
#include <cstdint>

#include "ops/cuda_util.cuh"
#include "ops/shape/pad_layout.h"
#include "ops/shape/shape_pad_kernels.cuh"

namespace cf {
namespace {

using namespace pad_kernels;

template <int V, typename I>
Status Launch(void* dst, const void* src, const PadPlan& p, cudaStream_t stream) {
  using T = typename PadWord<V>::T;
  int64_t n = 0;
  const DevPad<I> d = DevPadOf<I>(p.l, &n);
  const GridStride g = PadGridFor(n);
  PadKernel<T, I><<<g.grid, g.block, 0, stream>>>(static_cast<T*>(dst), static_cast<const T*>(src), d,
                                                  static_cast<I>(n), PadFill<T>(p));
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <int V>
Status LaunchIndexed(void* dst, const void* src, const PadPlan& p, cudaStream_t stream) {
  if (PadIndex32(p.l)) return Launch<V, uint32_t>(dst, src, p, stream);
  return Launch<V, int64_t>(dst, src, p, stream);
}

}  // namespace

Status PadCuda(void* dst, const void* src, const PadLayout& layout, int64_t elem_size, uint64_t fill_bits,
               void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const PadPlan p = PadPlanFor(layout, elem_size, fill_bits, reinterpret_cast<uintptr_t>(dst),
                               reinterpret_cast<uintptr_t>(src));
  switch (p.vec) {
    case 1: return LaunchIndexed<1>(dst, src, p, stream);
    case 2: return LaunchIndexed<2>(dst, src, p, stream);
    case 4: return LaunchIndexed<4>(dst, src, p, stream);
    case 8: return LaunchIndexed<8>(dst, src, p, stream);
    case 16: return LaunchIndexed<16>(dst, src, p, stream);
    default: return absl::InternalError(absl::StrCat("pad: element size ", elem_size));
  }
}

}  // namespace cf
