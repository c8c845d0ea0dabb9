// The CPU interpreter of the CUDA execution model: the interpreter side of
// runtime/kdev/kdev.h (kernels include kdev.h, never this file directly).
//
// Kernels written against kdev.h compile here with the host compiler: every
// thread of a block is a fiber, switched only at barriers and warp-collective
// operations; pointers are checked fat pointers (kd::Ptr<T>) that carry the
// allocation they came from, so every global and shared access is
// bounds-checked, and shared accesses are race- and initialisation-checked.
// Tests allocate "device" memory as kd::interp::Buffer<T> and run a kernel
// with kd::interp::Launch, which returns a Status with the report of the
// first failed check. See docs/kernel-interpreter.md.
#pragma once

#include <cmath>
#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/status.h"

#define KD_INTERP 1
#define KD_GLOBAL inline
#define KD_DEVICE inline
#define KD_HD inline
#define KD_LAUNCH_BOUNDS(n)
#define KD_RESTRICT
#define KD_UNROLL
#define KD_UNROLL_N(n)
// A static __shared__ array: KD_SHARED(float, tile, [32][33]); one per block,
// keyed by the address of a function-local static (so one per function, as
// with __shared__ in CUDA, also when the function is called twice).
#define KD_SHARED(T, name, dims)      \
  static char kd_shared_key_##name;   \
  const auto name = ::cf::kd::interp::StaticShared<T dims>(&kd_shared_key_##name, #name, #T #dims)
// The launch's dynamic shared memory (extern __shared__ T name[]), 16-byte aligned.
#define KD_DYNAMIC_SHARED(T, name) const ::cf::kd::Ptr<T> name = ::cf::kd::interp::DynamicShared<T>()

namespace cf::kd {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr Dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using Uint3 = Dim3;

// Set by the scheduler at every switch to a thread.
extern thread_local Dim3 threadIdx;
extern thread_local Dim3 blockIdx;
extern thread_local Dim3 blockDim;
extern thread_local Dim3 gridDim;
inline constexpr int warpSize = 32;

namespace interp {

struct Region;  // one allocation: a Buffer, a shared array, the dynamic shared memory
using Loc = std::source_location;
enum class Access : uint8_t { kRead, kWrite, kAtomic, kReadNc };

// Checks an access of `size` bytes at p against the allocation r (bounds,
// alignment `align`, liveness; for shared memory also races, initialisation
// and cp.async in flight) and records it. Throws the interpreter's fault,
// which the launch turns into its Status.
void CheckAccess(const Region* r, const void* p, size_t size, size_t align, Access kind);
// Index i of a dimension of extent n of a shared array.
void CheckIndex(const Region* r, int64_t i, int64_t n);

}  // namespace interp

template <class T> class Ref;
template <class T> struct IsIndexRef : std::false_type {};
template <class U> struct IsIndexRef<Ref<U>> : std::bool_constant<std::is_integral_v<std::remove_cv_t<U>>> {};
// An index: an integer, or an integer loaded through a pointer (x[idx[i]]).
template <class I> concept Index = std::integral<I> || IsIndexRef<I>::value;
template <class I> auto IndexValue(const I& i) {
  if constexpr (std::integral<I>) {
    return i;
  } else {
    return i.get();
  }
}

// A device pointer: the address and the allocation it points into. Pointer
// arithmetic keeps the allocation; a dereference is checked against it.
template <class T> class Ptr {
 public:
  using element_type = T;
  constexpr Ptr() = default;
  constexpr Ptr(std::nullptr_t) {}
  Ptr(T* p, const interp::Region* r) : p_(p), r_(r) {}
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  Ptr(const Ptr<U>& o) : p_(o.raw()), r_(o.region()) {}

  template <Index I> Ref<T> operator[](const I& i) const { return Ref<T>(p_ + IndexValue(i), r_); }
  Ref<T> operator*() const { return Ref<T>(p_, r_); }
  template <Index I> Ptr operator+(const I& i) const { return Ptr(p_ + IndexValue(i), r_); }
  template <Index I> friend Ptr operator+(const I& i, const Ptr& p) { return p + i; }
  template <Index I> Ptr operator-(const I& i) const { return Ptr(p_ - IndexValue(i), r_); }
  std::ptrdiff_t operator-(const Ptr& o) const { return p_ - o.p_; }
  template <Index I> Ptr& operator+=(const I& i) { p_ += IndexValue(i); return *this; }
  template <Index I> Ptr& operator-=(const I& i) { p_ -= IndexValue(i); return *this; }
  Ptr& operator++() { ++p_; return *this; }
  Ptr& operator--() { --p_; return *this; }
  Ptr operator++(int) { Ptr o = *this; ++p_; return o; }
  Ptr operator--(int) { Ptr o = *this; --p_; return o; }
  explicit operator bool() const { return p_ != nullptr; }
  friend bool operator==(const Ptr& a, const Ptr& b) { return a.p_ == b.p_; }
  friend auto operator<=>(const Ptr& a, const Ptr& b) { return std::compare_three_way{}(a.p_, b.p_); }
  friend bool operator==(const Ptr& a, std::nullptr_t) { return a.p_ == nullptr; }

  T* raw() const { return p_; }
  const interp::Region* region() const { return r_; }

 private:
  T* p_ = nullptr;
  const interp::Region* r_ = nullptr;
};

// What p[i] is: a checked load when read, a checked store when assigned.
// Note `auto v = p[i];` keeps the reference, not the value: write the type.
template <class T> class Ref {
 public:
  using V = std::remove_cv_t<T>;
  Ref(T* p, const interp::Region* r) : p_(p), r_(r) {}
  Ref(const Ref&) = default;

  V get() const {
    interp::CheckAccess(r_, p_, sizeof(V), alignof(V), interp::Access::kRead);
    V v;
    std::memcpy(static_cast<void*>(&v), static_cast<const void*>(p_), sizeof(V));
    return v;
  }
  operator V() const { return get(); }
  void set(const V& v) const
    requires(!std::is_const_v<T>)
  {
    interp::CheckAccess(r_, p_, sizeof(V), alignof(V), interp::Access::kWrite);
    std::memcpy(static_cast<void*>(p_), static_cast<const void*>(&v), sizeof(V));
  }
  const Ref& operator=(const V& v) const
    requires(!std::is_const_v<T>)
  {
    set(v);
    return *this;
  }
  const Ref& operator=(const Ref& o) const
    requires(!std::is_const_v<T>)
  {
    set(o.get());
    return *this;
  }
#define KD_REF_COMPOUND(op)                          \
  template <class U> const Ref& operator op(const U& u) const \
    requires(!std::is_const_v<T>)                    \
  {                                                  \
    V v = get();                                     \
    v op u;                                          \
    set(v);                                          \
    return *this;                                    \
  }
  KD_REF_COMPOUND(+=)
  KD_REF_COMPOUND(-=)
  KD_REF_COMPOUND(*=)
  KD_REF_COMPOUND(/=)
  KD_REF_COMPOUND(%=)
  KD_REF_COMPOUND(&=)
  KD_REF_COMPOUND(|=)
  KD_REF_COMPOUND(^=)
  KD_REF_COMPOUND(<<=)
  KD_REF_COMPOUND(>>=)
#undef KD_REF_COMPOUND
  const Ref& operator++() const requires(!std::is_const_v<T>) { return *this += 1; }
  const Ref& operator--() const requires(!std::is_const_v<T>) { return *this -= 1; }
  V operator++(int) const requires(!std::is_const_v<T>) { V v = get(); set(v + 1); return v; }
  V operator--(int) const requires(!std::is_const_v<T>) { V v = get(); set(v - 1); return v; }
  Ptr<T> operator&() const { return Ptr<T>(p_, r_); }

 private:
  T* p_;
  const interp::Region* r_;
};

// A static shared array of type A (T[N], T[N][M], ...): indexing checks each
// dimension; a one-dimensional array decays to Ptr<T>.
template <class A> class ArrayRef;
template <class T, size_t N> class ArrayRef<T[N]> {
 public:
  using Elem = std::remove_all_extents_t<T>;
  ArrayRef(T* p, const interp::Region* r) : p_(p), r_(r) {}
  template <Index I> auto operator[](const I& index) const {
    const auto i = IndexValue(index);
    interp::CheckIndex(r_, static_cast<int64_t>(i), static_cast<int64_t>(N));
    if constexpr (std::is_array_v<T>) {
      return ArrayRef<T>(p_[i], r_);
    } else {
      return Ref<T>(p_ + i, r_);
    }
  }
  operator Ptr<T>() const requires(!std::is_array_v<T>) { return Ptr<T>(p_, r_); }
  operator Ptr<const T>() const requires(!std::is_array_v<T>) { return Ptr<const T>(p_, r_); }
  template <Index I> Ptr<T> operator+(const I& i) const requires(!std::is_array_v<T>) { return Ptr<T>(p_ + IndexValue(i), r_); }
  Ptr<Elem> flat() const { return Ptr<Elem>(reinterpret_cast<Elem*>(p_), r_); }

 private:
  T* p_;
  const interp::Region* r_;
};

// ---------------------------------------------------------------------------
// Vector types (the layout and alignment of CUDA's).
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

// ---------------------------------------------------------------------------
// half and bfloat16: bit patterns with float conversions (round to nearest
// even, runtime/dtype.h); arithmetic is done in f32 and rounded, which is
// the correctly rounded result for + - * / (f32 has more than 2p+2 bits).
#define KD_DEFINE_HALF_TYPE(Name, ToBits, FromBits)                                        \
  struct Name {                                                                            \
    uint16_t bits_;                                                                        \
    Name() = default;                                                                      \
    Name(float f) : bits_(ToBits(f)) {}                                                    \
    operator float() const { return FromBits(bits_); }                                     \
    static Name FromRaw(uint16_t b) { Name h; h.bits_ = b; return h; }                     \
    Name& operator+=(Name o) { return *this = Name(float(*this) + float(o)); }             \
    Name& operator-=(Name o) { return *this = Name(float(*this) - float(o)); }             \
    Name& operator*=(Name o) { return *this = Name(float(*this) * float(o)); }             \
    Name& operator/=(Name o) { return *this = Name(float(*this) / float(o)); }             \
  };                                                                                       \
  inline Name operator+(Name a, Name b) { return Name(float(a) + float(b)); }              \
  inline Name operator-(Name a, Name b) { return Name(float(a) - float(b)); }              \
  inline Name operator*(Name a, Name b) { return Name(float(a) * float(b)); }              \
  inline Name operator/(Name a, Name b) { return Name(float(a) / float(b)); }              \
  inline Name operator-(Name a) { return Name::FromRaw(static_cast<uint16_t>(a.bits_ ^ 0x8000u)); } \
  inline bool operator==(Name a, Name b) { return float(a) == float(b); }                  \
  inline bool operator!=(Name a, Name b) { return float(a) != float(b); }                  \
  inline bool operator<(Name a, Name b) { return float(a) < float(b); }                    \
  inline bool operator<=(Name a, Name b) { return float(a) <= float(b); }                  \
  inline bool operator>(Name a, Name b) { return float(a) > float(b); }                    \
  inline bool operator>=(Name a, Name b) { return float(a) >= float(b); }
KD_DEFINE_HALF_TYPE(half, ::cf::F32ToF16Bits, ::cf::F16BitsToF32)
KD_DEFINE_HALF_TYPE(bfloat16, ::cf::F32ToBF16Bits, ::cf::BF16BitsToF32)
#undef KD_DEFINE_HALF_TYPE
struct alignas(4) half2 { half x, y; };
struct alignas(4) bfloat162 { bfloat16 x, y; };

inline half float2half_rn(float f) { return half(f); }
inline float half2float(half h) { return float(h); }
inline bfloat16 float2bfloat16_rn(float f) { return bfloat16(f); }
inline float bfloat162float(bfloat16 h) { return float(h); }
inline half2 floats2half2_rn(float lo, float hi) { return {half(lo), half(hi)}; }
inline float2 half22float2(half2 h) { return {float(h.x), float(h.y)}; }
inline bfloat162 floats2bfloat162_rn(float lo, float hi) { return {bfloat16(lo), bfloat16(hi)}; }
inline float2 bfloat1622float2(bfloat162 h) { return {float(h.x), float(h.y)}; }
inline uint16_t half_as_ushort(half h) { return h.bits_; }
inline half ushort_as_half(uint16_t b) { return half::FromRaw(b); }
inline uint16_t bfloat16_as_ushort(bfloat16 h) { return h.bits_; }
inline bfloat16 ushort_as_bfloat16(uint16_t b) { return bfloat16::FromRaw(b); }

// Math without a host spelling; the interpreter computes the fast
// intrinsics with libm at float precision (the GPU's are approximate).
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float fast_expf(float x) { return std::exp(x); }
inline float fdividef(float a, float b) { return a / b; }

// ---------------------------------------------------------------------------
// Thread position, barriers, warp collectives.
unsigned lane_id();
unsigned thread_rank();  // x + y * Dx + z * Dx * Dy
void syncthreads(interp::Loc loc = interp::Loc::current());
void syncwarp(unsigned mask = 0xffffffffu, interp::Loc loc = interp::Loc::current());
unsigned activemask(interp::Loc loc = interp::Loc::current());
unsigned ballot_sync(unsigned mask, int pred, interp::Loc loc = interp::Loc::current());
int any_sync(unsigned mask, int pred, interp::Loc loc = interp::Loc::current());
int all_sync(unsigned mask, int pred, interp::Loc loc = interp::Loc::current());
inline void threadfence() {}
inline void threadfence_block() {}

namespace interp {
enum class ShflMode : uint8_t { kIdx, kUp, kDown, kBfly };
uint64_t Shfl(ShflMode mode, unsigned mask, uint64_t bits, int b, int width, Loc loc);
template <class T> T ShflT(ShflMode mode, unsigned mask, T v, int b, int width, Loc loc) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move values of at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = Shfl(mode, mask, bits, b, width, loc);
  T out;
  std::memcpy(static_cast<void*>(&out), &bits, sizeof(T));
  return out;
}
}  // namespace interp

template <class T> T shfl_sync(unsigned mask, T v, int src, int width = 32, interp::Loc loc = interp::Loc::current()) {
  return interp::ShflT(interp::ShflMode::kIdx, mask, v, src, width, loc);
}
template <class T> T shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                                  interp::Loc loc = interp::Loc::current()) {
  return interp::ShflT(interp::ShflMode::kUp, mask, v, static_cast<int>(delta), width, loc);
}
template <class T> T shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                                    interp::Loc loc = interp::Loc::current()) {
  return interp::ShflT(interp::ShflMode::kDown, mask, v, static_cast<int>(delta), width, loc);
}
template <class T> T shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                                   interp::Loc loc = interp::Loc::current()) {
  return interp::ShflT(interp::ShflMode::kBfly, mask, v, lane_mask, width, loc);
}

