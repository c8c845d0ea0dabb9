// The CUDA kernels of the copy engine (strided_copy.h), written against
// runtime/kdev/kdev.h: launched by strided_copy.cu and run on the CPU
// interpreter by tests/ops/shape_interp_test.cc, both with the plan below
// (the path, the vector width and widened layout, the index type, the grid).
//   generic:    one thread per element, index math over up to 8 dims; with
//               elements widened to 16/8/4/2-byte vectors when the last dim is
//               contiguous on both sides (concat, split, slice, [B,N,H,D]
//               head permutes).
//   transposed: 32x32 shared-memory tiles when the source-contiguous dim is
//               not the destination-contiguous one (2D transposes, NHWC <->
//               NCHW), so that both the reads and the writes are coalesced.
//   memcpy:     one contiguous run (cudaMemcpyAsync; no kernel).
#pragma once

#include <cstdint>

#include "ops/grid_for.h"
#include "ops/shape/strided_copy.h"
#include "runtime/kdev/kdev.h"

namespace cf::strided_copy_kernels {

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
KD_GLOBAL void StridedCopyKernel(kd::Ptr<T> KD_RESTRICT dst, kd::Ptr<const T> KD_RESTRICT src, DevLayout<I> l, I n) {
  for (I i = kd::blockIdx.x * I(kd::blockDim.x) + kd::threadIdx.x; i < n; i += I(kd::gridDim.x) * kd::blockDim.x) {
    I rem = i, so = 0, dof = 0;
    KD_UNROLL
    for (int k = CopyLayout::kMaxRank - 1; k >= 0; --k) {
      if (k < l.rank) {
        const I c = rem % l.sizes[k];
        rem /= l.sizes[k];
        so += c * l.src[k];
        dof += c * l.dst[k];
      }
    }
    dst[dof] = T(src[so]);
  }
}

// Tiled transpose. For every batch index b (dims of `batch`) and (m, n) in
// [M, N]: dst[db + m*dst_m + n] = src[sb + m + n*src_n]. Block (32, 8);
// grid (ceil(N/32), ceil(M/32), min(batch, 65535)).
template <typename T>
KD_GLOBAL void TransposeTiledKernel(kd::Ptr<T> KD_RESTRICT dst, kd::Ptr<const T> KD_RESTRICT src,
                                    DevLayout<int64_t> batch, int64_t num_batch, int64_t M, int64_t N, int64_t src_n,
                                    int64_t dst_m) {
  KD_SHARED(T, tile, [32][33]);  // +1 column: no bank conflicts on the transposed read
  const int64_t m0 = int64_t(kd::blockIdx.y) * 32, n0 = int64_t(kd::blockIdx.x) * 32;
  const int tx = kd::threadIdx.x, ty = kd::threadIdx.y;
  for (int64_t b = kd::blockIdx.z; b < num_batch; b += kd::gridDim.z) {
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
      if (m < M && n < N) tile[j][tx] = T(src[sb + m + n * src_n]);
    }
    kd::syncthreads();
    // Write: threads along n, which is contiguous in the destination.
    for (int j = ty; j < 32; j += 8) {
      const int64_t m = m0 + j, n = n0 + tx;
      if (m < M && n < N) dst[db + m * dst_m + n] = T(tile[tx][j]);
    }
    kd::syncthreads();
  }
}

// Storage type of a V-byte element.
template <int V> struct CopyWord;
template <> struct CopyWord<1> { using T = uint8_t; };
template <> struct CopyWord<2> { using T = uint16_t; };
template <> struct CopyWord<4> { using T = uint32_t; };
template <> struct CopyWord<8> { using T = kd::uint2; };
template <> struct CopyWord<16> { using T = kd::uint4; };

// ---- launch decisions (host) -----------------------------------------------------------------

enum class CopyPath {
  kEmpty,       // nothing to copy
  kMemcpy,      // one contiguous run of n * elem_size bytes
  kGeneric,     // StridedCopyKernel over `l` in units of `vec` bytes
  kTransposed,  // TransposeTiledKernel over `l` (elem_size units), source-contiguous dim q
};

