// CPU tests of the elementwise family against float64 references written
// here with plain loops: add/sub/mul/div with broadcasting, scale and the
// unary ops, cast, sum_to and broadcast_to; VJPs by finite differences;
// shape errors and cost formulas.
#include <algorithm>
#include <cmath>
#include <functional>

#include "graph/autodiff.h"
#include "ops/elementwise/elementwise.h"
#include "runtime/thread_pool.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// Tolerance of a CPU kernel with `dtype` storage against a float64 reference
// of the same (rounded) inputs: one rounding of the output plus f32 arithmetic.
constexpr DTypeTol Tol{1e-12, 2e-6, 2e-3, 1e-2};

// Index of output element `i` of shape `out` in an operand of shape `in`
// (numpy broadcasting, right-aligned): the plain reference.
int64_t SourceIndex(const Shape& out, const Shape& in, int64_t i) {
  int64_t idx = 0, stride = 1;
  for (int d = out.rank() - 1; d >= 0; --d) {
    const int64_t coord = i % out[d];
    i /= out[d];
    const int din = d - (out.rank() - in.rank());
    if (din < 0) continue;
    if (in[din] != 1) idx += coord * stride;
    stride *= in[din];
  }
  return idx;
}

Shape BroadcastRef(const Shape& a, const Shape& b) {
  const int r = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < r; ++i) {
    int64_t da = i - (r - a.rank()) >= 0 ? a[i - (r - a.rank())] : 1;
    int64_t db = i - (r - b.rank()) >= 0 ? b[i - (r - b.rank())] : 1;
    out.push_back(da == 1 ? db : da);
  }
  return out;
}

struct BinaryCase {
  Shape a, b;
};
const std::vector<BinaryCase> kBinaryCases = {
    {{7}, {7}},                      // same shape
    {{3, 5, 17}, {3, 5, 17}},        // same shape, rank 3
    {{4, 6, 9}, {9}},                // per-channel vector over the last dim
    {{9}, {4, 6, 9}},                // the same, vector first
    {{2, 3, 5, 7}, {}},              // scalar (rank 0)
    {{1}, {5, 3}},                   // one-element tensor first
    {{2, 5, 1}, {2, 1, 7}},          // both broadcast
    {{3, 1, 4, 1, 5}, {2, 1, 2, 1}},  // mixed
    {{2, 3, 4, 5}, {2, 1, 1, 5}},    // [N,1,1,C] (time embedding add)
    {{6, 11}, {6, 1}},               // per-row
    {{2, 1, 2, 1, 2, 1, 2, 3}, {2, 1, 2, 1, 2, 1, 3}},  // rank 8
    {{0, 3}, {3}},                   // empty
};

void CheckBinary(const char* op, const std::function<double(double, double)>& f, bool positive_b) {
  uint64_t seed = 1;
  for (const BinaryCase& c : kBinaryCases) {
    for (DType t : kFloatDTypes) {
      Tensor a = RandomTensor(c.a, t, seed++);
      Tensor b = positive_b ? RandomTensor(c.b, t, seed++, 0.5, 2.0) : RandomTensor(c.b, t, seed++);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1(op, {a, b}));
      const Shape out = BroadcastRef(c.a, c.b);
      ASSERT_EQ(y.shape().ToString(), out.ToString()) << op;
      ASSERT_EQ(y.dtype(), t);
      std::vector<double> va = ToDoubles(a), vb = ToDoubles(b), want(out.numel());
      for (int64_t i = 0; i < out.numel(); ++i)
        want[i] = f(va[SourceIndex(out, c.a, i)], vb[SourceIndex(out, c.b, i)]);
      EXPECT_TRUE(AllClose(ToDoubles(y), want, Tol(t), Tol(t)))
          << op << " " << c.a.ToString() << " x " << c.b.ToString() << " " << DTypeName(t);
    }
  }
}

TEST(ElementwiseTest, Add) { CheckBinary("add", [](double x, double y) { return x + y; }, false); }
TEST(ElementwiseTest, Sub) { CheckBinary("sub", [](double x, double y) { return x - y; }, false); }
TEST(ElementwiseTest, Mul) { CheckBinary("mul", [](double x, double y) { return x * y; }, false); }
TEST(ElementwiseTest, Div) { CheckBinary("div", [](double x, double y) { return x / y; }, true); }