// ---------------------------------------------------------------------------
// Memory: __ldg, pointer casts for vector access, atomics.
template <class T> std::remove_cv_t<T> ldg(Ptr<T> p) {
  using V = std::remove_cv_t<T>;
  interp::CheckAccess(p.region(), p.raw(), sizeof(V), alignof(V), interp::Access::kReadNc);
  V v;
  std::memcpy(static_cast<void*>(&v), static_cast<const void*>(p.raw()), sizeof(V));
  return v;
}
// reinterpret_cast of a device pointer (e.g. to float4 for 16-byte access);
// the access is then checked for the new type's size and alignment.
template <class U, class T> Ptr<U> ptr_cast(Ptr<T> p) {
  static_assert(std::is_const_v<U> || !std::is_const_v<T>, "ptr_cast would cast away const");
  return Ptr<U>(reinterpret_cast<U*>(p.raw()), p.region());
}
template <class U, class T, size_t N> Ptr<U> ptr_cast(const ArrayRef<T[N]>& a) { return ptr_cast<U>(a.flat()); }
// A multi-dimensional shared array as a pointer to its first element.
template <class A> auto flat(const ArrayRef<A>& a) { return a.flat(); }

namespace interp {
template <class T, class F> T AtomicRmw(Ptr<T> p, F f) {
  static_assert(!std::is_const_v<T>, "atomic on a const pointer");
  CheckAccess(p.region(), p.raw(), sizeof(T), alignof(T), Access::kAtomic);
  T old;
  std::memcpy(&old, p.raw(), sizeof(T));
  const T now = f(old);
  std::memcpy(p.raw(), &now, sizeof(T));
  return old;
}
template <class T, class... U> inline constexpr bool kOneOf = (std::is_same_v<T, U> || ...);
}  // namespace interp

