// convblock_pyramid (ops/convblock/convblock.h) against its composition from
// the op library (ConvBlockPyramidComposed, itself checked against a float64
// reference of the definition in tests/nn/convblock_test.cc): outputs in
// every dtype, the cost (the composition's FLOPs, the fused node's bytes),
// gradients against the composition's and against central differences, and
// bad calls.
#include "ops/convblock/convblock.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Case {
  int64_t B, H, W, C, K;
  std::vector<std::pair<int64_t, int64_t>> sizes;
  PyramidGate gate;
  double factor;
  bool bias;
};

std::string Name(const Case& c) {
  std::string s = absl::StrCat(c.B, "x", c.H, "x", c.W, "x", c.C, " K", c.K, c.gate == PyramidGate::kSigmoid ? " sigmoid" : " product", " f", c.factor, c.bias ? " bias" : "", " sizes");
  for (const auto& [h, w] : c.sizes) absl::StrAppend(&s, " ", h, "x", w);
  return s;
}

std::vector<Case> Cases() {
  return {
      {2, 45, 37, 32, 13, {{45, 37}, {22, 18}}, PyramidGate::kProduct, 1.0, false},
      {1, 7, 5, 34, 3, {{7, 5}, {3, 2}, {1, 1}}, PyramidGate::kSigmoid, 1.0, true},
      {2, 9, 11, 18, 31, {{9, 11}, {4, 5}}, PyramidGate::kProduct, 0.25, true},
      {1, 16, 16, 160, 25, {{16, 16}, {8, 8}}, PyramidGate::kProduct, 1.0, false},
      {3, 6, 8, 2, 5, {{3, 4}}, PyramidGate::kSigmoid, 1.0, false},  // one pooled stage only
      {1, 1, 9, 16, 7, {{1, 9}}, PyramidGate::kProduct, 2.0, true},  // a 1xN map
  };
}

ConvBlockPyramidOptions OptionsOf(const Case& c) {
  return {.kernel = c.K, .sizes = c.sizes, .gate = c.gate, .factor = c.factor};
}

std::vector<Tensor> Inputs(const Case& c, DType dt, uint64_t seed) {
  std::vector<Tensor> in = {RandomTensor({c.B, c.H, c.W, c.C}, dt, seed)};
  const double ws = 1.0 / static_cast<double>(c.K);  // keeps d ~ u in size
  for (size_t n = 0; n < c.sizes.size(); ++n) in.push_back(RandomTensor({c.K, c.K, c.C}, dt, seed + 1 + n, -ws, ws));
  if (c.bias)
    for (size_t n = 0; n < c.sizes.size(); ++n) in.push_back(RandomTensor({c.C}, dt, seed + 11 + n, -0.5, 0.5));
  return in;
}

// One graph: inputs in0..inK, the fused node or the composition, outputs y and,
// with `grads`, the gradients of <y, r> for every input (r a fixed random seed).
struct Built {
  Graph g;
  std::unique_ptr<Builder> b;
  std::vector<Value> in;
};

std::unique_ptr<Built> Build(const Case& c, const std::vector<Tensor>& inputs, bool fused, bool grads) {
  auto m = std::make_unique<Built>();
  m->b = std::make_unique<Builder>(&m->g);
  Builder& b = *m->b;
  for (size_t i = 0; i < inputs.size(); ++i)
    m->in.push_back(b.Input(absl::StrCat("in", i), inputs[i].shape(), inputs[i].dtype()));
  const size_t S = c.sizes.size();
  const std::vector<Value> w(m->in.begin() + 1, m->in.begin() + 1 + S), bias(m->in.begin() + 1 + S, m->in.end());
  Value y = fused ? ConvBlockPyramid(m->in[0], w, bias, OptionsOf(c)) : ConvBlockPyramidComposed(m->in[0], w, bias, OptionsOf(c));
  b.MarkOutput(y, "y");
  if (grads && b.ok()) {
    Value r = b.Input("r", y.shape(), y.dtype());
    auto g = Gradients(b, {y}, {r}, m->in);
    EXPECT_TRUE(g.ok()) << g.status();
    if (g.ok())
      for (size_t i = 0; i < g->size(); ++i) b.MarkOutput((*g)[i], absl::StrCat("g", i));
  }
  return m;
}

