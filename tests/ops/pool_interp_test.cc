// The upsample_nearest2x CUDA kernels (ops/pool/upsample_nearest2x_kernels.cuh)
// run on the CPU interpreter of runtime/kdev against the CPU kernels, with the
// copy unit and grid the CUDA launcher picks: 16-, 8-, 4- and 2-byte units
// (channel rows and element offsets that break each alignment), odd maps,
// one element, f32/f16/bf16; empty and huge shapes through the geometry.
// The grid-stride pool kernels (avg_pool2d, adaptive_avg_pool2d, resize_bilinear) run with LaunchPoolKernel's
// geometry (pool_kernels.cuh) on odd maps, one element and element offsets.
#include <set>

#include "ops/pool/adaptive_avg_pool2d_kernels.cuh"
#include "ops/pool/avg_pool2d_kernels.cuh"
#include "ops/pool/resize_bilinear_kernels.cuh"
#include "ops/pool/upsample_nearest2x_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace upsample_kernels;

template <class T, class U> Status Upsample(const DevBuf<T>& x, DevBuf<T>& y, const Shape& xs) {
  const int64_t row_bytes = xs[3] * int64_t(sizeof(T)), cu = row_bytes / int64_t(sizeof(U));
  const int64_t total = xs[0] * 2 * xs[1] * 2 * xs[2] * cu;
  const UpsampleLaunch l = UpsampleLaunchFor(total);
  if (l.empty()) return absl::OkStatus();
  return ki::Launch(KdConfig("UpsampleKernel", l.grid, l.block), &UpsampleKernel<U>,
                    kd::ptr_cast<const U>(kd::Ptr<const T>(x)), kd::ptr_cast<U>(y.ptr()), total, xs[1], xs[2], cu);
}

// UpsampleCuda's dispatch on the unit (upsample_nearest2x.cu).
template <class T> StatusOr<int> UpsampleAny(const DevBuf<T>& x, DevBuf<T>& y, const Shape& xs) {
  const int unit = UpsampleUnitBytes(xs[3] * int64_t(sizeof(T)), reinterpret_cast<uintptr_t>(x.host()),
                                     reinterpret_cast<uintptr_t>(y.host()));
  switch (unit) {
    case 16: CF_RETURN_IF_ERROR((Upsample<T, kd::uint4>(x, y, xs))); break;
    case 8: CF_RETURN_IF_ERROR((Upsample<T, kd::uint2>(x, y, xs))); break;
    case 4: CF_RETURN_IF_ERROR((Upsample<T, uint32_t>(x, y, xs))); break;
    default: CF_RETURN_IF_ERROR((Upsample<T, uint16_t>(x, y, xs))); break;
  }
  return unit;
}

TEST(PoolInterp, UpsampleNearest2x) {
  const Shape shapes[] = {{1, 3, 5, 4}, {2, 3, 4, 2}, {1, 5, 3, 3}, {1, 1, 1, 1}, {1, 4, 7, 8}, {2, 2, 3, 5}};
  uint64_t seed = 1;
  std::set<int> units;
  for (const Shape& xs : shapes) {
    const Shape ys{xs[0], 2 * xs[1], 2 * xs[2], xs[3]};
    for (DType t : kInterpDTypes) {
      for (size_t offset : {size_t{0}, size_t{1}}) {
        const Tensor x = RandomTensor(xs, DType::f32, seed++), dy = RandomTensor(ys, DType::f32, seed++);
        EXPECT_TRUE(MatchesCpuReference("upsample_nearest2x", {x}, {}, t, [&](const std::vector<Tensor>& in) {
          return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
            using T = decltype(tag);
            DevBuf<T> xb(in[0], "x", offset), yb(size_t(ys.numel()), "y", offset);
            CF_ASSIGN_OR_RETURN(int unit, UpsampleAny<T>(xb, yb, xs));
            units.insert(unit);
            return std::vector<Tensor>{yb.ToTensor(ys)};
          });
        })) << xs.ToString() << " offset " << offset;
        EXPECT_TRUE(MatchesCpuReference("upsample_nearest2x_backward", {dy}, {}, t, [&](const std::vector<Tensor>& in) {
          return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
            using T = decltype(tag);
            DevBuf<T> dyb(in[0], "dy", offset), dxb(size_t(xs.numel()), "dx", offset);
            const UpsampleLaunch l = UpsampleLaunchFor(xs.numel());
            CF_RETURN_IF_ERROR(ki::Launch(KdConfig("UpsampleBackwardKernel", l.grid, l.block),
                                          &UpsampleBackwardKernel<T>, kd::Ptr<const T>(dyb), dxb.ptr(), xs.numel(),
                                          xs[1], xs[2], xs[3]));
            return std::vector<Tensor>{dxb.ToTensor(xs)};
          });
        })) << xs.ToString() << " offset " << offset;
      }
    }
  }
  EXPECT_EQ(units, (std::set<int>{2, 4, 8, 16}));  // every copy unit ran
}

