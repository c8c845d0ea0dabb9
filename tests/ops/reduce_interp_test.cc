// The reduction and softmax CUDA kernels (ops/reduce/reduce_sum_kernels.cuh,
// softmax_kernels.cuh, block_reduce.cuh) run on the CPU interpreter of
// runtime/kdev against the CPU kernels, with the launch plans the CUDA
// launchers use (ReduceLaunchFor with a small SM count, so that the split
// two-pass paths run on small shapes; SoftmaxLaunchFor): every reduce kind,
// warp and block softmax rows (256 and 1024 threads), rows with NaN and -inf,
// element offsets, f32/f16/bf16; empty and huge shapes through the geometry.
#include <cmath>

#include "ops/reduce/reduce.h"
#include "ops/reduce/reduce_sum_kernels.cuh"
#include "ops/reduce/softmax_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace reduce_kernels;
using namespace softmax_kernels;

// ReduceSumCuda's dispatch (reduce_sum.cu) on the interpreter.
template <class T>
Status InterpReduce(const ReducePlan& p, kd::Ptr<const T> x, kd::Ptr<T> out, float scale, int sms, bool have_ws) {
  if (p.num_out == 0 || p.num_reduce == 0) return absl::InternalError("test: the launcher handles these");
  const ReduceLaunch l = ReduceLaunchFor(p, sms, have_ws);
  const int64_t A = p.outer, R = p.r, B = p.inner;
  const kd::Dim3 col(kColX, kColY);
  ki::Buffer<float> partial(size_t(std::max<int64_t>(l.workspace_floats, 1)), "partial");
  const kd::Ptr<const float> cpartial = partial.ptr();
  switch (l.kind) {
    case ReduceLaunch::kGeneral:
      return ki::Launch(KdConfig("GeneralSumKernel", l.grid1, 256), &GeneralSumKernel<T>, x, out, GeneralReduceOf(p),
                        p.num_out, p.num_reduce, scale);
    case ReduceLaunch::kRowWarp:
      return ki::Launch(KdConfig("RowSumWarpKernel", l.grid1, 256), &RowSumWarpKernel<T, T>, x, out, A, R, scale);
    case ReduceLaunch::kRowBlock:
      return ki::Launch(KdConfig("RowSumBlockKernel", l.grid1, 256), &RowSumBlockKernel<T, T>, x, out, A, R,
                        int64_t{1}, l.chunk, scale);
    case ReduceLaunch::kRowSplit:
      CF_RETURN_IF_ERROR(ki::Launch(KdConfig("RowSumBlockKernel", l.grid1, 256), &RowSumBlockKernel<T, float>, x,
                                    partial.ptr(), A, R, l.S, l.chunk, 1.f));
      return ki::Launch(KdConfig("RowSumWarpKernel", l.grid2, 256), &RowSumWarpKernel<float, T>, cpartial, out, A,
                        l.S, scale);
    case ReduceLaunch::kCol:
      return ki::Launch(KdConfig("ColSumKernel", l.grid1, col), &ColSumKernel<T, T>, x, out, A, R, B, int64_t{1},
                        l.chunk, scale);
    case ReduceLaunch::kColSplit:
      CF_RETURN_IF_ERROR(ki::Launch(KdConfig("ColSumKernel", l.grid1, col), &ColSumKernel<T, float>, x,
                                    partial.ptr(), A, R, B, l.S, l.chunk, 1.f));
      return ki::Launch(KdConfig("ColSumKernel", l.grid2, col), &ColSumKernel<float, T>, cpartial, out, A, l.S, B,
                        int64_t{1}, l.S, scale);
  }
  return absl::InternalError("unknown reduce kind");
}

struct ReduceCase {
  Shape shape;
  std::vector<int64_t> axes;
  ReduceLaunch::Kind kind;  // what the plan must choose with sms = 2
  bool have_ws = true;
};