StatusOr<std::map<std::string, Tensor>> RunGraph(const Built& m, const std::vector<Tensor>& inputs, const Tensor* r) {
  CF_RETURN_IF_ERROR(m.b->status());
  ExecutorOptions eo;
  eo.poison = true;
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(m.g, eo));
  std::map<std::string, Tensor> feed;
  for (size_t i = 0; i < inputs.size(); ++i) feed[absl::StrCat("in", i)] = inputs[i];
  if (r) feed["r"] = *r;
  CF_ASSIGN_OR_RETURN(std::vector<Tensor> outs, exec->Run(feed));
  std::map<std::string, Tensor> named;  // in MarkOutput order: y, g0, g1, ...
  for (size_t i = 0; i < outs.size(); ++i) named[i == 0 ? "y" : absl::StrCat("g", i - 1)] = outs[i];
  return named;
}

TEST(ConvBlockPyramid, MatchesTheCompositionInEveryDtype) {
  uint64_t seed = 100;
  for (const Case& c : Cases()) {
    for (DType dt : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
      SCOPED_TRACE(Name(c) + " " + DTypeName(dt));
      const std::vector<Tensor> in64 = Inputs(c, DType::f64, seed);
      std::vector<Tensor> in;
      for (const Tensor& t : in64) in.push_back(CastTo(t, dt));
      // The reference: the composition in f64 on the same (rounded) inputs.
      std::vector<Tensor> ref_in;
      for (const Tensor& t : in) ref_in.push_back(CastTo(t, DType::f64));
      auto ref = RunGraph(*Build(c, ref_in, false, false), ref_in, nullptr);
      ASSERT_TRUE(ref.ok()) << ref.status();
      auto got = RunGraph(*Build(c, in, true, false), in, nullptr);
      ASSERT_TRUE(got.ok()) << got.status();
      const std::vector<double> want = ToDoubles(ref->at("y"));
      // f32 accumulates K² taps; f16 / bf16 round the stored output once (the
      // fused kernel keeps d and the pooled maps in f32).
      const double rtol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 2e-6 * c.K : dt == DType::f16 ? 2e-3 : 1.6e-2;
      EXPECT_TRUE(AllClose(ToDoubles(got->at("y")), want, rtol, ScaledAtol(want, rtol, dt)));
    }
    seed += 20;
  }
}

TEST(ConvBlockPyramid, CostIsTheCompositionsArithmeticAndItsOwnBytes) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Name(c));
    const std::vector<Tensor> in = Inputs(c, DType::f32, 1);
    auto fused = Build(c, in, true, false), composed = Build(c, in, false, false);
    ASSERT_TRUE(fused->b->ok() && composed->b->ok());
    Cost f, k;
    for (const Node& n : fused->g.nodes()) f += n.cost;
    for (const Node& n : composed->g.nodes()) k += n.cost;
    EXPECT_EQ(f.mac_flops, k.mac_flops);
    EXPECT_EQ(f.bias_flops, k.bias_flops);
    EXPECT_EQ(f.elementwise_flops, k.elementwise_flops);
    EXPECT_EQ(f.transcendentals, k.transcendentals);
    EXPECT_GT(f.mac_flops, 0);
    // The fused node reads u and the weights once and writes the output once.
    int64_t in_bytes = 0;
    for (const Tensor& t : in) in_bytes += t.numel() * 4;
    EXPECT_EQ(f.bytes_read, in_bytes);
    EXPECT_EQ(f.bytes_written, c.B * c.H * c.W * static_cast<int64_t>(c.sizes.size()) * (c.C / 2) * 4);
    EXPECT_LT(f.bytes_read + f.bytes_written, k.bytes_read + k.bytes_written);
  }
}

// The depthwise MACs of one stage: 2·B·h·w·C'·K² (padding taps included).
TEST(ConvBlockPyramid, MacFlopsAreTheDepthwiseTaps) {
  const int64_t B = 2, C = 160, K = 13;
  const TensorType u{Shape{B, 64, 64, C}, DType::f32}, w{Shape{K, K, C}, DType::f32};
  const Cost cost = CostOfOp("convblock_pyramid", {u, w, w},
                             Attrs{{"sizes", std::vector<int64_t>{64, 64, 32, 32}}, {"kernel", K},
                                   {"gate", std::string("product")}, {"factor", 1.0}, {"has_bias", false}});
  EXPECT_EQ(cost.mac_flops, 2 * B * C * K * K * (64 * 64 + 32 * 32));
  EXPECT_EQ(cost.bias_flops, 0);
}