template <class T> T atomicAdd(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, unsigned long long, float, double>, "atomicAdd: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return static_cast<T>(o + v); });
}
template <class T> T atomicSub(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned>, "atomicSub: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return static_cast<T>(o - v); });
}
template <class T> T atomicMax(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, long long, unsigned long long>, "atomicMax: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return o > v ? o : v; });
}
template <class T> T atomicMin(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, long long, unsigned long long>, "atomicMin: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return o < v ? o : v; });
}
template <class T> T atomicExch(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, unsigned long long, float>, "atomicExch: unsupported type");
  return interp::AtomicRmw(p, [v](T) { return v; });
}
template <class T> T atomicCAS(Ptr<T> p, std::type_identity_t<T> compare, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, unsigned long long, unsigned short>, "atomicCAS: unsupported type");
  return interp::AtomicRmw(p, [compare, v](T o) { return o == compare ? v : o; });
}
template <class T> T atomicAnd(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, unsigned long long>, "atomicAnd: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return static_cast<T>(o & v); });
}
template <class T> T atomicOr(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, unsigned long long>, "atomicOr: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return static_cast<T>(o | v); });
}
template <class T> T atomicXor(Ptr<T> p, std::type_identity_t<T> v) {
  static_assert(interp::kOneOf<T, int, unsigned, unsigned long long>, "atomicXor: unsupported type");
  return interp::AtomicRmw(p, [v](T o) { return static_cast<T>(o ^ v); });
}

