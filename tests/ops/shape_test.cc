// CPU tests of the shape family (reshape, permute, concat, split, slice,
// slice_backward, pad) against references written here with plain index
// loops; every dtype (data movement is exact, so comparisons are exact);
// VJPs by finite differences; shape errors; cost formulas.
#include <algorithm>
#include <cmath>
#include <random>

#include "graph/autodiff.h"
#include "ops/shape/shape.h"
#include "ops/shape/strided_copy.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

const DType kAllTypes[] = {DType::f32, DType::f16, DType::bf16, DType::f64, DType::i32, DType::i64};

Tensor Random(const Shape& s, DType t, uint64_t seed) {
  if (IsFloating(t)) return RandomTensor(s, t, seed, -4, 4);
  return RandomIndices(s, t, seed, 1000);
}

std::vector<int64_t> Unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> c(s.rank());
  for (int k = s.rank() - 1; k >= 0; --k) {
    c[k] = i % s[k];
    i /= s[k];
  }
  return c;
}
int64_t Ravel(const std::vector<int64_t>& c, const Shape& s) {
  int64_t i = 0;
  for (int k = 0; k < s.rank(); ++k) i = i * s[k] + c[k];
  return i;
}

::testing::AssertionResult Same(const Tensor& got, const Shape& shape, const std::vector<double>& want) {
  if (got.shape() != shape) return ::testing::AssertionFailure() << "shape " << got.shape().ToString() << " vs " << shape.ToString();
  return AllClose(ToDoubles(got), want, 0, 0);
}

// ---- the copy engine's canonical form

TEST(CopyLayout, CanonicalMergesContiguousDimsAndDropsOnes) {
  CopyLayout l;
  l.Add(2, 60, 60);
  l.Add(1, 7, 9);
  l.Add(3, 20, 20);
  l.Add(20, 1, 1);
  CopyLayout c = l.Canonical();
  ASSERT_EQ(c.rank, 1);
  EXPECT_EQ(c.sizes[0], 120);
  // A transpose does not merge.
  CopyLayout t;
  t.Add(4, 1, 5);
  t.Add(5, 4, 1);
  EXPECT_EQ(t.Canonical().rank, 2);
}

// ---- reshape

TEST(Reshape, KeepsElementsAndInfersMinusOne) {
  for (DType t : kAllTypes) {
    Tensor x = Random({2, 3, 5}, t, 1);
    CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("reshape", {x}, {{"shape", std::vector<int64_t>{5, -1}}}));
    EXPECT_TRUE(Same(y, {5, 6}, ToDoubles(x))) << DTypeName(t);
  }
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("reshape", {Random({7}, DType::f32, 2)}, {{"shape", std::vector<int64_t>{1, 7, 1}}}));
  EXPECT_EQ(y.shape(), (Shape{1, 7, 1}));
}

TEST(Reshape, IsAViewWithoutCost) {
  const OpDef* d = OpRegistry::Global().Find("reshape");
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(d->view_of_input0);
  Cost c = CostOfOp("reshape", {{{4, 6}, DType::f32}}, {{"shape", std::vector<int64_t>{24}}});
  EXPECT_EQ(c.bytes_read + c.bytes_written + c.total_flops(), 0);
}

TEST(Reshape, Errors) {
  ExpectError(BuildStatus("reshape", {{{4, 6}, DType::f32}}, {{"shape", std::vector<int64_t>{5, -1}}}),
              {"reshape", "[4, 6]", "-1"});
  ExpectError(BuildStatus("reshape", {{{4, 6}, DType::f32}}, {{"shape", std::vector<int64_t>{-1, -1}}}),
              {"more than one -1"});
  ExpectError(BuildStatus("reshape", {{{4, 6}, DType::f32}}, {{"shape", std::vector<int64_t>{5, 5}}}),
              {"reshape", "[4, 6]", "[5, 5]"});
  ExpectError(BuildStatus("reshape", {{{4, 6}, DType::f32}}, {}), {"shape"});
}

