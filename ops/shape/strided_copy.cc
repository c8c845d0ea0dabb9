// CPU side of the copy engine (strided_copy.h) and the device dispatch.
#include "ops/shape/strided_copy.h"

#include <algorithm>
#include <cstring>

#include "ops/cpu_util.h"
#include "runtime/stream.h"
#include "runtime/thread_pool.h"

#if CF_HAS_CUDA
#include <cuda_runtime.h>

#include "runtime/cuda_check.h"
#endif

namespace cf {

int64_t CopyLayout::numel() const {
  int64_t n = 1;
  for (int k = 0; k < rank; ++k) n *= sizes[k];
  return n;
}

void CopyLayout::Add(int64_t size, int64_t src_stride, int64_t dst_stride) {
  sizes[rank] = size;
  src_strides[rank] = src_stride;
  dst_strides[rank] = dst_stride;
  ++rank;
}

CopyLayout CopyLayout::Canonical() const {
  CopyLayout out;
  for (int k = 0; k < rank; ++k) {
    if (sizes[k] == 0) {
      CopyLayout empty;
      empty.Add(0, 1, 1);
      return empty;
    }
  }
  for (int k = 0; k < rank; ++k) {
    if (sizes[k] == 1) continue;
    const int last = out.rank - 1;
    // The previous (outer) dim steps over exactly one run of this dim on both
    // sides: one dim of size product.
    if (last >= 0 && out.src_strides[last] == src_strides[k] * sizes[k] &&
        out.dst_strides[last] == dst_strides[k] * sizes[k]) {
      out.sizes[last] *= sizes[k];
      out.src_strides[last] = src_strides[k];
      out.dst_strides[last] = dst_strides[k];
    } else {
      out.Add(sizes[k], src_strides[k], dst_strides[k]);
    }
  }
  if (out.rank == 0) out.Add(1, 1, 1);
  return out;
}

std::array<int64_t, CopyLayout::kMaxRank> RowMajorStrides(const Shape& shape) {
  std::array<int64_t, CopyLayout::kMaxRank> s{};
  int64_t acc = 1;
  for (int k = shape.rank() - 1; k >= 0; --k) {
    s[k] = acc;
    acc *= shape[k];
  }
  return s;
}

namespace {

// Walks the outer dims [0, rank - 1) of a layout row by row, keeping the
// source and destination offsets of the current row.
struct RowWalker {
  const CopyLayout& l;
  int outer;  // number of outer dims
  std::array<int64_t, CopyLayout::kMaxRank> idx{};
  int64_t src = 0, dst = 0;

  RowWalker(const CopyLayout& layout, int outer_dims, int64_t row) : l(layout), outer(outer_dims) {
    for (int k = outer - 1; k >= 0; --k) {
      idx[k] = row % l.sizes[k];
      row /= l.sizes[k];
      src += idx[k] * l.src_strides[k];
      dst += idx[k] * l.dst_strides[k];
    }
  }
  void Next() {
    for (int k = outer - 1; k >= 0; --k) {
      src += l.src_strides[k];
      dst += l.dst_strides[k];
      if (++idx[k] < l.sizes[k]) return;
      src -= idx[k] * l.src_strides[k];
      dst -= idx[k] * l.dst_strides[k];
      idx[k] = 0;
    }
  }
};

template <typename T>
void CopyImpl(T* dst, const T* src, const CopyLayout& l) {
  const int r = l.rank;
  const int last = r - 1;
  const int64_t inner = l.sizes[last];
  const int64_t rows = l.numel() / inner;
  const int64_t row_grain = RowGrain(inner);

  if (l.src_strides[last] == 1 && l.dst_strides[last] == 1) {
    // Contiguous rows on both sides.
    ParallelFor(0, rows, row_grain, [&](int64_t b, int64_t e) {
      RowWalker w(l, last, b);
      for (int64_t row = b; row < e; ++row, w.Next()) std::memcpy(dst + w.dst, src + w.src, inner * sizeof(T));
    });
    return;
  }

  // A dim q contiguous in the source while the last dim is contiguous in the
  // destination: a transpose of (q, last), done in 32x32 tiles so that both
  // sides stay in cache.
  int q = -1;
  if (l.dst_strides[last] == 1) {
    for (int k = 0; k < last; ++k)
      if (l.src_strides[k] == 1) q = k;
  }
  if (q >= 0) {
    constexpr int64_t kTile = 32;
    CopyLayout batch;  // every dim but q and last
    for (int k = 0; k < last; ++k)
      if (k != q) batch.Add(l.sizes[k], l.src_strides[k], l.dst_strides[k]);
    batch.Add(1, 0, 0);  // so that RowWalker's "outer" covers all batch dims
    const int64_t m = l.sizes[q], n = inner;
    const int64_t dq = l.dst_strides[q], sl = l.src_strides[last];
    const int64_t tm = (m + kTile - 1) / kTile, tn = (n + kTile - 1) / kTile;
    const int64_t tasks = batch.numel() * tm * tn;
    ParallelFor(0, tasks, 16, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t bi = t / (tm * tn), ti = t % (tm * tn);
        RowWalker w(batch, batch.rank - 1, bi);
        const int64_t a0 = (ti / tn) * kTile, b0 = (ti % tn) * kTile;
        const int64_t a1 = std::min(m, a0 + kTile), b1 = std::min(n, b0 + kTile);
        for (int64_t a = a0; a < a1; ++a) {
          T* d = dst + w.dst + a * dq;
          const T* s = src + w.src + a;
          for (int64_t j = b0; j < b1; ++j) d[j] = s[j * sl];
        }
      }
    });
    return;
  }