TEST(ReduceInterp, SumAndMeanEveryKind) {
  const int sms = 2;  // target 8 blocks: splits happen on small shapes
  const ReduceCase cases[] = {
      {{4, 1, 3}, {1}, ReduceLaunch::kRowWarp},       // a size-1 axis: 12 rows of one
      {{}, {}, ReduceLaunch::kRowBlock},              // a scalar
      {{300, 77}, {1}, ReduceLaunch::kRowWarp},       // many short rows: one warp per row
      {{2, 20000}, {}, ReduceLaunch::kRowSplit},      // one long row: chunks, then a warp pass
      {{3, 5000}, {1}, ReduceLaunch::kRowBlock, false},  // no workspace: no split
      {{2000, 3}, {0}, ReduceLaunch::kColSplit},      // long narrow columns: split
      {{5, 37, 45}, {1}, ReduceLaunch::kCol},         // columns, a partial tile of 32
      {{4, 6, 5}, {0, 2}, ReduceLaunch::kGeneral},    // not [A, R, B]
      {{2, 7, 9, 11}, {1, 3}, ReduceLaunch::kGeneral},
  };
  uint64_t seed = 1;
  for (const ReduceCase& c : cases) {
    for (const char* op : {"sum", "mean"}) {
      const Attrs attrs{{"axes", c.axes}, {"keepdim", false}};
      const Tensor x = RandomTensor(c.shape, DType::f32, seed++);
      auto mask = ReduceMask(c.axes, c.shape.rank());
      ASSERT_TRUE(mask.ok());
      const ReducePlan p = PlanReduce(c.shape, *mask);
      EXPECT_EQ(ReduceLaunchFor(p, sms, c.have_ws).kind, c.kind) << c.shape.ToString();
      const float scale = std::string(op) == "mean" ? float(MeanScale(x.numel(), p.num_out)) : 1.f;
      const Shape out_shape = RunOp1(op, {x}, attrs).value().shape();
      for (DType t : kInterpDTypes) {
        for (size_t offset : {size_t{0}, size_t{1}}) {
          EXPECT_TRUE(MatchesCpuReference(
              op, {x}, attrs, t,
              [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
                return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                  using T = decltype(tag);
                  DevBuf<T> xb(in[0], "x", offset), ob(size_t(p.num_out), "out", offset);
                  CF_RETURN_IF_ERROR(InterpReduce<T>(p, xb, ob, scale, sms, c.have_ws));
                  return std::vector<Tensor>{ob.ToTensor(out_shape)};
                });
              }))
              << op << " " << c.shape.ToString() << " offset " << offset;
        }
      }
    }
  }
}

TEST(ReduceInterp, Geometry) {
  ReducePlan p = PlanReduce(Shape{int64_t(1) << 32, 3}, 0b10);
  ReduceLaunch l = ReduceLaunchFor(p, 132, true);
  EXPECT_EQ(l.kind, ReduceLaunch::kRowWarp);
  EXPECT_EQ(l.grid1, 65535u * 16);  // the grid-stride loop covers the rest
  p = PlanReduce(Shape{3, int64_t(1) << 33}, 0b10);
  l = ReduceLaunchFor(p, 132, true);
  EXPECT_EQ(l.kind, ReduceLaunch::kRowSplit);
  EXPECT_EQ(l.S, (4 * 132 + 2) / 3);
  EXPECT_EQ(l.workspace_floats, 3 * l.S);
  EXPECT_GE(l.chunk * l.S, int64_t(1) << 33);
  p = PlanReduce(Shape{int64_t(1) << 20, 70000}, 0b01);  // huge column reduction
  l = ReduceLaunchFor(p, 132, true);
  EXPECT_EQ(l.kind, ReduceLaunch::kCol);
  EXPECT_EQ(l.grid1, unsigned((70000 + 31) / 32));
  EXPECT_EQ(Blocks(0), 1u);
}

// softmax / softmax_backward through SoftmaxLaunchFor on the interpreter.
template <class T> Status InterpSoftmax(kd::Ptr<const T> x, kd::Ptr<T> y, int64_t rows, int64_t L) {
  const SoftmaxLaunch ls = SoftmaxLaunchFor(rows, L);
  if (ls.empty()) return absl::OkStatus();
  if (ls.warp_per_row)
    return ki::Launch(KdConfig("SoftmaxWarpKernel", ls.grid, ls.block), &SoftmaxWarpKernel<T>, x, y, rows, L);
  return ki::Launch(KdConfig("SoftmaxBlockKernel", ls.grid, ls.block), &SoftmaxBlockKernel<T>, x, y, rows, L);
}
template <class T>
Status InterpSoftmaxBackward(kd::Ptr<const T> y, kd::Ptr<const T> dy, kd::Ptr<T> dx, int64_t rows, int64_t L) {
  const SoftmaxLaunch ls = SoftmaxLaunchFor(rows, L);
  if (ls.empty()) return absl::OkStatus();
  if (ls.warp_per_row)
    return ki::Launch(KdConfig("SoftmaxBackwardWarpKernel", ls.grid, ls.block), &SoftmaxBackwardWarpKernel<T>, y, dy,
                      dx, rows, L);
  return ki::Launch(KdConfig("SoftmaxBackwardBlockKernel", ls.grid, ls.block), &SoftmaxBackwardBlockKernel<T>, y, dy,
                    dx, rows, L);
}

