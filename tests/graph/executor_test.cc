// Executor on the CPU: the planner contract (in-place, views bound without a
// kernel), errors for bad bindings, determinism, poisoning, workspace and the
// per-node timing tables. Test-only ops (prefix "exec_test_") keep these
// tests independent of the op families and let them count kernel calls.
#include "graph/executor.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

#include "graph/builder.h"
#include "ops/core/full.h"
#include "tests/support/op_harness.h"
#include "tests/support/test_ops.h"

namespace cf::testing {
namespace {

std::atomic<int> g_view_calls{0};
std::atomic<int> g_add1_calls{0};

// exec_test_add1: y = x + 1 on f32; may overwrite its input.
Status Add1Cpu(KernelContext& ctx) {
  ++g_add1_calls;
  const float* x = ctx.inputs[0].data<float>();
  float* y = ctx.outputs[0].data<float>();
  for (int64_t i = 0; i < ctx.inputs[0].numel(); ++i) y[i] = x[i] + 1.0f;
  return absl::OkStatus();
}
OpDef Add1Def() {
  OpDef d = SameTypeTestOp("exec_test_add1", 1);
  d.inplace_ok = true;
  return d;
}

// exec_test_addab: y = a + b on f32 (same shapes).
Status AddAbCpu(KernelContext& ctx) {
  const float* a = ctx.inputs[0].data<float>();
  const float* b = ctx.inputs[1].data<float>();
  float* y = ctx.outputs[0].data<float>();
  for (int64_t i = 0; i < ctx.inputs[0].numel(); ++i) y[i] = a[i] + b[i];
  return absl::OkStatus();
}

// exec_test_view: input 0 under attribute `shape` (a view); the kernel copies
// and counts its calls, so tests see when the executor skips it.
StatusOr<std::vector<TensorType>> InferView(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.attrs.RequireInts("shape"));
  Shape s(dims);
  CF_CHECK_ARG(s.numel() == c.inputs[0].shape.numel(), "bad view shape");
  return std::vector<TensorType>{{s, c.inputs[0].dtype}};
}
Status ViewCpu(KernelContext& ctx) {
  ++g_view_calls;
  if (ctx.inputs[0].raw() != ctx.outputs[0].raw())
    std::memcpy(ctx.outputs[0].raw(), ctx.inputs[0].raw(), static_cast<size_t>(ctx.inputs[0].nbytes()));
  return absl::OkStatus();
}
OpDef ViewDef() {
  OpDef d = SameTypeTestOp("exec_test_view", 1);
  d.infer = InferView;
  d.view_of_input0 = true;
  return d;
}

// exec_test_workspace: asks for `bytes` of workspace, writes into it, y = x.
Status WorkspaceCpu(KernelContext& ctx) {
  const int64_t bytes = ctx.attrs.Int("bytes", 0);
  CF_ASSIGN_OR_RETURN(void* ws, ctx.workspace(bytes));
  std::memset(ws, 0x5a, static_cast<size_t>(bytes));
  std::memcpy(ctx.outputs[0].raw(), ctx.inputs[0].raw(), static_cast<size_t>(ctx.inputs[0].nbytes()));
  return absl::OkStatus();
}

// exec_test_lazy: writes only the first element (the rest stays poisoned).
Status LazyCpu(KernelContext& ctx) {
  ctx.outputs[0].data<float>()[0] = 7.0f;
  return absl::OkStatus();
}

// exec_test_fails: its kernel always returns an error.
Status FailsCpu(KernelContext&) { return absl::InvalidArgumentError("deliberate kernel failure"); }

// exec_test_nokernel: defined, with no kernel anywhere; exec_test_cudaonly:
// a (never called) CUDA kernel only.
Status NeverCalled(KernelContext&) { return absl::InternalError("never called"); }

CF_REGISTER_OP(Add1Def());
CF_REGISTER_KERNEL("exec_test_add1", kCPU, Add1Cpu);
CF_REGISTER_OP(SameTypeTestOp("exec_test_addab", 2));
CF_REGISTER_KERNEL("exec_test_addab", kCPU, AddAbCpu);
CF_REGISTER_OP(ViewDef());
CF_REGISTER_KERNEL("exec_test_view", kCPU, ViewCpu);
CF_REGISTER_OP(SameTypeTestOp("exec_test_workspace", 1));
CF_REGISTER_KERNEL("exec_test_workspace", kCPU, WorkspaceCpu);
CF_REGISTER_OP(SameTypeTestOp("exec_test_lazy", 1));
CF_REGISTER_KERNEL("exec_test_lazy", kCPU, LazyCpu);
CF_REGISTER_OP(SameTypeTestOp("exec_test_fails", 1));
CF_REGISTER_KERNEL("exec_test_fails", kCPU, FailsCpu);
CF_REGISTER_OP(SameTypeTestOp("exec_test_nokernel", 1));
CF_REGISTER_OP(SameTypeTestOp("exec_test_cudaonly", 1));
CF_REGISTER_KERNEL("exec_test_cudaonly", kCUDA, NeverCalled);

Value Add1(Value x) { return x.b->Op1("exec_test_add1", {x}); }
Value AddAb(Value a, Value b) { return a.b->Op1("exec_test_addab", {a, b}); }
Value View(Value x, std::vector<int64_t> shape) {
  return x.b->Op1("exec_test_view", {x}, Attrs{{"shape", std::move(shape)}});
}

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
ExecutorOptions Poisoned() {
  ExecutorOptions o;
  o.poison = true;
  return o;
}
ExecutorOptions Timed() {
  ExecutorOptions o;
  o.time_nodes = true;
  return o;
}
bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), static_cast<size_t>(a.nbytes())) == 0;
}

