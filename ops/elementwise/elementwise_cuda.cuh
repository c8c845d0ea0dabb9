// CUDA kernels of the elementwise ops, written against runtime/kdev/kdev.h:
// built by nvcc in the .cu launchers (elementwise_unary.cu,
// elementwise_binary.cu, elementwise_cast.cu, and ops/activation) and run on
// the CPU interpreter by tests/ops/elementwise_interp_test.cc. The launch
// geometry functions (MapGeometry, BinaryGeometry, CastGeometry) are what the
// launchers use, so the interpreted tests exercise the real launch shape.
//
// 16-byte vector access: a Pack<T> is 4 f32 or 8 f16/bf16 loaded or stored
// with one instruction; MapElementwise is the loop of the kernels built on it.
#pragma once

#include <cstdint>
#include <type_traits>
#include <utility>

#include "ops/elementwise/broadcast.h"
#include "ops/elementwise/cast_math.h"
#include "ops/elementwise/elementwise_math.h"
#include "ops/grid_for.h"
#include "runtime/kdev/kdev.h"

namespace cf::ew {

template <typename T> constexpr int kPack = 16 / sizeof(T);

template <typename T> struct alignas(16) Pack {
  T v[kPack<T>];
};

// f32 value of a register element, and its rounding back to T.
KD_DEVICE float ToF(float v) { return v; }
KD_DEVICE float ToF(kd::half v) { return kd::half2float(v); }
KD_DEVICE float ToF(kd::bfloat16 v) { return kd::bfloat162float(v); }
KD_DEVICE void SetF(float& o, float v) { o = v; }
KD_DEVICE void SetF(kd::half& o, float v) { o = kd::float2half_rn(v); }
KD_DEVICE void SetF(kd::bfloat16& o, float v) { o = kd::float2bfloat16_rn(v); }

// Pack p of a 16-byte aligned array: elements [p * kPack, (p + 1) * kPack).
template <typename T> KD_DEVICE Pack<T> LoadPack(kd::Ptr<const T> x, int64_t p) {
  return kd::ptr_cast<const Pack<T>>(x)[p];
}
template <typename T> KD_DEVICE void StorePack(kd::Ptr<T> x, int64_t p, const Pack<T>& v) {
  kd::ptr_cast<Pack<T>>(x)[p] = v;
}

inline bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// f on element k of the packs pin[0..]: f(pin[0].v[k], pin[1].v[k], ...) in f32.
template <typename F, typename T, size_t... I>
KD_DEVICE float ApplyToPacks(const F& f, const Pack<T>* pin, int k, std::index_sequence<I...>) {
  return f(ToF(pin[I].v[k])...);
}

// The body of an elementwise kernel: out[i] = f(in[i]...) in f32 for i < n,
// grid-stride. With vec (every pointer 16-byte aligned) whole Packs are
// loaded and stored, then the tail goes element by element. out may be one
// of the inputs: each pack or element is read before it is written.
template <typename T, typename F, typename... In>
KD_DEVICE void MapElementwise(kd::Ptr<T> out, int64_t n, bool vec, F f, kd::Ptr<const In>... in) {
  constexpr int V = kPack<T>;
  const int64_t tid = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x;
  const int64_t step = int64_t(kd::gridDim.x) * kd::blockDim.x;
  int64_t done = 0;
  if (vec) {
    const int64_t packs = n / V;
    for (int64_t q = tid; q < packs; q += step) {
      const Pack<T> pin[] = {LoadPack(in, q)...};
      Pack<T> po;
      KD_UNROLL
      for (int k = 0; k < V; ++k) SetF(po.v[k], ApplyToPacks(f, pin, k, std::index_sequence_for<In...>{}));
      StorePack(out, q, po);
    }
    done = packs * V;
  }
  for (int64_t i = done + tid; i < n; i += step) kd::StoreF(out, i, f(kd::LoadF(in, i)...));
}

// Launch shape of a MapElementwise kernel over n elements of `elem_bytes`
// each; `aligned`: every pointer is 16-byte aligned (then vec, and a thread
// per pack). Block 256, no shared memory.
struct MapLaunch {
  bool vec;
  kd::Dim3 grid, block;
};
inline MapLaunch MapGeometry(int64_t n, int elem_bytes, bool aligned) {
  const int64_t work = aligned ? n / (16 / elem_bytes) + 1 : n;
  return {aligned, kd::Dim3(GridFor(work)), kd::Dim3(256)};
}

// ---------------------------------------------------------------------------
// Unary ops (scale, exp, sqrt, rsqrt, neg, square).

// x, out: [n] of T; out may be x. p0, p1: scale's mul and add.
template <typename T, UnaryKind K>
KD_GLOBAL void UnaryKernel(kd::Ptr<const T> x, kd::Ptr<T> out, int64_t n, float p0, float p1, bool vec) {
  MapElementwise(out, n, vec, [=](float v) { return Unary<K>(v, p0, p1); }, x);
}

// ---------------------------------------------------------------------------
// Binary ops (add, sub, mul, div) and broadcast_to.

template <BinaryKind K> struct BinaryF {
  KD_DEVICE float operator()(float x, float y) const { return Binary<K>(x, y); }
};
struct TakeFirst {
  KD_DEVICE float operator()(float x, float) const { return x; }
};

// a, b, out: [n] of T (same shape, no broadcast), all 16-byte aligned;
// 16-byte packs, then the tail.
template <typename T, typename F>
KD_GLOBAL void BinaryFlatKernel(kd::Ptr<const T> a, kd::Ptr<const T> b, kd::Ptr<T> out, int64_t n, F f) {
  MapElementwise(out, n, true, f, a, b);
}

// out: [numel(plan)] of T; a and b indexed through the plan's strides
// (0 = broadcast). I is the index type (uint32_t when everything fits).
template <typename T, typename I, typename F>
KD_GLOBAL void BinaryBroadcastKernel(kd::Ptr<const T> a, kd::Ptr<const T> b, kd::Ptr<T> out, BroadcastPlan p, I n,
                                     F f) {
  for (I i = kd::blockIdx.x * I(kd::blockDim.x) + kd::threadIdx.x; i < n; i += I(kd::gridDim.x) * kd::blockDim.x) {
    I oa = 0, ob = 0;
    if (p.rank == 1) {
      oa = i * I(p.stride_a[0]);
      ob = i * I(p.stride_b[0]);
    } else {
      I rem = i;
      for (int d = p.rank - 1; d >= 0; --d) {
        const I dim = I(p.dims[d]);
        const I idx = rem % dim;
        rem /= dim;
        oa += idx * I(p.stride_a[d]);
        ob += idx * I(p.stride_b[d]);
      }
    }
    kd::StoreF(out, i, f(kd::LoadF(a, oa), kd::LoadF(b, ob)));
  }
}

// Which binary kernel runs, and its shape: the flat vector kernel when no
// operand is broadcast and all three pointers are 16-byte aligned, else the
// broadcast kernel with 32-bit indices below 2^31 elements, 64-bit above.
enum class BinaryPath { kFlat, kBroadcast32, kBroadcast64 };
struct BinaryLaunch {
  BinaryPath path;
  kd::Dim3 grid, block;
};
inline BinaryLaunch BinaryGeometry(const BroadcastPlan& p, int elem_bytes, bool aligned) {
  const int64_t n = p.numel();
  if (p.flat() && aligned) return {BinaryPath::kFlat, kd::Dim3(GridFor(n / (16 / elem_bytes) + 1)), kd::Dim3(256)};
  if (n < (int64_t{1} << 31)) return {BinaryPath::kBroadcast32, kd::Dim3(GridFor(n)), kd::Dim3(256)};
  return {BinaryPath::kBroadcast64, kd::Dim3(GridFor(n)), kd::Dim3(256)};
}

// ---------------------------------------------------------------------------
// cast between f32, f16, bf16, i32 and i64 (conversions of cast_math.h).

template <typename T> KD_DEVICE float CastToF(T v) {
  if constexpr (std::is_same_v<T, kd::half>) return kd::half2float(v);
  else if constexpr (std::is_same_v<T, kd::bfloat16>) return kd::bfloat162float(v);
  else return v;
}

// in: [n] of From; out: [n] of To.
template <typename From, typename To>
KD_GLOBAL void CastKernel(kd::Ptr<const From> in, kd::Ptr<To> out, int64_t n) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < n;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    constexpr bool kFromInt = std::is_integral_v<From>, kToInt = std::is_integral_v<To>;
    const From v = in[i];
    if constexpr (kFromInt && kToInt) out[i] = IntToInt<To>(v);
    else if constexpr (kFromInt) kd::StoreF(out, i, static_cast<float>(v));
    else if constexpr (kToInt) out[i] = FloatToInt<To>(CastToF(v));
    else kd::StoreF(out, i, CastToF(v));
  }
}

// One thread per element, block 256.
inline GridStride CastGeometry(int64_t n) { return GridStrideFor(n); }

}  // namespace cf::ew