// What StridedCopyCuda runs for `layout` (not yet canonical) of elem_size-byte
// elements at the given addresses. For kGeneric, vec is the widest of 16, 8,
// 4, 2 bytes above elem_size dividing the last dim's row bytes, every other
// stride in bytes and both addresses when the last dim is contiguous on both
// sides (else elem_size), and l is in units of vec.
struct CopyPlan {
  CopyPath path = CopyPath::kEmpty;
  int vec = 1;
  int q = -1;
  CopyLayout l;
};
inline CopyPlan StridedCopyPlanFor(const CopyLayout& layout, int64_t elem_size, uintptr_t dst_addr,
                                   uintptr_t src_addr) {
  CopyPlan p;
  p.l = layout.Canonical();
  CopyLayout& l = p.l;
  p.vec = static_cast<int>(elem_size);
  if (l.numel() == 0) return p;
  const int last = l.rank - 1;
  if (l.rank == 1 && l.src_strides[0] == 1 && l.dst_strides[0] == 1) {
    p.path = CopyPath::kMemcpy;
    return p;
  }
  p.path = CopyPath::kGeneric;
  if (l.src_strides[last] == 1 && l.dst_strides[last] == 1) {
    const int64_t row_bytes = l.sizes[last] * elem_size;
    int64_t v = 16;
    for (; v > elem_size; v /= 2) {
      bool ok = row_bytes % v == 0 && dst_addr % uint64_t(v) == 0 && src_addr % uint64_t(v) == 0;
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
      p.vec = static_cast<int>(v);
    }
    return p;
  }
  // The destination's last dim is strided in the source: tile when another
  // dim is contiguous in the source.
  if (l.dst_strides[last] == 1) {
    int q = -1;
    for (int k = 0; k < last; ++k)
      if (l.src_strides[k] == 1) q = k;
    if (q >= 0 && (l.sizes[q] + 31) / 32 <= 65535) {
      p.path = CopyPath::kTransposed;
      p.q = q;
    }
  }
  return p;
}

// 32-bit indices for StridedCopyKernel when the element count and every
// source and destination offset are below 2^31 (much cheaper %).
inline bool CopyIndex32(const CopyLayout& l) {
  int64_t max_src = 0, max_dst = 0;
  for (int k = 0; k < l.rank; ++k) {
    max_src += (l.sizes[k] - 1) * l.src_strides[k];
    max_dst += (l.sizes[k] - 1) * l.dst_strides[k];
  }
  constexpr int64_t kSmall = int64_t(1) << 31;
  return l.numel() < kSmall && max_src < kSmall && max_dst < kSmall;
}

// StridedCopyKernel: one thread per unit, grid-stride.
inline GridStride CopyGridFor(int64_t n) { return GridStrideFor(n, 256); }

// TransposeTiledKernel's launch: <<<grid, block>>> and its arguments.
struct TransposeLaunch {
  kd::Dim3 grid, block;
  DevLayout<int64_t> batch;
  int64_t num_batch, M, N, src_n, dst_m;
};
inline TransposeLaunch TransposeLaunchFor(const CopyLayout& l, int q) {
  const int last = l.rank - 1;
  CopyLayout batch;
  for (int k = 0; k < last; ++k)
    if (k != q) batch.Add(l.sizes[k], l.src_strides[k], l.dst_strides[k]);
  TransposeLaunch t;
  t.num_batch = batch.numel();
  t.M = l.sizes[q];
  t.N = l.sizes[last];
  t.grid = kd::Dim3(static_cast<unsigned>((t.N + 31) / 32), static_cast<unsigned>((t.M + 31) / 32),
                    static_cast<unsigned>(t.num_batch < 65535 ? t.num_batch : 65535));
  t.block = kd::Dim3(32, 8);
  t.batch = ToDev<int64_t>(batch);
  t.src_n = l.src_strides[last];
  t.dst_m = l.dst_strides[q];
  return t;
}

}  // namespace cf::strided_copy_kernels
