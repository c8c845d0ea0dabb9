// The depthwise conv2d CUDA kernels (ops/conv/conv_depthwise_kernels.cuh) run
// on the CPU interpreter of runtime/kdev against the CPU conv2d kernels, with
// the launch geometry the CUDA launchers use: the tiled forward / backward
// input / backward weight kernels (stride 1, dilation 1, odd kw 3..31, any
// kh <= 31) and the generic ones (strides, dilation, even kernels), on maps
// that are not multiples of the 8x16 tile, odd channel counts, one element,
// element offsets, f32/f16/bf16; empty and huge batches through the geometry.
#include <chrono>
#include <utility>

#include "ops/conv/conv_depthwise_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"
#include "tests/support/conv_geometry.h"

namespace cf::testing {
namespace {

using namespace dwconv;
using Geo = ConvGeometry;

template <int... Ks, class F> Status WithKwIn(int kw, F&& f) {
  Status st = absl::InternalError(absl::StrCat("test: no tiled kernel instantiated for kw = ", kw));
  ((kw == Ks ? (void)(st = f(std::integral_constant<int, Ks>{})) : (void)0), ...);
  return st;
}
// Every tiled kw in f32; the low-precision storage paths on a few.
template <class T, class F> Status WithKw(int kw, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    return WithKwIn<3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31>(kw, std::forward<F>(f));
  } else {
    return WithKwIn<3, 7, 31>(kw, std::forward<F>(f));
  }
}

template <class T>
Status Tiled(const TiledShape& s, kd::Ptr<const T> in, kd::Ptr<const T> w, kd::Ptr<const T> bias, kd::Ptr<T> out,
             int flip, unsigned max_grid_z) {
  LaunchShape ls = TiledLaunch(s);
  if (ls.empty()) return absl::OkStatus();
  ls.grid.z = std::min(ls.grid.z, max_grid_z);
  return WithKw<T>(s.kw, [&](auto tag) {
    constexpr int KW = decltype(tag)::value;
    return ki::Launch(KdConfig("DwTiled", ls.grid, ls.block, ls.smem), &DwTiled<T, KW>, in, w, bias, out, s,
                      ConvEpilogue(s, flip));
  });
}

// The CUDA launchers' logic (conv_depthwise_launch.cuh) on the interpreter.
// max_grid_z < 65535 makes the tiled kernels loop over samples.
template <class T>
Status Forward(const ConvParams& p, kd::Ptr<const T> x, kd::Ptr<const T> w, kd::Ptr<const T> bias, kd::Ptr<T> y,
               unsigned max_grid_z) {
  if (p.n * p.ho * p.wo * p.cin == 0) return absl::OkStatus();
  if (TiledOk(p)) return Tiled<T>(TiledForwardShape(p), x, w, bias, y, 0, max_grid_z);
  const LaunchShape ls = GenericLaunch(p.n * p.ho * p.wo * p.cin);
  return ki::Launch(KdConfig("DwForwardGeneric", ls.grid, ls.block), &DwForwardGeneric<T>, x, w, bias, y, GeoOf(p));
}

template <class T>
Status BackwardInput(const ConvParams& p, kd::Ptr<const T> dy, kd::Ptr<const T> w, kd::Ptr<T> dx, unsigned max_grid_z) {
  if (p.n * p.h * p.w * p.cin == 0) return absl::OkStatus();
  if (TiledBackwardInputOk(p)) return Tiled<T>(TiledBackwardInputShape(p), dy, w, nullptr, dx, 1, max_grid_z);
  const LaunchShape ls = GenericLaunch(p.n * p.h * p.w * p.cin);
  return ki::Launch(KdConfig("DwBackwardInputGeneric", ls.grid, ls.block), &DwBackwardInputGeneric<T>, dy, w, dx,
                    GeoOf(p));
}

template <class T>
Status BackwardWeight(const ConvParams& p, kd::Ptr<const T> x, kd::Ptr<const T> dy, kd::Ptr<T> dw) {
  const int kk = int(p.kh * p.kw), c = int(p.cin);
  if (int64_t(kk) * c == 0) return absl::OkStatus();
  std::unique_ptr<ki::Buffer<float>> part;
  int blocks = 0;
  if (TiledOk(p)) {
    const TiledShape s = TiledForwardShape(p);
    const LaunchShape ls = BwdWeightTiledLaunch(s);
    blocks = int(ls.grid.x);
    part = std::make_unique<ki::Buffer<float>>(size_t(blocks) * kk * c, "part");
    CF_RETURN_IF_ERROR(WithKw<T>(s.kw, [&](auto tag) {
      constexpr int KW = decltype(tag)::value;
      return ki::Launch(KdConfig("DwBwdWeightTiled", ls.grid, ls.block, ls.smem), &DwBwdWeightTiled<T, KW>, x, dy,
                        part->ptr(), s);
    }));
  } else {
    blocks = GenericBwdWeightSplits(p);
    part = std::make_unique<ki::Buffer<float>>(size_t(blocks) * kk * c, "part");
    const LaunchShape ls = GenericLaunch(int64_t(blocks) * kk * c);
    CF_RETURN_IF_ERROR(ki::Launch(KdConfig("DwBackwardWeightGeneric", ls.grid, ls.block),
                                  &DwBackwardWeightGeneric<T>, x, dy, part->ptr(), GeoOf(p), blocks));
  }
  const LaunchShape ls = GenericLaunch(int64_t(kk) * c);
  return ki::Launch(KdConfig("DwReducePartials", ls.grid, ls.block), &DwReducePartials<T>,
                    kd::Ptr<const float>(part->ptr()), dw, blocks, kk, c);
}

struct Opts {
  size_t offset = 0;          // element offset of every buffer
  unsigned max_grid_z = kMaxGridYZ;
  std::vector<DType> dtypes = {DType::f32};
  bool backward = true;
};

// Forward (with and without bias), backward input and backward weight of a
// depthwise conv on the interpreter against the CPU conv2d kernels.
void CheckDepthwise(Geo g, uint64_t seed, const Opts& o = {}) {
  g.cout = g.groups = g.cin;
  SCOPED_TRACE(g.str());
  Tensor x = RandomTensor(g.x(), DType::f32, seed), w = RandomTensor(g.wt(), DType::f32, seed + 1);
  Tensor bias = RandomTensor(Shape{g.cout}, DType::f32, seed + 2), dy = RandomTensor(g.y(), DType::f32, seed + 3);
  const double taps = double(g.taps()), pixels = double(g.pixels());
  auto params = ConvParamsOf(g.attrs(), g.x(), g.wt());
  ASSERT_TRUE(params.ok()) << params.status().message();
  const ConvParams p = *params;
  for (DType t : o.dtypes) {
    const bool f32 = t == DType::f32;
    const double fwd = f32 ? 2e-6 * std::sqrt(taps) : -1;
    const double bwd_w = f32 ? 2e-6 * std::sqrt(pixels) : -1;
    for (bool with_bias : {true, false}) {
      std::vector<Tensor> ins = {x, w};
      if (with_bias) ins.push_back(bias);
      EXPECT_TRUE(MatchesCpuReference(
          "conv2d", ins, g.attrs(), t,
          [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
            return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
              using T = decltype(tag);
              DevBuf<T> xb(in[0], "x", o.offset), wb(in[1], "w", o.offset), yb(size_t(g.y().numel()), "y", o.offset);
              std::unique_ptr<DevBuf<T>> bb;
              if (with_bias) bb = std::make_unique<DevBuf<T>>(in[2], "bias", o.offset);
              CF_RETURN_IF_ERROR(Forward<T>(p, xb, wb, bb ? kd::Ptr<const T>(*bb) : nullptr, yb, o.max_grid_z));
              return std::vector<Tensor>{yb.ToTensor(g.y())};
            });
          },
          fwd, fwd));
    }
    if (!o.backward) continue;
    EXPECT_TRUE(MatchesCpuReference(
        "conv2d_backward_input", {dy, w}, g.backward_input_attrs(), t,
        [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
          return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
            using T = decltype(tag);
            DevBuf<T> dyb(in[0], "dy", o.offset), wb(in[1], "w", o.offset), dxb(size_t(g.x().numel()), "dx", o.offset);
            CF_RETURN_IF_ERROR(BackwardInput<T>(p, dyb, wb, dxb, o.max_grid_z));
            return std::vector<Tensor>{dxb.ToTensor(g.x())};
          });
        },
        fwd * 2, fwd * 2));
    EXPECT_TRUE(MatchesCpuReference(
        "conv2d_backward_weight", {x, dy}, g.backward_weight_attrs(), t,
        [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
          return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
            using T = decltype(tag);
            DevBuf<T> xb(in[0], "x", o.offset), dyb(in[1], "dy", o.offset), dwb(size_t(g.wt().numel()), "dw", o.offset);
            CF_RETURN_IF_ERROR(BackwardWeight<T>(p, xb, dyb, dwb));
            return std::vector<Tensor>{dwb.ToTensor(g.wt())};
          });
        },
        f32 ? bwd_w : -1, f32 ? bwd_w : (t == DType::f16 ? 5e-3 : 2e-2) * std::sqrt(pixels) / 4));
  }
}

