// The CUDA kernel of `full` (ops/core/full_kernel.cuh) on the kdev
// interpreter against the CPU kernel, with the launcher's launch geometry:
// bit for bit in f32, f16 and bf16 (one rounding of the value), on sizes off
// the block width, one element, a misaligned view, values that round,
// overflow or are NaN / inf, and the geometry of zero and huge sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "ops/core/full_kernel.cuh"
#include "tests/support/kdev_tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;

TEST(CoreInterp, Full) {
  const double inf = std::numeric_limits<double>::infinity();
  for (double value : {0.0, -0.0, 1.0, -2.5, 0.1, 1.0 / 3.0, 70000.0, 3e38, 1e-40, inf, -inf, std::nan("")}) {
    for (DType t : kGpuDTypes) {
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{256}, int64_t{1000}}) {
        for (int64_t offset : {0, 1}) {
          const Attrs attrs{{"shape", std::vector<int64_t>{n}}, {"dtype", t}, {"value", value}};
          CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("full", {}, attrs));
          DevTensor out(Shape{n}, t, "out", offset);
          const GridStride g = core::FullGeometry(n);
          const Status st = DispatchKdFloat(t, [&](auto tag) -> Status {
            using T = decltype(tag);
            return ki::Launch(KdConfig("full", g.grid, g.block), &core::FullKernel<T>, out.ptr<T>(), n,
                              static_cast<float>(value));
          });
          ASSERT_TRUE(st.ok()) << st;
          const Tensor got = out.ToTensor();
          EXPECT_EQ(0, std::memcmp(got.raw(), want.raw(), static_cast<size_t>(want.nbytes())))
              << value << " " << DTypeName(t) << " n " << n << " offset " << offset;
        }
      }
    }
  }
}

TEST(CoreInterp, FullGeometry) {
  // Zero elements: the launcher returns first; the shape is still valid and
  // the kernel touches nothing.
  const GridStride g = core::FullGeometry(0);
  EXPECT_EQ(g.grid, 1u);
  DevTensor out(Shape{0}, DType::f16, "out");
  CF_EXPECT_OK(ki::Launch(KdConfig("full0", g.grid, g.block), &core::FullKernel<kd::half>, out.ptr<kd::half>(),
                          int64_t{0}, 1.f));
  EXPECT_EQ(core::FullGeometry(257).grid, 2u);
  EXPECT_EQ(core::FullGeometry(int64_t{1} << 40).grid, 65535u * 16);
  EXPECT_EQ(core::FullGeometry(int64_t{1} << 40).block, 256u);
}

}  // namespace
}  // namespace cf::testing
