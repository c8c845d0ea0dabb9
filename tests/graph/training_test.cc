// End to end: a small MLP trained with plain SGD on the CPU. One graph holds
// the forward pass, the MSE loss, the gradients (Grad) and the SGD update
// (p - lr * dp, built with ops); each step runs it once and writes the
// updated parameters back with SetParameter.
#include <gtest/gtest.h>

#include <cmath>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/loss/loss.h"
#include "ops/matmul/matmul.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

constexpr int64_t kSamples = 64, kIn = 4, kHidden = 32;

// A fixed regression task: y = sin(x · a) + 0.5 x_0 on x in [-1, 1]^4.
void MakeTask(Tensor* x, Tensor* y) {
  *x = RandomTensor(Shape{kSamples, kIn}, DType::f32, 11);
  const double a[kIn] = {1.5, -2.0, 0.7, 1.1};
  std::vector<double> xv = ToDoubles(*x), yv(kSamples);
  for (int64_t i = 0; i < kSamples; ++i) {
    double dot = 0;
    for (int64_t j = 0; j < kIn; ++j) dot += xv[i * kIn + j] * a[j];
    yv[i] = std::sin(dot) + 0.5 * xv[i * kIn];
  }
  *y = FromDoubles(yv, Shape{kSamples, 1}, DType::f32);
}

TEST(Training, SgdMlpDrivesTheLossBelowATenthOfItsStart) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{kSamples, kIn}, DType::f32);
  Value target = b.Input("target", Shape{kSamples, 1}, DType::f32);
  auto param = [&](const char* name, Shape shape, int64_t fan_in, uint64_t seed) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return b.Parameter(name, shape, DType::f32, RandomTensor(shape, DType::f32, seed, -bound, bound));
  };
  Value h, pred;
  {
    auto s = b.scope("fc1");
    h = Gelu(Linear(x, param("weight", Shape{kHidden, kIn}, kIn, 1), param("bias", Shape{kHidden}, kIn, 2)));
  }
  {
    auto s = b.scope("fc2");
    pred = Linear(h, param("weight", Shape{1, kHidden}, kHidden, 3), param("bias", Shape{1}, kHidden, 4));
  }
  Value loss = MseLoss(pred, target);
  b.MarkOutput(loss, "loss");
  std::vector<Value> params = TrainableParameters(b);
  ASSERT_EQ(params.size(), 4u);
  CF_ASSERT_OK_AND_ASSIGN(std::vector<Value> grads, Grad(b, loss, params));
  const double lr = 0.1;
  std::vector<std::string> names;
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_TRUE(grads[i].valid());
    names.push_back(g.value(params[i].id).name);
    b.MarkOutput(params[i] + grads[i] * -lr, "new:" + names.back());
  }
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));

  Tensor xs, ys;
  MakeTask(&xs, &ys);
  double first = 0, last = 0;
  for (int step = 0; step < 2000; ++step) {
    CF_ASSERT_OK_AND_ASSIGN(auto out, exec->RunNamed({{"x", xs}, {"target", ys}}));
    last = ToDoubles(out["loss"])[0];
    ASSERT_TRUE(std::isfinite(last)) << "step " << step;
    if (step == 0) first = last;
    if (last < 0.05 * first) break;
    for (const std::string& n : names) CF_ASSERT_OK(exec->SetParameter(n, out["new:" + n]));
  }
  EXPECT_LT(last, 0.1 * first) << "loss went from " << first << " to " << last;
}

}  // namespace
}  // namespace cf::testing