Geo Dw(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t ph, int64_t pw) {
  Geo g{n, h, w, c, c, kh, kw};
  g.groups = c;
  g.ph = ph;
  g.pw = pw;
  return g;
}

// Every tiled kernel width, square, "same" padding; a map that is not a
// multiple of the 8x16 tile and an odd channel count.
TEST(ConvInterp, TiledEveryKernelSize) {
  uint64_t seed = 10;
  for (int k = 3; k <= 31; k += 2) {
    const int64_t h = k > 15 ? 5 : 9, w = k > 15 ? 7 : 19;
    CheckDepthwise(Dw(1, h, w, 5, k, k, k / 2, k / 2), seed += 5);
  }
}

// Non-square kernels: kh from 1 (tiles of one tap row) to 31 (the bwd-weight
// kernel's two tap rows per group past 16), even kh, asymmetric padding
// (including none: valid conv, the backward input padded by k - 1).
TEST(ConvInterp, TiledNonSquare) {
  uint64_t seed = 200;
  CheckDepthwise(Dw(1, 9, 21, 3, 1, 3, 0, 1), seed += 5);
  CheckDepthwise(Dw(1, 10, 13, 7, 2, 5, 1, 2), seed += 5);
  CheckDepthwise(Dw(1, 11, 12, 17, 4, 7, 0, 0), seed += 5);
  CheckDepthwise(Dw(1, 20, 9, 3, 16, 3, 8, 1), seed += 5);
  CheckDepthwise(Dw(1, 21, 9, 3, 17, 3, 8, 1), seed += 5);
  CheckDepthwise(Dw(1, 33, 18, 2, 31, 5, 15, 2), seed += 5);
  CheckDepthwise(Dw(1, 6, 40, 3, 3, 31, 1, 15), seed += 5);
  CheckDepthwise(Dw(2, 8, 16, 16, 6, 9, 2, 3), seed += 5);  // exact tile multiples, two samples
}

