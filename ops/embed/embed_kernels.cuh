// CUDA kernels of the embed family, written against runtime/kdev/kdev.h:
// gather and embedding_backward (launchers in embed_gather.cu),
// timestep_embedding and sincos_pos_embed_2d (embed_sinusoidal.cu). The same
// source runs on the CPU interpreter in tests/ops/embed_interp_test.cc, with
// the launch geometry functions below that the launchers use.
#pragma once

#include <cstdint>
#include <type_traits>

#include "ops/embed/embed_formulas.h"
#include "ops/grid_for.h"
#include "runtime/dtype.h"
#include "runtime/kdev/kdev.h"

namespace cf::embed {

// ---------------------------------------------------------------------------
// gather

// out: [N, row_words] of W; table: [V, row_words]; idx: [N]. A row whose index
// is outside [0, V) becomes `nan_fill` (NaN in the table's dtype): the error is
// visible in the result without a device sync.
template <typename W, typename IdxT>
KD_GLOBAL void GatherKernel(kd::Ptr<W> KD_RESTRICT out, kd::Ptr<const W> KD_RESTRICT table,
                            kd::Ptr<const IdxT> KD_RESTRICT idx, int64_t total, int64_t row_words, int64_t V,
                            W nan_fill) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t n = i / row_words, c = i - n * row_words;
    const int64_t v = static_cast<int64_t>(IdxT(idx[n]));
    W w = nan_fill;
    if (v >= 0 && v < V) w = table[v * row_words + c];
    out[i] = w;
  }
}

// The word a gather moves per thread, by its size in bytes.
template <int V> struct GWord;
template <> struct GWord<2> { using T = uint16_t; };
template <> struct GWord<4> { using T = uint32_t; };
template <> struct GWord<8> { using T = kd::uint2; };
template <> struct GWord<16> { using T = kd::uint4; };

// The widest word (16, 8, 4 bytes, at least the element size `es`) that
// divides a row (`row_bytes`) and the alignment of both base addresses; one
// thread per word of the n_idx gathered rows, block 256.
struct GatherLaunch {
  int word_bytes;
  int64_t row_words, total;
  unsigned grid, block;
};
inline GatherLaunch GatherGeometry(int64_t n_idx, int64_t row_bytes, int64_t es, uintptr_t table, uintptr_t out) {
  int64_t v = 16;
  for (; v > es; v /= 2)
    if (row_bytes % v == 0 && table % static_cast<uintptr_t>(v) == 0 && out % static_cast<uintptr_t>(v) == 0) break;
  const int64_t word = v > es ? v : es;
  const int64_t row_words = row_bytes / word, total = n_idx * row_words;
  const GridStride g = GridStrideFor(total);
  return {static_cast<int>(word), row_words, total, g.grid, g.block};
}

// 16 bytes of the quiet NaN of the table's dtype (f32, f16 or bf16), the
// fill of out-of-range rows (the first sizeof(W) bytes are used).
inline void GatherNanPattern(DType t, uint8_t pattern[16]) {
  const uint16_t nan16 = t == DType::bf16 ? 0x7fc0 : 0x7e00;
  const uint32_t nan32 = 0x7fc00000u;
  const int64_t es = DTypeSize(t);
  for (int b = 0; b < 16; ++b)
    pattern[b] = es == 4 ? static_cast<uint8_t>(nan32 >> (8 * (b % 4))) : static_cast<uint8_t>(nan16 >> (8 * (b % 2)));
}

// ---------------------------------------------------------------------------
// embedding_backward