TEST(ElementwiseTest, LargeBroadcastUsesAllThreads) {
  // Big enough to be split across threads, with rows that straddle chunks.
  const Shape sa{3, 257, 129}, sb{257, 1};
  if (NumThreads() < 2) GTEST_SKIP() << "the pool has one thread (CF_NUM_THREADS or the machine)";
  Tensor a = RandomTensor(sa, DType::f32, 11), b = RandomTensor(sb, DType::f32, 12);
  StatusOr<Tensor> run = absl::InternalError("not run");
  const int threads = ThreadsUsedBy([&] { run = RunOp1("mul", {a, b}); });
  EXPECT_GT(threads, 1) << "the kernel ran on one thread of " << NumThreads();
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, std::move(run));
  std::vector<double> va = ToDoubles(a), vb = ToDoubles(b), want(sa.numel());
  for (int64_t i = 0; i < sa.numel(); ++i) want[i] = va[i] * vb[SourceIndex(sa, sb, i)];
  EXPECT_TRUE(AllClose(ToDoubles(y), want, 1e-6, 1e-7));
}

TEST(ElementwiseTest, BinaryVjp) {
  uint64_t seed = 100;
  for (const char* op : {"add", "sub", "mul", "div"}) {
    for (const BinaryCase& c : std::vector<BinaryCase>{{{3, 4}, {3, 4}}, {{2, 3, 5}, {5}}, {{2, 1, 3}, {4, 1}},
                                                       {{}, {3, 2}}}) {
      Tensor a = RandomTensor(c.a, DType::f64, seed++);
      Tensor b = RandomTensor(c.b, DType::f64, seed++, 0.5, 2.0);
      // Same-shape add passes dy through to both inputs as the same value,
      // which CheckVjp cannot mark as two outputs; checked structurally below.
      if (std::string(op) == "add" && c.a == c.b) continue;
      EXPECT_TRUE(CheckVjp(op, {a, b})) << op << " " << c.a.ToString() << " x " << c.b.ToString();
    }
  }
}

TEST(ElementwiseTest, SameShapeAddPassesGradientThrough) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {3, 4}, DType::f32), y = b.Input("y", {3, 4}, DType::f32);
  Value dz = b.Input("dz", {3, 4}, DType::f32);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Gradients(b, {x + y}, {dz}, {x, y}));
  EXPECT_EQ(grads[0].id, dz.id);
  EXPECT_EQ(grads[1].id, dz.id);
}

TEST(ElementwiseTest, BinaryErrors) {
  ExpectError(BuildStatus("add", {{{2, 3}, DType::f32}, {{4}, DType::f32}}), {"add", "[2, 3]", "[4]"});
  ExpectError(BuildStatus("mul", {{{2, 3}, DType::f32}, {{2, 3}, DType::f16}}), {"dtype"});
  EXPECT_FALSE(BuildStatus("sub", {{{2}, DType::i32}, {{2}, DType::i32}}).ok());
  EXPECT_FALSE(BuildStatus("div", {{{2}, DType::f32}}).ok());
}

// ---- unary

struct UnaryCase {
  const char* op;
  Attrs attrs;
  std::function<double(double)> f;
  double lo, hi;
};
std::vector<UnaryCase> UnaryCases() {
  return {
      {"scale", Attrs{{"mul", 1.5}, {"add", -0.25}}, [](double x) { return x * 1.5 - 0.25; }, -2, 2},
      {"exp", {}, [](double x) { return std::exp(x); }, -3, 3},
      {"sqrt", {}, [](double x) { return std::sqrt(x); }, 0.1, 4},
      {"rsqrt", {}, [](double x) { return 1 / std::sqrt(x); }, 0.1, 4},
      {"neg", {}, [](double x) { return -x; }, -2, 2},
      {"square", {}, [](double x) { return x * x; }, -2, 2},
  };
}

TEST(ElementwiseTest, Unary) {
  uint64_t seed = 200;
  for (const UnaryCase& u : UnaryCases()) {
    for (const Shape& s : std::vector<Shape>{{}, {13}, {3, 7, 11}, {2, 50000}}) {
      for (DType t : kFloatDTypes) {
        Tensor x = RandomTensor(s, t, seed++, u.lo, u.hi);
        EXPECT_TRUE(MatchesElementwiseRef(u.op, x, u.attrs, u.f, Tol(t)))
            << u.op << " " << s.ToString() << " " << DTypeName(t);
      }
    }
  }
}

