// cf_train_demo: autodiff + executor end to end. Trains a small MLP
// (linear, GELU, linear; MSE) with plain SGD on a fixed synthetic regression
// task, y = sin(x · a) + 0.5 x_0, and prints the loss curve, the graph's
// size and memory plan, and a per-node timing table of one training step.
//
//   cf_train_demo [--steps=2000] [--lr=0.1] [--device=cpu|cuda]
//
// --device=cuda without a usable CUDA device (or backend) fails with exit 1.
//
// One graph holds forward, loss, gradients (Grad) and the SGD update
// p - lr * dp (built with ops); every step runs it once and writes the new
// parameters back with SetParameter.
#include <cmath>
#include <cstdio>
#include <random>

#include "apps/common/cli.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/loss/loss.h"
#include "ops/matmul/matmul.h"
#include "runtime/device.h"

namespace cf {
namespace {

constexpr int64_t kSamples = 64, kIn = 4, kHidden = 32;

Tensor Uniform(const Shape& shape, double bound, std::mt19937_64& rng) {
  Tensor t = Tensor::Empty(shape, DType::f32).value();
  std::uniform_real_distribution<double> dist(-bound, bound);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(dist(rng));
  return t;
}

Status Main(int steps, double lr, Device device) {
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(device));
  // The task.
  std::mt19937_64 rng(11);
  Tensor xs = Uniform(Shape{kSamples, kIn}, 1.0, rng);
  CF_ASSIGN_OR_RETURN(Tensor ys, Tensor::Empty(Shape{kSamples, 1}, DType::f32));
  const double a[kIn] = {1.5, -2.0, 0.7, 1.1};
  for (int64_t i = 0; i < kSamples; ++i) {
    double dot = 0;
    for (int64_t j = 0; j < kIn; ++j) dot += xs.data<float>()[i * kIn + j] * a[j];
    ys.data<float>()[i] = static_cast<float>(std::sin(dot) + 0.5 * xs.data<float>()[i * kIn]);
  }

  // The model, its loss, gradients and SGD update in one graph.
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{kSamples, kIn}, DType::f32);
  Value target = b.Input("target", Shape{kSamples, 1}, DType::f32);
  auto param = [&](const char* name, Shape shape, int64_t fan_in) {
    return b.Parameter(name, shape, DType::f32, Uniform(shape, 1.0 / std::sqrt(static_cast<double>(fan_in)), rng));
  };
  Value h, pred;
  {
    auto s = b.scope("fc1");
    h = Gelu(Linear(x, param("weight", Shape{kHidden, kIn}, kIn), param("bias", Shape{kHidden}, kIn)));
  }
  {
    auto s = b.scope("fc2");
    pred = Linear(h, param("weight", Shape{1, kHidden}, kHidden), param("bias", Shape{1}, kHidden));
  }
  Value loss;
  {
    auto s = b.scope("loss");
    loss = MseLoss(pred, target);
  }
  b.MarkOutput(loss, "loss");
  const int forward_nodes = g.num_nodes();
  std::vector<Value> params = TrainableParameters(b);
  CF_ASSIGN_OR_RETURN(std::vector<Value> grads, Grad(b, loss, params));
  std::vector<std::string> names;
  {
    auto s = b.scope("sgd");
    for (size_t i = 0; i < params.size(); ++i) {
      names.push_back(g.value(params[i].id).name);
      b.MarkOutput(params[i] + grads[i] * -lr, "new:" + names.back());
    }
  }
  CF_RETURN_IF_ERROR(b.status());

  ExecutorOptions opts;
  opts.device = device;
  CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(g, opts));
  std::printf("graph: %d nodes (%d forward, %d backward + update), %zu parameters\n", g.num_nodes(), forward_nodes,
              g.num_nodes() - forward_nodes, params.size());
  std::printf("plan : %s\n\n", exec->plan().ToString().c_str());

  // Training.
  std::printf("%6s  %12s\n", "step", "loss");
  const std::map<std::string, Tensor> batch{{"x", xs}, {"target", ys}};
  double first = 0, last = 0;
  for (int step = 0; step <= steps; ++step) {
    CF_ASSIGN_OR_RETURN(auto out, exec->RunNamed(batch));
    CF_ASSIGN_OR_RETURN(Tensor l, out["loss"].To(Device::CPU()));
    last = l.data<float>()[0];
    if (step == 0) first = last;
    if (step % 100 == 0 || step == steps) std::printf("%6d  %12.6f\n", step, last);
    if (!std::isfinite(last)) return absl::InternalError(absl::StrCat("the loss diverged at step ", step));
    if (step == steps) break;
    for (const std::string& n : names) CF_RETURN_IF_ERROR(exec->SetParameter(n, out["new:" + n]));
  }
  std::printf("\nloss %.6f -> %.6f (%.2f%% of the start)\n\n", first, last, 100.0 * last / first);

  // One timed step, with the trained parameters.
  ExecutorOptions timed = opts;
  timed.time_nodes = true;
  CF_ASSIGN_OR_RETURN(auto texec, Executor::Create(g, timed));
  for (const std::string& n : names) {
    CF_ASSIGN_OR_RETURN(Tensor p, exec->GetParameter(n));
    CF_RETURN_IF_ERROR(texec->SetParameter(n, p));
  }
  CF_RETURN_IF_ERROR(texec->Run(batch).status());  // warm-up
  CF_RETURN_IF_ERROR(texec->Run(batch).status());
  std::printf("one training step on %s:\n\n%s", device.ToString().c_str(),
              SummarizeTimings(texec->timings()).ToMarkdown().c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace cf

int main(int argc, char** argv) {
  cf::cli::App app("cf_train_demo",
                   "Trains a small MLP (linear, GELU, linear; MSE) with SGD through autodiff and the executor; prints "
                   "the loss curve, the memory plan and a per-node timing table of one step.");
  int steps = 2000;
  double lr = 0.1;
  std::string device = "cpu";
  app.Int("--steps", &steps, 1, 10'000'000, "training steps");
  app.Double("--lr", &lr, cf::cli::Interval::AboveUpTo(0, 1000), "SGD learning rate");
  app.Enum("--device", &device, {"cpu", "cuda"}, "where to train (cuda: the first GPU)");
  return app.Run(argc, argv,
                 [&] { return cf::Main(steps, lr, device == "cuda" ? cf::Device::CUDA() : cf::Device::CPU()); });
}
