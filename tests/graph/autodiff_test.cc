// Reverse-mode autodiff: the mechanics (fan-out accumulation, needs_grad and
// frozen-parameter pruning, errors) and gradients of composed graphs (an MLP,
// a small conv net, a transformer-ish block) in float64 against central
// finite differences, all run through the executor on the CPU.
#include "graph/autodiff.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "graph/executor.h"
#include "ops/activation/activation.h"
#include "ops/conv/conv.h"
#include "ops/elementwise/elementwise.h"
#include "ops/loss/loss.h"
#include "ops/matmul/matmul.h"
#include "ops/norm/norm.h"
#include "ops/reduce/reduce.h"
#include "ops/shape/shape.h"
#include "tests/support/op_harness.h"
#include "tests/support/test_ops.h"

namespace cf::testing {
namespace {

// ---- Test-only ops --------------------------------------------------------------------

// ad_test_mul: y = a * b (same shapes, f64); its VJP records the needs_grad it
// was given, so tests can see the pruning.
std::vector<std::vector<bool>> g_mul_needs;

Status MulCpu(KernelContext& ctx) {
  const double* a = ctx.inputs[0].data<double>();
  const double* b = ctx.inputs[1].data<double>();
  double* y = ctx.outputs[0].data<double>();
  for (int64_t i = 0; i < ctx.outputs[0].numel(); ++i) y[i] = a[i] * b[i];
  return absl::OkStatus();
}
StatusOr<std::vector<Value>> MulVjp(VjpContext& ctx) {
  g_mul_needs.push_back(ctx.needs_grad);
  const Value& g = ctx.grad_outputs[0];
  Builder& b = ctx.b;
  std::vector<Value> out(2);
  if (ctx.needs_grad[0]) out[0] = b.Op1("ad_test_mul", {g, ctx.inputs[1]});
  if (ctx.needs_grad[1]) out[1] = b.Op1("ad_test_mul", {g, ctx.inputs[0]});
  return out;
}
OpDef MulDef() {
  OpDef d = SameTypeTestOp("ad_test_mul", 2);
  d.vjp = MulVjp;
  return d;
}
// ad_test_novjp: y = x, without a VJP.
Status CopyCpu(KernelContext& ctx) {
  std::memcpy(ctx.outputs[0].raw(), ctx.inputs[0].raw(), static_cast<size_t>(ctx.inputs[0].nbytes()));
  return absl::OkStatus();
}
CF_REGISTER_OP(MulDef());
CF_REGISTER_KERNEL("ad_test_mul", kCPU, MulCpu);
CF_REGISTER_OP(SameTypeTestOp("ad_test_novjp", 1));
CF_REGISTER_KERNEL("ad_test_novjp", kCPU, CopyCpu);

Value TestMul(Value a, Value b) { return a.b->Op1("ad_test_mul", {a, b}); }

// ---- Helpers -----------------------------------------------------------------------------

Value RandomParameter(Builder& b, const std::string& name, const Shape& shape, uint64_t seed, double scale = 0.5,
                      bool frozen = false) {
  return b.Parameter(name, shape, DType::f64, RandomTensor(shape, DType::f64, seed, -scale, scale), frozen);
}
Value RandomConstant(Builder& b, const std::string& name, const Shape& shape, uint64_t seed) {
  return b.Constant(RandomTensor(shape, DType::f64, seed), name);
}
// sum(y * r) for a fixed random r: every output element gets its own weight.
Value ProjectToScalar(Value y, uint64_t seed) {
  return Sum(Mul(y, RandomConstant(*y.b, "r", y.shape(), seed)));
}

// Nodes whose scope is `scope` or below it.
int NodesInScope(const Graph& g, const std::string& scope, int first_node = 0) {
  int count = 0;
  for (int i = first_node; i < g.num_nodes(); ++i) {
    const std::string& s = g.node(i).scope;
    if (s == scope || s.rfind(scope + ".", 0) == 0) ++count;
  }
  return count;
}

// Builds `build` twice: once with Grad of every trainable parameter (run
// once), once forward only (run with each perturbed parameter element), and
// compares the gradients with central differences at up to `points` random
// elements per parameter. Everything is float64 on the CPU.
::testing::AssertionResult CheckGraphGradients(const std::function<Value(Builder&)>& build, int points = 6,
                                               double rtol = 1e-6, double atol = 1e-8, double h = 1e-6) {
  Graph g;
  Builder b(&g);
  Value loss = build(b);
  if (!b.ok()) return ::testing::AssertionFailure() << "forward: " << b.status().message();
  std::vector<Value> params = TrainableParameters(b);
  auto grads = Grad(b, loss, params);
  if (!grads.ok()) return ::testing::AssertionFailure() << "Grad: " << grads.status().message();
  b.MarkOutput(loss, "loss");
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = g.value(params[i].id).name;
    if (!(*grads)[i].valid()) return ::testing::AssertionFailure() << "no gradient for " << name;
    b.MarkOutput((*grads)[i], "d:" + name);
  }
  if (!b.ok()) return ::testing::AssertionFailure() << "backward: " << b.status().message();
  ExecutorOptions opts;
  opts.poison = true;
  auto exec = Executor::Create(g, opts);
  if (!exec.ok()) return ::testing::AssertionFailure() << "executor: " << exec.status().message();
  auto outs = (*exec)->RunNamed({});
  if (!outs.ok()) return ::testing::AssertionFailure() << "run: " << outs.status().message();

