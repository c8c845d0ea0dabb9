// The `pad` kernel (definition in shape_pad.cc), written against
// runtime/kdev/kdev.h: launched by shape_pad.cu and run on the CPU interpreter
// by tests/ops/shape_interp_test.cc, both with the plan below (the vector
// width, the widened layout, the fill pattern, the index type and the grid).
// One thread per output element, widened to 16/8/4/2-byte vectors when the
// last (canonical) dim's sizes and offset allow it, e.g. NHWC padded on H and
// W moves whole C runs.
#pragma once

#include <cstdint>
#include <cstring>

#include "ops/grid_for.h"
#include "ops/shape/pad_layout.h"
#include "runtime/kdev/kdev.h"

namespace cf::pad_kernels {

template <typename I>
struct DevPad {
  int rank;
  I out[PadLayout::kMaxRank];
  I in_strides[PadLayout::kMaxRank];
  int64_t in[PadLayout::kMaxRank];
  int64_t before[PadLayout::kMaxRank];
};

// dst: the output box of `l` (n elements of T, row-major); src: the input
// (row-major over l.in). Elements outside the input get `fill`.
template <typename T, typename I>
KD_GLOBAL void PadKernel(kd::Ptr<T> KD_RESTRICT dst, kd::Ptr<const T> KD_RESTRICT src, DevPad<I> l, I n, T fill) {
  for (I i = kd::blockIdx.x * I(kd::blockDim.x) + kd::threadIdx.x; i < n; i += I(kd::gridDim.x) * kd::blockDim.x) {
    I rem = i;
    int64_t s = 0;
    bool inside = true;
    KD_UNROLL
    for (int k = PadLayout::kMaxRank - 1; k >= 0; --k) {
      if (k < l.rank) {
        const int64_t c = static_cast<int64_t>(rem % l.out[k]) - l.before[k];
        rem /= l.out[k];
        inside = inside && c >= 0 && c < l.in[k];
        s += c * static_cast<int64_t>(l.in_strides[k]);
      }
    }
    dst[i] = inside ? T(src[s]) : fill;
  }
}

template <int V> struct PadWord;
template <> struct PadWord<1> { using T = uint8_t; };
template <> struct PadWord<2> { using T = uint16_t; };
template <> struct PadWord<4> { using T = uint32_t; };
template <> struct PadWord<8> { using T = kd::uint2; };
template <> struct PadWord<16> { using T = kd::uint4; };

// ---- launch geometry (host) ----------------------------------------------------------------

// What PadKernel runs for a canonical layout of elem_size-byte elements: the
// vector width `vec` (bytes; the widest of 16, 8, 4, 2 dividing the last dim's
// sizes and offset in bytes and both addresses, else elem_size), the layout
// in units of vec, and the fill value repeated over one vector.
struct PadPlan {
  int vec = 1;
  PadLayout l;
  uint8_t pattern[16] = {};
};
inline PadPlan PadPlanFor(const PadLayout& layout, int64_t elem_size, uint64_t fill_bits, uintptr_t dst_addr,
                          uintptr_t src_addr) {
  PadPlan p;
  p.l = layout;
  PadLayout& l = p.l;
  const int last = l.rank - 1;
  auto abs64 = [](int64_t v) { return v < 0 ? -v : v; };
  int64_t v = 16;
  for (; v > elem_size; v /= 2) {
    if ((l.out[last] * elem_size) % v == 0 && (l.in[last] * elem_size) % v == 0 &&
        (abs64(l.before[last]) * elem_size) % v == 0 && dst_addr % uint64_t(v) == 0 && src_addr % uint64_t(v) == 0)
      break;
  }
  if (v > elem_size) {
    l.out[last] = l.out[last] * elem_size / v;
    l.in[last] = l.in[last] * elem_size / v;
    l.before[last] = l.before[last] * elem_size / v;
  } else {
    v = elem_size;
  }
  p.vec = static_cast<int>(v);
  for (int64_t b = 0; b < 16; ++b) p.pattern[b] = static_cast<uint8_t>(fill_bits >> (8 * (b % elem_size)));
  return p;
}

// 32-bit indices when both the output and the input have fewer than 2^31 units.
inline bool PadIndex32(const PadLayout& l) {
  int64_t n = 1, in_n = 1;
  for (int k = 0; k < l.rank; ++k) {
    n *= l.out[k];
    in_n *= l.in[k];
  }
  constexpr int64_t kSmall = int64_t(1) << 31;
  return n < kSmall && in_n < kSmall;
}

// The kernel's layout argument and its output size *n (units).
template <typename I>
DevPad<I> DevPadOf(const PadLayout& l, int64_t* n) {
  DevPad<I> d{};
  d.rank = l.rank;
  int64_t total = 1, acc = 1;
  for (int k = l.rank - 1; k >= 0; --k) {
    d.out[k] = static_cast<I>(l.out[k]);
    d.in_strides[k] = static_cast<I>(acc);
    d.in[k] = l.in[k];
    d.before[k] = l.before[k];
    acc *= l.in[k];
    total *= l.out[k];
  }
  *n = total;
  return d;
}

// The fill argument: the first sizeof(T) bytes of the plan's pattern.
template <typename T>
T PadFill(const PadPlan& p) {
  T fill;
  std::memcpy(static_cast<void*>(&fill), p.pattern, sizeof(T));
  return fill;
}

// One thread per output unit, grid-stride.
inline GridStride PadGridFor(int64_t n) { return GridStrideFor(n, 256); }

}  // namespace cf::pad_kernels
