// Executor on CUDA: CUDA Graph capture and replay (bit-identical with eager
// runs, parameter updates seen by replays, fallback with a clear error for a
// kernel that cannot be captured), views, determinism and per-node timing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "graph/autodiff.h"
#include "graph/executor.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul.h"
#include "ops/norm/norm.h"
#include "ops/reduce/reduce.h"
#include "ops/shape/shape.h"
#include "runtime/cuda_check.h"
#include "tests/support/op_harness.h"
#include "tests/support/test_ops.h"

namespace cf::testing {
namespace {

#if CF_HAS_CUDA
// exec_gpu_test_sync: y = x, but the CUDA kernel synchronises its stream, which
// is not allowed while a CUDA Graph is being captured.
Status SyncCuda(KernelContext& ctx) {
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream->native());
  CF_CUDA_CHECK(cudaMemcpyAsync(ctx.outputs[0].raw(), ctx.inputs[0].raw(),
                                static_cast<size_t>(ctx.inputs[0].nbytes()), cudaMemcpyDeviceToDevice, s));
  CF_CUDA_CHECK(cudaStreamSynchronize(s));
  return absl::OkStatus();
}
CF_REGISTER_OP(SameTypeTestOp("exec_gpu_test_sync", 1));
CF_REGISTER_KERNEL("exec_gpu_test_sync", kCUDA, SyncCuda);

// exec_gpu_test_alloc: y = x through a temporary device tensor taken from the
// caching allocator and freed on return (no cudaMalloc once the cache holds a
// block, so a capture would succeed and point at memory handed out again).
Status AllocCuda(KernelContext& ctx) {
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream->native());
  CF_ASSIGN_OR_RETURN(Tensor tmp, Tensor::Empty(ctx.inputs[0].shape(), ctx.inputs[0].dtype(), ctx.device));
  const size_t bytes = static_cast<size_t>(ctx.inputs[0].nbytes());
  CF_CUDA_CHECK(cudaMemcpyAsync(tmp.raw(), ctx.inputs[0].raw(), bytes, cudaMemcpyDeviceToDevice, s));
  CF_CUDA_CHECK(cudaMemcpyAsync(ctx.outputs[0].raw(), tmp.raw(), bytes, cudaMemcpyDeviceToDevice, s));
  return absl::OkStatus();
}
CF_REGISTER_OP(SameTypeTestOp("exec_gpu_test_alloc", 1));
CF_REGISTER_KERNEL("exec_gpu_test_alloc", kCUDA, AllocCuda);

// exec_gpu_test_lazy: writes only element 0 (y[0] = x[0]); the rest of the
// output stays as the executor left it (poisoned).
Status LazyCuda(KernelContext& ctx) {
  cudaStream_t s = static_cast<cudaStream_t>(ctx.stream->native());
  CF_CUDA_CHECK(cudaMemcpyAsync(ctx.outputs[0].raw(), ctx.inputs[0].raw(),
                                static_cast<size_t>(DTypeSize(ctx.inputs[0].dtype())), cudaMemcpyDeviceToDevice, s));
  return absl::OkStatus();
}
CF_REGISTER_OP(SameTypeTestOp("exec_gpu_test_lazy", 1));
CF_REGISTER_KERNEL("exec_gpu_test_lazy", kCUDA, LazyCuda);
#endif

ExecutorOptions OnGpu(bool cuda_graph = false) {
  ExecutorOptions o;
  o.device = Device::CUDA();
  o.cuda_graph = cuda_graph;
  o.poison = true;
  return o;
}

Tensor Host(const Tensor& t) { return t.device().is_cpu() ? t : t.To(Device::CPU()).value(); }
::testing::AssertionResult BitIdentical(const Tensor& a, const Tensor& b) {
  Tensor ha = Host(a), hb = Host(b);
  if (ha.shape() != hb.shape() || ha.dtype() != hb.dtype())
    return ::testing::AssertionFailure() << ha.DebugString() << " vs " << hb.DebugString();
  if (std::memcmp(ha.raw(), hb.raw(), static_cast<size_t>(ha.nbytes())) != 0)
    return ::testing::AssertionFailure() << "bytes differ";
  return ::testing::AssertionSuccess();
}

