// The copy engine behind the data-movement ops (reshape, permute, concat,
// split, slice, slice_backward, pad): a rank <= 8 box of elements copied
// between two strided layouts, on the CPU or on CUDA. The ops only describe
// their copy as a CopyLayout; the engine canonicalises it (drops size-1 dims,
// merges dims contiguous on both sides) and picks a path:
//   CPU:  rows of memcpy when the last dim is contiguous on both sides; a
//         32x32-tiled transpose when the destination's last dim is strided in
//         the source and another dim is contiguous there; else a strided loop.
//   CUDA: 16/8/4/2-byte vector copies when the last dim is contiguous on both
//         sides; a shared-memory tiled transpose for [batch.., M, N] with M
//         contiguous in the source and N contiguous in the destination
//         (2D transposes, NHWC <-> NCHW); else one thread per element.
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#include <array>
#include <cstdint>

#include "ops/op.h"

namespace cf {

struct CopyLayout {
  static constexpr int kMaxRank = 8;
  int rank = 0;
  std::array<int64_t, kMaxRank> sizes{};        // elements per dim
  std::array<int64_t, kMaxRank> src_strides{};  // in elements
  std::array<int64_t, kMaxRank> dst_strides{};  // in elements

  int64_t numel() const;
  // Appends a dim (outermost first).
  void Add(int64_t size, int64_t src_stride, int64_t dst_stride);
  // Drops size-1 dims and merges neighbours that are contiguous on both sides.
  // A copy of zero elements keeps a zero-size dim; a scalar becomes [1].
  CopyLayout Canonical() const;
};

// Row-major strides of `shape` (elements).
std::array<int64_t, CopyLayout::kMaxRank> RowMajorStrides(const Shape& shape);

// dst[i . dst_strides] = src[i . src_strides] for every i in the box; elements
// are `elem_size` bytes (1, 2, 4 or 8). Runs on ctx.device (CUDA: async on
// ctx's stream). Source and destination must not overlap.
Status StridedCopy(const KernelContext& ctx, void* dst, const void* src, const CopyLayout& layout,
                   int64_t elem_size);
// Sets `bytes` bytes at dst to zero on ctx.device.
Status ZeroBytes(const KernelContext& ctx, void* dst, int64_t bytes);

// The CPU engine (exposed for tests and for kernels that know they are on the CPU).
void StridedCopyCpu(void* dst, const void* src, const CopyLayout& layout, int64_t elem_size);

#if CF_HAS_CUDA
// The CUDA engine; `stream` is a cudaStream_t (void* keeps CUDA headers out).
Status StridedCopyCuda(void* dst, const void* src, const CopyLayout& layout, int64_t elem_size, void* stream);
#endif

}  // namespace cf
