// CPU kernels of "neighborhood_attention" and its backward (the reference for
// the CUDA kernels, and fast: docs/ops/neighborhood_attention.md).
//
// Work is split into tiles of queries (forward, dq) or keys (dk, dv) on one
// subgrid of positions congruent mod the dilation, one (batch, head) per
// tile. A tile's halo -- the keys its queries see, or the queries that see
// its keys -- is packed into a per-thread buffer in the compute type
// (f32 for f32/f16/bf16 storage, f64 for f64), so the inner loops read
// contiguous rows and neighbouring queries reuse the same keys from cache.
// Scores live only in a per-query buffer of K_h*K_w values. The inner
// products and sums use AVX2+FMA when the CPU has it and d % 8 == 0, else
// portable loops.
#pragma once

#include <type_traits>

#include "ops/attention/attention_params.h"
#include "runtime/dtype.h"

namespace cf::na_cpu {

// The dtype of lse for storage T: f64 for f64 (so float64 checks and finite
// differences see an exact lse), f32 otherwise.
template <typename T> using Lse = std::conditional_t<std::is_same_v<T, double>, double, float>;

// q, k, v, out [B, H, W, heads*d] of T; lse [B, H, W, heads].
template <typename T>
void Forward(const NaParams& p, const T* q, const T* k, const T* v, T* out, Lse<T>* lse);

// dlse may be null (no gradient flows into lse). dq, dk, dv like q.
template <typename T>
void Backward(const NaParams& p, const T* q, const T* k, const T* v, const T* out, const Lse<T>* lse, const T* dout,
              const Lse<T>* dlse, T* dq, T* dk, T* dv);

// "avx2_fma" or "generic": the inner loops f32 compute uses for head dims
// that are a multiple of 8.
const char* KernelName();
// Forces the portable loops (benchmark comparison, tests); returns the
// previous setting. Not thread-safe against running kernels.
bool ForceGeneric(bool force);

}  // namespace cf::na_cpu
