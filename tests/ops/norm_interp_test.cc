// The layer_norm CUDA kernels (ops/norm/layer_norm_kernels.cuh, with the
// norm family's helpers in norm_kernels.cuh) run on the CPU interpreter of
// runtime/kdev against the CPU kernels, with the launch geometry the CUDA
// launchers use: the register-resident vector path for every vector count
// (C % 4 == 0 up to 1152) and the generic path (odd C, C past 1152, and
// buffers whose element offset breaks 4-element alignment), affine or not,
// f32/f16/bf16, forward and backward (dx, dgamma, dbeta in two stages with
// a small SM count, so several chunks); empty and huge shapes through the
// geometry.
#include "ops/norm/adaln_modulate_kernels.cuh"
#include "ops/norm/group_norm_kernels.cuh"
#include "ops/norm/layer_norm_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace layer_norm_kernels;

template <int... Ks, class F> Status WithVecsIn(int k, F&& f, std::integer_sequence<int, Ks...>) {
  Status st = absl::InternalError("no such vector count");
  ((k == Ks + 1 ? (void)(st = f(std::integral_constant<int, Ks + 1>{})) : (void)0), ...);
  return st;
}

// LayerNormCudaT (layer_norm.cu) on the interpreter.
template <class T>
Status InterpForward(kd::Ptr<const T> x, kd::Ptr<const T> gamma, kd::Ptr<const T> beta, kd::Ptr<T> y, int64_t rows,
                     int64_t c, float eps) {
  const bool aligned = norm_cuda::Aligned4<T>({x.raw(), y.raw(), gamma.raw(), beta.raw()});
  const LnForwardLaunch l = LnForwardLaunchFor(rows, c, aligned);
  if (l.empty()) return absl::OkStatus();
  if (l.vecs > 0) {
    return WithVecsIn(
        l.vecs,
        [&](auto k) {
          return ki::Launch(KdConfig("LnWarpVecKernel", l.grid, l.block), &LnWarpVecKernel<T, decltype(k)::value>, x,
                            gamma, beta, y, rows, int(c), eps);
        },
        std::make_integer_sequence<int, kMaxVecs>{});
  }
  return ki::Launch(KdConfig("LnWarpGenericKernel", l.grid, l.block), &LnWarpGenericKernel<T>, x, gamma, beta, y, rows,
                    int(c), eps);
}

// LayerNormBackwardCudaT on the interpreter.
template <class T>
Status InterpBackward(kd::Ptr<const T> x, kd::Ptr<const T> dy, kd::Ptr<const T> gamma, kd::Ptr<T> dx, kd::Ptr<T> dgamma,
                      kd::Ptr<T> dbeta, int64_t rows, int64_t c, float eps, int sms) {
  const LnBackwardPlan p = LnBackwardPlanFor(rows, c, sms);
  if (p.chunks == 0) return absl::InternalError("test: the launcher zeroes the outputs");
  ki::Buffer<float> row_stats(size_t(2 * rows), "row_stats"), part_g(size_t(p.chunks * c), "part_g"),
      part_b(size_t(p.chunks * c), "part_b");
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("LnBwdDxKernel", p.dx_grid, p.block), &LnBwdDxKernel<T>, x, dy, gamma, dx,
                                row_stats.ptr(), rows, int(c), eps));
  if (!gamma) return absl::OkStatus();
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("LnBwdParamPartialKernel", p.param_grid, p.block),
                                &LnBwdParamPartialKernel<T>, x, dy, kd::Ptr<const float>(row_stats.ptr()), rows,
                                int(c), p.chunk_rows, part_g.ptr(), part_b.ptr()));
  return ki::Launch(KdConfig("SumChunksKernel", norm_cuda::SumChunksGrid(1, int(c)), kd::Dim3(32, 8)),
                    &norm_cuda::SumChunksKernel<T>, kd::Ptr<const float>(part_g.ptr()),
                    kd::Ptr<const float>(part_b.ptr()), p.chunks, int(c), dgamma, dbeta);
}

// Shapes: every vector count 1..9 (C = 4, 128 + 4, ..., 1152), rows not a
// multiple of the 8 rows of a block, C = 1156 (past the vector limit), odd
// C, C = 1 and one element.
const Shape kShapes[] = {{3, 4},    {9, 132},   {2, 256},  {1, 3, 388}, {2, 512},  {1, 640}, {2, 768},
                         {1, 900},  {1, 1024},  {3, 1152}, {2, 1156},   {3, 13},   {9, 1},   {1, 1},
                         {2, 7, 8}, {1, 2, 2500}};

