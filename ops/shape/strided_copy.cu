// CUDA side of the copy engine (strided_copy.h).
//   v1: one thread per element, index math over up to 8 dims.
//   v2: elements widened to 16/8/4/2-byte vectors when the last dim is
//       contiguous on both sides (concat, split, slice, [B,N,H,D] head permutes).
//   v3: 32x32 shared-memory tiles when the source-contiguous dim is not the
//       destination-contiguous one (2D transposes, NHWC <-> NCHW), so that
//       both the reads and the writes are coalesced.
#include <cstdint>

#include "ops/cuda_util.cuh"
#include "ops/shape/strided_copy.h"

namespace cf {
namespace {

// A layout with index type I (uint32_t when every index and offset fits).
template <typename I>
struct DevLayout {
  int rank;
  I sizes[CopyLayout::kMaxRank];
  I src[CopyLayout::kMaxRank];
  I dst[CopyLayout::kMaxRank];
};

template <typename I>
DevLayout<I> ToDev(const CopyLayout& l) {
  DevLayout<I> d{};
  d.rank = l.rank;
  for (int k = 0; k < l.rank; ++k) {
    d.sizes[k] = static_cast<I>(l.sizes[k]);
    d.src[k] = static_cast<I>(l.src_strides[k]);
    d.dst[k] = static_cast<I>(l.dst_strides[k]);
  }
  return d;
}

// dst, src: the box of `l` (n elements of T); one element per thread-iteration.
template <typename T, typename I>
__global__ void StridedCopyKernel(T* __restrict__ dst, const T* __restrict__ src, DevLayout<I> l, I n) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I rem = i, so = 0, dof = 0;
#pragma unroll
    for (int k = CopyLayout::kMaxRank - 1; k >= 0; --k) {
      if (k < l.rank) {
        const I c = rem % l.sizes[k];
        rem /= l.sizes[k];
        so += c * l.src[k];
        dof += c * l.dst[k];
      }
    }
    dst[dof] = src[so];
  }
}

// Tiled transpose. For every batch index b (dims of `batch`) and (m, n) in
// [M, N]: dst[db + m*dst_m + n] = src[sb + m + n*src_n]. Block (32, 8);
// grid (ceil(N/32), ceil(M/32), min(batch, 65535)).
template <typename T>
__global__ void TransposeTiledKernel(T* __restrict__ dst, const T* __restrict__ src, DevLayout<int64_t> batch,
                                     int64_t num_batch, int64_t M, int64_t N, int64_t src_n, int64_t dst_m) {
  __shared__ T tile[32][33];  // +1 column: no bank conflicts on the transposed read
  const int64_t m0 = int64_t(blockIdx.y) * 32, n0 = int64_t(blockIdx.x) * 32;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t b = blockIdx.z; b < num_batch; b += gridDim.z) {
    int64_t rem = b, sb = 0, db = 0;
    for (int k = batch.rank - 1; k >= 0; --k) {
      const int64_t c = rem % batch.sizes[k];
      rem /= batch.sizes[k];
      sb += c * batch.src[k];
      db += c * batch.dst[k];
    }
    // Read: threads along m, which is contiguous in the source.
    for (int j = ty; j < 32; j += 8) {
      const int64_t m = m0 + tx, n = n0 + j;
      if (m < M && n < N) tile[j][tx] = src[sb + m + n * src_n];
    }
    __syncthreads();
    // Write: threads along n, which is contiguous in the destination.
    for (int j = ty; j < 32; j += 8) {
      const int64_t m = m0 + j, n = n0 + tx;
      if (m < M && n < N) dst[db + m * dst_m + n] = tile[tx][j];
    }
    __syncthreads();
  }
}

// Storage type of a V-byte element.
template <int V> struct Word;
template <> struct Word<1> { using T = uint8_t; };
template <> struct Word<2> { using T = uint16_t; };
template <> struct Word<4> { using T = uint32_t; };
template <> struct Word<8> { using T = uint2; };
template <> struct Word<16> { using T = uint4; };