// ---------------------------------------------------------------------------
// Tensor cores and asynchronous copies (sm_80+). Fragment layouts: kdev.h.
namespace interp {
void Mma16816(float* d, const uint32_t* a, const uint32_t* b, const float* c, bool bf16, Loc loc);
void Ldmatrix(uint32_t* r, const void* row, const Region* region, int count, bool trans, Loc loc);
void CpAsync(void* dst, const Region* dr, const void* src, const Region* sr, int bytes, int src_bytes, Loc loc);
void CpAsyncCommit();
void CpAsyncWait(int n);
}  // namespace interp

// D = A * B + C, A 16x16 row-major, B 16x8 column-major, f16 inputs, f32 accumulation.
inline void mma_m16n8k16_f32_f16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                                 interp::Loc loc = interp::Loc::current()) {
  interp::Mma16816(d, a, b, c, false, loc);
}
inline void mma_m16n8k16_f32_bf16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                                  interp::Loc loc = interp::Loc::current()) {
  interp::Mma16816(d, a, b, c, true, loc);
}

// ldmatrix.sync.aligned.m8n8.xN{.trans}.shared.b16: lane 8i + r passes the
// address of row r of matrix i (16 bytes, 16-byte aligned, shared memory).
template <int N, bool Trans, class T> void ldmatrix(uint32_t* r, Ptr<T> row, interp::Loc loc = interp::Loc::current()) {
  static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
  static_assert(sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 16, "ldmatrix row pointers are to 16-bit data");
  interp::Ldmatrix(r, row.raw(), row.region(), N, Trans, loc);
}
template <class T> void ldmatrix_x1(uint32_t r[1], Ptr<T> p, interp::Loc l = interp::Loc::current()) { ldmatrix<1, false>(r, p, l); }
template <class T> void ldmatrix_x2(uint32_t r[2], Ptr<T> p, interp::Loc l = interp::Loc::current()) { ldmatrix<2, false>(r, p, l); }
template <class T> void ldmatrix_x4(uint32_t r[4], Ptr<T> p, interp::Loc l = interp::Loc::current()) { ldmatrix<4, false>(r, p, l); }
template <class T> void ldmatrix_x1_trans(uint32_t r[1], Ptr<T> p, interp::Loc l = interp::Loc::current()) { ldmatrix<1, true>(r, p, l); }
template <class T> void ldmatrix_x2_trans(uint32_t r[2], Ptr<T> p, interp::Loc l = interp::Loc::current()) { ldmatrix<2, true>(r, p, l); }
template <class T> void ldmatrix_x4_trans(uint32_t r[4], Ptr<T> p, interp::Loc l = interp::Loc::current()) { ldmatrix<4, true>(r, p, l); }