  // Anything else: a strided inner loop per row.
  const int64_t sl = l.src_strides[last], dl = l.dst_strides[last];
  ParallelFor(0, rows, row_grain, [&](int64_t b, int64_t e) {
    RowWalker w(l, last, b);
    for (int64_t row = b; row < e; ++row, w.Next()) {
      T* d = dst + w.dst;
      const T* s = src + w.src;
      for (int64_t j = 0; j < inner; ++j) d[j * dl] = s[j * sl];
    }
  });
}

}  // namespace

void StridedCopyCpu(void* dst, const void* src, const CopyLayout& layout, int64_t elem_size) {
  const CopyLayout l = layout.Canonical();
  if (l.numel() == 0) return;
  switch (elem_size) {
    case 1: CopyImpl(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), l); break;
    case 2: CopyImpl(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), l); break;
    case 4: CopyImpl(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), l); break;
    case 8: CopyImpl(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), l); break;
    default: break;  // StridedCopy checks the size first
  }
}

Status StridedCopy(const KernelContext& ctx, void* dst, const void* src, const CopyLayout& layout,
                   int64_t elem_size) {
  CF_CHECK_ARG(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8, ctx.op,
               ": unsupported element size ", elem_size);
  CF_CHECK_ARG(layout.rank <= CopyLayout::kMaxRank, ctx.op, ": rank ", layout.rank, " is above ",
               CopyLayout::kMaxRank);
  if (ctx.device.is_cuda()) {
#if CF_HAS_CUDA
    return StridedCopyCuda(dst, src, layout, elem_size, ctx.stream ? ctx.stream->native() : nullptr);
#else
    return absl::FailedPreconditionError(absl::StrCat(ctx.op, ": built without CUDA"));
#endif
  }
  StridedCopyCpu(dst, src, layout, elem_size);
  return absl::OkStatus();
}

Status ZeroBytes(const KernelContext& ctx, void* dst, int64_t bytes) {
  if (bytes == 0) return absl::OkStatus();
  if (ctx.device.is_cuda()) {
#if CF_HAS_CUDA
    CF_CUDA_CHECK(cudaMemsetAsync(dst, 0, static_cast<size_t>(bytes),
                                  static_cast<cudaStream_t>(ctx.stream ? ctx.stream->native() : nullptr)));
    return absl::OkStatus();
#else
    return absl::FailedPreconditionError(absl::StrCat(ctx.op, ": built without CUDA"));
#endif
  }
  constexpr int64_t kChunk = 1 << 20;
  ParallelFor(0, (bytes + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e) {
    const int64_t lo = b * kChunk, hi = std::min(bytes, e * kChunk);
    std::memset(static_cast<char*>(dst) + lo, 0, static_cast<size_t>(hi - lo));
  });
  return absl::OkStatus();
}

}  // namespace cf
