// CPU kernels of "attention", "attention_backward" and "attention_probs"
// (contracts: ops/attention/attention.h; op definitions: sdpa.cc).
//
// f32, f16 and bf16 storage run one f32 flash-style kernel (f16/bf16 inputs
// are converted to f32 once, up front; the bf16 forward instead runs both
// products on VDPBF16PS where the CPU has avx512_bf16): blocks of 64 queries against blocks of
// 96 keys with an online softmax, so no Nq x Nkv buffer ever exists. f64
// storage runs a simple row-at-a-time f64 path (the finite-difference
// reference of the tests). Pointers are token-major [B, N, heads*d]; mask is
// [B, Nkv] bytes (nonzero: visible) or null; lse is [B, heads, Nq] f32.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/attention/attention_params.h"

namespace cf::sdpa_cpu {

// T in {float, double, f16_t, bf16_t}.
template <class T>
void Forward(const SdpaParams& p, const T* q, const T* k, const T* v, const uint8_t* mask, T* out, float* lse);
// From the saved out and lse (f64 storage recomputes the row statistics in
// f64 instead of trusting the f32 lse).
template <class T>
void Backward(const SdpaParams& p, const T* q, const T* k, const T* v, const T* out, const float* lse, const T* dout,
              const uint8_t* mask, T* dq, T* dk, T* dv);
// probs [B, heads, queries.size(), Nkv] f32, computed in f64.
template <class T>
void Probs(const SdpaParams& p, const T* q, const T* k, const uint8_t* mask, const std::vector<int64_t>& queries,
           float* probs);

// The f32 inner kernels in use: "avx512" (runtime-detected) or "generic".
const char* KernelName();
// The bf16 forward's products: "avx512bf16" (VDPBF16PS, runtime-detected,
// even head dims) or "f32" (bf16 converted to f32 for the f32 kernels).
const char* Bf16ForwardKernelName();
// Forces the portable kernels (tests run both); returns the previous setting.
bool ForceGeneric(bool force);

}  // namespace cf::sdpa_cpu
