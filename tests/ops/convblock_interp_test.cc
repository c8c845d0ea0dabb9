// The CUDA kernels of convblock_pyramid on the CPU interpreter of
// runtime/kdev, against float64 references built from the CPU ops
// (conv2d with groups = C', adaptive_avg_pool2d, resize_bilinear in f64)
// plus the gate computed here in double:
//  - DwTiled's v3 options (ops/conv/conv_depthwise_kernels.cuh): both gates,
//    the [K, K, C'] weight layout (gated and plain), output pixel strides
//    wider than the channels written (the elements in between must stay
//    poisoned), f32 and f16/bf16 storage, f32 output of low-precision input;
//  - ResizeIntoKernel (ops/pool/resize_bilinear_kernels.cuh) into a channel
//    slice;
//  - the launcher's plan (ops/convblock/convblock_pyramid_kernels.cuh) end to
//    end: pool, depthwise + gate, resize into the concatenation.
// K = 3, 5, 13, 25, 31; maps 7x5, 45x37, 1x9, 3x2 (K larger than the map);
// C' = 2, 30, 32, 34, 160. The interpreter's bounds, race and init checks
// are on for every launch.
#include <cmath>
#include <cstring>
#include <utility>

#include "ops/convblock/convblock_pyramid_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace dwconv;

template <int... Ks, class F> Status WithKwIn(int kw, F&& f) {
  Status st = absl::InternalError(absl::StrCat("test: no tiled kernel instantiated for kw = ", kw));
  ((kw == Ks ? (void)(st = f(std::integral_constant<int, Ks>{})) : (void)0), ...);
  return st;
}
// The K this test uses: all in f32, two in f16/bf16.
template <class T, class F> Status WithKw(int kw, F&& f) {
  if constexpr (std::is_same_v<T, float>) {
    return WithKwIn<3, 5, 13, 25, 31>(kw, std::forward<F>(f));
  } else {
    return WithKwIn<3, 13>(kw, std::forward<F>(f));
  }
}

// The launcher's DwTiled call (conv_depthwise_launch.cuh's LaunchTiled and
// DepthwiseGateForwardCuda) on the interpreter.
template <class T, bool kGated, class TOut>
Status LaunchDw(kd::Ptr<const T> x, kd::Ptr<const T> w, kd::Ptr<const T> b, kd::Ptr<TOut> y, const TiledShape& s,
                const TiledEpilogue& e) {
  if (kGated && !GateOk(s, e.gate, e.out_stride)) return absl::InvalidArgumentError("test: GateOk refuses the shape");
  const LaunchShape ls = TiledLaunch(s, kGated);
  if (ls.empty()) return absl::OkStatus();
  return WithKw<T>(s.kw, [&](auto tag) {
    constexpr int KW = decltype(tag)::value;
    return ki::Launch(KdConfig(kGated ? "DwTiled<gated>" : "DwTiled", ls.grid, ls.block, ls.smem),
                      &DwTiled<T, KW, kGated, TOut>, x, w, b, y, s, e);
  });
}

// The plan's kernels on the interpreter (convblock_pyramid.cu's CudaPyramidOps).
template <class T>
struct InterpOps {
  Status Pool(kd::Ptr<const T> u, kd::Ptr<T> pooled, int64_t total, int64_t H, int64_t W, int64_t C, int64_t h,
              int64_t w) {
    const pool_internal::PoolLaunch l = pool_internal::PoolLaunchFor(total);
    if (l.empty()) return absl::OkStatus();
    return ki::Launch(KdConfig("AdaptiveKernel", kd::Dim3(l.grid), kd::Dim3(l.block)),
                      &adaptive_pool_kernels::AdaptiveKernel<T>, u, pooled, total, H, W, C, h, w);
  }
  template <class TOut>
  Status Gate(kd::Ptr<const T> x, kd::Ptr<const T> w, kd::Ptr<const T> b, kd::Ptr<TOut> y, const TiledShape& s,
              const TiledEpilogue& e) {
    return LaunchDw<T, true, TOut>(x, w, b, y, s, e);
  }
  Status Resize(kd::Ptr<float> g, kd::Ptr<T> slice, int64_t total, int64_t h, int64_t w, int64_t C, int64_t H,
                int64_t W, float sh, float sw, int64_t stride) {
    const pool_internal::PoolLaunch l = pool_internal::PoolLaunchFor(total);
    if (l.empty()) return absl::OkStatus();
    return ki::Launch(KdConfig("ResizeIntoKernel", kd::Dim3(l.grid), kd::Dim3(l.block)),
                      &resize_kernels::ResizeIntoKernel<float, T>, kd::Ptr<const float>(g), slice, total, h, w, C, H,
                      W, sh, sw, stride);
  }
};