  Graph fg;
  Builder fb(&fg);
  fb.MarkOutput(build(fb), "loss");
  if (!fb.ok()) return ::testing::AssertionFailure() << "forward graph: " << fb.status().message();
  auto fwd = Executor::Create(fg);
  if (!fwd.ok()) return ::testing::AssertionFailure() << "forward executor: " << fwd.status().message();
  auto loss_at = [&](const std::string& name, const Tensor& value) -> StatusOr<double> {
    CF_RETURN_IF_ERROR((*fwd)->SetParameter(name, value));
    CF_ASSIGN_OR_RETURN(auto o, (*fwd)->Run({}));
    return ToDoubles(o[0])[0];
  };

  std::mt19937_64 rng(7);
  for (size_t i = 0; i < params.size(); ++i) {
    const ValueInfo& p = g.value(params[i].id);
    const std::vector<double> x0 = ToDoubles(p.data);
    const std::vector<double> analytic = ToDoubles((*outs)["d:" + p.name]);
    std::vector<int64_t> idx(x0.size());
    for (size_t k = 0; k < idx.size(); ++k) idx[k] = static_cast<int64_t>(k);
    std::shuffle(idx.begin(), idx.end(), rng);
    if (static_cast<int>(idx.size()) > points) idx.resize(points);
    for (int64_t k : idx) {
      std::vector<double> x = x0;
      x[k] = x0[k] + h;
      auto lp = loss_at(p.name, FromDoubles(x, p.type.shape, DType::f64));
      x[k] = x0[k] - h;
      auto lm = loss_at(p.name, FromDoubles(x, p.type.shape, DType::f64));
      if (!lp.ok() || !lm.ok()) return ::testing::AssertionFailure() << "finite differences: failed run";
      const double fd = (*lp - *lm) / (2 * h);
      if (!(std::fabs(analytic[k] - fd) <= atol + rtol * std::fabs(fd)) || std::isnan(analytic[k])) {
        return ::testing::AssertionFailure() << "d loss / d " << p.name << "[" << k << "]: autodiff " << analytic[k]
                                             << ", finite differences " << fd;
      }
    }
    auto restore = (*fwd)->SetParameter(p.name, p.data);
    if (!restore.ok()) return ::testing::AssertionFailure() << restore.message();
  }
  return ::testing::AssertionSuccess();
}

// ---- Mechanics ------------------------------------------------------------------------

TEST(Autodiff, FanOutGradientsAccumulate) {
  // loss = sum(w*w + w): w is read three times; d/dw = 2w + 1.
  Graph g;
  Builder b(&g);
  Tensor wdata = RandomTensor(Shape{3, 4}, DType::f64, 1);
  Value w = b.Parameter("w", Shape{3, 4}, DType::f64, wdata);
  Value loss = Sum(Add(TestMul(w, w), w));
  CF_ASSERT_OK_AND_ASSIGN(auto grads, Grad(b, loss, {w}));
  ASSERT_TRUE(grads[0].valid());
  b.MarkOutput(grads[0], "dw");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({}));
  std::vector<double> want = ToDoubles(wdata);
  for (double& v : want) v = 2 * v + 1;
  EXPECT_TRUE(testing::AllClose(ToDoubles(out[0]), want, 1e-12, 1e-12));
}

