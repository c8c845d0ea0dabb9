// The CUDA kernels of the elementwise family (ops/elementwise/elementwise_cuda.cuh)
// on the kdev interpreter against the CPU kernels, launched with the shapes
// of the launchers' geometry functions: sizes that are not multiples of the
// block or the 16-byte pack, one and zero elements, operands one element off
// 16-byte alignment (the vector path must fall back), in-place, broadcasting
// patterns, NaN / inf, and the geometry of huge sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/elementwise/elementwise_cuda.cuh"
#include "tests/support/kdev_tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;
using ew::BinaryKind;
using ew::UnaryKind;

struct UnaryCase {
  const char* op;
  UnaryKind kind;
  Attrs attrs;
  double lo, hi;
};
std::vector<UnaryCase> UnaryCases() {
  return {{"scale", UnaryKind::kScale, Attrs{{"mul", 1.5}, {"add", -0.25}}, -2, 2},
          {"exp", UnaryKind::kExp, {}, -10, 10},
          {"sqrt", UnaryKind::kSqrt, {}, 1e-3, 1e3},
          {"rsqrt", UnaryKind::kRsqrt, {}, 1e-3, 1e3},
          {"neg", UnaryKind::kNeg, {}, -2, 2},
          {"square", UnaryKind::kSquare, {}, -2, 2}};
}

template <UnaryKind K> struct UK { static constexpr UnaryKind value = K; };
template <typename F> Status DispatchUnary(UnaryKind k, F&& f) {
  switch (k) {
    case UnaryKind::kScale: return f(UK<UnaryKind::kScale>{});
    case UnaryKind::kExp: return f(UK<UnaryKind::kExp>{});
    case UnaryKind::kSqrt: return f(UK<UnaryKind::kSqrt>{});
    case UnaryKind::kRsqrt: return f(UK<UnaryKind::kRsqrt>{});
    case UnaryKind::kNeg: return f(UK<UnaryKind::kNeg>{});
    case UnaryKind::kSquare: return f(UK<UnaryKind::kSquare>{});
  }
  return absl::InternalError("kind");
}

// The unary launcher of elementwise_unary.cu on the interpreter: x at
// `offset` elements past 16-byte alignment, out = x when in_place.
StatusOr<std::vector<Tensor>> RunUnary(UnaryKind kind, const Attrs& attrs, const Tensor& xin, int64_t offset,
                                       bool in_place) {
  const float p0 = static_cast<float>(attrs.Float("mul", 1.0)), p1 = static_cast<float>(attrs.Float("add", 0.0));
  DevTensor x(xin, "x", offset), out(xin.shape(), xin.dtype(), "out", offset);
  DevTensor& y = in_place ? x : out;
  const int64_t n = xin.numel();
  CF_RETURN_IF_ERROR(DispatchKdFloat(xin.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    return DispatchUnary(kind, [&](auto k) -> Status {
      const ew::MapLaunch g = ew::MapGeometry(n, sizeof(T), ew::Aligned16(x.data()) && ew::Aligned16(y.data()));
      if (g.vec != (offset == 0)) return absl::InternalError("vec path not as expected");
      return ki::Launch(KdConfig("unary", g.grid, g.block), &ew::UnaryKernel<T, decltype(k)::value>, x.ptr<T>(),
                        y.ptr<T>(), n, p0, p1, g.vec);
    });
  }));
  return std::vector<Tensor>{y.ToTensor()};
}

TEST(ElementwiseInterp, Unary) {
  uint64_t seed = 1;
  for (const UnaryCase& u : UnaryCases()) {
    for (const Shape& s : std::vector<Shape>{{}, {1}, {7}, {13}, {3, 7, 11}, {1031}}) {
      for (DType t : kGpuDTypes) {
        for (int64_t offset : {0, 1}) {
          for (bool in_place : {false, true}) {
            if (in_place && s.numel() != 1031) continue;
            auto run = [&](const std::vector<Tensor>& in) { return RunUnary(u.kind, u.attrs, in[0], offset, in_place); };
            EXPECT_TRUE(MatchesCpuReference(u.op, {RandomTensor(s, DType::f32, seed++, u.lo, u.hi)}, u.attrs, t, run))
                << u.op << " " << s.ToString() << " offset " << offset << (in_place ? " in place" : "");
          }
        }
      }
    }
  }
}