// ---- Running and the planner contract -----------------------------------------

TEST(Executor, RunsAChainAndReturnsFreshOutputs) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{3, 5}, DType::f32);
  b.MarkOutput(Add1(Add1(Add1(x))), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  Tensor in = Iota(Shape{3, 5});
  CF_ASSERT_OK_AND_ASSIGN(auto out1, exec->Run({{"x", in}}));
  ASSERT_EQ(out1.size(), 1u);
  EXPECT_EQ(ToDoubles(out1[0]), Plus(in, 3));
  // A second run with other inputs leaves the first run's output untouched.
  CF_ASSERT_OK_AND_ASSIGN(auto out2, exec->Run({{"x", Iota(Shape{3, 5}, 100)}}));
  EXPECT_EQ(ToDoubles(out1[0]), Plus(in, 3));
  EXPECT_EQ(ToDoubles(out2[0]), Plus(Iota(Shape{3, 5}, 100), 3));
  EXPECT_EQ(exec->last_run().kernels, 3);
  EXPECT_EQ(exec->last_run().views, 0);
  EXPECT_FALSE(exec->last_run().replayed);
  // The input is read, never written.
  EXPECT_EQ(ToDoubles(in), ToDoubles(Iota(Shape{3, 5})));
}

TEST(Executor, InPlaceNodesShareTheirInputsBytes) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{64}, DType::f32);
  Value t1 = AddAb(x, x);      // arena
  Value t2 = Add1(t1);         // t1 dies here: in place
  Value t3 = Add1(t2);         // in place again
  b.MarkOutput(AddAb(t3, t3), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  const MemoryPlan& plan = exec->plan();
  EXPECT_EQ(plan.placement[t2.id], Placement::kInPlace);
  EXPECT_EQ(plan.offset[t2.id], plan.offset[t1.id]);
  EXPECT_EQ(plan.offset[t3.id], plan.offset[t1.id]);
  Tensor in = Iota(Shape{64});
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", in}}));
  std::vector<double> want = ToDoubles(in);
  for (double& v : want) v = 2 * (2 * v + 2);
  EXPECT_EQ(ToDoubles(out[0]), want);
}

TEST(Executor, ViewOfAnArenaValueSkipsItsKernel) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4, 6}, DType::f32);
  Value t = Add1(x);
  Value v = View(t, {2, 12});
  b.MarkOutput(Add1(v), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  EXPECT_EQ(exec->plan().placement[v.id], Placement::kView);
  EXPECT_EQ(exec->plan().alias_of[v.id], t.id);
  const int before = g_view_calls;
  Tensor in = Iota(Shape{4, 6});
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", in}}));
  EXPECT_EQ(g_view_calls - before, 0);
  EXPECT_EQ(exec->last_run().views, 1);
  EXPECT_EQ(exec->last_run().kernels, 2);
  EXPECT_EQ(out[0].shape(), (Shape{2, 12}));
  EXPECT_EQ(ToDoubles(out[0]), Plus(in, 2));
}