// ---- float64 references from the CPU ops ------------------------------------------------

Tensor F64(const Tensor& t) { return CastTo(t, DType::f64); }

// Depthwise "same" correlation of x [n, h, w, c] with taps [k, k, c] (+ bias
// [c]): conv2d with groups = c on the weight permuted to [c, k, k, 1].
std::vector<double> DepthwiseRef(const Tensor& x, const Tensor& w_kkc, const Tensor* bias) {
  const int64_t k = w_kkc.shape()[0], c = w_kkc.shape()[2];
  const std::vector<double> wv = ToDoubles(w_kkc);
  std::vector<double> wc(wv.size());
  for (int64_t t = 0; t < k * k; ++t)
    for (int64_t ch = 0; ch < c; ++ch) wc[ch * k * k + t] = wv[t * c + ch];
  std::vector<Tensor> in = {F64(x), FromDoubles(wc, Shape{c, k, k, 1}, DType::f64)};
  if (bias) in.push_back(F64(*bias));
  const Attrs a{{"stride", std::vector<int64_t>{1, 1}},
                {"padding", std::vector<int64_t>{k / 2, k / 2}},
                {"dilation", std::vector<int64_t>{1, 1}},
                {"groups", c}};
  auto y = RunOp1("conv2d", in, a);
  EXPECT_TRUE(y.ok()) << y.status();
  return y.ok() ? ToDoubles(*y) : std::vector<double>{};
}

double GateRef(int gate, double factor, double d1, double d2) {
  return gate == kGateSigmoid ? d1 / (1 + std::exp(-d2)) : d1 * d2 * factor;
}

// gate(d[.., j], d[.., j + c/2]) of d [px, c] -> [px, c/2].
std::vector<double> GatedRef(const std::vector<double>& d, int64_t c, int gate, double factor) {
  const int64_t px = int64_t(d.size()) / c, c2 = c / 2;
  std::vector<double> g(size_t(px * c2));
  for (int64_t p = 0; p < px; ++p)
    for (int64_t j = 0; j < c2; ++j) g[p * c2 + j] = GateRef(gate, factor, d[p * c + j], d[p * c + j + c2]);
  return g;
}

std::vector<double> PoolRef(const Tensor& u64, int64_t h, int64_t w) {
  auto p = RunOp1("adaptive_avg_pool2d", {u64}, Attrs{{"output_size", std::vector<int64_t>{h, w}}});
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? ToDoubles(*p) : std::vector<double>{};
}