// Edge values of exp, sqrt, rsqrt and div: zeros, subnormals, tiny and huge
// magnitudes, overflow to inf, infinities and NaN, against float64 on the
// same rounded inputs with the result rounded to the storage dtype. The
// absolute floor is one subnormal spacing of the storage (or of f32, the
// arithmetic of the other dtypes).
double EdgeAtol(DType t) {
  return std::max(ScaledAtol({0.0}, 0, t), t == DType::f64 ? 0.0 : 2 * std::ldexp(1.0, -149));
}
std::vector<double> RoundedTo(std::vector<double> v, DType t) {
  return ToDoubles(testing::FromDoubles(v, {static_cast<int64_t>(v.size())}, t));
}

TEST(ElementwiseTest, UnaryEdgeValues) {
  const double inf = INFINITY, nan = NAN;
  struct Edge {
    const char* op;
    std::function<double(double)> f;
    std::vector<double> specials;
    double lo_exp, hi_exp;
    bool positive;
  };
  const std::vector<double> roots = {-inf, -1, -1e-30, -0.0, 0, 1e-45, 1e-40, 6e-8, 1e-30, 2, 1e30, 3e38, 1e300, inf,
                                     nan};
  const std::vector<Edge> edges = {
      {"exp", [](double x) { return std::exp(x); },
       {-inf, -1e4, -746, -104, -103, -100, -88, -20, -1e-30, 0, 1e-30, 11, 12, 88, 89, 709, 710, inf, nan}, -6, 3,
       false},
      {"sqrt", [](double x) { return std::sqrt(x); }, roots, -40, 38, true},
      {"rsqrt", [](double x) { return 1 / std::sqrt(x); }, roots, -40, 38, true},
  };
  uint64_t seed = 250;
  for (const Edge& e : edges) {
    for (DType t : kFloatDTypes) {
      for (bool specials : {true, false}) {
        Tensor x = specials ? testing::FromDoubles(e.specials, {static_cast<int64_t>(e.specials.size())}, t)
                            : LogUniformTensor({5000}, t, seed++, e.lo_exp, e.hi_exp, e.positive);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1(e.op, {x}));
        std::vector<double> want = ToDoubles(x);
        for (double& v : want) v = e.f(v);
        EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(y), RoundedTo(want, t), Tol(t), EdgeAtol(t)))
            << e.op << " " << DTypeName(t) << (specials ? " specials" : " log-uniform");
      }
    }
  }
}

TEST(ElementwiseTest, DivEdgeValues) {
  const double inf = INFINITY, nan = NAN;
  const std::vector<double> a = {1, -1, 0, 0, 1, 1e30, 1e-30, inf, inf, 1e-40, 3, nan, -5, 65504, 1e38, 1e-38};
  const std::vector<double> b = {0, 0, 0, -0.0, inf, 1e-30, 1e30, inf, 2, 3, 7, 1, 1e-40, 1e-4, 0.1, 1e10};
  uint64_t seed = 260;
  for (DType t : kFloatDTypes) {
    for (bool specials : {true, false}) {
      const Shape s{specials ? static_cast<int64_t>(a.size()) : 5000};
      Tensor x = specials ? testing::FromDoubles(a, s, t) : LogUniformTensor(s, t, seed++, -20, 20);
      Tensor y = specials ? testing::FromDoubles(b, s, t) : LogUniformTensor(s, t, seed++, -20, 20);
      CF_ASSERT_OK_AND_ASSIGN(Tensor q, RunOp1("div", {x, y}));
      std::vector<double> xv = ToDoubles(x), yv = ToDoubles(y), want(xv.size());
      for (size_t i = 0; i < xv.size(); ++i) want[i] = xv[i] / yv[i];
      EXPECT_TRUE(AllCloseWithSpecials(ToDoubles(q), RoundedTo(want, t), Tol(t), EdgeAtol(t)))
          << DTypeName(t) << (specials ? " specials" : " log-uniform");
    }
  }
}

TEST(ElementwiseTest, UnaryVjp) {
  uint64_t seed = 300;
  for (const UnaryCase& u : UnaryCases()) {
    Tensor x = RandomTensor({3, 5}, DType::f64, seed++, u.lo, u.hi);
    EXPECT_TRUE(CheckVjp(u.op, {x}, u.attrs)) << u.op;
  }
}

