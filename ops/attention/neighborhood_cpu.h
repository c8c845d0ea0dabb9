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
// portable loops. With AVX-512 the f32 forward instead vectorises over 16
// (batch, head) pairs (same window geometry in every lane) from lane-major
// repacked q, k, v.
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

// The f32 forward's inner loops. kAuto: AVX-512 when the CPU has it and the
// (batch, head) pairs fill most of its 16 lanes, else AVX2+FMA for d % 8 == 0,
// else portable. A forced ISA the CPU lacks falls back the same way; the
// backward uses AVX2+FMA (d % 8 == 0) or portable loops. kAvx512 lanes are
// (batch, head) pairs, so it serves any d.
enum class Kernel { kAuto, kAvx512, kAvx2, kGeneric };
// Forces a kernel (benchmark comparison, tests); returns the previous setting.
// Not thread-safe against running kernels.
Kernel ForceKernel(Kernel k);
// "avx512", "avx2_fma" or "generic": what kAuto or the forced setting runs
// for the SD1.5 shape (16 lanes, d = 40).
const char* KernelName();
// ForceKernel(kGeneric) when true, kAuto when false; returns whether the
// previous setting was kGeneric.
bool ForceGeneric(bool force);
// Whether the CPU has AVX-512F (tests skip the forced AVX-512 cases without).
bool HasAvx512();

}  // namespace cf::na_cpu