// The CPU kernel in the storage dtype on values with NaN, infinities, zeros
// of both signs, subnormals and overflow, against the interpreted kernel.
Tensor Specials(DType t, int64_t n) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> base = {0.0, -0.0, 1.0, -1.0, inf, -inf, std::nan(""), 1e-40, -1e-40, 3e38, -3e38, 70000.0,
                              1e-8, 88.0, 89.0, -104.0, 0.5, 2.0, 1e30};
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = base[static_cast<size_t>(i) % base.size()];
  return FromDoubles(v, {n}, t);
}

TEST(ElementwiseInterp, UnarySpecials) {
  for (const UnaryCase& u : UnaryCases()) {
    for (DType t : kGpuDTypes) {
      for (int64_t offset : {0, 1}) {
        const Tensor x = Specials(t, 45);
        CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1(u.op, {x}, u.attrs));
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunUnary(u.kind, u.attrs, x, offset, false));
        EXPECT_TRUE(MatchesWithSpecials(ToDoubles(got[0]), ToDoubles(want), DefaultRtol(t), 0))
            << u.op << " " << DTypeName(t) << " offset " << offset;
      }
    }
  }
}

TEST(ElementwiseInterp, ZeroAndHugeGeometry) {
  // Zero elements: the launchers return early; the shape is still a valid
  // launch, and the kernel touches nothing (an empty buffer reports any access).
  for (bool aligned : {false, true}) {
    const ew::MapLaunch g = ew::MapGeometry(0, 2, aligned);
    EXPECT_EQ(g.grid.x, 1u);
    DevTensor x(Shape{0}, DType::f16, "x"), y(Shape{0}, DType::f16, "y");
    CF_EXPECT_OK(ki::Launch(KdConfig("unary0", g.grid, g.block), &ew::UnaryKernel<kd::half, UnaryKind::kExp>,
                            x.ptr<kd::half>(), y.ptr<kd::half>(), int64_t{0}, 1.f, 0.f, g.vec));
  }
  // Huge sizes: the grid is capped (the grid-stride loop covers the rest) and
  // fits the grid's x dimension; thread indices do not overflow int64.
  for (int64_t n : {int64_t{1} << 31, (int64_t{1} << 40) + 3, std::numeric_limits<int64_t>::max() / 4}) {
    for (bool aligned : {false, true}) {
      const ew::MapLaunch g = ew::MapGeometry(n, 4, aligned);
      EXPECT_EQ(g.grid.x, 65535u * 16) << n;
      EXPECT_EQ(g.block.x, 256u);
      EXPECT_LE(g.grid.x, 2147483647u);
    }
  }
  EXPECT_EQ(ew::MapGeometry(1031, 2, true).grid.x, 1u);   // 128 packs + tail
  EXPECT_EQ(ew::MapGeometry(1031, 2, false).grid.x, 5u);  // element by element
  EXPECT_EQ(ew::MapGeometry(8 * 256 * 3, 2, true).grid.x, 4u);
}

// The interpreter checks what the fallback is for: the vector path on a
// pointer one element off 16-byte alignment is a misaligned 16-byte access.
TEST(ElementwiseInterp, MisalignedVectorPathIsReported) {
  const Tensor x = RandomTensor({64}, DType::f32, 7);
  DevTensor dx(x, "x", 1), dy(x.shape(), DType::f32, "y", 1);
  const ew::MapLaunch g = ew::MapGeometry(64, 4, true);
  const Status st = ki::Launch(KdConfig("unary_misaligned", g.grid, g.block), &ew::UnaryKernel<float, UnaryKind::kNeg>,
                               dx.ptr<float>(), dy.ptr<float>(), int64_t{64}, 1.f, 0.f, true);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("align"), std::string::npos) << st;
}

// ---------------------------------------------------------------------------
// Binary ops.

template <BinaryKind K> struct BK { static constexpr BinaryKind value = K; };
template <typename F> Status DispatchBinary(const std::string& op, F&& f) {
  if (op == "add") return f(BK<BinaryKind::kAdd>{});
  if (op == "sub") return f(BK<BinaryKind::kSub>{});
  if (op == "mul") return f(BK<BinaryKind::kMul>{});
  if (op == "div") return f(BK<BinaryKind::kDiv>{});
  return absl::InternalError(op);
}