TEST(NormInterp, LayerNormForward) {
  uint64_t seed = 200;
  for (const Shape& s : kShapes) {
    const int64_t c = s.dim(-1), rows = s.numel() / c;
    for (bool affine : {false, true}) {
      for (DType t : kInterpDTypes) {
        for (size_t offset : {size_t{0}, size_t{1}}) {  // offset 1: the generic path
          std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++, -3, 2)};
          if (affine) {
            ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++, 0.5, 1.5));
            ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++));
          }
          EXPECT_TRUE(MatchesCpuReference("layer_norm", ins, Attrs{{"eps", 1e-6}}, t,
                                          [&](const std::vector<Tensor>& in) {
                                            return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                                              using T = decltype(tag);
                                              DevBuf<T> xb(in[0], "x", offset), yb(size_t(s.numel()), "y", offset);
                                              std::unique_ptr<DevBuf<T>> gb, bb;
                                              if (affine) {
                                                gb = std::make_unique<DevBuf<T>>(in[1], "gamma", offset);
                                                bb = std::make_unique<DevBuf<T>>(in[2], "beta", offset);
                                              }
                                              CF_RETURN_IF_ERROR(InterpForward<T>(
                                                  xb, gb ? kd::Ptr<const T>(*gb) : nullptr,
                                                  bb ? kd::Ptr<const T>(*bb) : nullptr, yb, rows, c, 1e-6f));
                                              return std::vector<Tensor>{yb.ToTensor(s)};
                                            });
                                          }))
              << s.ToString() << " affine " << affine << " offset " << offset;
        }
      }
    }
  }
}

TEST(NormInterp, LayerNormBackward) {
  const Shape shapes[] = {{2, 77, 40}, {4, 132}, {3, 13}, {300, 5}, {1, 1}, {9, 1}};
  uint64_t seed = 300;
  for (const Shape& s : shapes) {
    const int64_t c = s.dim(-1), rows = s.numel() / c;
    for (bool affine : {false, true}) {
      for (DType t : kInterpDTypes) {
        std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++), RandomTensor(s, DType::f32, seed++)};
        if (affine) ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++, 0.5, 1.5));
        const double tol = t == DType::f32 ? 1e-4 : -1;
        EXPECT_TRUE(MatchesCpuReference(
            "layer_norm_backward", ins, {}, t,
            [&](const std::vector<Tensor>& in) {
              return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                using T = decltype(tag);
                DevBuf<T> xb(in[0], "x", 1), dyb(in[1], "dy", 1), dxb(size_t(s.numel()), "dx", 1);
                std::unique_ptr<DevBuf<T>> gb, dgb, dbb;
                if (affine) {
                  gb = std::make_unique<DevBuf<T>>(in[2], "gamma", 1);
                  dgb = std::make_unique<DevBuf<T>>(size_t(c), "dgamma", 1);
                  dbb = std::make_unique<DevBuf<T>>(size_t(c), "dbeta", 1);
                }
                CF_RETURN_IF_ERROR(InterpBackward<T>(xb, dyb, gb ? kd::Ptr<const T>(*gb) : nullptr, dxb,
                                                     dgb ? dgb->ptr() : nullptr, dbb ? dbb->ptr() : nullptr, rows, c,
                                                     1e-5f, /*sms=*/2));
                std::vector<Tensor> out{dxb.ToTensor(s)};
                if (affine) {
                  out.push_back(dgb->ToTensor(Shape{c}));
                  out.push_back(dbb->ToTensor(Shape{c}));
                }
                return out;
              });
            },
            tol, tol))
            << s.ToString() << " affine " << affine;
      }
    }
  }
}