// cp.async of Bytes (4, 8, 16) from global to shared memory; the zfill form
// reads src_bytes (0..Bytes) and zeroes the rest.
template <int Bytes, class D, class S> void cp_async(Ptr<D> dst, Ptr<S> src, interp::Loc loc = interp::Loc::current()) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  interp::CpAsync(dst.raw(), dst.region(), src.raw(), src.region(), Bytes, Bytes, loc);
}
template <int Bytes, class D, class S>
void cp_async_zfill(Ptr<D> dst, Ptr<S> src, int src_bytes, interp::Loc loc = interp::Loc::current()) {
  static_assert(Bytes == 4 || Bytes == 8 || Bytes == 16, "cp.async copies 4, 8 or 16 bytes");
  interp::CpAsync(dst.raw(), dst.region(), src.raw(), src.region(), Bytes, src_bytes, loc);
}
inline void cp_async_commit() { interp::CpAsyncCommit(); }
template <int N> void cp_async_wait() { interp::CpAsyncWait(N); }
inline void cp_async_wait_all() {
  interp::CpAsyncCommit();
  interp::CpAsyncWait(0);
}

// ---------------------------------------------------------------------------
// Host side: device buffers and launches.
namespace interp {

void* SharedAlloc(const void* key, const char* name, const char* decl, size_t bytes, const Region** region);
void* DynamicSharedBase(const Region** region);
template <class A> ArrayRef<A> StaticShared(const void* key, const char* name, const char* decl) {
  const Region* r = nullptr;
  void* p = SharedAlloc(key, name, decl, sizeof(A), &r);
  return ArrayRef<A>(static_cast<std::remove_extent_t<A>*>(p), r);
}
template <class T> Ptr<T> DynamicShared() {
  const Region* r = nullptr;
  void* p = DynamicSharedBase(&r);
  return Ptr<T>(static_cast<T*>(p), r);
}

// A global-memory allocation (or a registration of host memory as one).
class BufferBase {
 public:
  BufferBase(const BufferBase&) = delete;
  BufferBase& operator=(const BufferBase&) = delete;