TEST(ConvBlockPyramid, GradientsMatchTheCompositions) {
  uint64_t seed = 500;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(Name(c));
    const std::vector<Tensor> in = Inputs(c, DType::f64, seed);
    auto fused = Build(c, in, true, true), composed = Build(c, in, false, true);
    const Tensor r = RandomTensor({c.B, c.H, c.W, static_cast<int64_t>(c.sizes.size()) * (c.C / 2)}, DType::f64, seed + 7);
    auto got = RunGraph(*fused, in, &r);
    ASSERT_TRUE(got.ok()) << got.status();
    auto want = RunGraph(*composed, in, &r);
    ASSERT_TRUE(want.ok()) << want.status();
    for (size_t i = 0; i < in.size(); ++i) {
      const std::string k = absl::StrCat("g", i);
      SCOPED_TRACE(k);
      const std::vector<double> wv = ToDoubles(want->at(k));
      EXPECT_TRUE(AllClose(ToDoubles(got->at(k)), wv, 1e-10, ScaledAtol(wv, 1e-10, DType::f64)));
    }
    seed += 20;
  }
}

TEST(ConvBlockPyramid, VjpMatchesCentralDifferences) {
  const Case c{1, 7, 6, 6, 3, {{7, 6}, {3, 3}}, PyramidGate::kSigmoid, 1.0, true};
  const Case d{2, 5, 5, 4, 5, {{5, 5}, {2, 2}}, PyramidGate::kProduct, 0.5, false};
  for (const Case& k : {c, d}) {
    SCOPED_TRACE(Name(k));
    std::vector<int64_t> sizes;
    for (const auto& [h, w] : k.sizes) sizes.insert(sizes.end(), {h, w});
    const Attrs a{{"sizes", sizes}, {"kernel", k.K}, {"gate", std::string(k.gate == PyramidGate::kSigmoid ? "sigmoid" : "product")},
                  {"factor", k.factor}, {"has_bias", k.bias}};
    EXPECT_TRUE(CheckVjp("convblock_pyramid", Inputs(k, DType::f64, 77), a));
  }
}

TEST(ConvBlockPyramid, BadCallsNameWhatIsWrong) {
  const TensorType u{Shape{1, 8, 8, 6}, DType::f32}, w{Shape{3, 3, 6}, DType::f32};
  auto attrs = [](std::vector<int64_t> sizes, int64_t K, std::string gate = "product", bool bias = false) {
    return Attrs{{"sizes", sizes}, {"kernel", K}, {"gate", gate}, {"factor", 1.0}, {"has_bias", bias}};
  };
  ExpectError("convblock_pyramid", {u, w}, attrs({8, 8}, 4), {"kernel 4", "odd"});
  ExpectError("convblock_pyramid", {TensorType{Shape{1, 8, 8, 5}, DType::f32}, TensorType{Shape{3, 3, 5}, DType::f32}},
              attrs({8, 8}, 3), {"C' = 5", "even"});
  ExpectError("convblock_pyramid", {u, TensorType{Shape{5, 5, 6}, DType::f32}}, attrs({8, 8}, 3),
              {"weight of stage 0", "f32[3, 3, 6]", "f32[5, 5, 6]"});
  ExpectError("convblock_pyramid", {u, w}, attrs({8, 8, 4, 4}, 3), {"2 stages", "2 inputs"});
  ExpectError("convblock_pyramid", {u, w}, attrs({9, 8}, 3), {"stage 0", "9x8"});
  ExpectError("convblock_pyramid", {u, w}, attrs({0, 8}, 3), {"stage 0", "0x8"});
  ExpectError("convblock_pyramid", {u, w}, attrs({8, 8}, 3, "relu"), {"gate", "relu"});
  ExpectError("convblock_pyramid", {u, w, TensorType{Shape{5}, DType::f32}}, attrs({8, 8}, 3, "product", true),
              {"bias of stage 0", "f32[5]"});
  ExpectError("convblock_pyramid", {TensorType{Shape{8, 8, 6}, DType::f32}, w}, attrs({8, 8}, 3), {"[B, H, W, C']"});
}

}  // namespace
}  // namespace cf::testing