// A 37x45 map (tiles 5 x 3, partial on both sides), 20 channels (a full and a
// partial chunk of 16), two samples.
TEST(ConvInterp, TiledOddMap) {
  CheckDepthwise(Dw(2, 37, 45, 20, 3, 3, 1, 1), 300);
  CheckDepthwise(Dw(1, 37, 45, 9, 7, 7, 3, 3), 305);
}

TEST(ConvInterp, OneElement) {
  CheckDepthwise(Dw(1, 1, 1, 1, 3, 3, 1, 1), 400);  // tiled
  CheckDepthwise(Dw(1, 1, 1, 1, 1, 1, 0, 0), 405);  // generic (kw = 1)
  CheckDepthwise(Dw(1, 3, 3, 1, 3, 3, 0, 0), 410);  // one output pixel
}

// The tiled kernels loop over samples past gridDim.z (batch > 65535 on the
// GPU): the same code with the grid capped at 2 for 5 samples.
TEST(ConvInterp, TiledSampleLoop) {
  Opts o;
  o.max_grid_z = 2;
  CheckDepthwise(Dw(5, 9, 17, 3, 3, 3, 1, 1), 500, o);
  CheckDepthwise(Dw(3, 9, 10, 18, 5, 3, 2, 1), 505, o);
}

// Strides, dilation, even and 1-wide kernels, padding past the kernel
// (backward input can't use the tiled kernel): the generic kernels.
TEST(ConvInterp, Generic) {
  uint64_t seed = 600;
  Geo g = Dw(2, 13, 15, 5, 3, 3, 1, 1);
  g.sh = g.sw = 2;
  CheckDepthwise(g, seed += 5);
  g = Dw(1, 12, 11, 3, 3, 5, 2, 4);
  g.dh = 2;
  g.dw = 2;
  CheckDepthwise(g, seed += 5);
  g = Dw(1, 9, 10, 7, 4, 4, 1, 2);  // even kernel
  CheckDepthwise(g, seed += 5);
  g = Dw(1, 7, 9, 3, 1, 1, 0, 0);  // 1x1
  CheckDepthwise(g, seed += 5);
  g = Dw(1, 8, 9, 3, 3, 3, 3, 3);  // padding > k - 1: tiled forward, generic backward input
  CheckDepthwise(g, seed += 5);
  g = Dw(1, 11, 13, 3, 5, 3, 1, 0);
  g.sh = 3;
  g.sw = 1;
  g.dh = 1;
  g.dw = 3;
  CheckDepthwise(g, seed += 5);
}