TEST(Executor, ViewsOfInputsParametersAndConstantsAreBound) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2, 3}, DType::f32);
  Tensor wdata = Iota(Shape{6}, 10);
  Value w = b.Parameter("w", Shape{6}, DType::f32, wdata);
  Value c = b.Constant(Iota(Shape{3, 2}, 50), "c");
  Value xv = View(x, {6});
  Value wv = View(w, {6});
  Value cv = View(View(c, {2, 3}), {6});  // a view of a bound view
  b.MarkOutput(AddAb(AddAb(xv, wv), Add1(cv)), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  for (Value v : {xv, wv, cv}) {
    EXPECT_EQ(exec->plan().placement[v.id], Placement::kBoundView);
    EXPECT_EQ(exec->plan().offset[v.id], -1);
  }
  const int before = g_view_calls;
  Tensor in = Iota(Shape{2, 3}, 1);
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", in}}));
  EXPECT_EQ(g_view_calls - before, 0);
  EXPECT_EQ(exec->last_run().views, 4);
  std::vector<double> want(6);
  for (int i = 0; i < 6; ++i) want[i] = (1 + i) + (10 + i) + (50 + i + 1);
  EXPECT_EQ(ToDoubles(out[0]), want);
  EXPECT_EQ(ToDoubles(in), ToDoubles(Iota(Shape{2, 3}, 1)));  // views never write
  // The parameter's value can change between runs; the view follows it.
  CF_ASSERT_OK(exec->SetParameter("w", Iota(Shape{6}, 20)));
  CF_ASSERT_OK_AND_ASSIGN(out, exec->Run({{"x", in}}));
  for (int i = 0; i < 6; ++i) want[i] += 10;
  EXPECT_EQ(ToDoubles(out[0]), want);
}

TEST(Executor, ViewThatIsAGraphOutputRunsItsCopyKernel) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{3, 4}, DType::f32);
  Value v = View(Add1(x), {12});
  b.MarkOutput(v, "y");
  Value xv = View(x, {4, 3});  // a view of an input that is an output: copied too
  b.MarkOutput(xv, "xv");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  EXPECT_EQ(exec->plan().alias_of[v.id], -1);
  const int before = g_view_calls;
  Tensor in = Iota(Shape{3, 4});
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->RunNamed({{"x", in}}));
  EXPECT_EQ(g_view_calls - before, 2);
  EXPECT_EQ(out["y"].shape(), (Shape{12}));
  EXPECT_EQ(ToDoubles(out["y"]), Plus(in, 1));
  EXPECT_EQ(out["xv"].shape(), (Shape{4, 3}));
  EXPECT_EQ(ToDoubles(out["xv"]), ToDoubles(in));
  EXPECT_NE(out["xv"].raw(), in.raw());  // an output is never the caller's input under another shape
}

TEST(Executor, ViewsCanBeTurnedOffInThePlan) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4}, DType::f32);
  b.MarkOutput(Add1(View(Add1(x), {2, 2})), "y");
  CF_ASSERT_OK(b.status());
  ExecutorOptions opts;
  opts.plan.allow_views = false;
  opts.poison = true;
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, opts));
  const int before = g_view_calls;
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", Iota(Shape{4})}}));
  EXPECT_EQ(g_view_calls - before, 1);
  EXPECT_EQ(exec->last_run().views, 0);
  EXPECT_EQ(ToDoubles(out[0]), Plus(Iota(Shape{4}), 2));
}

TEST(Executor, InputsAndParametersMarkedAsOutputsAreReturned) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{3}, DType::f32);
  Value w = b.Parameter("w", Shape{3}, DType::f32, Iota(Shape{3}, 5));
  b.MarkOutput(x, "x_out");
  b.MarkOutput(w, "w_out");
  b.MarkOutput(AddAb(x, w), "sum");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->RunNamed({{"x", Iota(Shape{3})}}));
  EXPECT_EQ(ToDoubles(out["x_out"]), (std::vector<double>{0, 1, 2}));
  EXPECT_EQ(ToDoubles(out["w_out"]), (std::vector<double>{5, 6, 7}));
  EXPECT_EQ(ToDoubles(out["sum"]), (std::vector<double>{5, 7, 9}));
  CF_ASSERT_OK_AND_ASSIGN(Tensor wt, exec->GetParameter("w"));
  EXPECT_EQ(ToDoubles(wt), (std::vector<double>{5, 6, 7}));
}