// Deterministic scatter-add without sorting or atomics. Block (x, y) owns
// columns [x * blockDim.x, +blockDim.x) of rows [y * rows_per_part, +rows_per_part):
// each of its threads owns one column of those rows, zeroes it, then walks
// all N tokens in order (indices staged through shared memory) and adds the
// gradient of the tokens whose row it owns. Every (row, column) has one owner
// and a fixed summation order; out-of-range indices match no owner.
// acc: [V, D] f32 (the output itself when T is float, else a workspace that
// is then rounded into out); grad: [N, D]; idx: [N].
constexpr int kIdxChunk = 1024;
template <typename T, typename IdxT>
KD_GLOBAL void EmbeddingBackwardKernel(kd::Ptr<float> acc, kd::Ptr<T> out, kd::Ptr<const T> KD_RESTRICT grad,
                                       kd::Ptr<const IdxT> KD_RESTRICT idx, int64_t N, int64_t V, int64_t D,
                                       int64_t rows_per_part) {
  KD_SHARED(int64_t, sidx, [kIdxChunk]);
  const int64_t d = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x;
  const int64_t v0 = kd::blockIdx.y * rows_per_part;
  const int64_t v1 = v0 + rows_per_part < V ? v0 + rows_per_part : V;
  const bool active = d < D;
  if (active)
    for (int64_t v = v0; v < v1; ++v) acc[v * D + d] = 0.f;
  for (int64_t base = 0; base < N; base += kIdxChunk) {
    const int64_t m = N - base < kIdxChunk ? N - base : kIdxChunk;
    kd::syncthreads();  // the previous chunk is consumed
    for (int64_t t = kd::threadIdx.x; t < m; t += kd::blockDim.x) sidx[t] = static_cast<int64_t>(IdxT(idx[base + t]));
    kd::syncthreads();
    if (!active) continue;
    for (int64_t t = 0; t < m; ++t) {
      const int64_t v = sidx[t];
      if (v >= v0 && v < v1) acc[v * D + d] += kd::LoadF(grad, (base + t) * D + d);
    }
  }
  if constexpr (!std::is_same_v<T, float>) {  // acc is a workspace, not out
    if (active)
      for (int64_t v = v0; v < v1; ++v) kd::StoreF(out, v * D + d, float(acc[v * D + d]));
  }
}

// Column blocks of up to 256 threads (D rounded up to a warp below that),
// times about 1024 / col_blocks row parts (at least 1, at most V).
struct EmbedBackwardLaunch {
  kd::Dim3 grid, block;
  int64_t rows_per_part;
};
inline EmbedBackwardLaunch EmbedBackwardGeometry(int64_t V, int64_t D) {
  const int threads = D >= 256 ? 256 : static_cast<int>((D + 31) / 32 * 32);
  const int64_t col_blocks = (D + threads - 1) / threads;
  // About 1024 blocks in all: enough to fill an H100 several times over.
  int64_t parts = 1024 / col_blocks;
  parts = parts < 1 ? 1 : (parts > V ? V : parts);
  const int64_t rows_per_part = (V + parts - 1) / parts;
  parts = (V + rows_per_part - 1) / rows_per_part;
  return {kd::Dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(parts)),
          kd::Dim3(static_cast<unsigned>(threads)), rows_per_part};
}

// ---------------------------------------------------------------------------
// timestep_embedding and sincos_pos_embed_2d: one thread per output element,
// the float64 formulas of embed_formulas.h, stored in the output dtype.

KD_DEVICE double LoadTimestep(kd::Ptr<const float> p, int64_t i) { return float(p[i]); }
KD_DEVICE double LoadTimestep(kd::Ptr<const kd::half> p, int64_t i) { return kd::half2float(p[i]); }
KD_DEVICE double LoadTimestep(kd::Ptr<const kd::bfloat16> p, int64_t i) { return kd::bfloat162float(p[i]); }
KD_DEVICE double LoadTimestep(kd::Ptr<const int32_t> p, int64_t i) { return int32_t(p[i]); }
KD_DEVICE double LoadTimestep(kd::Ptr<const int64_t> p, int64_t i) { return static_cast<double>(int64_t(p[i])); }

// out: [B, dim] of T; ts: [B] of S.
template <typename T, typename S>
KD_GLOBAL void TimestepKernel(kd::Ptr<T> KD_RESTRICT out, kd::Ptr<const S> KD_RESTRICT ts, int64_t B,
                              embed_internal::TimestepParams p) {
  const int64_t n = B * p.dim;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < n;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t b = i / p.dim, j = i - b * p.dim;
    kd::StoreF(out, i, static_cast<float>(embed_internal::TimestepValue(p, LoadTimestep(ts, b), j)));
  }
}

// out: [h * w, dim] of T.
template <typename T>
KD_GLOBAL void SinCosKernel(kd::Ptr<T> KD_RESTRICT out, embed_internal::SinCosParams p) {
  const int64_t n = p.h * p.w * p.dim;
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < n;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const int64_t r = i / p.dim, c = i - r * p.dim;
    kd::StoreF(out, i, static_cast<float>(embed_internal::SinCosValue(p, r, c)));
  }
}

// Both: one thread per output element, block 256.
inline GridStride SinusoidalGeometry(int64_t n) { return GridStrideFor(n); }

}  // namespace cf::embed