TEST(ReduceInterp, Softmax) {
  uint64_t seed = 100;
  // Warp rows (<= 1024, 8 warps a block; 9 rows: two blocks) and block rows
  // (256 threads, and 1024 from L = 8192).
  for (const Shape& s : std::vector<Shape>{{1}, {13}, {9, 77}, {2, 1024}, {2, 1025}, {1, 5000}, {1, 9000}}) {
    const int64_t L = s.dim(-1), rows = s.numel() / L;
    for (DType t : kInterpDTypes) {
      for (size_t offset : {size_t{0}, size_t{1}}) {
        Tensor x = RandomTensor(s, DType::f32, seed++, -20, 40), dy = RandomTensor(s, DType::f32, seed++);
        EXPECT_TRUE(MatchesCpuReference("softmax", {x}, {}, t, [&](const std::vector<Tensor>& in) {
          return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
            using T = decltype(tag);
            DevBuf<T> xb(in[0], "x", offset), yb(size_t(s.numel()), "y", offset);
            CF_RETURN_IF_ERROR(InterpSoftmax<T>(xb, yb, rows, L));
            return std::vector<Tensor>{yb.ToTensor(s)};
          });
        })) << s.ToString();
        Tensor y = RunOp1("softmax", {x}).value();
        // dy - sum(y dy) cancels: an absolute bound of the dot product's
        // rounding (|y| <= 1, |dy| <= 1), not one relative to the result.
        const double bwd_atol = t == DType::f32 ? 1e-6 : -1;
        EXPECT_TRUE(MatchesCpuReference("softmax_backward", {y, dy}, {}, t, [&](const std::vector<Tensor>& in) {
          return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
            using T = decltype(tag);
            DevBuf<T> yb(in[0], "y", offset), dyb(in[1], "dy", offset), dxb(size_t(s.numel()), "dx", offset);
            CF_RETURN_IF_ERROR(InterpSoftmaxBackward<T>(yb, dyb, dxb, rows, L));
            return std::vector<Tensor>{dxb.ToTensor(s)};
          });
        }, -1, bwd_atol)) << s.ToString();
      }
    }
  }
}

// NaN anywhere in a row makes the row NaN (also as the first value a lane or
// thread sees); -inf entries give 0, an all -inf row what the CPU gives; a
// +inf entry what the CPU gives.
TEST(ReduceInterp, SoftmaxSpecials) {
  struct Case {
    int64_t L;
    std::vector<int64_t> nan_at, ninf_at;  // in row 1
    bool all_ninf = false, pinf = false;
  };
  const Case cases[] = {
      {3, {0}, {}},   {3, {2}, {1}},   {40, {0}, {}},      {40, {33}, {}},  {40, {}, {0, 5, 39}},
      {40, {}, {}, true}, {1024, {5, 700}, {}}, {2000, {0}, {}}, {2000, {255}, {3}}, {2000, {1999}, {}},
      {2000, {}, {0, 1, 1000}}, {2000, {}, {}, true}, {9000, {1023}, {}}, {40, {}, {}, false, true},
  };
  for (const Case& c : cases) {
    for (DType t : kInterpDTypes) {
      std::vector<double> v = ToDoubles(RandomTensor({3, c.L}, DType::f32, 7 + c.L, -3, 3));
      for (int64_t i : c.nan_at) v[c.L + i] = NAN;
      for (int64_t i : c.ninf_at) v[c.L + i] = -INFINITY;
      if (c.all_ninf)
        for (int64_t i = 0; i < c.L; ++i) v[c.L + i] = -INFINITY;
      if (c.pinf) v[c.L + 7] = INFINITY;
      const Tensor x = FromDoubles(v, {3, c.L}, t);
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("softmax", {CastTo(x, DType::f32)}));
      const Status st = DispatchKd(t, [&](auto tag) -> Status {
        using T = decltype(tag);
        DevBuf<T> xb(x, "x"), yb(size_t(3 * c.L), "y");
        CF_RETURN_IF_ERROR(InterpSoftmax<T>(xb, yb, 3, c.L));
        const std::vector<double> w = ToDoubles(want), g = ToDoubles(yb.ToTensor({3, c.L}));
        EXPECT_TRUE(AllCloseWithSpecials(g, w, DefaultRtol(t), ScaledAtol(w, DefaultAtol(t), t)))
            << "L " << c.L << " " << DTypeName(t);
        return absl::OkStatus();
      });
      EXPECT_TRUE(st.ok()) << st.message();
    }
  }
}

TEST(ReduceInterp, SoftmaxGeometry) {
  EXPECT_TRUE(SoftmaxLaunchFor(0, 5).empty());
  EXPECT_TRUE(SoftmaxLaunchFor(5, 0).empty());
  SoftmaxLaunch l = SoftmaxLaunchFor(int64_t(1) << 40, 64);
  EXPECT_TRUE(l.warp_per_row);
  EXPECT_EQ(l.grid, 65535u * 16);
  l = SoftmaxLaunchFor(int64_t(1) << 40, 1025);
  EXPECT_FALSE(l.warp_per_row);
  EXPECT_EQ(l.grid, 65535u * 16);
  EXPECT_EQ(l.block, 256u);
  EXPECT_EQ(SoftmaxLaunchFor(1, 8192).block, 1024u);
  EXPECT_EQ(SoftmaxLaunchFor(1, 1).grid, 1u);
}

}  // namespace
}  // namespace cf::testing