// f16 and bf16 storage, tiled and generic; element offsets of one (no
// alignment beyond the element's).
TEST(ConvInterp, LowPrecisionAndOffsets) {
  Opts o;
  o.dtypes = {DType::f16, DType::bf16};
  CheckDepthwise(Dw(1, 10, 19, 5, 3, 3, 1, 1), 700, o);
  CheckDepthwise(Dw(1, 9, 8, 3, 31, 7, 15, 3), 705, o);
  Geo g = Dw(1, 9, 11, 3, 4, 3, 1, 1);
  g.sh = 2;
  CheckDepthwise(g, 710, o);
  o.offset = 1;
  o.dtypes = {DType::f32, DType::f16, DType::bf16};
  CheckDepthwise(Dw(1, 9, 19, 5, 3, 7, 1, 3), 715, o);
  g.sh = 1;
  g.dw = 2;
  CheckDepthwise(g, 720, o);
}

// The geometry itself: an empty launch for zero elements, the sample loop
// for batches past 65535, shared memory opted in where it exceeds 48 KiB.
TEST(ConvInterp, Geometry) {
  const TiledShape huge{200000, 64, 64, 320, 64, 64, 3, 3, 1, 1};
  const LaunchShape ls = TiledLaunch(huge);
  EXPECT_EQ(ls.grid.x, 4u * 8u);
  EXPECT_EQ(ls.grid.y, 20u);
  EXPECT_EQ(ls.grid.z, 65535u);
  EXPECT_EQ(ls.block.x, unsigned(kThreads));
  EXPECT_FALSE(ls.empty());
  const LaunchShape bw = BwdWeightTiledLaunch(huge);
  EXPECT_EQ(bw.grid.x, 528u / 20u);
  EXPECT_EQ(bw.grid.y, 20u);
  EXPECT_LE(bw.smem, BwdWeightSmemMost(3));
  for (TiledShape s : {TiledShape{0, 8, 8, 4, 8, 8, 3, 3, 1, 1}, TiledShape{2, 8, 8, 0, 8, 8, 3, 3, 1, 1},
                       TiledShape{2, 0, 8, 4, 0, 8, 3, 3, 1, 1}, TiledShape{2, 8, 0, 4, 8, 0, 3, 3, 1, 1}})
    EXPECT_TRUE(TiledLaunch(s).empty());
  EXPECT_TRUE(BwdWeightTiledLaunch(TiledShape{2, 8, 8, 0, 8, 8, 3, 3, 1, 1}).empty());
  // An empty batch still writes its (zero) partials: one block.
  EXPECT_EQ(BwdWeightTiledLaunch(TiledShape{0, 8, 8, 4, 8, 8, 3, 3, 1, 1}).grid.x, 1u);
  EXPECT_TRUE(GenericLaunch(0).empty());
  EXPECT_EQ(GenericLaunch(1).grid.x, 1u);
  EXPECT_EQ(GenericLaunch(int64_t(1) << 40).grid.x, 65535u * 16);
  // 31x31 taps: over 48 KiB, within the 227 KiB opt-in limit.
  EXPECT_GT(TiledSmemMost(31), size_t(48 * 1024));
  EXPECT_LE(TiledSmemMost(31), size_t(227 * 1024));
  EXPECT_LE(BwdWeightSmemMost(31), size_t(227 * 1024));
  // Empty batches and channel counts end in the launcher's early return
  // (no launch) and pass through the interpreter that way too.
  Geo g = Dw(0, 8, 8, 4, 3, 3, 1, 1);
  auto p = ConvParamsOf(g.attrs(), g.x(), g.wt());
  ASSERT_TRUE(p.ok());
  ki::Buffer<float> none(1, "none");
  EXPECT_TRUE(Forward<float>(*p, none, none, nullptr, none, kMaxGridYZ).ok());
  EXPECT_TRUE(BackwardInput<float>(*p, none, none, none, kMaxGridYZ).ok());
}

}  // namespace
}  // namespace cf::testing