TEST(NormInterp, LayerNormGeometry) {
  EXPECT_TRUE(LnForwardLaunchFor(0, 64, true).empty());
  EXPECT_TRUE(LnForwardLaunchFor(5, 0, true).empty());
  EXPECT_EQ(LnForwardLaunchFor(1, 1152, true).vecs, 9);
  EXPECT_EQ(LnForwardLaunchFor(1, 1152, false).vecs, 0);
  EXPECT_EQ(LnForwardLaunchFor(1, 1156, true).vecs, 0);
  EXPECT_EQ(LnForwardLaunchFor(1, 6, true).vecs, 0);
  const LnForwardLaunch big = LnForwardLaunchFor(int64_t(1) << 33, 64, true);
  EXPECT_EQ(big.grid.x, unsigned((int64_t(1) << 33) / 8));  // below 2^31 - 1
  EXPECT_EQ(big.block.x * big.block.y, 256u);
  const LnBackwardPlan p = LnBackwardPlanFor(int64_t(1) << 24, 320, 132);
  EXPECT_EQ(p.chunks * p.chunk_rows >= (int64_t(1) << 24), true);
  EXPECT_LE(p.chunks, 65535);
  EXPECT_EQ(p.param_grid.x, 10u);
  EXPECT_EQ(LnBackwardPlanFor(0, 8, 132).chunks, 0);
}


// ---- group_norm ----------------------------------------------------------------------------

namespace gnk = group_norm_kernels;

template <class F> Status WithCptIn(int cpt, F&& f) {
  switch (cpt) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 8: return f(std::integral_constant<int, 8>{});
    default: return f(std::integral_constant<int, 16>{});
  }
}

// GnStats (group_norm.cu) on the interpreter: stats [N * G] x {mean, rstd}.
template <class T>
Status InterpGnStats(kd::Ptr<const T> x, const norm_internal::GnDims& d, float eps, const gnk::GnPlan& p,
                     ki::Buffer<float>& stats) {
  ki::Buffer<float> partial(size_t(d.N * p.chunks * d.G * 3), "partial");
  CF_RETURN_IF_ERROR(WithCptIn(p.cpt, [&](auto k) {
    return ki::Launch(KdConfig("GnStatsPartialKernel", p.grid, p.block, p.smem),
                      &gnk::GnStatsPartialKernel<T, decltype(k)::value>, x, d.P, int(d.C), int(d.G), int(d.Cg), p.rows,
                      partial.ptr());
  }));
  const int ng = int(d.N * d.G);
  return ki::Launch(KdConfig("GnStatsFinalKernel", kd::Dim3(gnk::GnFinalGrid(ng)), kd::Dim3(256)),
                    &gnk::GnStatsFinalKernel, kd::Ptr<const float>(partial.ptr()), p.chunks, ng, int(d.G), eps,
                    stats.ptr());
}

// GroupNormCudaT on the interpreter; chunks: the stats plan's chunk count (out).
template <class T>
Status InterpGnForward(kd::Ptr<const T> x, kd::Ptr<const T> gamma, kd::Ptr<const T> beta, kd::Ptr<T> y,
                       const norm_internal::GnDims& d, float eps, bool silu, int sms, int64_t* chunks) {
  const gnk::GnPlan p = gnk::GnPlanFor(d, 2, sms);
  *chunks = p.chunks;
  ki::Buffer<float> stats(size_t(d.N * d.G * 2), "stats");
  CF_RETURN_IF_ERROR(InterpGnStats<T>(x, d, eps, p, stats));
  const gnk::GnEltLaunch l = gnk::GnEltLaunchFor(d, norm_cuda::Aligned4<T>({x.raw(), y.raw()}));
  const ki::LaunchConfig cfg = KdConfig("GnNormalizeKernel", kd::Dim3(l.grid), kd::Dim3(l.block));
  const kd::Ptr<const float> st = stats.ptr();
  const int64_t pc = d.P * d.C;
  if (l.vec == 4)
    return ki::Launch(cfg, &gnk::GnNormalizeKernel<T, 4>, x, st, gamma, beta, y, l.total, pc, int(d.C), int(d.G),
                      int(d.Cg), silu);
  return ki::Launch(cfg, &gnk::GnNormalizeKernel<T, 1>, x, st, gamma, beta, y, l.total, pc, int(d.C), int(d.G),
                    int(d.Cg), silu);
}

