// The CUDA kernels of the activations and of geglu (ops/activation/activation_kernels.cuh)
// on the kdev interpreter against the CPU kernels, with the launchers' launch
// geometry: forward and backward, sizes off the block and pack widths, one
// and zero elements, operands one element off 16-byte alignment, in place,
// NaN / inf and the far tails, odd channel counts for geglu.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/activation/activation_kernels.cuh"
#include "ops/activation/activation_ops.h"
#include "tests/support/kdev_tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;
using act::Kind;

struct Act {
  const char* op;
  Attrs attrs;
};
std::vector<Act> Acts() {
  return {{"silu", {}},
          {"gelu", {}},
          {"gelu", Attrs{{"approximate", std::string("tanh")}}},
          {"quick_gelu", {}},
          {"leaky_relu", Attrs{{"negative_slope", 0.2}}},
          {"elu", Attrs{{"alpha", 0.7}}},
          {"sigmoid", {}}};
}

// ActivationCuda of activation.cu on the interpreter: inputs `offset`
// elements off 16-byte alignment; dx / out = x when in_place.
StatusOr<std::vector<Tensor>> RunActivation(const std::string& op, const Attrs& attrs, const std::vector<Tensor>& in,
                                            int64_t offset, bool in_place) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(op, attrs));
  const bool backward = in.size() == 2;
  const Tensor& xt = in[0];
  DevTensor x(xt, "x", offset), out(xt.shape(), xt.dtype(), "out", offset);
  DevTensor dy(backward ? in[1] : xt, "dy", offset);
  DevTensor& y = in_place ? x : out;
  const int64_t n = xt.numel();
  const float p = static_cast<float>(sel.param);
  CF_RETURN_IF_ERROR(act::DispatchKind(sel.kind, [&](auto kind) -> Status {
    using KT = decltype(kind);
    return DispatchKdFloat(xt.dtype(), [&](auto tag) -> Status {
      using T = decltype(tag);
      bool aligned = ew::Aligned16(x.data()) && ew::Aligned16(y.data());
      if (backward) aligned = aligned && ew::Aligned16(dy.data());
      const ew::MapLaunch g = ew::MapGeometry(n, sizeof(T), aligned);
      if (g.vec != (offset == 0)) return absl::InternalError("vec path not as expected");
      const auto cfg = KdConfig(op, g.grid, g.block);
      if (backward)
        return ki::Launch(cfg, &act::ActivationBackwardKernel<T, KT::value>, x.ptr<T>(), dy.ptr<T>(), y.ptr<T>(), n, p,
                          g.vec);
      return ki::Launch(cfg, &act::ActivationKernel<T, KT::value>, x.ptr<T>(), y.ptr<T>(), n, p, g.vec);
    });
  }));
  return std::vector<Tensor>{y.ToTensor()};
}

TEST(ActivationInterp, ForwardAndBackward) {
  uint64_t seed = 1;
  for (const Act& a : Acts()) {
    for (const Shape& s : std::vector<Shape>{{}, {1}, {13}, {3, 5, 7}, {1029}}) {
      for (DType t : kGpuDTypes) {
        for (int64_t offset : {0, 1}) {
          for (bool in_place : {false, true}) {
            if (in_place && s.numel() != 1029) continue;
            const Tensor x = RandomTensor(s, DType::f32, seed++, -5, 5), dy = RandomTensor(s, DType::f32, seed++);
            auto run = [&](const std::vector<Tensor>& in) { return RunActivation(a.op, a.attrs, in, offset, in_place); };
            EXPECT_TRUE(MatchesCpuReference(a.op, {x}, a.attrs, t, run))
                << a.op << " " << s.ToString() << " offset " << offset << (in_place ? " in place" : "");
            auto run_b = [&](const std::vector<Tensor>& in) {
              return RunActivation(absl::StrCat(a.op, "_backward"), a.attrs, in, offset, in_place);
            };
            EXPECT_TRUE(MatchesCpuReference(absl::StrCat(a.op, "_backward"), {x, dy}, a.attrs, t, run_b))
                << a.op << "_backward " << s.ToString() << " offset " << offset << (in_place ? " in place" : "");
          }
        }
      }
    }
  }
}

// NaN, infinities, zeros, subnormals and the far tails against the CPU kernel
// in the storage dtype (the same formulas: NaN where it gives NaN).
TEST(ActivationInterp, Specials) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> base = {0.0,  -0.0, 1.0,   -1.0,   inf,  -inf, std::nan(""), 1e-40, -1e-40, 3e38,
                                    -3e38, 88.0, -88.0, -104.0, 12.0, -12.0, 30.0,        -30.0, 1e-8};
  for (const Act& a : Acts()) {
    for (DType t : kGpuDTypes) {
      for (int64_t offset : {0, 1}) {
        const int64_t n = 2 * static_cast<int64_t>(base.size()) + 3;
        std::vector<double> v(static_cast<size_t>(n)), g(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          v[static_cast<size_t>(i)] = base[static_cast<size_t>(i) % base.size()];
          g[static_cast<size_t>(i)] = i % 3 == 0 ? 1.0 : -0.5;
        }
        const Tensor x = FromDoubles(v, {n}, t), dy = FromDoubles(g, {n}, t);
        CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1(a.op, {x}, a.attrs));
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunActivation(a.op, a.attrs, {x}, offset, false));
        // Absolute floor: f32's subnormal spacing (the CPU may flush tails differently by an ulp there).
        const double atol = 16 * std::ldexp(1.0, -149);
        EXPECT_TRUE(MatchesWithSpecials(ToDoubles(got[0]), ToDoubles(want), DefaultRtol(t), atol))
            << a.op << " " << DTypeName(t) << " offset " << offset;
        const std::string bop = absl::StrCat(a.op, "_backward");
        CF_ASSERT_OK_AND_ASSIGN(Tensor want_b, RunOp1(bop, {x, dy}, a.attrs));
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got_b, RunActivation(bop, a.attrs, {x, dy}, offset, false));
        EXPECT_TRUE(MatchesWithSpecials(ToDoubles(got_b[0]), ToDoubles(want_b), DefaultRtol(t), atol))
            << bop << " " << DTypeName(t) << " offset " << offset;
      }
    }
  }
}

