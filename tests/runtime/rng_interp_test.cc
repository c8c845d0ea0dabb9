// The CUDA Philox fill kernel (runtime/rng_kernel.cuh) on the kdev
// interpreter against the CPU fill (FillUniform / FillNormal on a CPU
// tensor), with the launcher's geometry: bit for bit, which is the design
// promise of runtime/philox.h, for f32, f16 and bf16, offsets that start and
// end inside a Philox block, one element, sizes off the block width, several
// grid-stride passes, stream indices near 2^64, and the geometry of huge fills.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "runtime/rng.h"
#include "runtime/rng_kernel.cuh"
#include "tests/support/kdev_tensor.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;
using detail::RngDistribution;

template <typename F> Status DispatchRng(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f(float{});
    case DType::f16: return f(f16_t{});
    default: return f(bf16_t{});
  }
}

// detail::FillRandomCuda's launch on the interpreter; `grid` overrides the
// geometry's grid when > 0 (to make the grid-stride loop take several passes).
Status InterpFill(DevTensor& out, RngDistribution dist, uint64_t seed, uint64_t offset, float a, float b,
                  unsigned grid = 0) {
  const int64_t n = out.numel();
  const rng::FillLaunch g = rng::FillGeometry(n, offset);
  const PhiloxKey key{seed};
  return DispatchRng(out.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    const auto cfg = KdConfig("philox_fill", grid ? grid : g.grid, g.block);
    if (dist == RngDistribution::kUniform)
      return ki::Launch(cfg, &rng::PhiloxFillKernel<T, RngDistribution::kUniform>, out.ptr<T>(), offset, g.end,
                        g.first_block, g.num_blocks, key, a, b);
    return ki::Launch(cfg, &rng::PhiloxFillKernel<T, RngDistribution::kNormal>, out.ptr<T>(), offset, g.end,
                      g.first_block, g.num_blocks, key, a, b);
  });
}

void ExpectSameAsCpu(DType t, RngDistribution dist, int64_t n, uint64_t seed, uint64_t offset, int64_t storage_offset,
                     unsigned grid = 0) {
  const float a = dist == RngDistribution::kUniform ? -2.f : 0.5f;
  const float b = dist == RngDistribution::kUniform ? 3.f : 0.02f;
  Tensor want = Tensor::Empty({n}, t).value();
  const Status cpu = dist == RngDistribution::kUniform ? FillUniform(want, seed, offset, a, b)
                                                       : FillNormal(want, seed, offset, a, b);
  ASSERT_TRUE(cpu.ok()) << cpu;
  DevTensor out(Shape{n}, t, "out", storage_offset);
  const Status st = InterpFill(out, dist, seed, offset, a, b, grid);
  ASSERT_TRUE(st.ok()) << st;
  const Tensor got = out.ToTensor();
  EXPECT_EQ(0, std::memcmp(got.raw(), want.raw(), static_cast<size_t>(want.nbytes())))
      << DTypeName(t) << (dist == RngDistribution::kUniform ? " uniform" : " normal") << " n " << n << " seed " << seed
      << " offset " << offset << " storage offset " << storage_offset;
}

TEST(RngInterp, BitIdenticalToCpu) {
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    for (RngDistribution dist : {RngDistribution::kUniform, RngDistribution::kNormal}) {
      for (int64_t n : {1, 2, 3, 5, 1023, 1031}) {
        for (uint64_t offset : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{1000001},
                                (uint64_t{1} << 40) + 3, kMax - static_cast<uint64_t>(n)}) {
          ExpectSameAsCpu(t, dist, n, /*seed=*/offset % 7 == 0 ? 0 : 0x8000000000000005ull, offset, offset & 1);
        }
      }
    }
  }
}

// Fewer blocks than the launch shape: every thread walks several Philox blocks.
TEST(RngInterp, GridStride) {
  for (RngDistribution dist : {RngDistribution::kUniform, RngDistribution::kNormal}) {
    ExpectSameAsCpu(DType::f32, dist, 5000, 42, 7, 0, /*grid=*/2);
    ExpectSameAsCpu(DType::bf16, dist, 3001, 43, 2, 1, /*grid=*/1);
  }
}

TEST(RngInterp, Geometry) {
  // Offsets inside a Philox block: the touched blocks, no more.
  rng::FillLaunch g = rng::FillGeometry(1, 3);
  EXPECT_EQ(g.first_block, 0u);
  EXPECT_EQ(g.num_blocks, 1);
  EXPECT_EQ(g.end, 4u);
  g = rng::FillGeometry(2, 3);
  EXPECT_EQ(g.num_blocks, 2);
  g = rng::FillGeometry(8, 4);
  EXPECT_EQ(g.first_block, 1u);
  EXPECT_EQ(g.num_blocks, 2);
  EXPECT_EQ(g.grid, 1u);
  EXPECT_EQ(g.block, 256u);
  g = rng::FillGeometry(4 * 256 + 1, 0);
  EXPECT_EQ(g.num_blocks, 257);
  EXPECT_EQ(g.grid, 2u);
  // Huge fills: the grid is capped, the block count exact.
  g = rng::FillGeometry(int64_t{1} << 40, 1);
  EXPECT_EQ(g.num_blocks, (int64_t{1} << 38) + 1);
  EXPECT_EQ(g.grid, 65536u);
  // The end of the stream: end = 2^64 - 1 without overflow.
  const uint64_t kMax = std::numeric_limits<uint64_t>::max();
  g = rng::FillGeometry(10, kMax - 10);
  EXPECT_EQ(g.end, kMax);
  EXPECT_EQ(g.first_block, (kMax - 10) >> 2);
  EXPECT_EQ(g.num_blocks, static_cast<int64_t>(((kMax - 1) >> 2) - ((kMax - 10) >> 2) + 1));
}

}  // namespace
}  // namespace cf::testing