 protected:
  // external: register [external, external + bytes) instead of allocating;
  // an allocation is filled with 0xff bytes (NaN for f32/f16/bf16).
  BufferBase(size_t bytes, std::string name, void* external);
  ~BufferBase();
  void* data_;
  size_t bytes_;
  const Region* region_;
  bool owned_;
};

template <class T> class Buffer : public BufferBase {
 public:
  explicit Buffer(size_t n, std::string name = "buffer") : BufferBase(n * sizeof(T), std::move(name), nullptr), n_(n) {}
  Buffer(const std::vector<T>& v, std::string name) : Buffer(v.size(), std::move(name)) {
    if (!v.empty()) std::memcpy(static_cast<void*>(data_), static_cast<const void*>(v.data()), v.size() * sizeof(T));
  }
  // Registers existing host memory (e.g. a CPU tensor's data) as device memory.
  Buffer(T* external, size_t n, std::string name) : BufferBase(n * sizeof(T), std::move(name), external), n_(n) {}

  size_t size() const { return n_; }
  T* host() { return static_cast<T*>(data_); }
  const T* host() const { return static_cast<const T*>(data_); }
  std::vector<T> ToVector() const { return std::vector<T>(host(), host() + n_); }
  void Fill(const T& v) { for (size_t i = 0; i < n_; ++i) host()[i] = v; }
  Ptr<T> ptr() const { return Ptr<T>(static_cast<T*>(data_), region_); }
  operator Ptr<T>() const { return ptr(); }
  operator Ptr<const T>() const { return ptr(); }

 private:
  size_t n_;
};

struct LaunchConfig {
  std::string name = "kernel";  // for reports
  Dim3 grid{1, 1, 1};
  Dim3 block{1, 1, 1};
  size_t dynamic_smem = 0;
  // Dynamic shared memory above 48 KiB needs cudaFuncSetAttribute on the GPU;
  // set this to say the launcher does so.
  bool smem_opt_in = false;
  bool racecheck = true;   // shared-memory races between barriers
  bool initcheck = true;   // reads of uninitialised shared memory
};

using Body = void (*)(void*);
Status LaunchImpl(const LaunchConfig& cfg, Body body, void* ctx);

// Runs kernel(args...) on every block and thread of cfg; args convert to the
// kernel's parameter types (a Buffer<T> to Ptr<T> or Ptr<const T>). Returns
// the report of the first failed check (out of bounds, race, uninitialised
// read, barrier or warp-collective misuse, deadlock) as an error.
template <class... P, class... A> Status Launch(const LaunchConfig& cfg, void (*kernel)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "Launch: the kernel takes a different number of arguments");
  static_assert((!std::is_reference_v<P> && ...), "kernel parameters are passed by value");
  struct Ctx {
    void (*k)(P...);
    std::tuple<P...> params;
  };
  Ctx ctx{kernel, std::tuple<P...>(static_cast<P>(std::forward<A>(args))...)};
  return LaunchImpl(
      cfg,
      [](void* c) {
        auto* x = static_cast<Ctx*>(c);
        std::tuple<P...> mine = x->params;  // each thread gets its own copy of the parameters
        std::apply(x->k, mine);
      },
      &ctx);
}

}  // namespace interp
}  // namespace cf::kd