template <int V>
Status LaunchGeneric(void* dst, const void* src, const CopyLayout& l, cudaStream_t stream) {
  using T = typename Word<V>::T;
  const int64_t n = l.numel();
  // 32-bit indices when every element index and offset fits (much cheaper %).
  int64_t max_src = 0, max_dst = 0;
  for (int k = 0; k < l.rank; ++k) {
    max_src += (l.sizes[k] - 1) * l.src_strides[k];
    max_dst += (l.sizes[k] - 1) * l.dst_strides[k];
  }
  constexpr int64_t kSmall = int64_t(1) << 31;
  if (n < kSmall && max_src < kSmall && max_dst < kSmall) {
    StridedCopyKernel<T, uint32_t><<<GridFor(n), 256, 0, stream>>>(
        static_cast<T*>(dst), static_cast<const T*>(src), ToDev<uint32_t>(l), static_cast<uint32_t>(n));
  } else {
    StridedCopyKernel<T, int64_t><<<GridFor(n), 256, 0, stream>>>(static_cast<T*>(dst), static_cast<const T*>(src),
                                                                   ToDev<int64_t>(l), n);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <int V>
Status LaunchTransposed(void* dst, const void* src, const CopyLayout& l, int q, cudaStream_t stream) {
  using T = typename Word<V>::T;
  const int last = l.rank - 1;
  CopyLayout batch;
  for (int k = 0; k < last; ++k)
    if (k != q) batch.Add(l.sizes[k], l.src_strides[k], l.dst_strides[k]);
  const int64_t num_batch = batch.numel();
  const int64_t M = l.sizes[q], N = l.sizes[last];
  dim3 grid(static_cast<unsigned>((N + 31) / 32), static_cast<unsigned>((M + 31) / 32),
            static_cast<unsigned>(num_batch < 65535 ? num_batch : 65535));
  TransposeTiledKernel<T><<<grid, dim3(32, 8), 0, stream>>>(static_cast<T*>(dst), static_cast<const T*>(src),
                                                           ToDev<int64_t>(batch), num_batch, M, N,
                                                           l.src_strides[last], l.dst_strides[q]);
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
  CopyLayout l = layout.Canonical();
  const int64_t n = l.numel();
  if (n == 0) return absl::OkStatus();
  const int last = l.rank - 1;

  if (l.rank == 1 && l.src_strides[0] == 1 && l.dst_strides[0] == 1) {
    CF_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n * elem_size), cudaMemcpyDeviceToDevice, stream));
    return absl::OkStatus();
  }

  if (l.src_strides[last] == 1 && l.dst_strides[last] == 1) {
    // Widen elements to the largest vector that divides the row and every
    // stride and matches the pointers' alignment.
    const int64_t row_bytes = l.sizes[last] * elem_size;
    int64_t v = 16;
    for (; v > elem_size; v /= 2) {
      bool ok = row_bytes % v == 0 && reinterpret_cast<uintptr_t>(dst) % v == 0 &&
                reinterpret_cast<uintptr_t>(src) % v == 0;
      for (int k = 0; k < last && ok; ++k)
        ok = (l.src_strides[k] * elem_size) % v == 0 && (l.dst_strides[k] * elem_size) % v == 0;
      if (ok) break;
    }
    if (v > elem_size) {
      for (int k = 0; k < last; ++k) {
        l.src_strides[k] = l.src_strides[k] * elem_size / v;
        l.dst_strides[k] = l.dst_strides[k] * elem_size / v;
      }
      l.sizes[last] = row_bytes / v;
    }
    return BySize(v > elem_size ? v : elem_size,
                  [&](auto vs) { return LaunchGeneric<decltype(vs)::value>(dst, src, l, stream); });
  }

  // The destination's last dim is strided in the source: tile when another
  // dim is contiguous in the source.
  if (l.dst_strides[last] == 1) {
    int q = -1;
    for (int k = 0; k < last; ++k)
      if (l.src_strides[k] == 1) q = k;
    if (q >= 0 && (l.sizes[q] + 31) / 32 <= 65535) {
      return BySize(elem_size, [&](auto vs) { return LaunchTransposed<decltype(vs)::value>(dst, src, l, q, stream); });
    }
  }
  return BySize(elem_size, [&](auto vs) { return LaunchGeneric<decltype(vs)::value>(dst, src, l, stream); });
}

}  // namespace cf