TEST(PoolInterp, UpsampleGeometry) {
  EXPECT_TRUE(UpsampleLaunchFor(0).empty());
  EXPECT_EQ(UpsampleLaunchFor(1).grid, 1u);
  EXPECT_EQ(UpsampleLaunchFor(int64_t(1) << 40).grid, 65535u * 16);  // the grid-stride loop covers the rest
  EXPECT_EQ(UpsampleUnitBytes(16 * 3, 256, 512), 16);
  EXPECT_EQ(UpsampleUnitBytes(16, 256 + 8, 512), 8);
  EXPECT_EQ(UpsampleUnitBytes(12, 256, 512), 4);
  EXPECT_EQ(UpsampleUnitBytes(6, 256, 512), 2);
}

// ---- grid-stride pool kernels (pool_cuda.cuh's LaunchPoolKernel) ---------------------------

using pool_internal::PoolLaunch;
using pool_internal::PoolLaunchFor;

// LaunchPoolKernel on the interpreter: kernel(src, dst, total, H, W, C, OH, OW,
// extra...) over dst = the pooled side (forward) or the full side (backward),
// both buffers `offset` elements into their allocations.
template <class T, class... Params, class... Extra>
StatusOr<std::vector<Tensor>> RunPool(const char* name, void (*kernel)(Params...), const Tensor& src,
                                      const Shape& full, const Shape& pooled, bool backward, size_t offset,
                                      Extra... extra) {
  const Shape& ds = backward ? full : pooled;
  DevBuf<T> sb(src, backward ? "dy" : "x", offset), db(size_t(ds.numel()), backward ? "dx" : "y", offset);
  const PoolLaunch l = PoolLaunchFor(ds.numel());
  if (!l.empty())
    CF_RETURN_IF_ERROR(ki::Launch(KdConfig(name, l.grid, l.block), kernel, kd::Ptr<const T>(sb), db.ptr(),
                                  ds.numel(), full[1], full[2], full[3], pooled[1], pooled[2], extra...));
  return std::vector<Tensor>{db.ToTensor(ds)};
}

// A forward op and its backward (attrs plus input_hw) against the CPU kernels,
// f32/f16/bf16, element offsets 0 and 1. run(T{}, src, backward, offset).
template <class Run>
void CheckPoolPair(const std::string& op, const Shape& xs, const Shape& ys, const Attrs& attrs, uint64_t* seed,
                   Run run) {
  Attrs battrs = attrs;
  battrs.Set("input_hw", std::vector<int64_t>{xs[1], xs[2]});
  for (DType t : kInterpDTypes) {
    for (size_t offset : {size_t{0}, size_t{1}}) {
      const Tensor x = RandomTensor(xs, DType::f32, (*seed)++), dy = RandomTensor(ys, DType::f32, (*seed)++);
      EXPECT_TRUE(MatchesCpuReference(op, {x}, attrs, t, [&](const std::vector<Tensor>& in) {
        return DispatchKd(t, [&](auto tag) { return run(tag, in[0], false, offset); });
      })) << op << " " << xs.ToString() << " -> " << ys.ToString() << " offset " << offset;
      EXPECT_TRUE(MatchesCpuReference(op + "_backward", {dy}, battrs, t, [&](const std::vector<Tensor>& in) {
        return DispatchKd(t, [&](auto tag) { return run(tag, in[0], true, offset); });
      })) << op << "_backward " << xs.ToString() << " -> " << ys.ToString() << " offset " << offset;
    }
  }
}

TEST(PoolInterp, AvgPool2d) {
  using pool_internal::PoolGeom;
  using pool_internal::PoolOutLen;
  struct Case {
    Shape xs;
    PoolGeom g;
  };
  const Case cases[] = {
      {{2, 7, 5, 3}, {3, 3, 2, 2, 0, 0}},  // 7x5 -> 3x2
      {{1, 7, 5, 3}, {3, 2, 2, 2, 1, 1}},  // padding: windows clipped at both edges
      {{1, 37, 45, 2}, {4, 5, 3, 4, 2, 2}},
      {{1, 6, 6, 5}, {2, 2, 2, 2, 0, 0}},
      {{1, 5, 4, 1}, {3, 3, 1, 1, 1, 1}},  // overlapping windows
      {{1, 1, 1, 1}, {1, 1, 1, 1, 0, 0}},  // one element
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    const PoolGeom g = c.g;
    const Shape ys{c.xs[0], PoolOutLen(c.xs[1], g.kh, g.sh, g.ph), PoolOutLen(c.xs[2], g.kw, g.sw, g.pw), c.xs[3]};
    const Attrs a{{"kernel", std::vector<int64_t>{g.kh, g.kw}},
                  {"stride", std::vector<int64_t>{g.sh, g.sw}},
                  {"padding", std::vector<int64_t>{g.ph, g.pw}}};
    CheckPoolPair("avg_pool2d", c.xs, ys, a, &seed, [&](auto tag, const Tensor& src, bool backward, size_t offset) {
      using T = decltype(tag);
      return backward ? RunPool<T>("AvgPoolKernel<backward>", &avg_pool_kernels::AvgPoolKernel<T, true>, src, c.xs,
                                   ys, true, offset, g)
                      : RunPool<T>("AvgPoolKernel", &avg_pool_kernels::AvgPoolKernel<T, false>, src, c.xs, ys, false,
                                   offset, g);
    });
  }
}