// Elementwise ops and views: x [4, 6, 8] -> scalar-free outputs.
void BuildElementwise(Builder& b) {
  Value x = b.Input("x", Shape{4, 6, 8}, DType::f32);
  Value w = b.Parameter("w", Shape{8}, DType::f32, RandomTensor(Shape{8}, DType::f32, 1));
  Value h = Exp(Scale(x, 0.5, 0.1)) * w;       // broadcast
  Value v = Reshape(h, {24, 8});               // a view of an arena value
  Value xv = Reshape(x, {24, 8});              // a view of an input
  b.MarkOutput(Add(v, xv) - Square(v), "y");
  b.MarkOutput(Neg(h), "h");
}

// A transformer-ish block: layer norm, matmuls, softmax, SiLU.
void BuildBlock(Builder& b) {
  Value x = b.Input("x", Shape{2, 16, 32}, DType::f32);
  Value gamma = b.Parameter("ln.weight", Shape{32}, DType::f32, RandomTensor(Shape{32}, DType::f32, 2));
  Value beta = b.Parameter("ln.bias", Shape{32}, DType::f32, RandomTensor(Shape{32}, DType::f32, 6));
  Value wq = b.Parameter("wq", Shape{32, 32}, DType::f32, RandomTensor(Shape{32, 32}, DType::f32, 3));
  Value wo = b.Parameter("wo", Shape{32, 32}, DType::f32, RandomTensor(Shape{32, 32}, DType::f32, 4));
  Value h = LayerNorm(x, gamma, beta);
  Value q = Linear(h, wq);
  Value a = Softmax(Scale(MatMul(q, h, std::nullopt, {.trans_b = true}), 0.125));
  b.MarkOutput(x + Silu(Linear(MatMul(a, h), wo)), "y");
}

void CheckReplay(void (*build)(Builder&)) {
  Graph g;
  Builder b(&g);
  build(b);
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto eager, Executor::Create(g, OnGpu(false)));
  CF_ASSERT_OK_AND_ASSIGN(auto replay, Executor::Create(g, OnGpu(true)));
  const std::string in_name = g.value(g.Inputs()[0]).name;
  const Shape in_shape = g.value(g.Inputs()[0]).type.shape;
  for (int run = 0; run < 4; ++run) {
    Tensor in = RandomTensor(in_shape, DType::f32, 100 + run);
    if (run == 3) in = in.To(Device::CUDA()).value();  // inputs already on the device work too
    CF_ASSERT_OK_AND_ASSIGN(auto want, eager->Run({{in_name, in}}));
    CF_ASSERT_OK_AND_ASSIGN(auto got, replay->Run({{in_name, in}}));
    CF_ASSERT_OK(replay->cuda_graph_status());
    EXPECT_EQ(replay->last_run().captured, run == 0);
    EXPECT_EQ(replay->last_run().replayed, run > 0);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(BitIdentical(got[i], want[i])) << "run " << run << " output " << i;
  }
  EXPECT_TRUE(replay->has_cuda_graph());
}

TEST(ExecutorGpu, CudaGraphReplayIsBitIdenticalWithEagerRuns) {
  CF_SKIP_WITHOUT_GPU();
  CheckReplay(BuildElementwise);
}

TEST(ExecutorGpu, CudaGraphReplayOfATransformerBlock) {
  CF_SKIP_WITHOUT_GPU();
  CheckReplay(BuildBlock);
}

TEST(ExecutorGpu, ReplaySeesParameterUpdatesAndKeepsOldOutputs) {
  CF_SKIP_WITHOUT_GPU();
  Graph g;
  Builder b(&g);
  BuildElementwise(b);
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto eager, Executor::Create(g, OnGpu(false)));
  CF_ASSERT_OK_AND_ASSIGN(auto replay, Executor::Create(g, OnGpu(true)));
  Tensor in = RandomTensor(Shape{4, 6, 8}, DType::f32, 7);
  CF_ASSERT_OK_AND_ASSIGN(auto first, replay->Run({{"x", in}}));  // captures
  Tensor first_host = Host(first[0]);
  Tensor w2 = RandomTensor(Shape{8}, DType::f32, 8);
  CF_ASSERT_OK(eager->SetParameter("w", w2));
  CF_ASSERT_OK(replay->SetParameter("w", w2));
  CF_ASSERT_OK_AND_ASSIGN(auto want, eager->Run({{"x", in}}));
  CF_ASSERT_OK_AND_ASSIGN(auto got, replay->Run({{"x", in}}));
  EXPECT_TRUE(replay->last_run().replayed);
  EXPECT_TRUE(BitIdentical(got[0], want[0]));
  EXPECT_TRUE(BitIdentical(first[0], first_host)) << "a replay overwrote an earlier run's output";
  EXPECT_FALSE(BitIdentical(got[0], first_host));
}

