// The fused forms of the epilogue pass on CUDA (cuBLASLt beta = 1, the
// epilogue passes after cuBLASLt / cuDNN) against the unfused graph on the
// CPU, with the output poisoned first. Skips without a GPU.
#include <gtest/gtest.h>

#include "graph/executor.h"
#include "ops/ops.h"
#include "tests/support/model_golden.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// Runs `g` on the CPU unfused and on CUDA fused; every output within `tol`;
// returns how many nodes the fused graph has.
int ExpectCudaFusedMatchesCpu(const Graph& g, double tol) {
  std::map<std::string, Tensor> params, inputs;
  uint64_t seed = 1;
  for (int id : g.Parameters()) {
    const ValueInfo& v = g.value(id);
    params[v.name] = RandomTensor(v.type.shape, v.type.dtype, seed++, -0.5, 0.5);
  }
  for (int id : g.Inputs()) {
    const ValueInfo& v = g.value(id);
    inputs[v.name] = RandomTensor(v.type.shape, v.type.dtype, seed++);
  }
  auto run = [&](Device d, const PassOptions& p, int* nodes) -> StatusOr<std::map<std::string, Tensor>> {
    ExecutorOptions eo;
    eo.device = d;
    eo.passes = p;
    eo.poison = true;
    CF_ASSIGN_OR_RETURN(auto exec, Executor::Create(g, eo));
    for (const auto& [name, t] : params) CF_RETURN_IF_ERROR(exec->SetParameter(name, t));
    *nodes = exec->graph().num_nodes();
    return exec->RunNamed(inputs);
  };
  int cpu_nodes = 0, cuda_nodes = 0;
  auto want = run(Device::CPU(), PassOptions::None(), &cpu_nodes);
  auto got = run(Device::CUDA(0), PassOptions{}, &cuda_nodes);
  EXPECT_TRUE(want.ok()) << want.status();
  EXPECT_TRUE(got.ok()) << got.status();
  if (!want.ok() || !got.ok()) return -1;
  for (const auto& [name, t] : *want) {
    auto host = got->at(name).To(Device::CPU());
    if (!host.ok()) {
      ADD_FAILURE() << host.status();
      continue;
    }
    EXPECT_LE(RelativeError(ToDoubles(*host), ToDoubles(t)), tol) << name;
  }
  return cuda_nodes;
}

TEST(EpilogueFusionGpu, LinearResidualWithAndWithoutActivation) {
  CF_SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
    for (bool act : {false, true}) {
      SCOPED_TRACE(absl::StrCat(DTypeName(dt), act ? " silu" : ""));
      Graph g;
      Builder b(&g);
      Value x = b.Input("x", Shape{2, 33, 40}, dt);
      Value r = b.Input("r", Shape{2, 33, 24}, dt);
      Value h = Linear(x, b.Parameter("w", Shape{24, 40}, dt)) + b.Parameter("b", Shape{24}, dt);
      if (act) h = Silu(h);
      b.MarkOutput(h + r, "y");
      EXPECT_EQ(ExpectCudaFusedMatchesCpu(g, dt == DType::f32 ? 1e-5 : 2e-2), 1);
    }
  }
}

TEST(EpilogueFusionGpu, LinearImageBiasAndBatchedMatmulResidual) {
  CF_SKIP_WITHOUT_GPU();
  {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2, 6, 8}, DType::f32);
    Value img = b.Input("img", Shape{2, 1, 5}, DType::f32);
    b.MarkOutput(Gelu(Linear(x, b.Parameter("w", Shape{5, 8}, DType::f32)) + img), "y");
    EXPECT_EQ(ExpectCudaFusedMatchesCpu(g, 1e-5), 1);
  }
  {
    Graph g;
    Builder b(&g);
    Value a = b.Input("a", Shape{3, 5, 8}, DType::f32);
    Value w = b.Input("w", Shape{3, 6, 8}, DType::f32);
    Value r = b.Input("r", Shape{3, 5, 6}, DType::f32);
    b.MarkOutput(MatMul(a, w, std::nullopt, {.trans_b = true}) + r, "y");
    EXPECT_EQ(ExpectCudaFusedMatchesCpu(g, 1e-5), 1);
  }
}

TEST(EpilogueFusionGpu, ConvBiasImageBiasActivationResidual) {
  CF_SKIP_WITHOUT_GPU();
  for (bool depthwise : {false, true}) {
    SCOPED_TRACE(depthwise ? "depthwise" : "dense");
    const int64_t c = depthwise ? 12 : 16;
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{2, 9, 11, 12}, DType::f32);
    Value r = b.Input("r", Shape{2, 9, 11, c}, DType::f32);
    Value img = b.Input("img", Shape{2, 1, 1, c}, DType::f32);
    Value y = Conv2d(x, b.Parameter("w", Shape{c, 3, 3, depthwise ? 1 : 12}, DType::f32), std::nullopt,
                     {.padding = 1, .groups = depthwise ? 12 : 1});
    y = Silu(y + b.Parameter("b", Shape{c}, DType::f32) + img) + r;
    b.MarkOutput(y, "y");
    EXPECT_EQ(ExpectCudaFusedMatchesCpu(g, 1e-4), 1);  // cuDNN's algorithms sum in other orders
  }
}

}  // namespace
}  // namespace cf::testing