// GroupNormBackwardCudaT on the interpreter; chunks: the partial-sum plan's chunk count (out).
template <class T>
Status InterpGnBackward(kd::Ptr<const T> x, kd::Ptr<const T> dy, kd::Ptr<const T> gamma, kd::Ptr<T> dx,
                        kd::Ptr<T> dgamma, kd::Ptr<T> dbeta, const norm_internal::GnDims& d, float eps, int sms,
                        int64_t* chunks) {
  const gnk::GnPlan ps = gnk::GnPlanFor(d, 2, sms), pb = gnk::GnPlanFor(d, 8, sms);
  *chunks = pb.chunks;
  ki::Buffer<float> stats(size_t(d.N * d.G * 2), "stats"), coef(size_t(d.N * d.G * 2), "coef"),
      part_dy(size_t(d.N * pb.chunks * d.C), "part_dy"), part_dyxh(size_t(d.N * pb.chunks * d.C), "part_dyxh"),
      s_dy(size_t(d.N * d.C), "s_dy"), s_dyxh(size_t(d.N * d.C), "s_dyxh");
  CF_RETURN_IF_ERROR(InterpGnStats<T>(x, d, eps, ps, stats));
  const int c = int(d.C), g = int(d.G), cg = int(d.Cg);
  const kd::Ptr<const float> st = stats.ptr();
  CF_RETURN_IF_ERROR(WithCptIn(pb.cpt, [&](auto k) {
    return ki::Launch(KdConfig("GnBwdPartialKernel", pb.grid, pb.block, pb.smem),
                      &gnk::GnBwdPartialKernel<T, decltype(k)::value>, x, dy, st, d.P, c, g, cg, pb.rows,
                      part_dy.ptr(), part_dyxh.ptr());
  }));
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("SumChunksKernel", norm_cuda::SumChunksGrid(d.N, c), kd::Dim3(32, 8)),
                                &norm_cuda::SumChunksKernel<float>, kd::Ptr<const float>(part_dy.ptr()),
                                kd::Ptr<const float>(part_dyxh.ptr()), pb.chunks, c, s_dy.ptr(), s_dyxh.ptr()));
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("GnBwdGroupKernel", kd::Dim3(gnk::GnGroupGrid(d)), kd::Dim3(256)),
                                &gnk::GnBwdGroupKernel<T>, kd::Ptr<const float>(s_dy.ptr()),
                                kd::Ptr<const float>(s_dyxh.ptr()), gamma, int(d.N), c, g, cg,
                                1.f / float(d.P * d.Cg), coef.ptr(), dgamma, dbeta));
  const gnk::GnEltLaunch l = gnk::GnEltLaunchFor(d, norm_cuda::Aligned4<T>({x.raw(), dy.raw(), dx.raw()}));
  const ki::LaunchConfig cfg = KdConfig("GnBwdDxKernel", kd::Dim3(l.grid), kd::Dim3(l.block));
  const kd::Ptr<const float> cf = coef.ptr();
  const int64_t pc = d.P * d.C;
  if (l.vec == 4)
    return ki::Launch(cfg, &gnk::GnBwdDxKernel<T, 4>, x, dy, st, cf, gamma, dx, l.total, pc, c, g, cg);
  return ki::Launch(cfg, &gnk::GnBwdDxKernel<T, 1>, x, dy, st, cf, gamma, dx, l.total, pc, c, g, cg);
}

struct GnCase {
  Shape shape;
  int64_t groups;
};
// [2, 7, 5, 96] / 32 groups (Cg = 3, four stats chunks with 2 SMs), odd Cg
// with C breaking 4-vectors, one-element spatial maps, C > 256 (cpt 4) and
// C > 2048 (cpt 16, one thread-row), several backward chunks, Cg = 1 and
// G = 1.
const GnCase kGnCases[] = {{{2, 7, 5, 96}, 32}, {{2, 33, 6}, 3},  {{3, 1, 1, 30}, 6}, {{1, 1, 1, 7}, 1},
                           {{2, 20, 10, 32}, 8}, {{1, 9, 600}, 5}, {{1, 3, 4100}, 4}, {{2, 3, 3, 20}, 20}};