TEST(ElementwiseTest, OperatorsBuildOps) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 3}, DType::f32), y = b.Input("y", {3}, DType::f32);
  Value z = (x + y) * x - y / x;
  Value w = 2.0 * (1.0 - z) + 3.0;
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(w.shape(), (Shape{2, 3}));
  // add, mul, div, sub, and a scale each for 1 - z, 2 * and + 3.
  EXPECT_EQ(g.num_nodes(), 7);
  std::map<std::string, int> count;
  for (const Node& n : g.nodes()) ++count[n.op->name];
  EXPECT_EQ(count["add"], 1);
  EXPECT_EQ(count["mul"], 1);
  EXPECT_EQ(count["div"], 1);
  EXPECT_EQ(count["sub"], 1);
  EXPECT_EQ(count["scale"], 3);
  // After an error, values are invalid and building more is harmless.
  Value bad = x + b.Input("q", {4}, DType::f32);
  EXPECT_FALSE(bad.valid());
  EXPECT_FALSE((bad * 2.0 + bad).valid());
  EXPECT_FALSE(b.ok());
}

// ---- sum_to and broadcast_to

// Plain reference: out[j] = sum of x[i] over all i that broadcast from j.
std::vector<double> SumToRef(const std::vector<double>& x, const Shape& xs, const Shape& target) {
  std::vector<double> out(target.numel(), 0.0);
  for (int64_t i = 0; i < xs.numel(); ++i) out[SourceIndex(xs, target, i)] += x[i];
  return out;
}

struct SumToCase {
  Shape x, target;
};
const std::vector<SumToCase> kSumToCases = {
    {{5, 7}, {7}},                 // columns ([A=1, R, B])
    {{5, 7}, {5, 1}},              // rows
    {{3, 4, 5}, {3, 1, 5}},        // [A, R, B]
    {{2, 9, 10, 13}, {13}},        // bias gradient
    {{3, 4, 5, 6}, {4, 1, 6}},     // general: reduce dims 0 and 2
    {{3, 4}, {}},                  // to a scalar
    {{3, 4}, {1, 1}},
    {{4, 1, 3}, {1, 1, 3}},
    {{2, 3}, {2, 3}},              // identity
    {{2, 70000}, {1}},             // long rows, split across threads
    {{2, 3000, 5}, {5}},           // long columns, split across threads
};

TEST(ElementwiseTest, SumTo) {
  uint64_t seed = 400;
  for (const SumToCase& c : kSumToCases) {
    for (DType t : kFloatDTypes) {
      Tensor x = RandomTensor(c.x, t, seed++);
      std::vector<int64_t> dims(c.target.dims().begin(), c.target.dims().end());
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("sum_to", {x}, Attrs{{"shape", dims}}));
      ASSERT_EQ(y.shape(), c.target);
      std::vector<double> want = SumToRef(ToDoubles(x), c.x, c.target);
      // f32 accumulation over up to 1e5 terms; the output rounded to the dtype.
      const double tol = t == DType::f64 ? 1e-12 : t == DType::f32 ? 2e-5 : Tol(t) * 2;
      EXPECT_TRUE(AllClose(ToDoubles(y), want, tol, tol * 10))
          << c.x.ToString() << " -> " << c.target.ToString() << " " << DTypeName(t);
    }
  }
}

TEST(ElementwiseTest, SumToVjpAndBroadcastTo) {
  uint64_t seed = 500;
  for (const SumToCase& c : std::vector<SumToCase>{{{3, 4}, {4}}, {{3, 4, 5}, {3, 1, 5}}, {{2, 3}, {}}}) {
    std::vector<int64_t> dims(c.target.dims().begin(), c.target.dims().end());
    EXPECT_TRUE(CheckVjp("sum_to", {RandomTensor(c.x, DType::f64, seed++)}, Attrs{{"shape", dims}}));
    // broadcast_to is its transpose.
    std::vector<int64_t> xdims(c.x.dims().begin(), c.x.dims().end());
    Tensor small = RandomTensor(c.target, DType::f64, seed++);
    EXPECT_TRUE(CheckVjp("broadcast_to", {small}, Attrs{{"shape", xdims}}));
    CF_ASSERT_OK_AND_ASSIGN(Tensor big, RunOp1("broadcast_to", {small}, Attrs{{"shape", xdims}}));
    std::vector<double> vs = ToDoubles(small), want(c.x.numel());
    for (int64_t i = 0; i < c.x.numel(); ++i) want[i] = vs[SourceIndex(c.x, c.target, i)];
    EXPECT_TRUE(AllClose(ToDoubles(big), want, 0, 0));
  }
}

