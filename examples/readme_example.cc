// The README's example, complete: a two-layer conv net on NHWC images, its
// FLOPs and memory plan, one SGD step through autodiff, run on the CPU.
#include <cstdio>

#include "graph/accounting.h"
#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/ops.h"
#include "runtime/rng.h"

cf::Status Main() {
  cf::Graph g;
  cf::Builder b(&g);
  cf::Value x = b.Input("x", cf::Shape{2, 16, 16, 8}, cf::DType::f32);       // NHWC
  cf::Value target = b.Input("target", cf::Shape{2, 16, 16, 8}, cf::DType::f32);
  auto param = [&](const char* name, cf::Shape shape, uint64_t seed) {       // random N(0, 0.1^2)
    return b.Parameter(name, shape, cf::DType::f32, cf::RandomNormal(shape, cf::DType::f32, seed, 0, 0.1f).value());
  };
  cf::Value h;
  {
    auto scope = b.scope("block");
    h = cf::Conv2d(x, param("conv1.weight", {16, 3, 3, 8}, 1), param("conv1.bias", {16}, 2),
                   {.padding = 1});                                          // [2, 16, 16, 16]
    h = cf::Silu(cf::GroupNorm(h, param("norm.weight", {16}, 3), param("norm.bias", {16}, 4), 4));
    h = cf::Conv2d(h, param("conv2.weight", {8, 3, 3, 16}, 5), std::nullopt, {.padding = 1});  // [2, 16, 16, 8]
  }
  cf::Value loss = cf::MseLoss(x + h, target);                               // a residual block
  b.MarkOutput(loss, "loss");

  // One SGD step: p - lr * dL/dp for every parameter, in the same graph.
  std::vector<cf::Value> params = cf::TrainableParameters(b);
  CF_ASSIGN_OR_RETURN(std::vector<cf::Value> grads, cf::Grad(b, loss, params));
  {
    auto scope = b.scope("sgd");
    for (size_t i = 0; i < params.size(); ++i) b.MarkOutput(params[i] - grads[i] * 0.5, "new." + g.value(params[i].id).name);
  }
  CF_ASSIGN_OR_RETURN(cf::Graph * graph, b.Finish());                        // the first error, if any

  CF_ASSIGN_OR_RETURN(cf::CostReport cost, cf::Account(*graph, {.pass = cf::Pass::kForward}));
  std::printf("%s\n", cost.ToMarkdown({.max_depth = 1}).c_str());
  CF_ASSIGN_OR_RETURN(auto exec, cf::Executor::Create(*graph));
  std::printf("%s\n", exec->plan().ToString().c_str());

  CF_ASSIGN_OR_RETURN(cf::Tensor input, cf::RandomNormal({2, 16, 16, 8}, cf::DType::f32, 10));
  CF_ASSIGN_OR_RETURN(cf::Tensor want, cf::RandomNormal({2, 16, 16, 8}, cf::DType::f32, 11));
  float first = 0, second = 0;
  for (float* out : {&first, &second}) {
    CF_ASSIGN_OR_RETURN(auto outputs, exec->RunNamed({{"x", input}, {"target", want}}));
    CF_ASSIGN_OR_RETURN(*out, outputs["loss"].Item<float>());
    for (const cf::Value& p : params) {
      const std::string& name = g.value(p.id).name;
      CF_RETURN_IF_ERROR(exec->SetParameter(name, outputs["new." + name]));
    }
  }
  std::printf("loss %.5f -> %.5f after one SGD step\n", first, second);
  return second < first ? absl::OkStatus() : absl::InternalError("the SGD step did not lower the loss");
}

int main() {
  cf::Status s = Main();
  if (!s.ok()) std::fprintf(stderr, "readme_example: %s\n", std::string(s.message()).c_str());
  return s.ok() ? 0 : 1;
}
