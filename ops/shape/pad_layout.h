// The pad kernels' description of their work (internal to ops/shape): per dim
// the output and input sizes and the offset `before` (negative crops), so that
// out[i] = in[i - before] where that is inside the input, else the fill value.
#pragma once

#include "runtime/config.h"  // CF_HAS_CUDA

#include <array>
#include <cstdint>

#include "ops/op.h"

namespace cf {

struct PadLayout {
  static constexpr int kMaxRank = 8;
  int rank = 0;
  std::array<int64_t, kMaxRank> out{}, in{}, before{};

  void Add(int64_t o, int64_t i, int64_t b) {
    out[rank] = o;
    in[rank] = i;
    before[rank] = b;
    ++rank;
  }
  // Unpadded dims (before 0, out == in) fold into the dim outside them
  // (in units of their size), so NHWC padded on H and W becomes [N, H, W*C].
  PadLayout Canonical() const {
    PadLayout c;
    for (int k = 0; k < rank; ++k) {
      const bool unpadded = before[k] == 0 && out[k] == in[k];
      if (unpadded && c.rank > 0) {
        const int p = c.rank - 1;
        c.out[p] *= out[k];
        c.in[p] *= in[k];
        c.before[p] *= out[k];
      } else {
        c.Add(out[k], in[k], before[k]);
      }
    }
    if (c.rank == 0) c.Add(1, 1, 0);
    return c;
  }
};

// Fill `elem_size` bytes (1, 2, 4, 8) of `value`'s bit pattern; src/dst as in
// PadLayout (dst is the output, row-major; src the input, row-major).
void PadCpu(void* dst, const void* src, const PadLayout& layout, int64_t elem_size, uint64_t fill_bits);
#if CF_HAS_CUDA
Status PadCuda(void* dst, const void* src, const PadLayout& layout, int64_t elem_size, uint64_t fill_bits,
               void* stream);
#endif

}  // namespace cf
