// Per-node kernel state (ops/kernel_state.h, KernelContext::state): derived
// once from a parameter and kept across runs, made again after SetParameter,
// never kept for an input that changes between runs; and the real users, the
// CPU linear and conv2d, whose packed weights must follow SetParameter.
#include "ops/kernel_state.h"

#include <gtest/gtest.h>

#include <atomic>

#include "graph/builder.h"
#include "graph/executor.h"
#include "ops/conv/conv.h"
#include "ops/matmul/matmul.h"
#include "tests/support/op_harness.h"
#include "tests/support/test_ops.h"

namespace cf::testing {
namespace {

std::atomic<int> g_makes{0};

Tensor Iota(const Shape& s, double start = 0) {
  std::vector<double> v(s.numel());
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<double>(i);
  return FromDoubles(v, s, DType::f32);
}
std::vector<double> Plus(const Tensor& t, double c) {
  std::vector<double> v = ToDoubles(t);
  for (double& x : v) x += c;
  return v;
}

// kstate_test_sum: y = x + sum(w), where sum(w) is kept as input 1's state.
Status SumStateCpu(KernelContext& ctx) {
  const Tensor& w = ctx.inputs[1];
  auto sum_w = [&] {
    ++g_makes;
    double s = 0;
    for (int64_t i = 0; i < w.numel(); ++i) s += w.data<float>()[i];
    return s;
  };
  const double* kept = StableInputState<double>(ctx, 1, w.data<float>(), sum_w);
  const double s = kept != nullptr ? *kept : sum_w();
  const float* x = ctx.inputs[0].data<float>();
  float* y = ctx.outputs[0].data<float>();
  for (int64_t i = 0; i < ctx.inputs[0].numel(); ++i) y[i] = x[i] + static_cast<float>(s);
  return absl::OkStatus();
}
CF_REGISTER_OP(SameTypeTestOp("kstate_test_sum", 2));
CF_REGISTER_KERNEL("kstate_test_sum", kCPU, SumStateCpu);

TEST(KernelState, KeptForParametersAndRemadeAfterSetParameter) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4}, DType::f32);
  Value w = b.Parameter("w", Shape{3}, DType::f32);
  Value v = b.Input("v", Shape{3}, DType::f32);
  b.MarkOutput(b.Op1("kstate_test_sum", {x, w}, {}), "y");
  b.MarkOutput(b.Op1("kstate_test_sum", {x, v}, {}), "z");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  CF_ASSERT_OK(exec->SetParameter("w", Iota(Shape{3})));  // 0 + 1 + 2
  g_makes = 0;
  for (int run = 0; run < 3; ++run) {
    CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", Iota(Shape{4})}, {"v", Iota(Shape{3}, 10 * run)}}));
    EXPECT_EQ(ToDoubles(out[0]), Plus(Iota(Shape{4}), 3));
    EXPECT_EQ(ToDoubles(out[1]), Plus(Iota(Shape{4}), 3 + 30 * run));  // v changes: never kept
  }
  // Once for w, and once per run for the unstable input v.
  EXPECT_EQ(g_makes.load(), 1 + 3);
  CF_ASSERT_OK(exec->SetParameter("w", Iota(Shape{3}, 5)));  // 5 + 6 + 7
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", Iota(Shape{4})}, {"v", Iota(Shape{3})}}));
  EXPECT_EQ(ToDoubles(out[0]), Plus(Iota(Shape{4}), 18));
  EXPECT_EQ(g_makes.load(), 1 + 3 + 2);
}

// Deterministic values in [-1, 1).
Tensor Values(const Shape& s, uint64_t seed) {
  std::vector<double> v(s.numel());
  for (double& e : v) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    e = static_cast<double>(seed >> 40) / double(1 << 23) - 1.0;
  }
  return FromDoubles(v, s, DType::f32);
}

// The packed weights of linear and conv2d (and conv2d's input gradient) are
// kept; a new weight must be used at the next run.
TEST(KernelState, LinearAndConvFollowSetParameter) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 5, 7, 24}, DType::f32);
  Value wl = b.Parameter("wl", Shape{40, 24}, DType::f32);
  Value wc = b.Parameter("wc", Shape{16, 3, 3, 24}, DType::f32);
  b.MarkOutput(Linear(x, wl, std::nullopt), "lin");
  b.MarkOutput(Conv2d(x, wc, std::nullopt, {.padding = 1}), "conv");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  // The same graph run with fresh executors (no kept state) is the reference.
  auto reference = [&](const Tensor& in, const Tensor& l, const Tensor& c) -> std::vector<Tensor> {
    auto e = Executor::Create(g).value();
    EXPECT_TRUE(e->SetParameter("wl", l).ok());
    EXPECT_TRUE(e->SetParameter("wc", c).ok());
    return e->Run({{"x", in}}).value();
  };
  const Tensor in = Values(Shape{2, 5, 7, 24}, 1);
  for (uint64_t seed : {10, 20}) {
    const Tensor l = Values(Shape{40, 24}, seed), c = Values(Shape{16, 3, 3, 24}, seed + 1);
    CF_ASSERT_OK(exec->SetParameter("wl", l));
    CF_ASSERT_OK(exec->SetParameter("wc", c));
    const std::vector<Tensor> want = reference(in, l, c);
    for (int run = 0; run < 2; ++run) {
      CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", in}}));
      EXPECT_EQ(ToDoubles(out[0]), ToDoubles(want[0])) << "seed " << seed << " run " << run;
      EXPECT_EQ(ToDoubles(out[1]), ToDoubles(want[1])) << "seed " << seed << " run " << run;
    }
  }
}

}  // namespace
}  // namespace cf::testing