TEST(Reshape, Vjp) {
  EXPECT_TRUE(CheckVjp("reshape", {RandomTensor({3, 4}, DType::f64, 3)}, {{"shape", std::vector<int64_t>{2, -1, 3}}}));
}

// ---- permute

std::vector<double> PermuteRef(const std::vector<double>& x, const Shape& in, const std::vector<int64_t>& perm,
                               Shape* out_shape) {
  const int r = in.rank();
  Shape out;
  std::vector<int> p(r);
  for (int k = 0; k < r; ++k) {
    p[k] = static_cast<int>(perm[k] < 0 ? perm[k] + r : perm[k]);
    out.push_back(in[p[k]]);
  }
  std::vector<double> y(x.size());
  for (int64_t i = 0; i < static_cast<int64_t>(y.size()); ++i) {
    std::vector<int64_t> co = Unravel(i, out), ci(r);
    for (int k = 0; k < r; ++k) ci[p[k]] = co[k];
    y[i] = x[Ravel(ci, in)];
  }
  *out_shape = out;
  return y;
}

struct PermCase {
  Shape shape;
  std::vector<int64_t> perm;
};

const PermCase kPermCases[] = {
    {{7}, {0}},
    {{5, 3}, {1, 0}},
    {{3, 33, 65}, {0, 2, 1}},           // last-two transpose, tiled path with partial tiles
    {{2, 5, 7, 3}, {0, 3, 1, 2}},       // NHWC -> NCHW
    {{2, 3, 5, 7}, {0, 2, 3, 1}},       // NCHW -> NHWC
    {{2, 9, 4, 5}, {0, 2, 1, 3}},       // [B, N, H, D] -> [B, H, N, D]: contiguous inner rows
    {{2, 3, 4, 5, 3}, {4, -2, 0, 2, 1}},  // general rank 5 with a negative entry
    {{3, 1, 4, 1, 2}, {1, 3, 4, 2, 0}},   // size-1 dims
    {{4, 6, 5}, {2, 1, 0}},
};

TEST(Permute, MatchesReferenceForAllDtypesAndRanks) {
  uint64_t seed = 10;
  for (const PermCase& c : kPermCases) {
    for (DType t : kAllTypes) {
      Tensor x = Random(c.shape, t, ++seed);
      Shape out;
      std::vector<double> want = PermuteRef(ToDoubles(x), c.shape, c.perm, &out);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("permute", {x}, {{"perm", c.perm}}));
      EXPECT_TRUE(Same(y, out, want)) << c.shape.ToString() << " " << DTypeName(t);
    }
  }
}

TEST(Permute, LargeTransposeUsesAllThreads) {
  // Big enough for several ParallelFor chunks on the tiled path.
  Tensor x = Random({2, 130, 257}, DType::f32, 5);
  Shape out;
  std::vector<double> want = PermuteRef(ToDoubles(x), x.shape(), {0, 2, 1}, &out);
  CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("permute", {x}, {{"perm", std::vector<int64_t>{0, 2, 1}}}));
  EXPECT_TRUE(Same(y, out, want));
}

TEST(Permute, TransposeHelper) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 3, 5}, DType::f32);
  Value y = Transpose(x, -1, 0);
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(y.shape(), (Shape{5, 3, 2}));
  EXPECT_EQ(g.node(0).attrs.Ints("perm"), (std::vector<int64_t>{2, 1, 0}));
  Transpose(x, 0, 3);
  ExpectError(b.status(), {"Transpose", "out of range"});
}

TEST(Permute, Errors) {
  ExpectError(BuildStatus("permute", {{{2, 3}, DType::f32}}, {{"perm", std::vector<int64_t>{0}}}),
              {"permute", "[2, 3]", "perm"});
  ExpectError(BuildStatus("permute", {{{2, 3}, DType::f32}}, {{"perm", std::vector<int64_t>{0, -2}}}),
              {"repeats"});
  ExpectError(BuildStatus("permute", {{{2, 3}, DType::f32}}, {{"perm", std::vector<int64_t>{0, 2}}}),
              {"out of range"});
}