TEST(NormInterp, GroupNormForward) {
  uint64_t seed = 400;
  bool saw_chunks = false;
  for (const GnCase& gc : kGnCases) {
    const Shape& s = gc.shape;
    const int64_t c = s.dim(-1);
    const norm_internal::GnDims d = norm_internal::GnDimsOf(s, Attrs{{"groups", gc.groups}});
    for (const bool silu : {false, true}) {  // activation "silu": the fused GroupNorm -> SiLU
      Attrs attrs{{"groups", gc.groups}, {"eps", 1e-5}};
      if (silu) attrs.Set("activation", std::string("silu"));
      for (bool affine : {false, true}) {
        for (DType t : kInterpDTypes) {
          for (size_t offset : {size_t{0}, size_t{1}}) {  // offset 1: the scalar path
            // A large common offset tests the shifted sums.
            std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++, 3, 5)};
            if (affine) {
              ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++, 0.5, 1.5));
              ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++));
            }
            const auto run = [&](const std::vector<Tensor>& in) {
              return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                using T = decltype(tag);
                DevBuf<T> xb(in[0], "x", offset), yb(size_t(s.numel()), "y", offset);
                std::unique_ptr<DevBuf<T>> gb, bb;
                if (affine) {
                  gb = std::make_unique<DevBuf<T>>(in[1], "gamma", offset);
                  bb = std::make_unique<DevBuf<T>>(in[2], "beta", offset);
                }
                int64_t chunks = 0;
                CF_RETURN_IF_ERROR(InterpGnForward<T>(xb, gb ? kd::Ptr<const T>(*gb) : nullptr,
                                                      bb ? kd::Ptr<const T>(*bb) : nullptr, yb, d, 1e-5f, silu,
                                                      /*sms=*/2, &chunks));
                saw_chunks |= chunks > 1;
                return std::vector<Tensor>{yb.ToTensor(s)};
              });
            };
            EXPECT_TRUE(MatchesCpuReference("group_norm", ins, attrs, t, run))
                << s.ToString() << " groups " << gc.groups << " affine " << affine << " offset " << offset
                << " silu " << silu;
          }
        }
      }
    }
  }
  EXPECT_TRUE(saw_chunks);
}

TEST(NormInterp, GroupNormBackward) {
  uint64_t seed = 500;
  bool saw_chunks = false;
  for (const GnCase& gc : kGnCases) {
    const Shape& s = gc.shape;
    const int64_t c = s.dim(-1);
    const Attrs attrs{{"groups", gc.groups}, {"eps", 1e-5}};
    const norm_internal::GnDims d = norm_internal::GnDimsOf(s, attrs);
    for (bool affine : {false, true}) {
      for (DType t : kInterpDTypes) {
        for (size_t offset : {size_t{0}, size_t{1}}) {
          std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++), RandomTensor(s, DType::f32, seed++)};
          if (affine) ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++, 0.5, 1.5));
          const double tol = t == DType::f32 ? 1e-4 : -1;
          EXPECT_TRUE(MatchesCpuReference(
              "group_norm_backward", ins, attrs, t,
              [&](const std::vector<Tensor>& in) {
                return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                  using T = decltype(tag);
                  DevBuf<T> xb(in[0], "x", offset), dyb(in[1], "dy", offset), dxb(size_t(s.numel()), "dx", offset);
                  std::unique_ptr<DevBuf<T>> gb, dgb, dbb;
                  if (affine) {
                    gb = std::make_unique<DevBuf<T>>(in[2], "gamma", offset);
                    dgb = std::make_unique<DevBuf<T>>(size_t(c), "dgamma", offset);
                    dbb = std::make_unique<DevBuf<T>>(size_t(c), "dbeta", offset);
                  }
                  int64_t chunks = 0;
                  CF_RETURN_IF_ERROR(InterpGnBackward<T>(xb, dyb, gb ? kd::Ptr<const T>(*gb) : nullptr, dxb,
                                                         dgb ? dgb->ptr() : nullptr, dbb ? dbb->ptr() : nullptr, d,
                                                         1e-5f, /*sms=*/2, &chunks));
                  saw_chunks |= chunks > 1;
                  std::vector<Tensor> out{dxb.ToTensor(s)};
                  if (affine) {
                    out.push_back(dgb->ToTensor(Shape{c}));
                    out.push_back(dbb->ToTensor(Shape{c}));
                  }
                  return out;
                });
              },
              tol, tol))
              << s.ToString() << " groups " << gc.groups << " affine " << affine << " offset " << offset;
        }
      }
    }
  }
  EXPECT_TRUE(saw_chunks);
}