std::vector<double> ResizeRef(const std::vector<double>& g, const Shape& gs, int64_t H, int64_t W) {
  auto r = RunOp1("resize_bilinear", {FromDoubles(g, gs, DType::f64)}, Attrs{{"size", std::vector<int64_t>{H, W}}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? ToDoubles(*r) : std::vector<double>{};
}

// Tolerances against float64 on the rounded inputs: f32 grows like the
// square root of the sum's length; low precision is dominated by the
// roundings of the stored maps. Absolute parts are relative to the largest
// |reference|.
struct Tol {
  double rtol, atol;
};
Tol TolFor(DType t, int k, bool out_f32 = false) {
  if (t == DType::f32 || out_f32) {
    const double r = (t == DType::f32 ? 4e-6 : 1e-5) * k;  // f32 out of f16/bf16 input: exact inputs, f32 sums
    return {r, r};
  }
  return t == DType::f16 ? Tol{6e-3, 6e-3} : Tol{4e-2, 4e-2};
}

// got[(p·stride + off) + j] for j < width against want[p·width + j], every
// other element of got still poisoned (NaN).
::testing::AssertionResult SliceMatches(const std::vector<double>& got, int64_t stride, int64_t off, int64_t width,
                                        const std::vector<double>& want, Tol tol) {
  const int64_t px = int64_t(want.size()) / width;
  if (int64_t(got.size()) != px * stride) return ::testing::AssertionFailure() << "size " << got.size();
  std::vector<double> slice(want.size());
  for (int64_t p = 0; p < px; ++p) {
    for (int64_t j = 0; j < stride; ++j) {
      const double v = got[p * stride + j];
      if (j >= off && j < off + width) {
        slice[p * width + j - off] = v;
      } else if (!std::isnan(v)) {
        return ::testing::AssertionFailure() << "element " << j << " of pixel " << p << " (outside the slice ["
                                             << off << ", " << off + width << ") of " << stride << ") was written: " << v;
      }
    }
  }
  return AllClose(slice, want, tol.rtol, tol.atol * MaxAbs(want));
}

template <class T> std::vector<double> HostDoubles(const DevBuf<T>& b) {
  std::vector<double> v(b.size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(float(b.host()[i]));
  return v;
}

// ---- depthwise + gate ------------------------------------------------------------------

struct GateCase {
  int64_t n, h, w, c;
  int k;
  int gate;
  bool bias;
  int64_t stride_extra = 0, slice_off = 0;  // output pixel stride c/2 + stride_extra, slice at slice_off
  std::string str() const {
    return absl::StrCat(n, "x", h, "x", w, "x", c, " k", k, gate == kGateSigmoid ? " sigmoid" : " product",
                        bias ? " bias" : "", " stride +", stride_extra, " at ", slice_off);
  }
};

// DwTiled<T, K, gated, TOut> on one case against conv2d (f64) + the gate.
template <class T, class TOut = T>
void CheckGate(const GateCase& g, uint64_t seed, size_t offset = 0) {
  const DType t = KdDType<T>();
  SCOPED_TRACE(absl::StrCat(g.str(), " ", DTypeName(t), std::is_same_v<TOut, float> ? " -> f32" : "", " offset ",
                            offset));
  const Tensor x = CastTo(RandomTensor(Shape{g.n, g.h, g.w, g.c}, DType::f32, seed), t);
  const Tensor w = CastTo(RandomTensor(Shape{g.k, g.k, g.c}, DType::f32, seed + 1, -0.3, 0.3), t);
  const Tensor b = CastTo(RandomTensor(Shape{g.c}, DType::f32, seed + 2), t);
  const double factor = 1.7;
  const std::vector<double> want = GatedRef(DepthwiseRef(x, w, g.bias ? &b : nullptr), g.c, g.gate, factor);

  const int64_t c2 = g.c / 2, stride = c2 + g.stride_extra, px = g.n * g.h * g.w;
  DevBuf<T> xb(x, "x", offset), wb(w, "w", offset), bb(b, "bias", offset);
  DevBuf<TOut> yb(size_t(px * stride), "y", offset);
  const TiledShape s = GateShape(int(g.n), int(g.h), int(g.w), int(g.c), g.k);
  const Status st = LaunchDw<T, true, TOut>(xb, wb, g.bias ? kd::Ptr<const T>(bb) : nullptr, yb.ptr() + g.slice_off, s,
                                            GateEpilogue(g.gate, float(factor), stride));
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(SliceMatches(HostDoubles(yb), stride, g.slice_off, c2, want, TolFor(t, g.k, std::is_same_v<TOut, float>)));
}

TEST(ConvBlockInterp, GateEveryKernelSizeAndGate) {
  uint64_t seed = 10;
  CheckGate<float>({1, 45, 37, 34, 31, kGateProduct, true}, seed += 5);
  for (int gate : {kGateProduct, kGateSigmoid}) {
    CheckGate<float>({1, 45, 37, 34, 13, gate, true}, seed += 5);  // 3 x 3 tiles, partial; 17 gated: 2 chunks
    CheckGate<float>({2, 7, 5, 30, 3, gate, false}, seed += 5);
    CheckGate<float>({1, 7, 5, 32, 25, gate, true}, seed += 5);   // K larger than the map
    CheckGate<float>({1, 1, 9, 2, 31, gate, true}, seed += 5);    // one row, C' = 2
    CheckGate<float>({1, 9, 17, 160, 5, gate, false}, seed += 5);  // C' = 160: 5 chunks
  }
}

// The slice of a wider output (the pyramid's concatenation): pixel strides
// past C'/2, the slice at an offset; nothing outside it written.
TEST(ConvBlockInterp, GateIntoChannelSlice) {
  CheckGate<float>({2, 9, 19, 34, 3, kGateProduct, true, 34, 17}, 100);      // S = 3 layout, middle stage
  CheckGate<float>({1, 7, 5, 30, 13, kGateSigmoid, false, 15, 15}, 105);     // S = 2, last stage
  CheckGate<float>({1, 3, 2, 32, 31, kGateProduct, true, 1, 1}, 110);        // stride C'/2 + 1, K >> map
}

TEST(ConvBlockInterp, GateLowPrecision) {
  uint64_t seed = 200;
  for (int gate : {kGateProduct, kGateSigmoid}) {
    CheckGate<kd::half>({1, 11, 19, 34, 13, gate, true, 17, 17}, seed += 5);
    CheckGate<kd::bfloat16>({1, 11, 19, 34, 13, gate, true, 17, 0}, seed += 5);
    CheckGate<kd::half>({2, 7, 5, 2, 3, gate, false}, seed += 5, 1);  // element offset 1: no alignment
    CheckGate<kd::bfloat16>({1, 1, 9, 30, 3, gate, true}, seed += 5, 1);
    // f32 maps of low-precision input (the pyramid's pooled stages).
    CheckGate<kd::half, float>({1, 9, 10, 32, 13, gate, true}, seed += 5);
    CheckGate<kd::bfloat16, float>({1, 7, 5, 34, 3, gate, false}, seed += 5);
  }
}

// ---- the plain path with the [K, K, C] layout and a pixel stride ----------------------------

template <class T>
void CheckPlainKkc(int64_t n, int64_t h, int64_t w, int64_t c, int k, int64_t stride, int64_t off, uint64_t seed) {
  const DType t = KdDType<T>();
  SCOPED_TRACE(absl::StrCat(n, "x", h, "x", w, "x", c, " k", k, " stride ", stride, " at ", off, " ", DTypeName(t)));
  const Tensor x = CastTo(RandomTensor(Shape{n, h, w, c}, DType::f32, seed), t);
  const Tensor wt = CastTo(RandomTensor(Shape{k, k, c}, DType::f32, seed + 1), t);
  const Tensor b = CastTo(RandomTensor(Shape{c}, DType::f32, seed + 2), t);
  const std::vector<double> want = DepthwiseRef(x, wt, &b);
  DevBuf<T> xb(x, "x"), wb(wt, "w"), bb(b, "bias"), yb(size_t(n * h * w * stride), "y");
  const TiledShape s = GateShape(int(n), int(h), int(w), int(c), k);
  TiledEpilogue e = ConvEpilogue(s, 0);
  e.layout = kWeightKKC;
  e.out_stride = stride;
  const Status st = LaunchDw<T, false, T>(xb, wb, bb, yb.ptr() + off, s, e);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(SliceMatches(HostDoubles(yb), stride, off, c, want, TolFor(t, k)));
}

TEST(ConvBlockInterp, PlainKkcLayoutAndStride) {
  CheckPlainKkc<float>(1, 10, 19, 20, 3, 20, 0, 300);  // dense
  CheckPlainKkc<float>(2, 7, 5, 17, 13, 40, 3, 305);
  CheckPlainKkc<float>(1, 3, 2, 5, 31, 6, 1, 310);
  CheckPlainKkc<kd::half>(1, 9, 17, 18, 3, 36, 18, 315);
}

// ---- resize into a slice -----------------------------------------------------------------

template <class TX, class TY>
void CheckResizeInto(int64_t n, int64_t h, int64_t w, int64_t c, int64_t H, int64_t W, int64_t stride, int64_t off,
                     uint64_t seed) {
  const DType tx = KdDType<TX>(), ty = KdDType<TY>();
  SCOPED_TRACE(absl::StrCat(h, "x", w, " -> ", H, "x", W, " c", c, " stride ", stride, " at ", off, " ",
                            DTypeName(tx), " -> ", DTypeName(ty)));
  const Tensor g = CastTo(RandomTensor(Shape{n, h, w, c}, DType::f32, seed), tx);
  const std::vector<double> want = ResizeRef(ToDoubles(g), g.shape(), H, W);
  DevBuf<TX> gb(g, "g");
  DevBuf<TY> yb(size_t(n * H * W * stride), "y");
  const int64_t total = n * H * W * c;
  const pool_internal::PoolLaunch l = pool_internal::PoolLaunchFor(total);
  const resize_kernels::ResizeScales sc = resize_kernels::ResizeScalesFor(h, w, H, W);
  const Status st = ki::Launch(KdConfig("ResizeIntoKernel", kd::Dim3(l.grid), kd::Dim3(l.block)),
                               &resize_kernels::ResizeIntoKernel<TX, TY>, kd::Ptr<const TX>(gb), yb.ptr() + off, total,
                               h, w, c, H, W, sc.sh, sc.sw, stride);
  ASSERT_TRUE(st.ok()) << st;
  // f32: the taps themselves are f32 (BilinearTapOf), the reference's f64.
  const Tol tol = ty == DType::f32 ? Tol{1e-5, 1e-5} : ty == DType::f16 ? Tol{2e-3, 2e-3} : Tol{1e-2, 1e-2};
  EXPECT_TRUE(SliceMatches(HostDoubles(yb), stride, off, c, want, tol));
}

TEST(ConvBlockInterp, ResizeIntoSlice) {
  CheckResizeInto<float, float>(2, 4, 3, 5, 9, 7, 5, 0, 400);     // dense: the resize op's own kernel body
  CheckResizeInto<float, float>(1, 22, 18, 17, 45, 37, 51, 17, 405);
  CheckResizeInto<float, kd::half>(1, 3, 2, 15, 7, 5, 30, 15, 410);
  CheckResizeInto<float, kd::bfloat16>(1, 1, 4, 16, 1, 9, 33, 16, 415);
  CheckResizeInto<kd::half, kd::half>(1, 5, 5, 3, 5, 5, 7, 2, 420);  // same size: a copy
}

// ---- the whole plan --------------------------------------------------------------------

struct PyramidCase {
  int64_t n, H, W, c;
  int k;
  int gate;
  bool bias;
  std::vector<std::pair<int64_t, int64_t>> sizes;
};

// The reference: per stage, pool (identity at full size), depthwise + bias,
// gate, resize back, concatenated on channels.
std::vector<double> PyramidRef(const PyramidCase& pc, const Tensor& u, const std::vector<Tensor>& w,
                               const std::vector<Tensor>& b, double factor) {
  const int64_t S = int64_t(pc.sizes.size()), c2 = pc.c / 2, px = pc.n * pc.H * pc.W;
  std::vector<double> out(size_t(px * S * c2));
  const Tensor u64 = F64(u);
  for (int64_t s = 0; s < S; ++s) {
    const auto [h, wd] = pc.sizes[s];
    const bool full = h == pc.H && wd == pc.W;
    const Tensor p = full ? u64 : FromDoubles(PoolRef(u64, h, wd), Shape{pc.n, h, wd, pc.c}, DType::f64);
    std::vector<double> g = GatedRef(DepthwiseRef(p, w[s], pc.bias ? &b[s] : nullptr), pc.c, pc.gate, factor);
    if (!full) g = ResizeRef(g, Shape{pc.n, h, wd, c2}, pc.H, pc.W);
    for (int64_t q = 0; q < px; ++q)
      for (int64_t j = 0; j < c2; ++j) out[q * S * c2 + s * c2 + j] = g[q * c2 + j];
  }
  return out;
}

template <class T>
void CheckPyramid(const PyramidCase& pc, uint64_t seed) {
  const DType t = KdDType<T>();
  std::string sz;
  for (auto [h, w] : pc.sizes) absl::StrAppend(&sz, " ", h, "x", w);
  SCOPED_TRACE(absl::StrCat(pc.n, "x", pc.H, "x", pc.W, "x", pc.c, " k", pc.k, pc.gate == kGateSigmoid ? " sigmoid" : " product",
                            pc.bias ? " bias" : "", " stages", sz, " ", DTypeName(t)));
  const int64_t S = int64_t(pc.sizes.size());
  const double factor = 0.8;
  const Tensor u = CastTo(RandomTensor(Shape{pc.n, pc.H, pc.W, pc.c}, DType::f32, seed), t);
  std::vector<Tensor> w, b;
  for (int64_t s = 0; s < S; ++s) {
    w.push_back(CastTo(RandomTensor(Shape{pc.k, pc.k, pc.c}, DType::f32, seed + 1 + s, -0.3, 0.3), t));
    b.push_back(CastTo(RandomTensor(Shape{pc.c}, DType::f32, seed + 11 + s), t));
  }
  const std::vector<double> want = PyramidRef(pc, u, w, b, factor);

  const pyramid::Plan plan =
      pyramid::PlanFor(pc.n, pc.H, pc.W, pc.c, pc.k, pc.gate, float(factor), pc.bias, pc.sizes, int64_t(sizeof(T)));
  DevBuf<T> ub(u, "u"), yb(size_t(pc.n * pc.H * pc.W * plan.out_stride()), "out");
  std::vector<std::unique_ptr<DevBuf<T>>> wb, bb;
  std::vector<kd::Ptr<const T>> wp, bp;
  for (int64_t s = 0; s < S; ++s) {
    wb.push_back(std::make_unique<DevBuf<T>>(w[s], absl::StrCat("w", s)));
    bb.push_back(std::make_unique<DevBuf<T>>(b[s], absl::StrCat("b", s)));
    wp.push_back(*wb.back());
    if (pc.bias) bp.push_back(*bb.back());
  }
  // The workspace as the launcher lays it out: T pooled map, f32 gated map
  // at gated_offset (two buffers here, so each is bounds-checked on its own).
  ASSERT_EQ(plan.gated_offset % 256, 0);
  ASSERT_GE(plan.gated_offset, plan.pooled_elems * int64_t(sizeof(T)));
  DevBuf<T> pooled(size_t(plan.pooled_elems), "pooled");
  DevBuf<float> gated(size_t(plan.gated_elems), "gated");
  InterpOps<T> ops;
  const Status st = pyramid::RunPlan(plan, ops, kd::Ptr<const T>(ub), wp, bp, yb.ptr(), pooled.ptr(), gated.ptr());
  ASSERT_TRUE(st.ok()) << st;
  // Every element is written once (the slices tile the output).
  const Tol tol = TolFor(t, pc.k);
  EXPECT_TRUE(SliceMatches(HostDoubles(yb), plan.out_stride(), 0, plan.out_stride(), want, tol));
}

TEST(ConvBlockInterp, PyramidPlan) {
  // Scales {1, 0.5} on odd maps, both gates, with and without bias.
  CheckPyramid<float>({1, 7, 5, 30, 3, kGateProduct, true, {{7, 5}, {3, 2}}}, 500);
  CheckPyramid<float>({2, 9, 11, 34, 13, kGateSigmoid, false, {{9, 11}, {4, 5}}}, 505);
  // {1, 0.5, 0.25}; K larger than the pooled maps.
  CheckPyramid<float>({1, 9, 10, 2, 13, kGateProduct, true, {{9, 10}, {4, 5}, {2, 2}}}, 510);
  // Only pooled stages, one of them a single row (h == H, w < W: pooled on one axis).
  CheckPyramid<float>({1, 1, 9, 32, 5, kGateSigmoid, true, {{1, 4}, {1, 9}}}, 515);
  // SD1.5's C' = 160 with K = 25, scales {1, 0.5, 0.25} of a 17x15 map.
  CheckPyramid<float>({2, 17, 15, 160, 25, kGateProduct, true, {{17, 15}, {8, 7}, {4, 3}}}, 518);
  CheckPyramid<kd::half>({1, 8, 7, 34, 3, kGateProduct, true, {{8, 7}, {4, 3}, {2, 1}}}, 520);
  CheckPyramid<kd::bfloat16>({1, 8, 7, 30, 13, kGateSigmoid, true, {{8, 7}, {4, 3}}}, 525);
}

// The interpreted plan against the op's own CPU kernel (convblock_pyramid,
// ops/convblock/convblock_pyramid.cc), through the harness the gpu test uses
// (MatchesCpuReference: the CPU in f32 on the rounded inputs) with the gpu
// test's tolerances: the contract (attributes, stage order, slices, factor)
// and the precision of the CUDA plan (the pooled map rounded to T) as
// convblock_gpu_test.cc will see them.
TEST(ConvBlockInterp, PlanMatchesTheOpsCpuKernel) {
  struct OpCase {
    int64_t b, h, w, c, k;
    std::vector<int64_t> sizes;
    bool bias;
  };
  uint64_t seed = 600;
  for (const OpCase& oc : {OpCase{1, 9, 7, 34, 13, {9, 7, 4, 3}, true}, OpCase{2, 7, 5, 2, 31, {7, 5, 3, 2, 1, 1}, false},
                           OpCase{1, 1, 9, 30, 3, {1, 4, 1, 9}, true}}) {
    const int64_t S = int64_t(oc.sizes.size()) / 2;
    std::vector<Tensor> in = {RandomTensor(Shape{oc.b, oc.h, oc.w, oc.c}, DType::f32, seed += 20)};
    for (int64_t n = 0; n < S; ++n)
      in.push_back(RandomTensor(Shape{oc.k, oc.k, oc.c}, DType::f32, seed + 1 + n, -1.0 / oc.k, 1.0 / oc.k));
    if (oc.bias)
      for (int64_t n = 0; n < S; ++n) in.push_back(RandomTensor(Shape{oc.c}, DType::f32, seed + 11 + n, -0.5, 0.5));
    for (const char* gate : {"product", "sigmoid"}) {
      const Attrs a{{"sizes", oc.sizes}, {"kernel", oc.k}, {"gate", std::string(gate)}, {"factor", 1.9},
                    {"has_bias", oc.bias}};
      SCOPED_TRACE(absl::StrCat(oc.b, "x", oc.h, "x", oc.w, "x", oc.c, " ", a.ToString()));
      std::vector<std::pair<int64_t, int64_t>> hw;
      for (int64_t n = 0; n < S; ++n) hw.emplace_back(oc.sizes[2 * n], oc.sizes[2 * n + 1]);
      for (DType t : kInterpDTypes) {
        if (t != DType::f32 && oc.k != 3 && oc.k != 13) continue;  // the K instantiated for f16/bf16
        const double tol = t == DType::f32 ? 2e-6 * double(oc.k) : -1;
        EXPECT_TRUE(MatchesCpuReference(
            "convblock_pyramid", in, a, t,
            [&](const std::vector<Tensor>& r) -> StatusOr<std::vector<Tensor>> {
              return DispatchKd(t, [&](auto tag) -> StatusOr<std::vector<Tensor>> {
                using T = decltype(tag);
                const pyramid::Plan plan =
                    pyramid::PlanFor(oc.b, oc.h, oc.w, oc.c, int(oc.k), std::string(gate) == "sigmoid" ? kGateSigmoid : kGateProduct,
                                     1.9f, oc.bias, hw, int64_t(sizeof(T)));
                const Shape ys{oc.b, oc.h, oc.w, plan.out_stride()};
                std::vector<std::unique_ptr<DevBuf<T>>> bufs;
                std::vector<kd::Ptr<const T>> wp, bp;
                for (size_t i = 1; i < r.size(); ++i) {
                  bufs.push_back(std::make_unique<DevBuf<T>>(r[i], absl::StrCat("in", i)));
                  (int64_t(i) <= S ? wp : bp).push_back(*bufs.back());
                }
                DevBuf<T> ub(r[0], "u"), yb(size_t(ys.numel()), "out"), pooled(size_t(plan.pooled_elems), "pooled");
                DevBuf<float> gated(size_t(plan.gated_elems), "gated");
                InterpOps<T> ops;
                CF_RETURN_IF_ERROR(
                    pyramid::RunPlan(plan, ops, kd::Ptr<const T>(ub), wp, bp, yb.ptr(), pooled.ptr(), gated.ptr()));
                return std::vector<Tensor>{yb.ToTensor(ys)};
              });
            },
            tol, tol))
            << DTypeName(t);
      }
    }
  }
}

// The plan's bookkeeping: no workspace without pooled stages; the largest
// pooled stage sizes both maps; the gated map starts 256-byte aligned.
TEST(ConvBlockInterp, PlanWorkspace) {
  const pyramid::Plan full = pyramid::PlanFor(2, 8, 8, 16, 3, kGateProduct, 1.f, false, {{8, 8}}, 2);
  EXPECT_EQ(full.workspace_bytes(), 0);
  EXPECT_EQ(full.out_stride(), 8);
  const pyramid::Plan p = pyramid::PlanFor(2, 128, 128, 160, 13, kGateSigmoid, 1.f, true,
                                           {{128, 128}, {64, 64}, {32, 32}}, 2);
  EXPECT_EQ(p.out_stride(), 240);
  EXPECT_EQ(p.pooled_elems, 2 * 64 * 64 * 160);
  EXPECT_EQ(p.gated_elems, 2 * 64 * 64 * 80);
  EXPECT_EQ(p.gated_offset, 2 * 64 * 64 * 160 * 2);
  EXPECT_EQ(p.workspace_bytes(), p.gated_offset + 2 * 64 * 64 * 80 * 4);
  const pyramid::Plan odd = pyramid::PlanFor(1, 7, 5, 6, 3, kGateProduct, 1.f, false, {{3, 2}}, 2);
  EXPECT_EQ(odd.gated_offset, 256);  // 36 bytes of pooled map, rounded up
  // GateOk: what DepthwiseGateForwardCuda refuses.
  EXPECT_TRUE(GateOk(GateShape(1, 4, 4, 2, 3), kGateProduct, 1));
  EXPECT_FALSE(GateOk(GateShape(1, 4, 4, 3, 3), kGateProduct, 2));   // odd C'
  EXPECT_FALSE(GateOk(GateShape(1, 4, 4, 4, 4), kGateProduct, 2));   // even K
  EXPECT_FALSE(GateOk(GateShape(1, 4, 4, 4, 33), kGateProduct, 2));  // K > 31
  EXPECT_FALSE(GateOk(GateShape(1, 4, 4, 4, 3), kGateNone, 2));
  EXPECT_FALSE(GateOk(GateShape(1, 4, 4, 4, 3), kGateSigmoid, 1));   // stride < C'/2
  // The gated launch covers C'/2 channels.
  EXPECT_EQ(TiledLaunch(GateShape(2, 128, 128, 160, 13), true).grid.y, 5u);
  EXPECT_EQ(TiledLaunch(GateShape(2, 128, 128, 160, 13), false).grid.y, 10u);
}

}  // namespace
}  // namespace cf::testing