TEST(ExecutorGpu, UncapturableKernelFallsBackWithAClearError) {
  CF_SKIP_WITHOUT_GPU();
  for (bool strict : {false, true}) {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{64}, DType::f32);
    Value y;
    {
      auto s = b.scope("blk");
      y = b.Op1("exec_gpu_test_sync", {Scale(x, 2.0)});
    }
    b.MarkOutput(Scale(y, 1.0, 1.0), "y");
    CF_ASSERT_OK(b.status());
    ExecutorOptions o = OnGpu(true);
    o.cuda_graph_strict = strict;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, o));
    Tensor in = RandomTensor(Shape{64}, DType::f32, 1);
    std::vector<double> want = ToDoubles(in);
    for (double& v : want) v = 2 * v + 1;
    auto r = exec->Run({{"x", in}});
    const Status& why = strict ? r.status() : exec->cuda_graph_status();
    ASSERT_FALSE(why.ok());
    std::string msg(why.message());
    EXPECT_NE(msg.find("CUDA Graph capture failed at exec_gpu_test_sync (node 1, scope 'blk')"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("cuda_graph = false"), std::string::npos) << msg;
    if (strict) continue;
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(testing::AllClose(ToDoubles((*r)[0]), want, 1e-6, 1e-6));
    CF_ASSERT_OK_AND_ASSIGN(auto again, exec->Run({{"x", in}}));  // eager from now on
    EXPECT_FALSE(exec->last_run().replayed);
    EXPECT_FALSE(exec->has_cuda_graph());
    EXPECT_TRUE(testing::AllClose(ToDoubles(again[0]), want, 1e-6, 1e-6));
  }
}

// A kernel that allocates (from the cache, so the capture itself succeeds)
// is refused: the graph would point at memory the allocator hands out again.
// The run falls back to eager execution with the reason, or fails when strict.
TEST(ExecutorGpu, CaptureRefusesKernelsThatAllocate) {
  CF_SKIP_WITHOUT_GPU();
  for (bool strict : {false, true}) {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{300}, DType::f32);
    b.MarkOutput(Scale(b.Op1("exec_gpu_test_alloc", {Scale(x, 2.0)}), 1.0, 1.0), "y");
    CF_ASSERT_OK(b.status());
    Tensor in = RandomTensor(Shape{300}, DType::f32, 3);
    std::vector<double> want = ToDoubles(in);
    for (double& v : want) v = 2 * v + 1;
    // An eager run first puts a block of the temporary's size in the cache.
    CF_ASSERT_OK_AND_ASSIGN(auto eager, Executor::Create(g, OnGpu(false)));
    CF_ASSERT_OK_AND_ASSIGN(auto warm, eager->Run({{"x", in}}));
    EXPECT_TRUE(testing::AllClose(ToDoubles(warm[0]), want, 1e-6, 1e-6));
    ExecutorOptions o = OnGpu(true);
    o.cuda_graph_strict = strict;
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, o));
    auto r = exec->Run({{"x", in}});
    const Status& why = strict ? r.status() : exec->cuda_graph_status();
    ASSERT_FALSE(why.ok()) << "a capture with an allocating kernel was accepted";
    const std::string msg(why.message());
    EXPECT_NE(msg.find("CUDA Graph capture failed"), std::string::npos) << msg;
    EXPECT_NE(msg.find("device allocation(s) during capture"), std::string::npos) << msg;
    EXPECT_FALSE(exec->has_cuda_graph());
    if (strict) continue;
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_TRUE(testing::AllClose(ToDoubles((*r)[0]), want, 1e-6, 1e-6));
    CF_ASSERT_OK_AND_ASSIGN(auto again, exec->Run({{"x", in}}));
    EXPECT_FALSE(exec->last_run().replayed);
    EXPECT_TRUE(testing::AllClose(ToDoubles(again[0]), want, 1e-6, 1e-6));
  }
}

