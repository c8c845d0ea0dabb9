// The CUDA kernels of mse_loss and mse_loss_backward (ops/loss/mse_loss_kernels.cuh)
// on the kdev interpreter against the CPU kernels, with the launcher's
// geometry: one and several chunks per sample (a small SM count makes the
// split reachable with small inputs), weighted and not, sizes off the block
// width, one element, zero elements (NaN, as on the CPU), inputs off 16-byte
// alignment, NaN / inf inputs, and the geometry of huge sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/loss/mse_loss_kernels.cuh"
#include "tests/support/kdev_tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;

// MseCuda of mse_loss.cu on the interpreter for a GPU of num_sms SMs.
StatusOr<std::vector<Tensor>> RunMse(const std::vector<Tensor>& in, int num_sms, int64_t offset) {
  const bool weighted = in.size() == 3;
  const int64_t n = in[0].numel();
  const int64_t B = weighted && n > 0 ? in[0].shape()[0] : 1, M = n / B;
  const loss::MseLaunch g = loss::MseGeometry(n, B, num_sms);
  DevTensor p(in[0], "p", offset), t(in[1], "t", offset), out(Shape{}, in[0].dtype(), "out");
  DevTensor w(weighted ? in[2] : in[0], "w", offset);
  DevTensor partial(Shape{g.partials}, DType::f32, "partial");
  CF_RETURN_IF_ERROR(DispatchKdFloat(in[0].dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    CF_RETURN_IF_ERROR(ki::Launch(KdConfig("mse_partial", g.blocks, g.block), &loss::MsePartialKernel<T>, p.ptr<T>(),
                                  t.ptr<T>(), partial.ptr<float>(), B, M, g.S, g.chunk));
    const kd::Ptr<T> wp = weighted && n > 0 ? w.ptr<T>() : kd::Ptr<T>();
    return ki::Launch(KdConfig("mse_finish", 1, g.finish_block), &loss::MseFinishKernel<T>, partial.ptr<float>(), wp,
                      out.ptr<T>(), B, g.S, 1.f / static_cast<float>(n));
  }));
  return std::vector<Tensor>{out.ToTensor()};
}

StatusOr<std::vector<Tensor>> RunMseBackward(const std::vector<Tensor>& in, int64_t offset) {
  const bool weighted = in.size() == 4;
  const int64_t n = in[0].numel();
  const int64_t M = weighted ? n / in[0].shape()[0] : n;
  DevTensor p(in[0], "p", offset), t(in[1], "t", offset), dy(in[2], "dy"), dp(in[0].shape(), in[0].dtype(), "dp", offset);
  DevTensor w(weighted ? in[3] : in[0], "w", offset);
  const GridStride g = loss::MseBackwardGeometry(n);
  CF_RETURN_IF_ERROR(DispatchKdFloat(in[0].dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    const kd::Ptr<T> wp = weighted ? w.ptr<T>() : kd::Ptr<T>();
    return ki::Launch(KdConfig("mse_backward", g.grid, g.block), &loss::MseBackwardKernel<T>, p.ptr<T>(), t.ptr<T>(),
                      dy.ptr<T>(), wp, dp.ptr<T>(), n, M, 2.f / static_cast<float>(n));
  }));
  return std::vector<Tensor>{dp.ToTensor()};
}

TEST(LossInterp, Mse) {
  uint64_t seed = 1;
  // With 2 SMs a sample of M >= 8192 splits into chunks (S = min(ceil(8 / B), M / 4096)).
  for (const Shape& s : std::vector<Shape>{{1}, {7}, {3, 5}, {2, 4099}, {1, 9000}, {3, 8200}, {2, 3, 1500}}) {
    for (bool weighted : {false, true}) {
      for (DType t : kGpuDTypes) {
        for (int64_t offset : {0, 1}) {
          std::vector<Tensor> ins = {RandomTensor(s, DType::f32, seed++), RandomTensor(s, DType::f32, seed++)};
          if (weighted) ins.push_back(RandomTensor({s[0]}, DType::f32, seed++, 0.0, 2.0));
          std::vector<Tensor> back = {ins[0], ins[1], RandomTensor({}, DType::f32, seed++)};
          if (weighted) back.push_back(ins[2]);
          auto run = [&](const std::vector<Tensor>& in) { return RunMse(in, 2, offset); };
          EXPECT_TRUE(MatchesCpuReference("mse_loss", ins, {}, t, run))
              << s.ToString() << " weighted " << weighted << " offset " << offset;
          auto run_b = [&](const std::vector<Tensor>& in) { return RunMseBackward(in, offset); };
          EXPECT_TRUE(MatchesCpuReference("mse_loss_backward", back, {}, t, run_b))
              << s.ToString() << " weighted " << weighted << " offset " << offset;
        }
      }
    }
  }
}

