// 16-byte vector access for elementwise CUDA kernels: a Pack<T> is 4 f32 or
// 8 f16/bf16 loaded or stored with one instruction.
#pragma once

#include <cstdint>

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

}  // namespace cf::ew