TEST(Permute, VjpIsInversePermute) {
  EXPECT_TRUE(CheckVjp("permute", {RandomTensor({2, 3, 4, 5}, DType::f64, 7)},
                       {{"perm", std::vector<int64_t>{2, 0, 3, 1}}}));
}

TEST(Permute, CostIsBytes) {
  Cost c = CostOfOp("permute", {{{2, 4096, 8, 40}, DType::f16}}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  EXPECT_EQ(c.bytes_read, 2 * 4096 * 8 * 40 * 2);
  EXPECT_EQ(c.bytes_written, 2 * 4096 * 8 * 40 * 2);
  EXPECT_EQ(c.total_flops(), 0);
}

// ---- concat / split

std::vector<double> ConcatRef(const std::vector<Tensor>& xs, int axis, Shape* out_shape) {
  Shape out = xs[0].shape();
  const int a = axis < 0 ? axis + out.rank() : axis;
  out[a] = 0;
  for (const Tensor& x : xs) out[a] += x.shape()[a];
  std::vector<double> y(out.numel());
  for (int64_t i = 0; i < out.numel(); ++i) {
    std::vector<int64_t> c = Unravel(i, out);
    for (const Tensor& x : xs) {
      if (c[a] < x.shape()[a]) {
        y[i] = ToDoubles(x)[Ravel(c, x.shape())];
        break;
      }
      c[a] -= x.shape()[a];
    }
  }
  *out_shape = out;
  return y;
}

TEST(Concat, MatchesReferenceOnEveryAxis) {
  uint64_t seed = 100;
  const std::vector<std::vector<Shape>> cases = {
      {{3}, {5}},
      {{2, 3}, {2, 5}, {2, 1}},
      {{2, 3, 4, 5}, {2, 3, 4, 7}},  // channels (the U-Net skip)
      {{2, 3, 4, 5}, {2, 1, 4, 5}},
      {{1, 2, 3, 2, 3}, {1, 2, 3, 2, 3}, {1, 2, 3, 2, 3}},
  };
  for (const auto& shapes : cases) {
    const int rank = shapes[0].rank();
    for (int axis = -rank; axis < rank; ++axis) {
      bool ok = true;  // only axes where the shapes differ, or all equal shapes
      for (const Shape& s : shapes)
        for (int k = 0; k < rank; ++k)
          if (k != (axis + rank) % rank && s[k] != shapes[0][k]) ok = false;
      if (!ok) continue;
      for (DType t : kAllTypes) {
        std::vector<Tensor> xs;
        for (const Shape& s : shapes) xs.push_back(Random(s, t, ++seed));
        Shape out;
        std::vector<double> want = ConcatRef(xs, axis, &out);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("concat", xs, {{"axis", int64_t{axis}}}));
        EXPECT_TRUE(Same(y, out, want)) << shapes[0].ToString() << " axis " << axis << " " << DTypeName(t);
      }
    }
  }
}

TEST(Concat, Errors) {
  ExpectError(BuildStatus("concat", {{{2, 3}, DType::f32}, {{2, 3}, DType::f16}}, {{"axis", int64_t{0}}}),
              {"concat", "f16"});
  ExpectError(BuildStatus("concat", {{{2, 3}, DType::f32}, {{3, 3}, DType::f32}}, {{"axis", int64_t{1}}}),
              {"concat", "[3, 3]", "dim 0"});
  ExpectError(BuildStatus("concat", {{{2, 3}, DType::f32}, {{2, 3, 1}, DType::f32}}, {{"axis", int64_t{0}}}),
              {"rank"});
  ExpectError(BuildStatus("concat", {{{2, 3}, DType::f32}}, {{"axis", int64_t{2}}}), {"axis 2", "out of range"});
  ExpectError(BuildStatus("concat", {}, {{"axis", int64_t{0}}}), {"concat", "inputs"});
}