TEST(LossInterp, MseSpecialsAndEmpty) {
  const double inf = std::numeric_limits<double>::infinity();
  for (DType t : kGpuDTypes) {
    // NaN or inf anywhere gives NaN / inf as on the CPU.
    for (double bad : {std::nan(""), inf}) {
      std::vector<double> pv(300, 0.5);
      pv[257] = bad;
      const Tensor p = FromDoubles(pv, {3, 100}, t), y = RandomTensor({3, 100}, t, 4);
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("mse_loss", {p, y}));
      CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunMse({p, y}, 132, 0));
      EXPECT_TRUE(MatchesWithSpecials(ToDoubles(got[0]), ToDoubles(want), DefaultRtol(t), 0)) << bad;
    }
    // Zero elements: the mean of nothing is NaN; the weights are not read.
    for (bool weighted : {false, true}) {
      std::vector<Tensor> ins = {RandomTensor({0, 4}, t, 1), RandomTensor({0, 4}, t, 2)};
      if (weighted) ins.push_back(RandomTensor({0}, t, 3));
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("mse_loss", ins));
      CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunMse(ins, 132, 0));
      EXPECT_TRUE(std::isnan(ToDoubles(got[0])[0]));
      EXPECT_TRUE(MatchesWithSpecials(ToDoubles(got[0]), ToDoubles(want), 0, 0));
    }
  }
}

TEST(LossInterp, MseGeometry) {
  // Small inputs: one chunk per sample.
  loss::MseLaunch g = loss::MseGeometry(100, 4, 132);
  EXPECT_EQ(g.S, 1);
  EXPECT_EQ(g.chunk, 25);
  EXPECT_EQ(g.blocks, 4u);
  g = loss::MseGeometry(0, 1, 132);  // empty: one block that writes a 0 partial
  EXPECT_EQ(g.S, 1);
  EXPECT_EQ(g.blocks, 1u);
  // Large: about four blocks per SM, chunks of >= 4096.
  g = loss::MseGeometry(int64_t{1} << 30, 2, 132);
  EXPECT_EQ(g.S, 264);
  EXPECT_GE(g.chunk, 4096);
  EXPECT_GE(g.S * g.chunk, (int64_t{1} << 30) / 2);
  EXPECT_EQ(g.blocks, 528u);
  // Many samples: B * S partials, the grid capped (grid-stride over items).
  g = loss::MseGeometry(int64_t{1} << 40, int64_t{1} << 24, 132);
  EXPECT_EQ(g.S, 1);
  EXPECT_EQ(g.partials, int64_t{1} << 24);
  EXPECT_EQ(g.blocks, 65535u * 16);
  EXPECT_EQ(g.finish_block, 1024u);
  EXPECT_EQ(loss::MseBackwardGeometry(int64_t{1} << 40).grid, 65535u * 16);
  EXPECT_EQ(loss::MseBackwardGeometry(257).grid, 2u);
}

// The grid-stride loop over (sample, chunk) items: fewer blocks than items.
TEST(LossInterp, MsePartialGridStride) {
  const Tensor p = RandomTensor({9, 70}, DType::f32, 5), y = RandomTensor({9, 70}, DType::f32, 6);
  DevTensor dp(p, "p"), dt(y, "t"), partial(Shape{9}, DType::f32, "partial");
  CF_ASSERT_OK(ki::Launch(KdConfig("mse_partial", 4, 256), &loss::MsePartialKernel<float>, dp.ptr<float>(),
                          dt.ptr<float>(), partial.ptr<float>(), int64_t{9}, int64_t{70}, int64_t{1}, int64_t{70}));
  const std::vector<double> pv = ToDoubles(p), yv = ToDoubles(y), got = ToDoubles(partial.ToTensor());
  for (int b = 0; b < 9; ++b) {
    double s = 0;
    for (int i = 0; i < 70; ++i) s += (pv[b * 70 + i] - yv[b * 70 + i]) * (pv[b * 70 + i] - yv[b * 70 + i]);
    EXPECT_NEAR(got[b], s, 1e-5 * s) << b;
  }
}

}  // namespace
}  // namespace cf::testing
