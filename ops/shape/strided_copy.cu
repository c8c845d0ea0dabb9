// CUDA side of the copy engine (strided_copy.h): the launcher. The kernels and
// the path / vector-width / index-type / grid decisions are in
// strided_copy_kernels.cuh, shared with tests/ops/shape_interp_test.cc.
#include <cstdint>

#include "ops/cuda_util.cuh"
#include "ops/shape/strided_copy.h"
#include "ops/shape/strided_copy_kernels.cuh"

namespace cf {
namespace {

using namespace strided_copy_kernels;

template <int V, typename I>
Status LaunchGenericIndexed(void* dst, const void* src, const CopyLayout& l, cudaStream_t stream) {
  using T = typename CopyWord<V>::T;
  const int64_t n = l.numel();
  const GridStride g = CopyGridFor(n);
  StridedCopyKernel<T, I><<<g.grid, g.block, 0, stream>>>(static_cast<T*>(dst), static_cast<const T*>(src),
                                                          ToDev<I>(l), static_cast<I>(n));
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <int V>
Status LaunchGeneric(void* dst, const void* src, const CopyLayout& l, cudaStream_t stream) {
  if (CopyIndex32(l)) return LaunchGenericIndexed<V, uint32_t>(dst, src, l, stream);
  return LaunchGenericIndexed<V, int64_t>(dst, src, l, stream);
}

template <int V>
Status LaunchTransposed(void* dst, const void* src, const CopyLayout& l, int q, cudaStream_t stream) {
  using T = typename CopyWord<V>::T;
  const TransposeLaunch t = TransposeLaunchFor(l, q);
  TransposeTiledKernel<T><<<t.grid, t.block, 0, stream>>>(static_cast<T*>(dst), static_cast<const T*>(src), t.batch,
                                                          t.num_batch, t.M, t.N, t.src_n, t.dst_m);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename F>
Status BySize(int64_t v, F&& f) {
  switch (v) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    case 16: return f(std::integral_constant<int, 16>{});
    default: return absl::InternalError(absl::StrCat("strided copy: element size ", v));
  }
}

}  // namespace

Status StridedCopyCuda(void* dst, const void* src, const CopyLayout& layout, int64_t elem_size, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  const CopyPlan p =
      StridedCopyPlanFor(layout, elem_size, reinterpret_cast<uintptr_t>(dst), reinterpret_cast<uintptr_t>(src));
  switch (p.path) {
    case CopyPath::kEmpty:
      return absl::OkStatus();
    case CopyPath::kMemcpy:
      CF_CUDA_CHECK(
          cudaMemcpyAsync(dst, src, static_cast<size_t>(p.l.numel() * elem_size), cudaMemcpyDeviceToDevice, stream));
      return absl::OkStatus();
    case CopyPath::kTransposed:
      return BySize(p.vec, [&](auto vs) { return LaunchTransposed<decltype(vs)::value>(dst, src, p.l, p.q, stream); });
    case CopyPath::kGeneric:
      break;
  }
  return BySize(p.vec, [&](auto vs) { return LaunchGeneric<decltype(vs)::value>(dst, src, p.l, stream); });
}

}  // namespace cf