TEST(NormInterp, GroupNormGeometry) {
  const norm_internal::GnDims d{2, 35, 96, 32, 3};
  const gnk::GnPlan p = gnk::GnPlanFor(d, 2, 2);
  EXPECT_EQ(p.cpt, 1);
  EXPECT_EQ(p.tx, 96);
  EXPECT_EQ(p.ty, 5);
  EXPECT_EQ(p.chunks, 4);
  EXPECT_EQ(p.grid.x, 4u);
  EXPECT_EQ(p.grid.y, 2u);
  EXPECT_EQ(p.smem, size_t(2 * 5 * 96 * 4));
  const gnk::GnPlan big = gnk::GnPlanFor(norm_internal::GnDims{1, 4096, 6144, 32, 192}, 2, 132);
  EXPECT_EQ(big.cpt, 16);
  EXPECT_EQ(big.ty, 1);
  EXPECT_LE(big.smem, size_t(48 * 1024));
  EXPECT_LE(big.block.x * big.block.y, 512u);
  EXPECT_EQ(gnk::GnEltLaunchFor(d, true).vec, 4);
  EXPECT_EQ(gnk::GnEltLaunchFor(d, false).vec, 1);
  EXPECT_EQ(gnk::GnEltLaunchFor(norm_internal::GnDims{2, 35, 30, 6, 5}, true).vec, 1);
}


// ---- adaln_modulate ------------------------------------------------------------------------

namespace adk = adaln_kernels;

// AdaLnCudaT (adaln_modulate.cu) on the interpreter; y may be x.
template <class T>
Status InterpAdaLnForward(kd::Ptr<const T> x, kd::Ptr<const T> shift, kd::Ptr<const T> scale, kd::Ptr<T> y,
                          const Shape& s, int* vec) {
  const int64_t numel = s.numel(), c = s[2];
  const bool aligned = norm_cuda::Aligned4<T>({x.raw(), shift.raw(), scale.raw(), y.raw()});
  const adk::AdaLnLaunch l = adk::AdaLnLaunchFor(numel, c, aligned);
  *vec = l.vec;
  const ki::LaunchConfig cfg = KdConfig("AdaLnKernel", kd::Dim3(l.grid), kd::Dim3(l.block));
  if (l.vec == 4) return ki::Launch(cfg, &adk::AdaLnKernel<T, 4>, x, shift, scale, y, l.total, s[1] * c, int(c));
  return ki::Launch(cfg, &adk::AdaLnKernel<T, 1>, x, shift, scale, y, l.total, s[1] * c, int(c));
}

// AdaLnBackwardCudaT on the interpreter; chunks: the plan's chunk count (out).
template <class T>
Status InterpAdaLnBackward(kd::Ptr<const T> x, kd::Ptr<const T> scale, kd::Ptr<const T> dy, kd::Ptr<T> dx,
                           kd::Ptr<T> dshift, kd::Ptr<T> dscale, const Shape& s, int sms, int64_t* chunks) {
  const int64_t bn = s[0], tn = s[1], c = s[2];
  const adk::AdaLnBwdPlan p = adk::AdaLnBwdPlanFor(bn, tn, c, sms);
  *chunks = p.chunks;
  const size_t n_part = size_t(bn * p.chunks * c);
  ki::Buffer<float> part_shift(n_part, "part_shift"), part_scale(n_part, "part_scale");
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("AdaLnBwdPartialKernel", p.grid, p.block), &adk::AdaLnBwdPartialKernel<T>, x,
                                scale, dy, dx, tn, int(c), p.rows, part_shift.ptr(), part_scale.ptr()));
  return ki::Launch(KdConfig("SumChunksKernel", norm_cuda::SumChunksGrid(bn, int(c)), kd::Dim3(32, 8)),
                    &norm_cuda::SumChunksKernel<T>, kd::Ptr<const float>(part_shift.ptr()),
                    kd::Ptr<const float>(part_scale.ptr()), p.chunks, int(c), dshift, dscale);
}

// x [B, T, C] with modulations [B, C] (mod3 false) or [B, 1, C]: 4-vectors
// (C = 96, 40), C breaking them (30, 7), one token, one element, and several
// token chunks with 4 SMs ([2, 70, 40], [1, 100, 7]).
struct AdaLnCase {
  Shape shape;
  bool mod3;
};
const AdaLnCase kAdaLnCases[] = {{{2, 7, 96}, false}, {{3, 5, 30}, true}, {{2, 1, 7}, false}, {{1, 1, 1}, true},
                                 {{2, 70, 40}, true}, {{1, 100, 7}, false}};

Shape ModShape(const AdaLnCase& a) {
  return a.mod3 ? Shape({a.shape[0], 1, a.shape[2]}) : Shape({a.shape[0], a.shape[2]});
}

