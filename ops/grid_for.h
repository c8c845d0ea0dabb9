// Launch shape of grid-stride loops, with no CUDA dependency: used by the
// .cu launchers (through ops/cuda_util.cuh) and by the launch-geometry
// functions of kernels written against runtime/kdev/kdev.h, which the
// interpreted tests call too.
#pragma once

#include <cstdint>

namespace cf {

// Blocks for a grid-stride loop over n elements (at least 1, at most
// 65535 * 16: the loop covers the rest).
inline unsigned GridFor(int64_t n, int threads = 256) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535LL * 16) blocks = 65535LL * 16;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

// The launch shape of a one-thread-per-element grid-stride kernel:
// <<<g.grid, g.block>>>, no shared memory.
struct GridStride {
  unsigned grid, block;
};
inline GridStride GridStrideFor(int64_t n, int threads = 256) {
  return {GridFor(n, threads), static_cast<unsigned>(threads)};
}

}  // namespace cf
