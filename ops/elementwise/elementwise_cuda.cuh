// 16-byte vector access for elementwise CUDA kernels: a Pack<T> is 4 f32 or
// 8 f16/bf16 loaded or stored with one instruction; MapElementwise is the
// loop of the kernels built on it.
#pragma once

#include <cstdint>
#include <utility>

#include "ops/cuda_util.cuh"

namespace cf::ew {

template <typename T> constexpr int kPack = 16 / sizeof(T);

template <typename T> struct alignas(16) Pack {
  T v[kPack<T>];
};

// Pack p of a 16-byte aligned array: elements [p * kPack, (p + 1) * kPack).
template <typename T> __device__ __forceinline__ Pack<T> LoadPack(const T* x, int64_t p) {
  return reinterpret_cast<const Pack<T>*>(x)[p];
}
template <typename T> __device__ __forceinline__ void StorePack(T* x, int64_t p, const Pack<T>& v) {
  reinterpret_cast<Pack<T>*>(x)[p] = v;
}

inline bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// f on element k of the packs pin[0..]: f(pin[0].v[k], pin[1].v[k], ...) in f32.
template <typename F, typename T, size_t... I>
__device__ __forceinline__ float ApplyToPacks(const F& f, const Pack<T>* pin, int k, std::index_sequence<I...>) {
  return f(LoadF(pin[I].v, k)...);
}

// The body of an elementwise kernel: out[i] = f(in[i]...) in f32 for i < n,
// grid-stride. With vec (every pointer 16-byte aligned) whole Packs are
// loaded and stored, then the tail goes element by element. out may be one
// of the inputs: each pack or element is read before it is written.
template <typename T, typename F, typename... In>
__device__ __forceinline__ void MapElementwise(T* out, int64_t n, bool vec, F f, const In*... in) {
  constexpr int V = kPack<T>;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t packs = n / V;
    for (int64_t q = tid; q < packs; q += step) {
      const Pack<T> pin[] = {LoadPack(in, q)...};
      Pack<T> po;
#pragma unroll
      for (int k = 0; k < V; ++k) StoreF(po.v, k, ApplyToPacks(f, pin, k, std::index_sequence_for<In...>{}));
      StorePack(out, q, po);
    }
    done = packs * V;
  }
  for (int64_t i = done + tid; i < n; i += step) StoreF(out, i, f(LoadF(in, i)...));
}

}  // namespace cf::ew