TEST(ActivationInterp, ZeroElements) {
  const ew::MapLaunch g = ew::MapGeometry(0, 4, true);
  DevTensor x(Shape{0}, DType::f32, "x"), y(Shape{0}, DType::f32, "y");
  CF_EXPECT_OK(ki::Launch(KdConfig("silu0", g.grid, g.block), &act::ActivationKernel<float, Kind::kSilu>,
                          x.ptr<float>(), y.ptr<float>(), int64_t{0}, 0.f, g.vec));
  CF_EXPECT_OK(ki::Launch(KdConfig("silu0_bwd", g.grid, g.block), &act::ActivationBackwardKernel<float, Kind::kSilu>,
                          x.ptr<float>(), x.ptr<float>(), y.ptr<float>(), int64_t{0}, 0.f, g.vec));
}

// ---------------------------------------------------------------------------
// geglu

StatusOr<std::vector<Tensor>> RunGeglu(const Attrs& attrs, const std::vector<Tensor>& in, int64_t offset,
                                       bool in_place) {
  CF_ASSIGN_OR_RETURN(act::Selected sel, act::Select(in.size() == 2 ? "geglu_backward" : "geglu", attrs));
  const bool backward = in.size() == 2;
  const Tensor& xt = in[0];
  const int64_t D = xt.shape().dim(-1) / 2, rows = D ? xt.numel() / (2 * D) : 0;
  std::vector<int64_t> od(xt.shape().dims().begin(), xt.shape().dims().end());
  od.back() = D;
  const Shape out_shape = backward ? xt.shape() : Shape(od);
  DevTensor x(xt, "x", offset), out(out_shape, xt.dtype(), "out", offset);
  DevTensor dy(backward ? in[1] : xt, "dy", offset);
  DevTensor& y = in_place && backward ? x : out;
  const GridStride g = act::GegluGeometry(rows, D);
  auto launch = [&](auto kind) -> Status {
    using KT = decltype(kind);
    return DispatchKdFloat(xt.dtype(), [&](auto tag) -> Status {
      using T = decltype(tag);
      const auto cfg = KdConfig("geglu", g.grid, g.block);
      if (backward)
        return ki::Launch(cfg, &act::GegluBackwardKernel<T, KT::value>, x.ptr<T>(), dy.ptr<T>(), y.ptr<T>(), rows, D);
      return ki::Launch(cfg, &act::GegluKernel<T, KT::value>, x.ptr<T>(), y.ptr<T>(), rows, D);
    });
  };
  if (sel.kind == Kind::kGeluTanh) {
    CF_RETURN_IF_ERROR(launch(std::integral_constant<Kind, Kind::kGeluTanh>{}));
  } else {
    CF_RETURN_IF_ERROR(launch(std::integral_constant<Kind, Kind::kGeluErf>{}));
  }
  return std::vector<Tensor>{y.ToTensor()};
}

TEST(ActivationInterp, Geglu) {
  uint64_t seed = 500;
  for (const Attrs& attrs : {Attrs{}, Attrs{{"approximate", std::string("tanh")}}}) {
    for (const Shape& s : std::vector<Shape>{{2}, {1, 2}, {3, 14}, {2, 3, 66}, {5, 2 * 77}}) {
      for (DType t : kGpuDTypes) {
        for (int64_t offset : {0, 1}) {
          for (bool in_place : {false, true}) {
            std::vector<int64_t> hd(s.dims().begin(), s.dims().end());
            hd.back() /= 2;
            const Tensor x = RandomTensor(s, DType::f32, seed++, -4, 4), dy = RandomTensor(Shape(hd), DType::f32, seed++);
            auto run = [&](const std::vector<Tensor>& in) { return RunGeglu(attrs, in, offset, in_place); };
            if (!in_place) {
              EXPECT_TRUE(MatchesCpuReference("geglu", {x}, attrs, t, run)) << s.ToString();
            }
            EXPECT_TRUE(MatchesCpuReference("geglu_backward", {x, dy}, attrs, t, run))
                << s.ToString() << " offset " << offset << (in_place ? " in place" : "");
          }
        }
      }
    }
  }
}

TEST(ActivationInterp, GegluGeometry) {
  EXPECT_EQ(act::GegluGeometry(0, 0).grid, 1u);  // the launcher returns before this
  EXPECT_EQ(act::GegluGeometry(3, 77).grid, 1u);
  EXPECT_EQ(act::GegluGeometry(4, 77).grid, 2u);
  EXPECT_EQ(act::GegluGeometry(int64_t{1} << 20, int64_t{1} << 14).grid, 65535u * 16);
  EXPECT_EQ(act::GegluGeometry(1, 1).block, 256u);
  DevTensor x(Shape{0}, DType::f32, "x"), y(Shape{0}, DType::f32, "y");
  const GridStride g = act::GegluGeometry(0, 5);
  CF_EXPECT_OK(ki::Launch(KdConfig("geglu0", g.grid, g.block), &act::GegluKernel<float, Kind::kGeluErf>, x.ptr<float>(),
                          y.ptr<float>(), int64_t{0}, int64_t{5}));
}

}  // namespace
}  // namespace cf::testing