TEST(Autodiff, NeedsGradTellsTheVjpWhichInputsNeedGradients) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4}, DType::f64);
  Value w = RandomParameter(b, "w", Shape{4}, 1);
  Value f = RandomParameter(b, "f", Shape{4}, 2, 0.5, /*frozen=*/true);
  Value y = TestMul(TestMul(x, f), w);  // the inner product needs no gradient at all
  g_mul_needs.clear();
  CF_ASSERT_OK_AND_ASSIGN(auto grads, Grad(b, Sum(y), {w, f}));
  EXPECT_TRUE(grads[0].valid());
  EXPECT_FALSE(grads[1].valid());  // frozen
  ASSERT_EQ(g_mul_needs.size(), 1u);  // only the outer VJP ran
  EXPECT_EQ(g_mul_needs[0], (std::vector<bool>{false, true}));
}

TEST(Autodiff, FrozenParametersGetNoGradientNodes) {
  // in -> l1 -> l2 -> l3 -> loss. Frozen l1: nothing of l1 is differentiated.
  // Frozen l2: l2 passes gradients to l1 but builds no weight gradient.
  auto build = [](Builder& b, bool freeze1, bool freeze2) {
    Value h = b.Input("x", Shape{6, 5}, DType::f64);
    const bool frozen[3] = {freeze1, freeze2, false};
    for (int i = 0; i < 3; ++i) {
      auto s = b.scope(absl::StrCat("l", i + 1));
      Value w = RandomParameter(b, "weight", Shape{5, 5}, 10 + i, 0.5, frozen[i]);
      Value bias = RandomParameter(b, "bias", Shape{5}, 20 + i, 0.5, frozen[i]);
      h = Linear(h, w, bias);
    }
    return Sum(h);
  };
  auto backward_counts = [&](bool f1, bool f2, std::vector<bool>* valid) {
    Graph g;
    Builder b(&g);
    Value loss = build(b, f1, f2);
    const int first = g.num_nodes();
    std::vector<Value> all;
    for (int id : g.Parameters()) all.push_back(b.Wrap(id));
    auto grads = Grad(b, loss, all);
    EXPECT_TRUE(grads.ok()) << grads.status().message();
    valid->clear();
    for (const Value& v : *grads) valid->push_back(v.valid());
    return std::vector<int>{NodesInScope(g, "l1", first), NodesInScope(g, "l2", first), NodesInScope(g, "l3", first),
                            g.num_nodes() - first};
  };
  std::vector<bool> valid;
  std::vector<int> all_trainable = backward_counts(false, false, &valid);
  EXPECT_EQ(valid, std::vector<bool>(6, true));
  std::vector<int> frozen1 = backward_counts(true, false, &valid);
  EXPECT_EQ(valid, (std::vector<bool>{false, false, true, true, true, true}));
  EXPECT_EQ(frozen1[0], 0) << "backward nodes built for the frozen first layer";
  EXPECT_LT(frozen1[1], all_trainable[1]) << "l2 still builds the gradient of its input";
  std::vector<int> frozen2 = backward_counts(false, true, &valid);
  EXPECT_EQ(valid, (std::vector<bool>{true, true, false, false, true, true}));
  EXPECT_GT(frozen2[1], 0) << "l2 must pass the gradient on to l1";
  EXPECT_LT(frozen2[1], all_trainable[1]) << "l2 built gradients for its frozen weights";
  EXPECT_EQ(frozen2[0], all_trainable[0]);
  EXPECT_LT(frozen2[3], all_trainable[3]);
}

TEST(Autodiff, BackwardNodesAreBuiltInTheirForwardScope) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f64);
  Value h;
  {
    auto s = b.scope("block");
    h = Linear(x, RandomParameter(b, "weight", Shape{4, 3}, 1));
  }
  Value loss = Sum(h);
  const int first = g.num_nodes();
  CF_ASSERT_OK(Grad(b, loss, TrainableParameters(b)).status());
  EXPECT_GT(NodesInScope(g, "block", first), 0);
}

int CountBackwardFlags(const Graph& g, int first, int last) {
  int count = 0;
  for (int i = first; i < last; ++i) count += g.node(i).backward ? 1 : 0;
  return count;
}