TEST(ElementwiseTest, BroadcastToWithAxes) {
  // x: [3, 5] broadcast into [3, 4, 5, 2] along axes 1 and 3.
  Tensor x = RandomTensor({3, 5}, DType::f32, 600);
  Attrs attrs{{"shape", std::vector<int64_t>{3, 4, 5, 2}}, {"axes", std::vector<int64_t>{1, -1}}};
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("broadcast_to", {x}, attrs));
  ASSERT_EQ(y.shape(), (Shape{3, 4, 5, 2}));
  std::vector<double> vx = ToDoubles(x), want;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 5; ++k)
        for (int l = 0; l < 2; ++l) want.push_back(vx[i * 5 + k]);
  EXPECT_TRUE(AllClose(ToDoubles(y), want, 0, 0));
  EXPECT_TRUE(CheckVjp("broadcast_to", {CastTo(x, DType::f64)}, attrs));
  EXPECT_FALSE(BuildStatus("broadcast_to", {{{3, 6}, DType::f32}}, attrs).ok());
}

TEST(ElementwiseTest, SumToErrors) {
  ExpectError(BuildStatus("sum_to", {{{3, 4}, DType::f32}}, Attrs{{"shape", std::vector<int64_t>{3}}}),
              {"sum_to", "[3, 4]"});
  EXPECT_FALSE(BuildStatus("sum_to", {{{3, 4}, DType::f32}}).ok());  // no shape
  EXPECT_FALSE(BuildStatus("sum_to", {{{4}, DType::f32}}, Attrs{{"shape", std::vector<int64_t>{2, 4}}}).ok());
}

TEST(ElementwiseTest, SumToAndBroadcastToAreIdentityOnSameShape) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 3}, DType::f32);
  EXPECT_EQ(SumTo(x, {2, 3}).id, x.id);
  EXPECT_EQ(BroadcastTo(x, {2, 3}).id, x.id);
  EXPECT_EQ(Cast(x, DType::f32).id, x.id);
  EXPECT_EQ(g.num_nodes(), 0);
}


// ---- cast

TEST(ElementwiseTest, CastBetweenAllTypes) {
  const DType all[] = {DType::f64, DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64};
  uint64_t seed = 700;
  for (DType from : all) {
    for (DType to : all) {
      // Floats with fractions of both signs (truncation toward zero), integers
      // exactly representable in every float type.
      Tensor x = IsFloating(from) ? RandomTensor({3, 1001}, from, seed++, -300, 300)
                                  : testing::RandomIndices({3, 1001}, from, seed++, 2048);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("cast", {x}, Attrs{{"dtype", to}}));
      ASSERT_EQ(y.dtype(), to);
      ASSERT_EQ(y.shape(), x.shape());
      std::vector<double> want = ToDoubles(x);
      for (double& v : want) {
        if (!IsFloating(to)) v = std::trunc(v);
        v = ToDoubles(testing::FromDoubles({v}, {1}, to))[0];  // rounded to `to`
      }
      EXPECT_TRUE(AllClose(ToDoubles(y), want, 0, 0)) << DTypeName(from) << " -> " << DTypeName(to);
    }
  }
}

TEST(ElementwiseTest, CastSaturatesAndMapsNanToZero) {
  Tensor x = testing::FromDoubles({1e10, -1e10, NAN, -2.7, 2.7, 3e9}, {6}, DType::f32);
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("cast", {x}, Attrs{{"dtype", DType::i32}}));
  EXPECT_EQ(ToDoubles(y), (std::vector<double>{2147483647.0, -2147483648.0, 0, -2, 2, 2147483647.0}));
  CF_ASSERT_OK_AND_ASSIGN(y, RunOp1("cast", {x}, Attrs{{"dtype", DType::i64}}));
  EXPECT_EQ(ToDoubles(y), (std::vector<double>{1e10, -1e10, 0, -2, 2, 3e9}));
  Tensor big = testing::FromDoubles({5e9, -5e9, 7}, {3}, DType::i64);
  CF_ASSERT_OK_AND_ASSIGN(y, RunOp1("cast", {big}, Attrs{{"dtype", DType::i32}}));
  EXPECT_EQ(ToDoubles(y), (std::vector<double>{2147483647.0, -2147483648.0, 7}));
}