TEST(Executor, FullOpRunsWithoutInputs) {
  Graph g;
  Builder b(&g);
  b.MarkOutput(Full(b, Shape{2, 2}, DType::f64, 1.5), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({}));
  EXPECT_EQ(ToDoubles(out[0]), (std::vector<double>{1.5, 1.5, 1.5, 1.5}));
}

TEST(Executor, TwoRunsWithTheSameInputsAreBitIdentical) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{5, 7}, DType::f32);
  Value w = b.Parameter("w", Shape{5, 7}, DType::f32, RandomTensor(Shape{5, 7}, DType::f32, 3));
  Value h = AddAb(Add1(x), w);
  Value v = View(h, {35});
  b.MarkOutput(Add1(AddAb(v, v)), "y");
  b.MarkOutput(h, "h");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  Tensor in = RandomTensor(Shape{5, 7}, DType::f32, 4);
  CF_ASSERT_OK_AND_ASSIGN(auto a, exec->Run({{"x", in}}));
  CF_ASSERT_OK_AND_ASSIGN(auto c, exec->Run({{"x", in}}));
  ASSERT_EQ(a.size(), c.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(SameBytes(a[i], c[i])) << "output " << i;
}

TEST(Executor, PoisonExposesUnwrittenOutputs) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4}, DType::f32);
  b.MarkOutput(x.b->Op1("exec_test_lazy", {x}), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Poisoned()));
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", Iota(Shape{4})}}));
  std::vector<double> y = ToDoubles(out[0]);
  EXPECT_EQ(y[0], 7.0);
  for (int i = 1; i < 4; ++i) EXPECT_TRUE(std::isnan(y[i])) << i;
}

TEST(Executor, WorkspaceIsReportedInThePlan) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{4}, DType::f32);
  Value y = b.Op1("exec_test_workspace", {x}, Attrs{{"bytes", int64_t{1000}}});
  b.MarkOutput(b.Op1("exec_test_workspace", {y}, Attrs{{"bytes", int64_t{3000}}}), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  EXPECT_EQ(exec->workspace_bytes(), 0);
  CF_ASSERT_OK_AND_ASSIGN(auto out, exec->Run({{"x", Iota(Shape{4})}}));
  EXPECT_EQ(exec->workspace_bytes(), 3000);
  EXPECT_EQ(exec->plan().workspace_bytes, 3000);
  EXPECT_GE(exec->device_bytes(), exec->plan().arena_bytes + 3000);
  EXPECT_EQ(ToDoubles(out[0]), ToDoubles(Iota(Shape{4})));
}

// ---- Bad input -----------------------------------------------------------------------

class ExecutorErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    b_ = std::make_unique<Builder>(&g_);
    Value x = b_->Input("x", Shape{2, 3}, DType::f32);
    Value w = b_->Parameter("w", Shape{2, 3}, DType::f32);  // shape only
    b_->MarkOutput(AddAb(x, w), "y");
    ASSERT_TRUE(b_->ok()) << b_->status().message();
    auto e = Executor::Create(g_);
    ASSERT_TRUE(e.ok()) << e.status().message();
    exec_ = std::move(e).value();
  }
  static std::string RunError(Executor& e, const std::map<std::string, Tensor>& in) {
    auto r = e.Run(in);
    return r.ok() ? "OK" : std::string(r.status().message());
  }
  Graph g_;
  std::unique_ptr<Builder> b_;
  std::unique_ptr<Executor> exec_;
};