// LaunchBroadcast of elementwise_binary.cu on the interpreter; offsets of a,
// b and out in elements; force64 runs the 64-bit index kernel instead of
// the 32-bit one (both are reachable only by size on the GPU).
template <typename T, typename F>
Status LaunchBinaryOn(DevTensor& a, DevTensor& b, DevTensor& out, F f, bool force64, ew::BinaryPath* path) {
  const BroadcastPlan p = PlanBroadcast(out.shape(), a.shape(), b.shape());
  const int64_t n = p.numel();
  ew::BinaryLaunch g =
      ew::BinaryGeometry(p, sizeof(T), ew::Aligned16(a.data()) && ew::Aligned16(b.data()) && ew::Aligned16(out.data()));
  if (force64 && g.path == ew::BinaryPath::kBroadcast32) g.path = ew::BinaryPath::kBroadcast64;
  *path = g.path;
  const auto cfg = KdConfig("binary", g.grid, g.block);
  switch (g.path) {
    case ew::BinaryPath::kFlat:
      return ki::Launch(cfg, &ew::BinaryFlatKernel<T, F>, a.ptr<T>(), b.ptr<T>(), out.ptr<T>(), n, f);
    case ew::BinaryPath::kBroadcast32:
      return ki::Launch(cfg, &ew::BinaryBroadcastKernel<T, uint32_t, F>, a.ptr<T>(), b.ptr<T>(), out.ptr<T>(), p,
                        uint32_t(n), f);
    case ew::BinaryPath::kBroadcast64:
      return ki::Launch(cfg, &ew::BinaryBroadcastKernel<T, int64_t, F>, a.ptr<T>(), b.ptr<T>(), out.ptr<T>(), p, n, f);
  }
  return absl::InternalError("path");
}

struct BinaryOpts {
  int64_t off_a = 0, off_b = 0, off_out = 0;
  bool force64 = false;
};

StatusOr<std::vector<Tensor>> RunBinary(const std::string& op, const Tensor& ta, const Tensor& tb, BinaryOpts o,
                                        ew::BinaryPath* path) {
  CF_ASSIGN_OR_RETURN(Shape os, BroadcastShapes(ta.shape(), tb.shape()));
  DevTensor a(ta, "a", o.off_a), b(tb, "b", o.off_b), out(os, ta.dtype(), "out", o.off_out);
  CF_RETURN_IF_ERROR(DispatchKdFloat(ta.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    return DispatchBinary(op, [&](auto k) -> Status {
      return LaunchBinaryOn<T>(a, b, out, ew::BinaryF<decltype(k)::value>{}, o.force64, path);
    });
  }));
  return std::vector<Tensor>{out.ToTensor()};
}

TEST(ElementwiseInterp, Binary) {
  struct Case {
    Shape a, b;
  };
  const std::vector<Case> cases = {
      {{1}, {1}},                  // one element
      {{7}, {7}},                  // flat, tail only
      {{3, 5, 67}, {3, 5, 67}},    // flat, packs + tail
      {{4, 6, 33}, {33}},          // per-channel vector, odd channels
      {{2, 3, 5, 7}, {}},          // scalar
      {{}, {2, 3, 5}},             // scalar first
      {{1}, {5, 3}},
      {{2, 5, 1}, {2, 1, 7}},      // outer product
      {{3, 1, 4, 1, 5}, {2, 1, 2, 1}},
      {{2, 3, 3, 5}, {2, 1, 1, 5}},  // time embedding add
      {{2, 1, 2, 1, 2, 1, 2, 3}, {2, 1, 2, 1, 2, 1, 3}},
  };
  uint64_t seed = 1000;
  for (const char* op : {"add", "sub", "mul", "div"}) {
    for (const Case& c : cases) {
      for (DType t : kGpuDTypes) {
        for (const BinaryOpts& o : std::vector<BinaryOpts>{{}, {1, 0, 0}, {0, 0, 1}, {1, 1, 1, true}}) {
          const Tensor a = RandomTensor(c.a, DType::f32, seed++);
          const Tensor b = std::string(op) == "div" ? RandomTensor(c.b, DType::f32, seed++, 0.5, 4.0)
                                                    : RandomTensor(c.b, DType::f32, seed++);
          ew::BinaryPath path{};
          auto run = [&](const std::vector<Tensor>& in) { return RunBinary(op, in[0], in[1], o, &path); };
          EXPECT_TRUE(MatchesCpuReference(op, {a, b}, {}, t, run))
              << op << " " << c.a.ToString() << " x " << c.b.ToString() << " offsets " << o.off_a << "," << o.off_b
              << "," << o.off_out << (o.force64 ? " int64" : "");
          const bool flat = PlanBroadcast(BroadcastShapes(c.a, c.b).value(), c.a, c.b).flat();
          const bool aligned = o.off_a == 0 && o.off_b == 0 && o.off_out == 0;
          EXPECT_EQ(path, flat && aligned ? ew::BinaryPath::kFlat
                          : o.force64     ? ew::BinaryPath::kBroadcast64
                                          : ew::BinaryPath::kBroadcast32)
              << c.a.ToString() << " x " << c.b.ToString();
        }
      }
    }
  }
}