TEST(PoolInterp, AdaptiveAvgPool2d) {
  struct Case {
    Shape xs;
    int64_t oh, ow;
  };
  const Case cases[] = {
      {{2, 7, 5, 3}, 3, 2},    // overlapping bins of unequal sizes
      {{1, 37, 45, 2}, 5, 7},
      {{1, 5, 4, 3}, 9, 8},    // upsampling: bins of one input, each input in several bins
      {{1, 6, 6, 4}, 1, 1},    // global average
      {{1, 1, 1, 1}, 1, 1},    // one element
      {{1, 4, 3, 5}, 4, 3},    // identity
  };
  uint64_t seed = 200;
  for (const Case& c : cases) {
    const Shape ys{c.xs[0], c.oh, c.ow, c.xs[3]};
    const Attrs a{{"output_size", std::vector<int64_t>{c.oh, c.ow}}};
    CheckPoolPair("adaptive_avg_pool2d", c.xs, ys, a, &seed,
                  [&](auto tag, const Tensor& src, bool backward, size_t offset) {
                    using T = decltype(tag);
                    return backward ? RunPool<T>("AdaptiveBackwardKernel",
                                                 &adaptive_pool_kernels::AdaptiveBackwardKernel<T>, src, c.xs, ys,
                                                 true, offset)
                                    : RunPool<T>("AdaptiveKernel", &adaptive_pool_kernels::AdaptiveKernel<T>, src,
                                                 c.xs, ys, false, offset);
                  });
  }
}

TEST(PoolInterp, ResizeBilinear) {
  struct Case {
    Shape xs;
    int64_t oh, ow;
  };
  const Case cases[] = {
      {{2, 7, 5, 3}, 3, 2},    // downsampling 7x5 -> 3x2
      {{1, 37, 45, 2}, 11, 13},
      {{1, 5, 4, 3}, 9, 11},   // upsampling: taps clamped at both edges
      {{1, 3, 3, 2}, 7, 1},    // one output column
      {{1, 1, 1, 1}, 1, 1},    // one element
      {{1, 1, 1, 2}, 3, 4},    // from one pixel: both taps of every output coincide
  };
  uint64_t seed = 300;
  for (const Case& c : cases) {
    const Shape ys{c.xs[0], c.oh, c.ow, c.xs[3]};
    const Attrs a{{"size", std::vector<int64_t>{c.oh, c.ow}}};
    const resize_kernels::ResizeScales sc = resize_kernels::ResizeScalesFor(c.xs[1], c.xs[2], c.oh, c.ow);
    CheckPoolPair("resize_bilinear", c.xs, ys, a, &seed,
                  [&](auto tag, const Tensor& src, bool backward, size_t offset) {
                    using T = decltype(tag);
                    return backward ? RunPool<T>("ResizeBackwardKernel", &resize_kernels::ResizeBackwardKernel<T>,
                                                 src, c.xs, ys, true, offset, sc.sh, sc.sw)
                                    : RunPool<T>("ResizeKernel", &resize_kernels::ResizeKernel<T>, src, c.xs, ys,
                                                 false, offset, sc.sh, sc.sw);
                  });
  }
}

TEST(PoolInterp, PoolGeometry) {
  EXPECT_TRUE(PoolLaunchFor(0).empty());
  EXPECT_EQ(PoolLaunchFor(1).grid, 1u);
  EXPECT_EQ(PoolLaunchFor(257).grid, 2u);
  EXPECT_EQ(PoolLaunchFor(257).block, 256u);
  EXPECT_EQ(PoolLaunchFor(int64_t(1) << 40).grid, 65535u * 16);  // the grid-stride loop covers the rest
  const resize_kernels::ResizeScales sc = resize_kernels::ResizeScalesFor(7, 5, 3, 10);
  EXPECT_EQ(sc.sh, 7.f / 3.f);
  EXPECT_EQ(sc.sw, 0.5f);
}

}  // namespace
}  // namespace cf::testing