TEST(Concat, VjpAllAndSomeInputs) {
  std::vector<Tensor> xs = {RandomTensor({2, 3, 2}, DType::f64, 1), RandomTensor({2, 4, 2}, DType::f64, 2),
                            RandomTensor({2, 1, 2}, DType::f64, 3)};
  EXPECT_TRUE(CheckVjp("concat", xs, {{"axis", int64_t{-2}}}));
  EXPECT_TRUE(CheckVjp("concat", xs, {{"axis", int64_t{1}}}, {1}));  // slices for one input
}

TEST(Concat, Cost) {
  Cost c = CostOfOp("concat", {{{2, 64, 64, 640}, DType::f16}, {{2, 64, 64, 320}, DType::f16}}, {{"axis", int64_t{-1}}});
  EXPECT_EQ(c.bytes_read, 2 * 64 * 64 * 960 * 2);
  EXPECT_EQ(c.bytes_written, 2 * 64 * 64 * 960 * 2);
  EXPECT_EQ(c.total_flops(), 0);
}

TEST(Split, MatchesReference) {
  uint64_t seed = 200;
  struct Case {
    Shape shape;
    std::vector<int64_t> sizes;
    int axis;
  };
  const Case cases[] = {{{7}, {2, 5}, 0},
                        {{3, 8}, {3, 3, 2}, -1},
                        {{2, 5, 3, 4}, {1, 4}, 1},
                        {{2, 3, 4, 5, 6}, {2, 2, 2}, 4},
                        {{4, 3}, {4}, 0}};
  for (const Case& c : cases) {
    for (DType t : kAllTypes) {
      Tensor x = Random(c.shape, t, ++seed);
      std::vector<double> xv = ToDoubles(x);
      CF_ASSERT_OK_AND_ASSIGN(std::vector<Tensor> ys,
                              RunOp("split", {x}, {{"sizes", c.sizes}, {"axis", int64_t{c.axis}}}));
      ASSERT_EQ(ys.size(), c.sizes.size());
      const int a = c.axis < 0 ? c.axis + c.shape.rank() : c.axis;
      int64_t offset = 0;
      for (size_t k = 0; k < ys.size(); ++k) {
        Shape s = c.shape;
        s[a] = c.sizes[k];
        std::vector<double> want(s.numel());
        for (int64_t i = 0; i < s.numel(); ++i) {
          std::vector<int64_t> co = Unravel(i, s);
          co[a] += offset;
          want[i] = xv[Ravel(co, c.shape)];
        }
        EXPECT_TRUE(Same(ys[k], s, want)) << c.shape.ToString() << " piece " << k << " " << DTypeName(t);
        offset += c.sizes[k];
      }
    }
  }
}

TEST(Split, ChunkHelper) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 6, 10}, DType::f32);
  std::vector<Value> parts = Chunk(x, 2, -1);
  ASSERT_TRUE(b.ok()) << b.status().message();
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].shape(), (Shape{2, 6, 5}));
  parts = Chunk(x, 4, 1);
  EXPECT_EQ(parts.size(), 4u);
  ExpectError(b.status(), {"Chunk", "[2, 6, 10]"});
}

TEST(Split, Errors) {
  ExpectError(BuildStatus("split", {{{2, 6}, DType::f32}}, {{"sizes", std::vector<int64_t>{2, 3}}, {"axis", int64_t{1}}}),
              {"split", "[2, 6]", "sum to 5"});
  ExpectError(BuildStatus("split", {{{2, 6}, DType::f32}}, {{"sizes", std::vector<int64_t>{0, 6}}, {"axis", int64_t{1}}}),
              {"below 1"});
  ExpectError(BuildStatus("split", {{{2, 6}, DType::f32}}, {{"sizes", std::vector<int64_t>{2}}, {"axis", int64_t{-3}}}),
              {"out of range"});
}

