// upsample_nearest2x kernels (definitions in upsample_nearest2x.cc), written
// against runtime/kdev/kdev.h: launched by upsample_nearest2x.cu and run on
// the CPU interpreter by tests/ops/pool_interp_test.cc, both with the launch
// geometry below.
#pragma once

#include <cstdint>

#include "ops/grid_for.h"
#include "ops/pool/pool_internal.h"
#include "runtime/kdev/kdev.h"

namespace cf::upsample_kernels {

// x: [N, H, W, Cu] -> y: [N, 2H, 2W, Cu] in units U of the channel bytes (a
// pure copy: U is 16, 8, 4 or 2 bytes, whichever divides C * sizeof(T) and
// the alignment). total = N * 2H * 2W * Cu.
template <typename U>
KD_GLOBAL void UpsampleKernel(kd::Ptr<const U> KD_RESTRICT x, kd::Ptr<U> KD_RESTRICT y, int64_t total, int64_t H,
                              int64_t W, int64_t Cu) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const auto [n, oy, ox, c] = pool_internal::NhwcOf(i, 2 * H, 2 * W, Cu);
    const U v = x[((n * H + oy / 2) * W + ox / 2) * Cu + c];
    y[i] = v;
  }
}

// dy: [N, 2H, 2W, C] -> dx: [N, H, W, C], the sum of each 2x2 block; total = N * H * W * C.
template <typename T>
KD_GLOBAL void UpsampleBackwardKernel(kd::Ptr<const T> KD_RESTRICT dy, kd::Ptr<T> KD_RESTRICT dx, int64_t total,
                                      int64_t H, int64_t W, int64_t C) {
  for (int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x; i < total;
       i += int64_t(kd::gridDim.x) * kd::blockDim.x) {
    const auto [n, iy, ix, c] = pool_internal::NhwcOf(i, H, W, C);
    const int64_t r0 = ((n * 2 * H + 2 * iy) * 2 * W + 2 * ix) * C + c, r1 = r0 + 2 * W * C;
    kd::StoreF(dx, i, (kd::LoadF(dy, r0) + kd::LoadF(dy, r0 + C)) + (kd::LoadF(dy, r1) + kd::LoadF(dy, r1 + C)));
  }
}

// ---- launch geometry (host) ----------------------------------------------------------------

// The copy unit of UpsampleKernel: the widest of 16, 8, 4 bytes that divides
// the channel row (C * element size) and both pointers' addresses, else 2.
inline int UpsampleUnitBytes(int64_t row_bytes, uintptr_t x_addr, uintptr_t y_addr) {
  const uintptr_t align = x_addr | y_addr;
  for (int unit : {16, 8, 4})
    if (row_bytes % unit == 0 && align % unsigned(unit) == 0) return unit;
  return 2;
}
// Both kernels: one thread per element (unit) of the output, grid-stride;
// nothing to launch for total = 0.
struct UpsampleLaunch {
  unsigned grid = 0, block = 256;
  bool empty() const { return grid == 0; }
};
inline UpsampleLaunch UpsampleLaunchFor(int64_t total) {
  return total <= 0 ? UpsampleLaunch{0, 256} : UpsampleLaunch{GridFor(total, 256), 256};
}

}  // namespace cf::upsample_kernels