TEST_F(ExecutorErrors, ParameterWithoutValue) {
  std::string msg = RunError(*exec_, {{"x", Iota(Shape{2, 3})}});
  EXPECT_NE(msg.find("parameter 'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("SetParameter"), std::string::npos) << msg;
  CF_ASSERT_OK(exec_->SetParameter("w", Iota(Shape{2, 3})));
  EXPECT_EQ(RunError(*exec_, {{"x", Iota(Shape{2, 3})}}), "OK");
}

TEST_F(ExecutorErrors, MissingInput) {
  CF_ASSERT_OK(exec_->SetParameter("w", Iota(Shape{2, 3})));
  std::string msg = RunError(*exec_, {});
  EXPECT_NE(msg.find("input 'x' (f32[2, 3]) is not bound"), std::string::npos) << msg;
}

TEST_F(ExecutorErrors, UnknownInputName) {
  CF_ASSERT_OK(exec_->SetParameter("w", Iota(Shape{2, 3})));
  std::string msg = RunError(*exec_, {{"x", Iota(Shape{2, 3})}, {"z", Iota(Shape{1})}});
  EXPECT_NE(msg.find("no input named 'z'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("its inputs: x"), std::string::npos) << msg;
}

TEST_F(ExecutorErrors, MisShapedInput) {
  CF_ASSERT_OK(exec_->SetParameter("w", Iota(Shape{2, 3})));
  std::string msg = RunError(*exec_, {{"x", Iota(Shape{3, 2})}});
  EXPECT_NE(msg.find("input 'x' must be f32[2, 3], got f32[3, 2]"), std::string::npos) << msg;
}

TEST_F(ExecutorErrors, MisTypedInput) {
  CF_ASSERT_OK(exec_->SetParameter("w", Iota(Shape{2, 3})));
  std::string msg = RunError(*exec_, {{"x", testing::CastTo(Iota(Shape{2, 3}), DType::f16)}});
  EXPECT_NE(msg.find("must be f32[2, 3], got f16[2, 3]"), std::string::npos) << msg;
  msg = RunError(*exec_, {{"x", Tensor()}});
  EXPECT_NE(msg.find("undefined tensor"), std::string::npos) << msg;
}

TEST_F(ExecutorErrors, BadParameterValues) {
  Status s = exec_->SetParameter("w", Iota(Shape{6}));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("'w' is f32[2, 3], given f32[6]"), std::string::npos) << s.message();
  s = exec_->SetParameter("nope", Iota(Shape{2, 3}));
  EXPECT_NE(std::string(s.message()).find("no parameter 'nope'"), std::string::npos) << s.message();
  EXPECT_FALSE(exec_->GetParameter("nope").ok());
}

TEST(ExecutorCreate, OpWithoutAKernelForTheDevice) {
  for (const char* op : {"exec_test_nokernel", "exec_test_cudaonly"}) {
    Graph g;
    Builder b(&g);
    auto s = b.scope("block");
    b.MarkOutput(b.Op1(op, {b.Input("x", Shape{2}, DType::f32)}), "y");
    CF_ASSERT_OK(b.status());
    auto e = Executor::Create(g);
    ASSERT_FALSE(e.ok());
    std::string msg(e.status().message());
    EXPECT_EQ(e.status().code(), absl::StatusCode::kUnimplemented);
    EXPECT_NE(msg.find(absl::StrCat(op, " (node 0, scope 'block') has no kernel for cpu")), std::string::npos)
        << msg;
    if (std::string(op) == "exec_test_cudaonly") {
      EXPECT_NE(msg.find("it has one for cuda"), std::string::npos) << msg;
    }
  }
}

TEST(ExecutorCreate, KernelErrorsNameTheNodeAndScope) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2}, DType::f32);
  {
    auto s = b.scope("unet.mid");
    b.MarkOutput(b.Op1("exec_test_fails", {Add1(x)}), "y");
  }
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g));
  auto r = exec->Run({{"x", Iota(Shape{2})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("running exec_test_fails (node 1, scope 'unet.mid'): deliberate"),
            std::string::npos)
      << r.status().message();
}

TEST(ExecutorCreate, OptionsThatDoNotFitTheDevice) {
  Graph g;
  Builder b(&g);
  b.MarkOutput(Add1(b.Input("x", Shape{2}, DType::f32)), "y");
  CF_ASSERT_OK(b.status());
  ExecutorOptions graph_on_cpu;
  graph_on_cpu.cuda_graph = true;
  auto e = Executor::Create(g, graph_on_cpu);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("cuda_graph needs a CUDA device"), std::string::npos);
  if (CudaDeviceCount() == 0) {
    ExecutorOptions cuda;
    cuda.device = Device::CUDA();
    e = Executor::Create(g, cuda);
    ASSERT_FALSE(e.ok());  // no backend or no GPU: a clear error, not a crash
    EXPECT_FALSE(std::string(e.status().message()).empty());
  }
}

TEST(ExecutorCreate, InvalidGraphIsRejected) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{2}, DType::f32);
  b.Input("x", Shape{3}, DType::f32);  // a second input named x
  b.MarkOutput(Add1(x), "y");
  auto e = Executor::Create(g);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(std::string(e.status().message()).find("two inputs named 'x'"), std::string::npos)
      << e.status().message();
}