TEST(Split, Vjp) {
  EXPECT_TRUE(CheckVjp("split", {RandomTensor({3, 7, 2}, DType::f64, 9)},
                       {{"sizes", std::vector<int64_t>{2, 4, 1}}, {"axis", int64_t{1}}}));
}

TEST(Split, VjpWithAnUnusedPieceGivesZeros) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {2, 5}, DType::f64);
  std::vector<Value> parts = Split(x, {2, 3}, 1);
  Value r = b.Input("r", {2, 3}, DType::f64);
  auto grads = Gradients(b, {parts[1]}, {r}, {x});
  ASSERT_TRUE(grads.ok()) << grads.status().message();
  b.MarkOutput((*grads)[0], "gx");
  ASSERT_TRUE(b.ok()) << b.status().message();
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  Tensor rv = RandomTensor({2, 3}, DType::f64, 4);
  CF_ASSERT_OK_AND_ASSIGN(auto outs, exec->Run({{"x", RandomTensor({2, 5}, DType::f64, 5)}, {"r", rv}}));
  std::vector<double> rd = ToDoubles(rv), want(10, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) want[i * 5 + 2 + j] = rd[i * 3 + j];
  EXPECT_TRUE(AllClose(ToDoubles(outs[0]), want, 0, 0));
}

// ---- slice / slice_backward

// Python's slice(start, end, step).indices(dim), written out.
std::vector<int64_t> PySliceIndices(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start = std::max<int64_t>(0, start + dim);
  if (end < 0) end = std::max<int64_t>(0, end + dim);
  start = std::min(start, dim);
  end = std::min(end, dim);
  std::vector<int64_t> idx;
  for (int64_t i = start; i < end; i += step) idx.push_back(i);
  return idx;
}

struct SliceCase {
  Shape shape;
  int axis;
  int64_t start, end, step;
};
const SliceCase kSliceCases[] = {
    {{9}, 0, 2, 7, 1},
    {{9}, 0, -4, kSliceToEnd, 1},
    {{9}, 0, 1, 100, 3},          // end clamped
    {{4, 7}, -1, -100, -2, 2},    // start clamped, negative end
    {{3, 5, 4}, 1, 1, 4, 1},
    {{2, 3, 7, 2}, 2, 0, 7, 3},
    {{2, 3, 4, 5, 6}, -5, 1, 2, 1},
    {{2, 3, 4, 5, 6}, 4, 5, 6, 1},
};

TEST(Slice, MatchesPythonSemantics) {
  uint64_t seed = 300;
  for (const SliceCase& c : kSliceCases) {
    const int a = c.axis < 0 ? c.axis + c.shape.rank() : c.axis;
    std::vector<int64_t> idx = PySliceIndices(c.shape[a], c.start, c.end, c.step);
    Shape out = c.shape;
    out[a] = static_cast<int64_t>(idx.size());
    for (DType t : kAllTypes) {
      Tensor x = Random(c.shape, t, ++seed);
      std::vector<double> xv = ToDoubles(x), want(out.numel());
      for (int64_t i = 0; i < out.numel(); ++i) {
        std::vector<int64_t> co = Unravel(i, out);
        co[a] = idx[co[a]];
        want[i] = xv[Ravel(co, c.shape)];
      }
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("slice", {x}, {{"axis", int64_t{c.axis}}, {"start", c.start},
                                                              {"end", c.end}, {"step", c.step}}));
      EXPECT_TRUE(Same(y, out, want)) << c.shape.ToString() << " axis " << c.axis << " " << DTypeName(t);
    }
  }
}