// Poisoning on the CUDA path: what a kernel leaves unwritten is NaN, in an
// output and in an arena intermediate, on every run, in every float dtype.
TEST(ExecutorGpu, PoisonExposesUnwrittenOutputs) {
  CF_SKIP_WITHOUT_GPU();
  for (DType t : kGpuDTypes) {
    Graph g;
    Builder b(&g);
    Value x = b.Input("x", Shape{64}, t);
    b.MarkOutput(b.Op1("exec_gpu_test_lazy", {x}), "direct");
    b.MarkOutput(Scale(b.Op1("exec_gpu_test_lazy", {Scale(x, 1.0, 1.0)}), 2.0), "through_arena");
    CF_ASSERT_OK(b.status());
    CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, OnGpu(false)));
    Tensor in = CastTo(RandomTensor(Shape{64}, DType::f32, 9), t);
    const double x0 = ToDoubles(in)[0];
    for (int run = 0; run < 2; ++run) {
      CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", in}}));
      ASSERT_EQ(out.size(), 2u);
      const std::vector<double> direct = ToDoubles(out[0]), arena = ToDoubles(out[1]);
      EXPECT_EQ(direct[0], x0);
      EXPECT_NEAR(arena[0], 2 * (x0 + 1), 1e-2 * std::fabs(2 * (x0 + 1)));
      for (int i = 1; i < 64; ++i) {
        EXPECT_TRUE(std::isnan(direct[i])) << DTypeName(t) << " run " << run << " output element " << i;
        EXPECT_TRUE(std::isnan(arena[i])) << DTypeName(t) << " run " << run << " intermediate element " << i;
      }
    }
  }
}

TEST(ExecutorGpu, EagerRunsAreDeterministicAndMatchTheCpu) {
  CF_SKIP_WITHOUT_GPU();
  Graph g;
  Builder b(&g);
  BuildBlock(b);
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto gpu, Executor::Create(g, OnGpu(false)));
  ExecutorOptions cpu_opts;
  cpu_opts.poison = true;
  CF_ASSERT_OK_AND_ASSIGN(auto cpu, Executor::Create(g, cpu_opts));
  Tensor in = RandomTensor(Shape{2, 16, 32}, DType::f32, 5);
  CF_ASSERT_OK_AND_ASSIGN(auto a, gpu->Run({{"x", in}}));
  CF_ASSERT_OK_AND_ASSIGN(auto c, gpu->Run({{"x", in}}));
  EXPECT_TRUE(BitIdentical(a[0], c[0]));
  CF_ASSERT_OK_AND_ASSIGN(auto ref, cpu->Run({{"x", in}}));
  // TF32 is off unless an op asks for it (allow_tf32): the f32 convention.
  EXPECT_TRUE(testing::AllClose(ToDoubles(a[0]), ToDoubles(ref[0]), 1e-5, 1e-5));
}

TEST(ExecutorGpu, ViewsAreBoundWithoutKernels) {
  CF_SKIP_WITHOUT_GPU();
  Graph g;
  Builder b(&g);
  BuildElementwise(b);
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, OnGpu(false)));
  ExecutorOptions cpu_opts;
  cpu_opts.poison = true;
  CF_ASSERT_OK_AND_ASSIGN(auto cpu, Executor::Create(g, cpu_opts));
  Tensor in = RandomTensor(Shape{4, 6, 8}, DType::f32, 1);
  CF_ASSERT_OK_AND_ASSIGN(auto got, exec->Run({{"x", in}}));
  CF_ASSERT_OK_AND_ASSIGN(auto want, cpu->Run({{"x", in}}));
  EXPECT_GE(exec->last_run().views, 2);  // the two reshapes (ops may add their own)
  EXPECT_EQ(exec->last_run().views, cpu->last_run().views);
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(testing::AllClose(ToDoubles(got[i]), ToDoubles(want[i]), 1e-5, 1e-5)) << "output " << i;
}

TEST(ExecutorGpu, PerNodeTimingWithCudaEvents) {
  CF_SKIP_WITHOUT_GPU();
  Graph g;
  Builder b(&g);
  BuildBlock(b);
  CF_ASSERT_OK(b.status());
  ExecutorOptions o = OnGpu(false);
  o.time_nodes = true;
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, o));
  CF_ASSERT_OK(exec->Run({{"x", RandomTensor(Shape{2, 16, 32}, DType::f32, 1)}}).status());
  ASSERT_EQ(exec->timings().size(), static_cast<size_t>(g.num_nodes()));
  double total = 0;
  for (const NodeTiming& t : exec->timings()) {
    EXPECT_GE(t.ms, 0.0);
    total += t.ms;
  }
  EXPECT_GT(total, 0.0);
  TimingSummary s = SummarizeTimings(exec->timings());
  EXPECT_NEAR(s.total_ms, total, 1e-9);
  EXPECT_FALSE(s.ToMarkdown().empty());
}

}  // namespace
}  // namespace cf::testing