TEST(ElementwiseTest, CastGradients) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 3}, DType::f32), i = b.Input("i", {2, 3}, DType::i32);
  Value h = Cast(x, DType::f16);
  Value dh = b.Input("dh", {2, 3}, DType::f16);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Gradients(b, {h}, {dh}, {x}));
  ASSERT_TRUE(grads[0].valid());
  EXPECT_EQ(grads[0].dtype(), DType::f32);
  EXPECT_EQ(g.node(g.num_nodes() - 1).op->name, "cast");
  // Through an integer cast nothing flows.
  Value fi = Cast(Cast(x, DType::i32), DType::f32);
  Value dfi = b.Input("dfi", {2, 3}, DType::f32);
  CF_ASSERT_OK_AND_ASSIGN(grads, Gradients(b, {fi}, {dfi}, {x}));
  EXPECT_FALSE(grads[0].valid());
  EXPECT_TRUE(Cast(i, DType::bf16).valid());
  EXPECT_FALSE(BuildStatus("cast", {{{2}, DType::u8}}, Attrs{{"dtype", DType::f32}}).ok());
  ExpectError(BuildStatus("cast", {{{2}, DType::f32}}), {"dtype"});
}

// ---- cost

TEST(ElementwiseTest, Cost) {
  // add f16 [2, 64, 64, 320] + [320]: one add per output element.
  Cost c = CostOfOp("add", {{{2, 64, 64, 320}, DType::f16}, {{320}, DType::f16}});
  EXPECT_EQ(c.elementwise_flops, 2 * 64 * 64 * 320);
  EXPECT_EQ(c.transcendentals, 0);
  EXPECT_EQ(c.mac_flops + c.bias_flops, 0);
  EXPECT_EQ(c.bytes_read, (2 * 64 * 64 * 320 + 320) * 2);
  EXPECT_EQ(c.bytes_written, 2 * 64 * 64 * 320 * 2);
  c = CostOfOp("div", {{{3, 1}, DType::f32}, {{1, 5}, DType::f32}});
  EXPECT_EQ(c.elementwise_flops, 15);
  EXPECT_EQ(c.bytes_read, 32);
  EXPECT_EQ(c.bytes_written, 60);
  // scale: a multiply and an add per element; only what is not a no-op.
  EXPECT_EQ(CostOfOp("scale", {{{10}, DType::f32}}, Attrs{{"mul", 2.0}, {"add", 1.0}}).elementwise_flops, 20);
  EXPECT_EQ(CostOfOp("scale", {{{10}, DType::f32}}, Attrs{{"mul", 2.0}}).elementwise_flops, 10);
  c = CostOfOp("exp", {{{7, 3}, DType::bf16}});
  EXPECT_EQ(c.transcendentals, 21);
  EXPECT_EQ(c.elementwise_flops, 0);
  c = CostOfOp("rsqrt", {{{7, 3}, DType::f32}});
  EXPECT_EQ(c.transcendentals, 21);
  EXPECT_EQ(c.elementwise_flops, 21);
  EXPECT_EQ(CostOfOp("neg", {{{7, 3}, DType::f32}}).total_flops(), 0);
  EXPECT_EQ(CostOfOp("square", {{{7, 3}, DType::f32}}).elementwise_flops, 21);
  // sum_to [2, 9, 10, 13] -> [13]: 13 sums of 180 terms, 179 additions each.
  c = CostOfOp("sum_to", {{{2, 9, 10, 13}, DType::f32}}, Attrs{{"shape", std::vector<int64_t>{13}}});
  EXPECT_EQ(c.elementwise_flops, 13 * 179);
  EXPECT_EQ(c.bytes_read, 2 * 9 * 10 * 13 * 4);
  EXPECT_EQ(c.bytes_written, 13 * 4);
  c = CostOfOp("cast", {{{4, 13}, DType::f32}}, Attrs{{"dtype", DType::bf16}});
  EXPECT_EQ(c.total_flops(), 0);
  EXPECT_EQ(c.bytes_read, 4 * 13 * 4);
  EXPECT_EQ(c.bytes_written, 4 * 13 * 2);
  c = CostOfOp("broadcast_to", {{{13}, DType::f32}}, Attrs{{"shape", std::vector<int64_t>{4, 13}}});
  EXPECT_EQ(c.total_flops(), 0);
  EXPECT_EQ(c.bytes_written, 4 * 13 * 4);
}

}  // namespace
}  // namespace cf::testing
