// Launch geometry shared by the pool family's grid-stride kernels
// (avg_pool2d, adaptive_avg_pool2d, resize_bilinear; kernels in their
// *_kernels.cuh, written against runtime/kdev/kdev.h): one thread per element
// of the op's output, channels fastest. Host code with no CUDA dependency,
// used by pool_cuda.cuh's LaunchPoolKernel and by tests/ops/pool_interp_test.cc.
#pragma once

#include <cstdint>

#include "ops/grid_for.h"

namespace cf::pool_internal {

// <<<grid, block>>> over `total` output elements; nothing to launch for total <= 0.
struct PoolLaunch {
  unsigned grid = 0, block = 256;
  bool empty() const { return grid == 0; }
};
inline PoolLaunch PoolLaunchFor(int64_t total) {
  return total <= 0 ? PoolLaunch{0, 256} : PoolLaunch{GridFor(total, 256), 256};
}

}  // namespace cf::pool_internal