TEST(Autodiff, NodesBuiltByGradAreFlaggedAsBackward) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f64);
  Value loss = Sum(Linear(x, RandomParameter(b, "weight", Shape{4, 3}, 1)));
  const int forward = g.num_nodes();
  CF_ASSERT_OK(Grad(b, loss, TrainableParameters(b)).status());
  EXPECT_EQ(CountBackwardFlags(g, 0, forward), 0);
  EXPECT_EQ(CountBackwardFlags(g, forward, g.num_nodes()), g.num_nodes() - forward);
  // Building goes back to forward nodes after Grad.
  Sum(x);
  EXPECT_FALSE(g.node(g.num_nodes() - 1).backward);
}

TEST(Autodiff, OpWithoutVjpOnThePathIsAnError) {
  Graph g;
  Builder b(&g);
  Value w = RandomParameter(b, "w", Shape{3}, 1);
  Value h;
  {
    auto s = b.scope("enc.block");
    h = b.Op1("ad_test_novjp", {w});
  }
  auto grads = Grad(b, Sum(h), {w});
  ASSERT_FALSE(grads.ok());
  EXPECT_EQ(grads.status().code(), absl::StatusCode::kUnimplemented);
  std::string msg(grads.status().message());
  EXPECT_NE(msg.find("op 'ad_test_novjp'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scope 'enc.block'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("f64[3]"), std::string::npos) << msg;
}

TEST(Autodiff, OpWithoutVjpOffThePathIsFine) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{3}, DType::f64);
  Value w = RandomParameter(b, "w", Shape{3}, 1);
  Value loss = Sum(TestMul(b.Op1("ad_test_novjp", {x}), w));
  CF_ASSERT_OK_AND_ASSIGN(auto grads, Grad(b, loss, {w}));
  EXPECT_TRUE(grads[0].valid());
}

TEST(Autodiff, UnrelatedAndIntegerValuesGetNoGradient) {
  Graph g;
  Builder b(&g);
  Value w = RandomParameter(b, "w", Shape{3}, 1);
  Value unused = RandomParameter(b, "unused", Shape{3}, 2);
  // Through an integer value no gradient flows.
  Value v = RandomParameter(b, "v", Shape{3}, 3, 4.0);
  Value through_int = Cast(Cast(v, DType::i32), DType::f64);
  Value loss = Sum(Add(TestMul(w, w), through_int));
  CF_ASSERT_OK_AND_ASSIGN(auto grads, Grad(b, loss, {w, unused, v}));
  EXPECT_TRUE(grads[0].valid());
  EXPECT_FALSE(grads[1].valid());
  EXPECT_FALSE(grads[2].valid());
}

TEST(Autodiff, BadArguments) {
  Graph g;
  Builder b(&g);
  Value w = RandomParameter(b, "w", Shape{3}, 1);
  auto r = Grad(b, TestMul(w, w), {w});  // not a scalar
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("one-element"), std::string::npos) << r.status().message();
  Value seed = b.Input("seed", Shape{4}, DType::f64);
  r = Gradients(b, {TestMul(w, w)}, {seed}, {w});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("must be f64[3], got f64[4]"), std::string::npos)
      << r.status().message();
  r = Gradients(b, {w}, {}, {w});
  EXPECT_FALSE(r.ok());
}

TEST(Autodiff, GradientsWithSeedsOfSeveralOutputs) {
  // d/dw <w*w, s1> + <w, s2> = 2 w s1 + s2.
  Graph g;
  Builder b(&g);
  Tensor wd = RandomTensor(Shape{5}, DType::f64, 1), s1d = RandomTensor(Shape{5}, DType::f64, 2),
         s2d = RandomTensor(Shape{5}, DType::f64, 3);
  Value w = b.Parameter("w", Shape{5}, DType::f64, wd);
  CF_ASSERT_OK_AND_ASSIGN(auto grads, Gradients(b, {TestMul(w, w), w},
                                                {b.Constant(s1d, "s1"), b.Constant(s2d, "s2")}, {w}));
  b.MarkOutput(grads[0], "dw");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({}));
  std::vector<double> want(5), wv = ToDoubles(wd), s1 = ToDoubles(s1d), s2 = ToDoubles(s2d);
  for (int i = 0; i < 5; ++i) want[i] = 2 * wv[i] * s1[i] + s2[i];
  EXPECT_TRUE(testing::AllClose(ToDoubles(out[0]), want, 1e-12, 1e-12));
}

// ---- Composed graphs against finite differences ---------------------------------------