TEST(ElementwiseInterp, BinarySpecials) {
  for (const char* op : {"add", "sub", "mul", "div"}) {
    for (DType t : kGpuDTypes) {
      const Tensor a = Specials(t, 19 * 19);
      // b runs through the same values at a different rate: every pair.
      std::vector<double> av = ToDoubles(Specials(t, 19)), bv;
      for (int i = 0; i < 19 * 19; ++i) bv.push_back(av[static_cast<size_t>(i / 19)]);
      const Tensor b = FromDoubles(bv, {19 * 19}, t);
      for (const BinaryOpts& o : std::vector<BinaryOpts>{{}, {0, 1, 0}}) {
        CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1(op, {a, b}));
        ew::BinaryPath path{};
        CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> got, RunBinary(op, a, b, o, &path));
        EXPECT_TRUE(MatchesWithSpecials(ToDoubles(got[0]), ToDoubles(want), DefaultRtol(t), 0))
            << op << " " << DTypeName(t) << " offset b " << o.off_b;
      }
    }
  }
}

TEST(ElementwiseInterp, BinaryGeometry) {
  const Shape big{int64_t{1} << 20, int64_t{1} << 12};  // 2^32 elements
  BroadcastPlan flat = PlanBroadcast(big, big, big);
  EXPECT_EQ(ew::BinaryGeometry(flat, 4, true).path, ew::BinaryPath::kFlat);
  EXPECT_EQ(ew::BinaryGeometry(flat, 4, false).path, ew::BinaryPath::kBroadcast64);
  EXPECT_EQ(ew::BinaryGeometry(flat, 4, false).grid.x, 65535u * 16);
  const Shape row{int64_t{1} << 12};
  EXPECT_EQ(ew::BinaryGeometry(PlanBroadcast(big, big, row), 2, true).path, ew::BinaryPath::kBroadcast64);
  const Shape below{(int64_t{1} << 31) - 1};
  EXPECT_EQ(ew::BinaryGeometry(PlanBroadcast(below, below, Shape{1}), 2, true).path, ew::BinaryPath::kBroadcast32);
  const Shape at{int64_t{1} << 31};
  EXPECT_EQ(ew::BinaryGeometry(PlanBroadcast(at, at, Shape{1}), 2, true).path, ew::BinaryPath::kBroadcast64);
  EXPECT_EQ(ew::BinaryGeometry(PlanBroadcast(Shape{1}, Shape{1}, Shape{1}), 2, true).grid.x, 1u);
}

