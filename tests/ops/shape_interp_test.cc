// The `pad` CUDA kernel (ops/shape/shape_pad_kernels.cuh) runs on the CPU
// interpreter of runtime/kdev against the CPU kernel, with the plan the CUDA
// launcher picks (vector width, widened layout, fill pattern, index type):
// 16-, 8-, 4- and 2-byte vectors (sizes and element offsets that break each
// alignment), crops (negative pads), odd sizes, one element, f32/f16/bf16,
// and both index types on every case.
#include <set>

#include "ops/shape/shape_pad_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace pad_kernels;

template <int V, class I, class T>
Status RunPad(const DevBuf<T>& x, DevBuf<T>& y, const PadPlan& p) {
  using W = typename PadWord<V>::T;
  int64_t n = 0;
  const DevPad<I> d = DevPadOf<I>(p.l, &n);
  const GridStride g = PadGridFor(n);
  return ki::Launch(InterpCfg(sizeof(I) == 4 ? "PadKernel<u32>" : "PadKernel<i64>", g.grid, g.block),
                    &PadKernel<W, I>, kd::ptr_cast<W>(y.ptr()), kd::ptr_cast<const W>(kd::Ptr<const T>(x)), d,
                    static_cast<I>(n), PadFill<W>(p));
}

template <int V, class T>
Status RunPadIndexed(const DevBuf<T>& x, DevBuf<T>& y, const PadPlan& p, bool force64) {
  if (!force64 && PadIndex32(p.l)) return RunPad<V, uint32_t>(x, y, p);
  return RunPad<V, int64_t>(x, y, p);
}

// PadCuda's dispatch (shape_pad.cu).
template <class T>
StatusOr<int> PadAny(const DevBuf<T>& x, DevBuf<T>& y, const PadLayout& canonical, uint64_t bits, bool force64) {
  const PadPlan p = PadPlanFor(canonical, int64_t(sizeof(T)), bits, reinterpret_cast<uintptr_t>(y.host()),
                               reinterpret_cast<uintptr_t>(x.host()));
  switch (p.vec) {
    case 2: CF_RETURN_IF_ERROR((RunPadIndexed<2>(x, y, p, force64))); break;
    case 4: CF_RETURN_IF_ERROR((RunPadIndexed<4>(x, y, p, force64))); break;
    case 8: CF_RETURN_IF_ERROR((RunPadIndexed<8>(x, y, p, force64))); break;
    case 16: CF_RETURN_IF_ERROR((RunPadIndexed<16>(x, y, p, force64))); break;
    default: return absl::InternalError(absl::StrCat("unexpected vector width ", p.vec));
  }
  return p.vec;
}

template <class T> uint64_t FillBitsOf(float v) {
  const T t(v);
  uint64_t bits = 0;
  std::memcpy(&bits, static_cast<const void*>(&t), sizeof(T));
  return bits;
}

TEST(ShapeInterp, Pad) {
  struct Case {
    Shape xs;
    std::vector<int64_t> pads;
  };
  const Case cases[] = {
      {{2, 5, 4, 3}, {0, 0, 1, 2, 2, 1, 0, 0}},  // NHWC padded on H and W: C runs of 12 / 6 bytes
      {{2, 5, 4, 4}, {0, 0, 1, 2, 2, 1, 0, 0}},  // C runs of 16 / 8 bytes
      {{3, 7, 5}, {0, 0, -1, -2, 1, -1}},         // crops and pads mixed
      {{37, 45}, {1, 1, 3, 2}},
      {{4, 8}, {0, 0, 8, 8}},
      {{1}, {2, 3}},
      {{1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0}},   // one element, nothing padded
      {{2, 3, 5}, {1, 0, 0, 1, -2, 2}},
  };
  const float value = 1.5f;
  uint64_t seed = 1;
  std::set<int> widths;
  for (const Case& c : cases) {
    Shape ys = c.xs;
    PadLayout l;
    for (int k = 0; k < c.xs.rank(); ++k) {
      ys[k] = c.xs[k] + c.pads[2 * k] + c.pads[2 * k + 1];
      l.Add(ys[k], c.xs[k], c.pads[2 * k]);
    }
    const PadLayout canonical = l.Canonical();
    const Attrs a{{"pads", c.pads}, {"value", double(value)}};
    for (DType t : kInterpDTypes) {
      for (size_t offset : {size_t{0}, size_t{1}}) {
        for (bool force64 : {false, true}) {
          const Tensor x = RandomTensor(c.xs, DType::f32, seed++);
          EXPECT_TRUE(MatchesCpuReference("pad", {x}, a, t, [&](const std::vector<Tensor>& in) {
            return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
              using T = decltype(tag);
              DevBuf<T> xb(in[0], "x", offset), yb(size_t(ys.numel()), "y", offset);
              CF_ASSIGN_OR_RETURN(int w, PadAny<T>(xb, yb, canonical, FillBitsOf<T>(value), force64));
              widths.insert(w);
              return std::vector<Tensor>{yb.ToTensor(ys)};
            });
          })) << c.xs.ToString() << " offset " << offset << " force64 " << force64;
        }
      }
    }
  }
  EXPECT_EQ(widths, (std::set<int>{2, 4, 8, 16}));  // every vector width ran
}

TEST(ShapeInterp, PadPlan) {
  PadLayout l;
  l.Add(7, 5, 1);
  l.Add(24, 12, 4);  // f32: 96 / 48 / 16 bytes
  PadPlan p = PadPlanFor(l, 4, 0x3fc00000u, 256, 512);
  EXPECT_EQ(p.vec, 16);
  EXPECT_EQ(p.l.out[1], 6);
  EXPECT_EQ(p.l.in[1], 3);
  EXPECT_EQ(p.l.before[1], 1);
  EXPECT_EQ(PadFill<uint32_t>(p), 0x3fc00000u);
  EXPECT_EQ(PadPlanFor(l, 4, 0, 256 + 8, 512).vec, 8);
  EXPECT_EQ(PadPlanFor(l, 4, 0, 256 + 4, 512).vec, 4);
  PadLayout odd;
  odd.Add(3, 1, -1);
  EXPECT_EQ(PadPlanFor(odd, 2, 0x3e00, 256, 512).vec, 2);
  EXPECT_EQ(PadFill<uint16_t>(PadPlanFor(odd, 2, 0x3e00, 256, 512)), 0x3e00);
  EXPECT_EQ(PadPlanFor(odd, 2, 0, 256, 512).l.out[0], 3);
  PadLayout big;
  big.Add(int64_t(1) << 31, 1, 0);
  EXPECT_FALSE(PadIndex32(big));
  EXPECT_TRUE(PadIndex32(l));
  EXPECT_EQ(PadGridFor(int64_t(1) << 40).grid, 65535u * 16);
}

}  // namespace
}  // namespace cf::testing
