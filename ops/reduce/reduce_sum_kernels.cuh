// The kernels of the CUDA reduction engine (sum, mean, sum_to), written
// against runtime/kdev/kdev.h: launched by reduce_sum.cu and run on the CPU
// interpreter by tests/ops/reduce_interp_test.cc, both following
// ReduceLaunchFor's plan. Layouts come from PlanReduce: [A, R] rows,
// [A, R, B] columns, or a general pattern. Every output is a block (or warp)
// reduction in f32; when there are too few outputs to fill the GPU the
// reduced range is split into S chunks whose f32 partial sums go to the
// workspace, and a second pass of the same kernels sums the partials
// (deterministic, no atomics).
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/reduce/block_reduce.cuh"
#include "ops/reduce/reduce_plan.h"
#include "runtime/kdev/kdev.h"

namespace cf {
namespace reduce_kernels {

// x: [A, R] of TI; out[a] = scale * sum_r x[a, r], one warp per row.
template <typename TI, typename TO>
KD_GLOBAL void RowSumWarpKernel(kd::Ptr<const TI> x, kd::Ptr<TO> out, int64_t A, int64_t R, float scale) {
  const int lane = kd::threadIdx.x & 31;
  const int64_t warps = int64_t(kd::gridDim.x) * (kd::blockDim.x >> 5);
  for (int64_t a = (kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x) >> 5; a < A; a += warps) {
    const kd::Ptr<const TI> row = x + a * R;
    float s = 0.f;
    for (int64_t r = lane; r < R; r += 32) s += kd::LoadF(row, r);
    s = WarpSum(s);
    if (lane == 0) kd::StoreF(out, a, s * scale);
  }
}

// x: [A, R] of TI split into S chunks of `chunk`; out: [A, S] of TO,
// out[a, s] = scale * sum of chunk s of row a. One block per (a, s).
template <typename TI, typename TO>
KD_GLOBAL void RowSumBlockKernel(kd::Ptr<const TI> x, kd::Ptr<TO> out, int64_t A, int64_t R, int64_t S, int64_t chunk,
                                  float scale) {
  KD_SHARED(float, scratch, [32]);
  for (int64_t item = kd::blockIdx.x; item < A * S; item += kd::gridDim.x) {
    const int64_t a = item / S, s = item % S;
    const int64_t r0 = s * chunk, r1 = std::min<int64_t>(R, r0 + chunk);
    const kd::Ptr<const TI> row = x + a * R;
    float v = 0.f;
    for (int64_t r = r0 + kd::threadIdx.x; r < r1; r += kd::blockDim.x) v += kd::LoadF(row, r);
    v = BlockSum(v, scratch);
    if (kd::threadIdx.x == 0) kd::StoreF(out, item, v * scale);
  }
}

// x: [A, R, B] of TI, R split into S chunks; out: [A, S, B] of TO,
// out[a, s, b] = scale * sum over chunk s of x[a, r, b]. Block (32, 8): x
// threads walk 32 adjacent columns (coalesced), y threads split the rows.
constexpr int kColX = 32, kColY = 8;
template <typename TI, typename TO>
KD_GLOBAL void ColSumKernel(kd::Ptr<const TI> x, kd::Ptr<TO> out, int64_t A, int64_t R, int64_t B, int64_t S, int64_t chunk,
                             float scale) {
  KD_SHARED(float, part, [kColY][kColX + 1]);
  const int64_t tiles = (B + kColX - 1) / kColX;
  for (int64_t item = kd::blockIdx.x; item < A * S * tiles; item += kd::gridDim.x) {
    const int64_t t = item % tiles, s = (item / tiles) % S, a = item / (tiles * S);
    const int64_t b = t * kColX + kd::threadIdx.x;
    const int64_t r0 = s * chunk, r1 = std::min<int64_t>(R, r0 + chunk);
    float v = 0.f;
    if (b < B)
      for (int64_t r = r0 + kd::threadIdx.y; r < r1; r += kColY) v += kd::LoadF(x, (a * R + r) * B + b);
    part[kd::threadIdx.y][kd::threadIdx.x] = v;
    kd::syncthreads();
    if (kd::threadIdx.y == 0 && b < B) {
      float total = 0.f;
KD_UNROLL
      for (int y = 0; y < kColY; ++y) total += float(part[y][kd::threadIdx.x]);
      kd::StoreF(out, (a * S + s) * B + b, total * scale);
    }
    kd::syncthreads();
  }
}

// Any layout: kept and reduced dimensions of the collapsed input with their
// element strides. One block per output.
struct GeneralReduce {
  int nk = 0, nr = 0;
  int64_t kdim[Shape::kMaxRank], kstride[Shape::kMaxRank];
  int64_t rdim[Shape::kMaxRank], rstride[Shape::kMaxRank];
};
template <typename T>
KD_GLOBAL void GeneralSumKernel(kd::Ptr<const T> x, kd::Ptr<T> out, GeneralReduce g, int64_t num_out, int64_t num_reduce,
                                 float scale) {
  KD_SHARED(float, scratch, [32]);
  for (int64_t o = kd::blockIdx.x; o < num_out; o += kd::gridDim.x) {
    int64_t base = 0, rem = o;
    for (int k = g.nk - 1; k >= 0; --k) {
      base += (rem % g.kdim[k]) * g.kstride[k];
      rem /= g.kdim[k];
    }
    float v = 0.f;
    for (int64_t j = kd::threadIdx.x; j < num_reduce; j += kd::blockDim.x) {
      int64_t off = base, q = j;
      for (int k = g.nr - 1; k >= 0; --k) {
        off += (q % g.rdim[k]) * g.rstride[k];
        q /= g.rdim[k];
      }
      v += kd::LoadF(x, off);
    }
    v = BlockSum(v, scratch);
    if (kd::threadIdx.x == 0) kd::StoreF(out, o, v * scale);
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

inline unsigned Blocks(int64_t items) {
  return static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(items, 1), 65535LL * 16));
}

// Chunks to split a reduced range of r into so that `items` blocks become
// about four per SM, with at least min_chunk rows per chunk.
inline int64_t SplitFor(int64_t items, int64_t r, int64_t min_chunk, bool have_workspace, int sms) {
  const int64_t target = 4LL * sms;
  if (!have_workspace || items >= target) return 1;
  return std::max<int64_t>(1, std::min((target + items - 1) / items, r / min_chunk));
}

// The kept and reduced dimensions of a non-[A, R, B] plan with their strides.
inline GeneralReduce GeneralReduceOf(const ReducePlan& p) {
  GeneralReduce g;
  int64_t stride[Shape::kMaxRank], s = 1;
  for (int d = p.rank - 1; d >= 0; --d) {
    stride[d] = s;
    s *= p.dims[d];
  }
  for (int d = 0; d < p.rank; ++d) {
    if (p.reduced[d]) {
      g.rdim[g.nr] = p.dims[d];
      g.rstride[g.nr++] = stride[d];
    } else {
      g.kdim[g.nk] = p.dims[d];
      g.kstride[g.nk++] = stride[d];
    }
  }
  return g;
}

// Which kernels run, with which grids (blocks of 256 threads; ColSumKernel
// (kColX, kColY)), for a plan with outputs and elements to reduce:
//   kGeneral   GeneralSumKernel<<<grid1>>>(x, out, GeneralReduceOf(p), num_out, num_reduce, scale)
//   kRowWarp   RowSumWarpKernel<<<grid1>>>(x, out, A, R, scale)
//   kRowBlock  RowSumBlockKernel<<<grid1>>>(x, out, A, R, 1, chunk, scale)
//   kRowSplit  RowSumBlockKernel<<<grid1>>>(x, partial, A, R, S, chunk, 1), then
//              RowSumWarpKernel<<<grid2>>>(partial, out, A, S, scale)
//   kCol       ColSumKernel<<<grid1>>>(x, out, A, R, B, 1, chunk, scale)
//   kColSplit  ColSumKernel<<<grid1>>>(x, partial, A, R, B, S, chunk, 1), then
//              ColSumKernel<<<grid2>>>(partial, out, A, S, B, 1, S, scale)
// `partial` is workspace_floats f32 of workspace; sms sizes the splits.
struct ReduceLaunch {
  enum Kind { kGeneral, kRowWarp, kRowBlock, kRowSplit, kCol, kColSplit } kind = kGeneral;
  int64_t S = 1, chunk = 0;
  unsigned grid1 = 1, grid2 = 0;
  int64_t workspace_floats = 0;
};
inline ReduceLaunch ReduceLaunchFor(const ReducePlan& p, int sms, bool have_workspace) {
  ReduceLaunch l;
  if (!p.is_3d) {
    l.grid1 = Blocks(p.num_out);
    return l;
  }
  const int64_t A = p.outer, R = p.r, B = p.inner;
  if (B == 1) {
    if (R <= 4096 && A >= 4LL * sms) {
      l.kind = ReduceLaunch::kRowWarp;
      l.grid1 = Blocks((A + 7) / 8);
      return l;
    }
    l.S = SplitFor(A, R, 4096, have_workspace, sms);
    l.chunk = (R + l.S - 1) / l.S;
    l.kind = l.S == 1 ? ReduceLaunch::kRowBlock : ReduceLaunch::kRowSplit;
    l.grid1 = Blocks(A * l.S);
    if (l.S > 1) {
      l.grid2 = Blocks((A + 7) / 8);
      l.workspace_floats = A * l.S;
    }
    return l;
  }
  const int64_t tiles = (B + kColX - 1) / kColX;
  l.S = SplitFor(A * tiles, R, 64, have_workspace, sms);
  l.chunk = (R + l.S - 1) / l.S;
  l.kind = l.S == 1 ? ReduceLaunch::kCol : ReduceLaunch::kColSplit;
  l.grid1 = Blocks(A * l.S * tiles);
  if (l.S > 1) {
    l.grid2 = Blocks(A * tiles);
    l.workspace_floats = A * l.S * B;
  }
  return l;
}

}  // namespace reduce_kernels
}  // namespace cf