// broadcast_to runs the binary kernels with TakeFirst and x as both operands.
TEST(ElementwiseInterp, BroadcastTo) {
  struct Case {
    Shape x, out;
  };
  uint64_t seed = 3000;
  for (const Case& c : std::vector<Case>{{{1}, {5}}, {{3, 1}, {3, 7}}, {{1, 5}, {4, 5}}, {{2, 1, 3}, {2, 9, 3}},
                                         {{6}, {6}}}) {
    for (DType t : kGpuDTypes) {
      for (int64_t off : {0, 1}) {
        auto run = [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
          DevTensor x(in[0], "x", off), out(c.out, t, "out");
          ew::BinaryPath path{};
          // As BroadcastToCuda: the plan of x against itself (b = x).
          DevTensor& xb = x;
          CF_RETURN_IF_ERROR(DispatchKdFloat(t, [&](auto tag) -> Status {
            using T = decltype(tag);
            const BroadcastPlan p = PlanBroadcast(c.out, c.x, c.x);
            const int64_t n = p.numel();
            const ew::BinaryLaunch g = ew::BinaryGeometry(p, sizeof(T), ew::Aligned16(x.data()) && ew::Aligned16(out.data()));
            path = g.path;
            const auto cfg = KdConfig("broadcast_to", g.grid, g.block);
            if (g.path == ew::BinaryPath::kFlat)
              return ki::Launch(cfg, &ew::BinaryFlatKernel<T, ew::TakeFirst>, x.ptr<T>(), xb.ptr<T>(), out.ptr<T>(), n,
                                ew::TakeFirst{});
            return ki::Launch(cfg, &ew::BinaryBroadcastKernel<T, uint32_t, ew::TakeFirst>, x.ptr<T>(), xb.ptr<T>(),
                              out.ptr<T>(), p, uint32_t(n), ew::TakeFirst{});
          }));
          return std::vector<Tensor>{out.ToTensor()};
        };
        std::vector<int64_t> dims(c.out.dims().begin(), c.out.dims().end());
        EXPECT_TRUE(MatchesCpuReference("broadcast_to", {RandomTensor(c.x, DType::f32, seed++)}, Attrs{{"shape", dims}},
                                        t, run))
            << c.x.ToString() << " -> " << c.out.ToString() << " offset " << off;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// cast: every pair of f32, f16, bf16, i32, i64, on values with NaN, infinities,
// out-of-range and fractional values; exact against the CPU.

template <typename F> Status DispatchKdCast(DType t, F&& fn) {
  if (t == DType::i32) return fn(int32_t{});
  if (t == DType::i64) return fn(int64_t{});
  return DispatchKdFloat(t, fn);
}

TEST(ElementwiseInterp, Cast) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> fv = {0.0,  -0.0, 0.5,    -0.5,  1.5,   -2.7, 3e9,  -3e9, 1e19, -1e19, inf,
                            -inf, std::nan(""), 65504, 70000, 1e-40, 255.0, -129.0, 2147483520.0, 12345.678};
  std::vector<double> iv = {0, 1, -1, 2147483647.0, -2147483648.0, 1e12, -1e12, 16777217, 65505, 4.6e18, -4.6e18,
                            123456789, 3, -7};
  const DType types[] = {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64};
  for (DType from : types) {
    for (DType to : types) {
      for (int64_t off : {0, 1}) {
        for (int64_t reps : {1, 40}) {  // one block, and several with a tail
          std::vector<double> v;
          const std::vector<double>& base = IsFloating(from) ? fv : iv;
          for (int64_t r = 0; r < reps; ++r) v.insert(v.end(), base.begin(), base.end());
          const int64_t n = static_cast<int64_t>(v.size());
          Tensor x;
          if (IsFloating(from)) {
            x = FromDoubles(v, {n}, from);
          } else {
            x = Tensor::Empty({n}, from).value();
            for (int64_t i = 0; i < n; ++i) {
              const double d = from == DType::i32 ? std::max(-2147483648.0, std::min(2147483647.0, v[i])) : v[i];
              if (from == DType::i32) x.data<int32_t>()[i] = static_cast<int32_t>(d);
              else x.data<int64_t>()[i] = static_cast<int64_t>(d);
            }
          }
          CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("cast", {x}, Attrs{{"dtype", to}}));
          DevTensor dx(x, "in", off), dy(x.shape(), to, "out", off);
          const GridStride g = ew::CastGeometry(n);
          Status st = DispatchKdCast(from, [&](auto ftag) -> Status {
            using From = decltype(ftag);
            return DispatchKdCast(to, [&](auto ttag) -> Status {
              using To = decltype(ttag);
              return ki::Launch(KdConfig("cast", g.grid, g.block), &ew::CastKernel<From, To>, dx.ptr<From>(),
                                dy.ptr<To>(), n);
            });
          });
          ASSERT_TRUE(st.ok()) << st;
          const Tensor got = dy.ToTensor();
          ASSERT_EQ(got.nbytes(), want.nbytes());
          // Bit for bit: both sides use dtype.h's conversions and cast_math.h.
          EXPECT_EQ(0, std::memcmp(got.raw(), want.raw(), static_cast<size_t>(want.nbytes())))
              << DTypeName(from) << " -> " << DTypeName(to) << " offset " << off << " n " << n;
        }
      }
    }
  }
  EXPECT_EQ(ew::CastGeometry(0).grid, 1u);
  EXPECT_EQ(ew::CastGeometry(int64_t{1} << 40).grid, 65535u * 16);
}

}  // namespace
}  // namespace cf::testing