TEST(AutodiffFiniteDifferences, Mlp) {
  // linear + GELU + linear + MSE.
  auto build = [](Builder& b) {
    Value x = RandomConstant(b, "x", Shape{8, 5}, 100);
    Value target = RandomConstant(b, "target", Shape{8, 3}, 101);
    Value h;
    {
      auto s = b.scope("fc1");
      h = Gelu(Linear(x, RandomParameter(b, "weight", Shape{16, 5}, 1), RandomParameter(b, "bias", Shape{16}, 2)));
    }
    Value y;
    {
      auto s = b.scope("fc2");
      y = Linear(h, RandomParameter(b, "weight", Shape{3, 16}, 3), RandomParameter(b, "bias", Shape{3}, 4));
    }
    return MseLoss(y, target);
  };
  EXPECT_TRUE(CheckGraphGradients(build));
}

TEST(AutodiffFiniteDifferences, ConvNet) {
  // conv2d + group norm + SiLU + conv2d (stride 2), NHWC.
  auto build = [](Builder& b) {
    Value x = RandomConstant(b, "x", Shape{2, 7, 6, 4}, 100);
    Value h;
    {
      auto s = b.scope("conv1");
      h = Conv2d(x, RandomParameter(b, "weight", Shape{8, 3, 3, 4}, 1), RandomParameter(b, "bias", Shape{8}, 2),
                 {.padding = 1});
    }
    {
      auto s = b.scope("norm");
      h = GroupNorm(h, RandomParameter(b, "weight", Shape{8}, 3, 1.0), RandomParameter(b, "bias", Shape{8}, 4),
                    /*groups=*/2);
    }
    h = Silu(h);
    {
      auto s = b.scope("conv2");
      h = Conv2d(h, RandomParameter(b, "weight", Shape{3, 3, 3, 8}, 5), RandomParameter(b, "bias", Shape{3}, 6),
                 {.stride = 2, .padding = 1});
    }
    return ProjectToScalar(h, 200);
  };
  EXPECT_TRUE(CheckGraphGradients(build));
}

// Single-head attention block with a residual: x + Wo·softmax(q kᵀ/√d) v.
Value AttentionBlock(Builder& b, Value x, int heads) {
  const int64_t B = x.dim(0), T = x.dim(1), C = x.dim(2), D = C / heads;
  Value h;
  {
    auto s = b.scope("norm");
    h = LayerNorm(x, RandomParameter(b, "weight", Shape{C}, 1, 1.0), RandomParameter(b, "bias", Shape{C}, 2));
  }
  auto s = b.scope("attn");
  auto proj = [&](const char* name, uint64_t seed) {
    auto ps = b.scope(name);
    return Linear(h, RandomParameter(b, "weight", Shape{C, C}, seed), RandomParameter(b, "bias", Shape{C}, seed + 1));
  };
  Value q = proj("to_q", 10), k = proj("to_k", 20), v = proj("to_v", 30);
  if (heads > 1) {  // [B, T, C] -> [B, heads, T, D]
    auto split = [&](Value t) { return Transpose(Reshape(t, {B, T, heads, D}), 1, 2); };
    q = split(q);
    k = split(k);
    v = split(v);
  }
  Value scores = Scale(MatMul(q, k, std::nullopt, {.trans_b = true}), 1.0 / std::sqrt(static_cast<double>(D)));
  Value o = MatMul(Softmax(scores), v);
  if (heads > 1) o = Reshape(Transpose(o, 1, 2), {B, T, C});
  {
    auto os = b.scope("to_out");
    o = Linear(o, RandomParameter(b, "weight", Shape{C, C}, 40), RandomParameter(b, "bias", Shape{C}, 41));
  }
  return Add(x, o);
}

TEST(AutodiffFiniteDifferences, TransformerBlock) {
  auto build = [](Builder& b) {
    Value x = RandomConstant(b, "x", Shape{2, 5, 8}, 100);
    return ProjectToScalar(AttentionBlock(b, x, 1), 200);
  };
  EXPECT_TRUE(CheckGraphGradients(build));
}

TEST(AutodiffFiniteDifferences, MultiHeadTransformerBlock) {
  auto build = [](Builder& b) {
    Value x = RandomConstant(b, "x", Shape{2, 5, 8}, 100);
    return ProjectToScalar(AttentionBlock(b, x, 2), 200);
  };
  EXPECT_TRUE(CheckGraphGradients(build));
}

}  // namespace
}  // namespace cf::testing
