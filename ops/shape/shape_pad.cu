// CUDA kernel of `pad` (definition in shape_pad.cc): one thread per output
// element, widened to 16/8/4/2-byte vectors when the last (canonical) dim's
// sizes and offset allow it, e.g. NHWC padded on H and W moves whole C runs.
#include <cstdint>
#include <cstring>

#include "ops/cuda_util.cuh"
#include "ops/shape/pad_layout.h"

namespace cf {
namespace {

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
__global__ void PadKernel(T* __restrict__ dst, const T* __restrict__ src, DevPad<I> l, I n, T fill) {
  for (I i = blockIdx.x * I(blockDim.x) + threadIdx.x; i < n; i += I(gridDim.x) * blockDim.x) {
    I rem = i;
    int64_t s = 0;
    bool inside = true;
#pragma unroll
    for (int k = PadLayout::kMaxRank - 1; k >= 0; --k) {
      if (k < l.rank) {
        const int64_t c = static_cast<int64_t>(rem % l.out[k]) - l.before[k];
        rem /= l.out[k];
        inside = inside && c >= 0 && c < l.in[k];
        s += c * static_cast<int64_t>(l.in_strides[k]);
      }
    }
    dst[i] = inside ? src[s] : fill;
  }
}

template <int V> struct PadWord;
template <> struct PadWord<1> { using T = uint8_t; };
template <> struct PadWord<2> { using T = uint16_t; };
template <> struct PadWord<4> { using T = uint32_t; };
template <> struct PadWord<8> { using T = uint2; };
template <> struct PadWord<16> { using T = uint4; };

template <int V, typename I>
Status Launch(void* dst, const void* src, const PadLayout& l, const uint8_t* pattern, cudaStream_t stream) {
  using T = typename PadWord<V>::T;
  DevPad<I> d{};
  d.rank = l.rank;
  int64_t n = 1, acc = 1;
  for (int k = l.rank - 1; k >= 0; --k) {
    d.out[k] = static_cast<I>(l.out[k]);
    d.in_strides[k] = static_cast<I>(acc);
    d.in[k] = l.in[k];
    d.before[k] = l.before[k];
    acc *= l.in[k];
    n *= l.out[k];
  }
  T fill;
  std::memcpy(&fill, pattern, sizeof(T));
  PadKernel<T, I><<<GridFor(n), 256, 0, stream>>>(static_cast<T*>(dst), static_cast<const T*>(src), d,
                                                  static_cast<I>(n), fill);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <int V>
Status LaunchIndexed(void* dst, const void* src, const PadLayout& l, const uint8_t* pattern, cudaStream_t stream) {
  int64_t n = 1, in_n = 1;
  for (int k = 0; k < l.rank; ++k) {
    n *= l.out[k];
    in_n *= l.in[k];
  }
  constexpr int64_t kSmall = int64_t(1) << 31;
  if (n < kSmall && in_n < kSmall) return Launch<V, uint32_t>(dst, src, l, pattern, stream);
  return Launch<V, int64_t>(dst, src, l, pattern, stream);
}

}  // namespace

Status PadCuda(void* dst, const void* src, const PadLayout& layout, int64_t elem_size, uint64_t fill_bits,
               void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  PadLayout l = layout;
  const int last = l.rank - 1;
  // Widest vector dividing the last dim's sizes and offset (in bytes) and
  // matching both pointers' alignment.
  auto abs64 = [](int64_t v) { return v < 0 ? -v : v; };
  int64_t v = 16;
  for (; v > elem_size; v /= 2) {
    if ((l.out[last] * elem_size) % v == 0 && (l.in[last] * elem_size) % v == 0 &&
        (abs64(l.before[last]) * elem_size) % v == 0 && reinterpret_cast<uintptr_t>(dst) % v == 0 &&
        reinterpret_cast<uintptr_t>(src) % v == 0)
      break;
  }
  if (v > elem_size) {
    l.out[last] = l.out[last] * elem_size / v;
    l.in[last] = l.in[last] * elem_size / v;
    l.before[last] = l.before[last] * elem_size / v;
  } else {
    v = elem_size;
  }
  // The fill value repeated over one vector.
  uint8_t pattern[16];
  for (int64_t b = 0; b < 16; ++b) pattern[b] = static_cast<uint8_t>(fill_bits >> (8 * (b % elem_size)));
  switch (v) {
    case 1: return LaunchIndexed<1>(dst, src, l, pattern, stream);
    case 2: return LaunchIndexed<2>(dst, src, l, pattern, stream);
    case 4: return LaunchIndexed<4>(dst, src, l, pattern, stream);
    case 8: return LaunchIndexed<8>(dst, src, l, pattern, stream);
    case 16: return LaunchIndexed<16>(dst, src, l, pattern, stream);
    default: return absl::InternalError(absl::StrCat("pad: element size ", elem_size));
  }
}

}  // namespace cf