TEST(Slice, Errors) {
  auto attrs = [](int64_t axis, int64_t start, int64_t end, int64_t step) {
    return Attrs{{"axis", axis}, {"start", start}, {"end", end}, {"step", step}};
  };
  ExpectError(BuildStatus("slice", {{{4, 7}, DType::f32}}, attrs(1, 5, 5, 1)), {"slice", "[4, 7]", "empty"});
  ExpectError(BuildStatus("slice", {{{4, 7}, DType::f32}}, attrs(1, 9, 12, 1)), {"empty"});
  ExpectError(BuildStatus("slice", {{{4, 7}, DType::f32}}, attrs(1, 0, 3, 0)), {"step 0"});
  ExpectError(BuildStatus("slice", {{{4, 7}, DType::f32}}, attrs(2, 0, 3, 1)), {"axis 2", "out of range"});
}

TEST(Slice, Vjp) {
  Tensor x = RandomTensor({3, 8, 2}, DType::f64, 11);
  EXPECT_TRUE(CheckVjp("slice", {x}, {{"axis", int64_t{1}}, {"start", int64_t{2}}, {"end", int64_t{6}}, {"step", int64_t{1}}}));
  EXPECT_TRUE(CheckVjp("slice", {x}, {{"axis", int64_t{-2}}, {"start", int64_t{-7}}, {"end", kSliceToEnd}, {"step", int64_t{3}}}));
}

TEST(SliceBackward, ScattersIntoZeros) {
  for (DType t : {DType::f32, DType::bf16, DType::i64}) {
    Tensor g = Random({2, 3, 2}, t, 12);
    CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("slice_backward", {g}, {{"axis", int64_t{1}}, {"start", int64_t{1}},
                                                                     {"step", int64_t{2}}, {"dim", int64_t{7}}}));
    std::vector<double> gv = ToDoubles(g), want(2 * 7 * 2, 0.0);
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 3; ++k)
        for (int j = 0; j < 2; ++j) want[(i * 7 + 1 + 2 * k) * 2 + j] = gv[(i * 3 + k) * 2 + j];
    EXPECT_TRUE(Same(y, {2, 7, 2}, want)) << DTypeName(t);
  }
  ExpectError(BuildStatus("slice_backward", {{{2, 3}, DType::f32}},
                          {{"axis", int64_t{1}}, {"start", int64_t{2}}, {"step", int64_t{2}}, {"dim", int64_t{6}}}),
              {"slice_backward", "dim 6"});
}

TEST(Slice, Cost) {
  Cost c = CostOfOp("slice", {{{4, 10}, DType::f32}},
                    {{"axis", int64_t{1}}, {"start", int64_t{0}}, {"end", int64_t{10}}, {"step", int64_t{3}}});
  EXPECT_EQ(c.bytes_read, 4 * 4 * 4);  // only the 4 selected columns
  EXPECT_EQ(c.bytes_written, 4 * 4 * 4);
  Cost cb = CostOfOp("slice_backward", {{{4, 4}, DType::f32}},
                     {{"axis", int64_t{1}}, {"start", int64_t{0}}, {"step", int64_t{3}}, {"dim", int64_t{10}}});
  EXPECT_EQ(cb.bytes_read, 4 * 4 * 4);
  EXPECT_EQ(cb.bytes_written, 4 * 10 * 4);
}

// ---- pad

std::vector<double> PadRef(const std::vector<double>& x, const Shape& in, const std::vector<int64_t>& pads,
                           double value, Shape* out_shape) {
  Shape out = in;
  for (int k = 0; k < in.rank(); ++k) out[k] += pads[2 * k] + pads[2 * k + 1];
  std::vector<double> y(out.numel());
  for (int64_t i = 0; i < out.numel(); ++i) {
    std::vector<int64_t> c = Unravel(i, out);
    bool inside = true;
    for (int k = 0; k < in.rank(); ++k) {
      c[k] -= pads[2 * k];
      inside = inside && c[k] >= 0 && c[k] < in[k];
    }
    y[i] = inside ? x[Ravel(c, in)] : value;
  }
  *out_shape = out;
  return y;
}