// ---- Timing ---------------------------------------------------------------------------

TEST(ExecutorTiming, OneTimingPerNodeInOrder) {
  Graph g;
  Builder b(&g);
  Value x = b.Input("x", Shape{256}, DType::f32);
  Value h;
  {
    auto s = b.scope("enc");
    auto s1 = b.scope("layer0");
    h = Add1(x);
  }
  {
    auto s = b.scope("enc");
    auto s1 = b.scope("layer1");
    h = View(Add1(h), {16, 16});
  }
  b.MarkOutput(Add1(h), "y");
  CF_ASSERT_OK(b.status());
  CF_ASSERT_OK_AND_ASSIGN(auto exec, Executor::Create(g, Timed()));
  EXPECT_TRUE(exec->timings().empty());
  CF_ASSERT_OK(exec->Run({{"x", Iota(Shape{256})}}).status());
  const auto& t = exec->timings();
  ASSERT_EQ(t.size(), 4u);
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(t[i].node, static_cast<int>(i));
    EXPECT_GE(t[i].ms, 0.0);
  }
  EXPECT_EQ(t[0].scope, "enc.layer0");
  EXPECT_EQ(t[2].op, "exec_test_view");
  TimingSummary s = SummarizeTimings(t);
  EXPECT_EQ(s.nodes, 4);
  ASSERT_EQ(s.by_scope.size(), 4u);  // enc, enc.layer0, enc.layer1, (top)
  EXPECT_EQ(s.by_scope[0].key, "enc");
  EXPECT_EQ(s.by_scope[0].nodes, 3);
}

TEST(ExecutorTiming, SummaryAggregatesByScopePrefixAndOp) {
  std::vector<NodeTiming> t = {
      {0, "conv2d", "unet.down.0", 2.0}, {1, "silu", "unet.down.0", 0.5}, {2, "conv2d", "unet.down.1", 3.0},
      {3, "matmul", "unet.mid", 4.0},    {4, "add", "", 0.5, /*backward=*/true},
  };
  TimingSummary s = SummarizeTimings(t);
  EXPECT_DOUBLE_EQ(s.total_ms, 10.0);
  EXPECT_EQ(s.nodes, 5);
  std::map<std::string, std::pair<int, double>> rows;
  for (const TimingRow& r : s.by_scope) rows[r.key] = {r.nodes, r.ms};
  EXPECT_EQ(rows["unet"], (std::pair<int, double>{4, 9.5}));
  EXPECT_EQ(rows["unet.down"], (std::pair<int, double>{3, 5.5}));
  EXPECT_EQ(rows["unet.down.0"], (std::pair<int, double>{2, 2.5}));
  EXPECT_EQ(rows["unet.mid"], (std::pair<int, double>{1, 4.0}));
  EXPECT_EQ(rows["(top)"], (std::pair<int, double>{1, 0.5}));
  EXPECT_EQ(s.by_scope[0].key, "unet");  // parents first, in execution order
  EXPECT_EQ(s.by_scope[1].key, "unet.down");
  ASSERT_EQ(s.by_op.size(), 4u);
  EXPECT_EQ(s.by_op[0].key, "conv2d");  // most time first
  EXPECT_EQ(s.by_op[0].nodes, 2);
  EXPECT_DOUBLE_EQ(s.by_op[0].ms, 5.0);
  EXPECT_EQ(s.by_op[1].key, "matmul");
  // Depth limit: deeper scopes fold into their ancestor.
  TimingSummary s1 = SummarizeTimings(t, 1);
  ASSERT_EQ(s1.by_scope.size(), 2u);
  EXPECT_EQ(s1.by_scope[0].key, "unet");
  EXPECT_DOUBLE_EQ(s1.by_scope[0].ms, 9.5);
  std::string md = s.ToMarkdown();
  EXPECT_NE(md.find("| scope | nodes | ms | % |"), std::string::npos) << md;
  EXPECT_NE(md.find("| unet.down | 3 | 5.500 | 55.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| conv2d | 2 | 5.000 | 50.0 |"), std::string::npos) << md;
  EXPECT_DOUBLE_EQ(s.backward_ms, 0.5);
  EXPECT_NE(md.find("Total: 10.000 ms over 5 node runs (backward: 0.500 ms, 5.0%)."), std::string::npos) << md;
}

}  // namespace
}  // namespace cf::testing