TEST(NormInterp, AdaLnModulateForward) {
  uint64_t seed = 600;
  bool saw_vec4 = false;
  for (const AdaLnCase& ac : kAdaLnCases) {
    const Shape& s = ac.shape;
    const Shape ms = ModShape(ac);
    for (DType t : kInterpDTypes) {
      for (size_t offset : {size_t{0}, size_t{1}}) {  // offset 1: the scalar path
        for (bool in_place : {false, true}) {
          const std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++), RandomTensor(ms, DType::f32, seed++),
                                        RandomTensor(ms, DType::f32, seed++)};
          EXPECT_TRUE(MatchesCpuReference("adaln_modulate", ins, {}, t, [&](const std::vector<Tensor>& in) {
            return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
              using T = decltype(tag);
              DevBuf<T> xb(in[0], "x", offset), shb(in[1], "shift", offset), scb(in[2], "scale", offset),
                  yb(size_t(s.numel()), "y", offset);
              DevBuf<T>& out = in_place ? xb : yb;
              int vec = 0;
              CF_RETURN_IF_ERROR(InterpAdaLnForward<T>(xb, shb, scb, out, s, &vec));
              saw_vec4 |= vec == 4;
              return std::vector<Tensor>{out.ToTensor(s)};
            });
          })) << s.ToString() << " offset " << offset << " in place " << in_place;
        }
      }
    }
  }
  EXPECT_TRUE(saw_vec4);
}

TEST(NormInterp, AdaLnModulateBackward) {
  uint64_t seed = 700;
  bool saw_chunks = false;
  for (const AdaLnCase& ac : kAdaLnCases) {
    const Shape& s = ac.shape;
    const Shape ms = ModShape(ac);
    for (DType t : kInterpDTypes) {
      for (size_t offset : {size_t{0}, size_t{1}}) {
        const std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++), RandomTensor(ms, DType::f32, seed++),
                                      RandomTensor(s, DType::f32, seed++)};
        const double tol = t == DType::f32 ? 1e-4 : -1;
        EXPECT_TRUE(MatchesCpuReference(
            "adaln_modulate_backward", ins, {}, t,
            [&](const std::vector<Tensor>& in) {
              return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                using T = decltype(tag);
                DevBuf<T> xb(in[0], "x", offset), scb(in[1], "scale", offset), dyb(in[2], "dy", offset),
                    dxb(size_t(s.numel()), "dx", offset), dshb(size_t(ms.numel()), "dshift", offset),
                    dscb(size_t(ms.numel()), "dscale", offset);
                int64_t chunks = 0;
                CF_RETURN_IF_ERROR(InterpAdaLnBackward<T>(xb, scb, dyb, dxb, dshb, dscb, s, /*sms=*/4, &chunks));
                saw_chunks |= chunks > 1;
                return std::vector<Tensor>{dxb.ToTensor(s), dshb.ToTensor(ms), dscb.ToTensor(ms)};
              });
            },
            tol, tol))
            << s.ToString() << " offset " << offset;
      }
    }
  }
  EXPECT_TRUE(saw_chunks);
}

TEST(NormInterp, AdaLnModulateGeometry) {
  EXPECT_EQ(adk::AdaLnLaunchFor(2 * 7 * 96, 96, true).vec, 4);
  EXPECT_EQ(adk::AdaLnLaunchFor(2 * 7 * 96, 96, true).total, 2 * 7 * 24);
  EXPECT_EQ(adk::AdaLnLaunchFor(2 * 7 * 96, 96, false).vec, 1);
  EXPECT_EQ(adk::AdaLnLaunchFor(3 * 5 * 30, 30, true).vec, 1);
  const adk::AdaLnBwdPlan p = adk::AdaLnBwdPlanFor(2, 70, 40, 4);
  EXPECT_EQ(p.rows, 32);
  EXPECT_EQ(p.chunks, 3);
  EXPECT_EQ(p.grid.x, 2u);
  EXPECT_EQ(p.grid.y, 3u);
  EXPECT_EQ(p.grid.z, 2u);
  const adk::AdaLnBwdPlan big = adk::AdaLnBwdPlanFor(2, 4096, 1152, 132);
  EXPECT_EQ(big.grid.x, 36u);
  EXPECT_EQ(big.chunks, 7);  // 528 blocks wanted / (36 columns x batch 2) = 7 chunks of 586 tokens
  EXPECT_EQ(big.rows, 586);
}

}  // namespace
}  // namespace cf::testing