struct PadCase {
  Shape shape;
  std::vector<int64_t> pads;
  double value;
};
const PadCase kPadCases[] = {
    {{5}, {2, 3}, 0.0},
    {{2, 5, 7, 3}, {0, 0, 1, 1, 1, 1, 0, 0}, 0.0},    // NHWC zero padding for a 3x3 conv
    {{2, 4, 4, 6}, {0, 0, 0, 1, 0, 1, 0, 0}, 0.0},    // asymmetric (stride-2 downsample)
    {{3, 4}, {1, 0, 0, 2}, 2.5},                      // constant value, last dim padded
    {{3, 6}, {-1, 1, 2, -3}, -1.0},                   // crops and pads mixed
    {{2, 3, 4, 5, 2}, {1, 0, 0, 0, 0, 1, 2, 0, 0, 0}, 0.0},
    {{4}, {-6, 3}, 7.0},                              // cropped past the data: all fill
};

TEST(Pad, MatchesReference) {
  uint64_t seed = 400;
  for (const PadCase& c : kPadCases) {
    for (DType t : kAllTypes) {
      Tensor x = Random(c.shape, t, ++seed);
      Shape out;
      // Integer tensors get the value truncated (a C++ cast).
      const double value = IsFloating(t) ? c.value : std::trunc(c.value);
      std::vector<double> want = PadRef(ToDoubles(x), c.shape, c.pads, value, &out);
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("pad", {x}, {{"pads", c.pads}, {"value", c.value}}));
      EXPECT_TRUE(Same(y, out, want)) << c.shape.ToString() << " " << DTypeName(t);
    }
  }
}

TEST(Pad, Errors) {
  ExpectError(BuildStatus("pad", {{{2, 3}, DType::f32}}, {{"pads", std::vector<int64_t>{1, 1}}}),
              {"pad", "[2, 3]", "2 * rank = 4"});
  ExpectError(BuildStatus("pad", {{{2, 3}, DType::f32}}, {{"pads", std::vector<int64_t>{0, 0, -2, -1}}}),
              {"dim 1", "length 0"});
}

TEST(Pad, VjpIsACrop) {
  EXPECT_TRUE(CheckVjp("pad", {RandomTensor({2, 3, 4}, DType::f64, 13)},
                       {{"pads", std::vector<int64_t>{0, 1, 2, 1, 1, 0}}, {"value", 3.0}}));
  EXPECT_TRUE(CheckVjp("pad", {RandomTensor({3, 6}, DType::f64, 14)},
                       {{"pads", std::vector<int64_t>{-1, 1, 2, -3}}}));
}

TEST(Pad, Cost) {
  Cost c = CostOfOp("pad", {{{2, 64, 64, 320}, DType::f16}}, {{"pads", std::vector<int64_t>{0, 0, 1, 1, 1, 1, 0, 0}}});
  EXPECT_EQ(c.bytes_read, 2 * 64 * 64 * 320 * 2);
  EXPECT_EQ(c.bytes_written, 2 * 66 * 66 * 320 * 2);
  EXPECT_EQ(c.total_flops(), 0);
  Cost crop = CostOfOp("pad", {{{3, 6}, DType::f32}}, {{"pads", std::vector<int64_t>{-1, 1, 2, -3}}});
  EXPECT_EQ(crop.bytes_read, 2 * 3 * 4);  // rows 1..2, columns 0..2 of x
  EXPECT_EQ(crop.bytes_written, 3 * 5 * 4);
}

TEST(Pad, HelperAttrs) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", {1, 4, 4, 3}, DType::f32);
  Value y = Pad(x, {0, 0, 1, 1, 1, 1, 0, 0});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(y.shape(), (Shape{1, 6, 6, 3}));
  Value s = Slice(y, 1, 1, -1);
  EXPECT_EQ(s.shape(), (Shape{1, 4, 6, 3}));
}

}  // namespace
}  // namespace cf::testing
