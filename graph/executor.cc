#include "graph/executor.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "graph/passes/hoist.h"
#include "runtime/cuda_check.h"
#include "runtime/device_guard.h"
#include "runtime/nvtx.h"

namespace cf {

// Makes the executor's CUDA device current for the rest of the C++ scope
// (kernels launch on the current device); nothing on the CPU.
#if CF_HAS_CUDA
#define CF_EXECUTOR_DEVICE_SCOPE()                                                    \
  std::optional<CudaDeviceGuard> cf_device_guard_;                                    \
  if (options_.device.is_cuda()) {                                                    \
    cf_device_guard_.emplace(options_.device.ordinal);                                \
    CF_RETURN_IF_ERROR(cf_device_guard_->status());                                   \
  }
#else
#define CF_EXECUTOR_DEVICE_SCOPE()
#endif

// ---- Timing tables --------------------------------------------------------------

TimingSummary SummarizeTimings(absl::Span<const NodeTiming> timings, int max_scope_depth) {
  TimingSummary s;
  std::map<std::string, size_t> scope_row, op_row;
  auto add = [](std::vector<TimingRow>& rows, std::map<std::string, size_t>& index, const std::string& key,
                double ms) {
    auto [it, inserted] = index.emplace(key, rows.size());
    if (inserted) rows.push_back({key, 0, 0});
    rows[it->second].nodes += 1;
    rows[it->second].ms += ms;
  };
  for (const NodeTiming& t : timings) {
    s.total_ms += t.ms;
    if (t.backward) s.backward_ms += t.ms;
    s.nodes += 1;
    add(s.by_op, op_row, t.op, t.ms);
    if (t.scope.empty()) {
      add(s.by_scope, scope_row, "(top)", t.ms);
      continue;
    }
    std::vector<std::string> parts = absl::StrSplit(t.scope, '.');
    size_t depth = parts.size();
    if (max_scope_depth > 0) depth = std::min(depth, static_cast<size_t>(max_scope_depth));
    std::string prefix;
    for (size_t d = 0; d < depth; ++d) {
      prefix = d == 0 ? parts[0] : absl::StrCat(prefix, ".", parts[d]);
      add(s.by_scope, scope_row, prefix, t.ms);
    }
  }
  std::stable_sort(s.by_op.begin(), s.by_op.end(),
                   [](const TimingRow& a, const TimingRow& b) { return a.ms > b.ms; });
  return s;
}

std::string TimingSummary::ToMarkdown() const {
  auto pct = [this](double ms) { return total_ms > 0 ? 100.0 * ms / total_ms : 0.0; };
  std::string md = absl::StrFormat("Total: %.3f ms over %d node runs", total_ms, nodes);
  if (backward_ms > 0) absl::StrAppendFormat(&md, " (backward: %.3f ms, %.1f%%)", backward_ms, pct(backward_ms));
  md += ".\n\n";
  md += "| scope | nodes | ms | % |\n|:--|--:|--:|--:|\n";
  for (const TimingRow& r : by_scope) absl::StrAppendFormat(&md, "| %s | %d | %.3f | %.1f |\n", r.key, r.nodes, r.ms, pct(r.ms));
  md += "\n| op | nodes | ms | % |\n|:--|--:|--:|--:|\n";
  for (const TimingRow& r : by_op) absl::StrAppendFormat(&md, "| %s | %d | %.3f | %.1f |\n", r.key, r.nodes, r.ms, pct(r.ms));
  return md;
}

// ---- Set-up ------------------------------------------------------------------------

Executor::~Executor() {
  if (stream_ != nullptr) (void)stream_->Synchronize();
  DestroyCudaGraph();
}

StatusOr<std::unique_ptr<Executor>> Executor::Create(const Graph& graph, ExecutorOptions options) {
  PassReport report;
  std::unique_ptr<Executor> e;
  if (options.passes.fuse || options.passes.cse) {
    CF_ASSIGN_OR_RETURN(Graph optimized, OptimizeGraph(graph, options.passes, &report));
    e.reset(new Executor(std::move(optimized), options));
  } else {
    e.reset(new Executor(graph, options));
  }
  e->pass_report_ = std::move(report);
  CF_RETURN_IF_ERROR(e->Init());
  return e;
}

Status Executor::InitHoisting() {
  HoistPlan h;
  if (options_.passes.fold_constants) {
    h = PlanHoisting(graph_);
  } else {
    h.remove.assign(graph_.num_nodes(), false);
    h.prelude = h.remove;
  }
  const std::vector<bool>& hoist = h.remove;
  run_graph_ = WithoutNodes(graph_, hoist, &run_node_of_);
  hoist_kept_.assign(graph_.num_values(), false);
  for (const Node& n : run_graph_.nodes())
    for (int in : n.inputs)
      if (graph_.value(in).producer >= 0 && hoist[graph_.value(in).producer]) hoist_kept_[in] = true;
  const DeviceKind dev = options_.device.kind;
  for (const Node& n : graph_.nodes()) {
    if (!h.prelude[n.id]) continue;
    Step s;
    s.node = &n;
    s.label = absl::StrCat(n.scope.empty() ? "" : n.scope + "/", n.op->name, " (hoisted)");
    // Views of parameters or of hoisted buffers are bound, not copied.
    s.bind_view = n.op->view_of_input0 && n.outputs.size() == 1 && !n.inputs.empty();
    if (!s.bind_view) {
      s.kernel = OpRegistry::Global().FindKernel(n.op->name, dev);
      if (s.kernel == nullptr)
        return absl::UnimplementedError(
            absl::StrCat("op ", NodeName(n), " has no kernel for ", options_.device.ToString()));
      // stable_inputs stays 0: a node that runs once keeps no state.
    }
    hoist_steps_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

Status Executor::RunHoisted() {
  // Kept outputs live in buffers allocated once (a captured CUDA Graph reads
  // them at fixed addresses); the others only while the hoisted nodes run.
  for (const Step& s : hoist_steps_) {
    if (s.bind_view) continue;
    for (int out : s.node->outputs) {
      const TensorType& t = graph_.value(out).type;
      if (hoist_kept_[out] && values_[out].defined()) continue;
      CF_ASSIGN_OR_RETURN(values_[out], Tensor::Empty(t.shape, t.dtype, options_.device));
    }
  }
  for (Step& s : hoist_steps_) {
    CF_RETURN_IF_ERROR(RunStep(s));
    if (!s.bind_view) {
      --last_run_.kernels;  // RunStep counted it as a step kernel
      ++last_run_.hoisted;
    } else {
      --last_run_.views;
    }
  }
  // Buffers only hoisted nodes read are released (views of leaves stay:
  // the step binds them again anyway).
  static const Tensor kReleased;
  for (const Step& s : hoist_steps_)
    for (int out : s.node->outputs)
      if (!hoist_kept_[out] && run_graph_.value(out).kind == ValueKind::kConstant) values_[out] = kReleased;
  // Steps that derived state (a packed weight) from the old values.
  for (Step& s : steps_)
    for (int in : s.node->inputs)
      if (hoist_kept_[in]) s.state.reset();
  hoist_dirty_ = false;
  return absl::OkStatus();
}

std::string Executor::NodeName(const Node& n) const {
  return absl::StrCat(n.op->name, " (node ", n.id, ", scope '", n.scope, "')");
}

// The value whose bytes `id` finally shares (itself when not aliased).
static int AliasRoot(const MemoryPlan& plan, int id) {
  for (size_t hops = 0; hops <= plan.alias_of.size() && id >= 0; ++hops) {
    const int next = plan.alias_of[id];
    if (next < 0) return id;
    id = next;
  }
  return -1;  // a cycle: reported by the caller
}

// A view node the planner aliased: its output must be input 0's bytes under
// another shape, and not a graph output (those get their own memory).
Status Executor::CheckViewPlan(const Node& n) const {
  auto fail = [&](const std::string& why) {
    return absl::InternalError(absl::StrCat("memory plan: view ", NodeName(n), " ", why));
  };
  if (n.inputs.empty() || n.outputs.size() != 1) return fail("must have one output and an input");
  const int in = n.inputs[0], out = n.outputs[0];
  const ValueInfo& vi = run_graph_.value(in);
  const ValueInfo& vo = run_graph_.value(out);
  if (vo.type.bytes() > vi.type.bytes())
    return fail(absl::StrCat("maps ", vi.type.ToString(), " to the larger ", vo.type.ToString()));
  if (vo.is_output) return fail(absl::StrCat("aliases graph output '", vo.output_name, "'"));
  const int root = AliasRoot(plan_, out);
  if (root < 0 || root != AliasRoot(plan_, in))
    return fail(absl::StrCat("output %", out, " is aliased to %", plan_.alias_of[out], ", not to input %", in,
                             "'s bytes"));
  if (plan_.offset[out] >= 0 && plan_.offset[out] != plan_.offset[in])
    return fail(absl::StrCat("output %", out, " at offset ", plan_.offset[out], " but input %", in, " at ",
                             plan_.offset[in]));
  return absl::OkStatus();
}

Status Executor::Init() {
  const Device dev = options_.device;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(dev));
  CF_EXECUTOR_DEVICE_SCOPE();
  CF_CHECK_ARG(!options_.cuda_graph || dev.is_cuda(), "Executor: cuda_graph needs a CUDA device, got ",
               dev.ToString());
  CF_CHECK_ARG(!(options_.cuda_graph && options_.time_nodes),
               "Executor: time_nodes and cuda_graph cannot be combined (a replayed graph has no per-node "
               "boundaries); time with cuda_graph = false");
  CF_RETURN_IF_ERROR(InitHoisting());
  CF_ASSIGN_OR_RETURN(plan_, PlanMemory(run_graph_, options_.plan));
  const int nv = run_graph_.num_values();
  if (static_cast<int>(plan_.offset.size()) != nv ||
      !(plan_.alias_of.empty() || static_cast<int>(plan_.alias_of.size()) == nv)) {
    return absl::InternalError(absl::StrCat("memory plan has ", plan_.offset.size(), " offsets and ",
                                            plan_.alias_of.size(), " aliases for ", nv, " values"));
  }
  CF_ASSIGN_OR_RETURN(stream_, Stream::Create(dev));

  // Steps: kernels, view binding, NVTX labels.
  const DeviceKind other = dev.is_cpu() ? DeviceKind::kCUDA : DeviceKind::kCPU;
  steps_.resize(run_graph_.num_nodes());
  for (const Node& n : run_graph_.nodes()) {
    Step& s = steps_[n.id];
    s.node = &n;
    s.label = n.scope.empty() ? n.op->name : absl::StrCat(n.scope, "/", n.op->name);
    if (n.op->view_of_input0 && !plan_.alias_of.empty() && n.outputs.size() == 1 &&
        plan_.alias_of[n.outputs[0]] >= 0) {
      CF_RETURN_IF_ERROR(CheckViewPlan(n));
      s.bind_view = true;
      continue;
    }
    for (size_t i = 0; i < n.inputs.size() && i < 64; ++i) {
      const ValueKind k = run_graph_.value(n.inputs[i]).kind;
      if (k == ValueKind::kParameter || k == ValueKind::kConstant) s.stable_inputs |= uint64_t{1} << i;
    }
    s.kernel = OpRegistry::Global().FindKernel(n.op->name, dev.kind);
    if (s.kernel == nullptr) {
      const bool elsewhere = OpRegistry::Global().FindKernel(n.op->name, other) != nullptr;
      return absl::UnimplementedError(absl::StrCat("op ", NodeName(n), " has no kernel for ", dev.ToString(),
                                                   elsewhere ? " (it has one for " : "",
                                                   elsewhere ? (dev.is_cpu() ? "cuda)" : "cpu)") : ""));
    }
  }

  // Memory: the arena, parameters and constants; fixed I/O buffers for replay.
  CF_ASSIGN_OR_RETURN(arena_, Storage::Allocate(dev, plan_.arena_bytes));
  values_.assign(nv, Tensor());
  for (const ValueInfo& v : run_graph_.values()) {
    if (plan_.offset[v.id] >= 0) {
      if (plan_.offset[v.id] + v.type.bytes() > plan_.arena_bytes)
        return absl::InternalError(absl::StrCat("memory plan: %", v.id, " (", v.type.ToString(), ") at offset ",
                                                plan_.offset[v.id], " ends past the arena (", plan_.arena_bytes,
                                                " B)"));
      values_[v.id] = Tensor(arena_, plan_.offset[v.id], v.type.shape, v.type.dtype);
    } else if ((v.kind == ValueKind::kParameter || v.kind == ValueKind::kConstant) && v.data.defined()) {
      CF_ASSIGN_OR_RETURN(values_[v.id], NewDeviceCopy(v.data));
    }
  }
  input_ids_ = run_graph_.Inputs();
  parameter_ids_ = run_graph_.Parameters();
  output_ids_ = run_graph_.Outputs();
  for (int id : output_ids_) {
    if (!plan_.alias_of.empty() && plan_.alias_of[id] >= 0)
      return absl::InternalError(absl::StrCat("memory plan aliases graph output '", run_graph_.value(id).output_name,
                                              "' (%", id, ") to %", plan_.alias_of[id]));
  }
  if (options_.cuda_graph) {
    fixed_.assign(nv, Tensor());
    std::vector<int> ids = input_ids_;
    for (int id : output_ids_)
      if (run_graph_.value(id).kind == ValueKind::kIntermediate) ids.push_back(id);
    for (int id : ids) {
      const TensorType& t = run_graph_.value(id).type;
      CF_ASSIGN_OR_RETURN(fixed_[id], Tensor::Empty(t.shape, t.dtype, dev));
    }
  }
  workspace_fn_ = [this](int64_t bytes) { return Workspace(bytes); };
  if (options_.time_nodes) {
    for (int i = 0; i <= run_graph_.num_nodes(); ++i) {
      CF_ASSIGN_OR_RETURN(auto e, Event::Create(dev));
      events_.push_back(std::move(e));
    }
  }
  return stream_->Synchronize();  // the uploads are done before the first run
}

int64_t Executor::device_bytes() const {
  int64_t bytes = (arena_ ? arena_->bytes() : 0) + (workspace_ ? workspace_->bytes() : 0);
  for (const Tensor& t : fixed_)
    if (t.defined()) bytes += t.nbytes();
  return bytes;
}

void Executor::DestroyCudaGraph() {
#if CF_HAS_CUDA
  if (graph_exec_ != nullptr) (void)cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec_));
#endif
  graph_exec_ = nullptr;
}

// ---- Memory helpers ------------------------------------------------------------------

StatusOr<Tensor> Executor::NewDeviceCopy(const Tensor& src) {
  CF_ASSIGN_OR_RETURN(Tensor t, Tensor::Empty(src.shape(), src.dtype(), options_.device));
  CF_RETURN_IF_ERROR(t.CopyFrom(src, stream_.get()));
  return t;
}

// Stream-ordered fill (Tensor::FillBytes uses the legacy default stream, which
// is not ordered with the executor's non-blocking stream).
Status Executor::FillBytes(const Tensor& t, uint8_t byte) {
  if (!t.defined() || t.nbytes() == 0) return absl::OkStatus();
  if (t.device().is_cpu()) {
    std::memset(t.raw(), byte, static_cast<size_t>(t.nbytes()));
    return absl::OkStatus();
  }
#if CF_HAS_CUDA
  CF_CUDA_CHECK(cudaMemsetAsync(t.raw(), byte, static_cast<size_t>(t.nbytes()),
                                static_cast<cudaStream_t>(stream_->native())));
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError("Executor: CUDA tensor in a build without CUDA");
#endif
}

StatusOr<void*> Executor::Workspace(int64_t bytes) {
  if (workspace_ && workspace_->bytes() >= bytes) return workspace_->data();
  if (capturing_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a kernel asked for ", bytes, " B of workspace while a CUDA Graph was being captured (",
        workspace_ ? workspace_->bytes() : 0, " B were reserved by the eager run); it cannot be captured"));
  }
  // Earlier kernels of this run may still use the old block.
  if (workspace_ && options_.device.is_cuda()) CF_RETURN_IF_ERROR(stream_->Synchronize());
  workspace_.reset();
  CF_ASSIGN_OR_RETURN(workspace_, Storage::Allocate(options_.device, bytes));
  workspace_bytes_ = std::max(workspace_bytes_, bytes);
  plan_.workspace_bytes = workspace_bytes_;
  return workspace_->data();
}

// ---- Parameters ------------------------------------------------------------------------

Status Executor::SetParameter(absl::string_view name, const Tensor& value) {
  CF_EXECUTOR_DEVICE_SCOPE();
  int id = run_graph_.FindParameter(name);
  CF_CHECK_ARG(id >= 0, "SetParameter: the graph has no parameter '", std::string(name), "'");
  const TensorType& t = run_graph_.value(id).type;
  CF_CHECK_ARG(value.defined() && value.shape() == t.shape && value.dtype() == t.dtype, "SetParameter: '",
               std::string(name), "' is ", t.ToString(), ", given ",
               value.defined() ? value.DebugString() : "an undefined tensor");
  if (!values_[id].defined()) {
    CF_ASSIGN_OR_RETURN(values_[id], Tensor::Empty(t.shape, t.dtype, options_.device));
  }
  // Into the existing buffer: a captured CUDA Graph keeps reading it.
  CF_RETURN_IF_ERROR(values_[id].CopyFrom(value, stream_.get()));
  // State derived from the old value (a packed weight) is stale now.
  for (Step& s : steps_)
    if (s.node != nullptr && std::find(s.node->inputs.begin(), s.node->inputs.end(), id) != s.node->inputs.end())
      s.state.reset();
  // Hoisted nodes that read it run again before the next step.
  for (const Step& s : hoist_steps_)
    if (std::find(s.node->inputs.begin(), s.node->inputs.end(), id) != s.node->inputs.end()) hoist_dirty_ = true;
  return stream_->Synchronize();  // `value` may be released when we return
}

StatusOr<Tensor> Executor::GetParameter(absl::string_view name) const {
  int id = run_graph_.FindParameter(name);
  CF_CHECK_ARG(id >= 0, "GetParameter: the graph has no parameter '", std::string(name), "'");
  return values_[id];
}

// ---- Running ----------------------------------------------------------------------------

Status Executor::BindInputs(const std::map<std::string, Tensor>& inputs) {
  for (const auto& [name, t] : inputs) {
    if (run_graph_.FindInput(name) >= 0) continue;
    std::vector<std::string> names;
    for (int id : input_ids_) names.push_back(run_graph_.value(id).name);
    return absl::InvalidArgumentError(absl::StrCat("Run: the graph has no input named '", name,
                                                   "' (its inputs: ", absl::StrJoin(names, ", "), ")"));
  }
  const Device dev = options_.device;
  for (int id : input_ids_) {
    const ValueInfo& v = run_graph_.value(id);
    auto it = inputs.find(v.name);
    CF_CHECK_ARG(it != inputs.end(), "Run: input '", v.name, "' (", v.type.ToString(), ") is not bound");
    const Tensor& t = it->second;
    CF_CHECK_ARG(t.defined() && t.shape() == v.type.shape && t.dtype() == v.type.dtype, "Run: input '", v.name,
                 "' must be ", v.type.ToString(), ", got ", t.defined() ? t.DebugString() : "an undefined tensor");
    if (options_.cuda_graph) {
      CF_RETURN_IF_ERROR(fixed_[id].CopyFrom(t, stream_.get()));
      values_[id] = fixed_[id];
    } else if (t.device() == dev) {
      values_[id] = t;
    } else {
      CF_ASSIGN_OR_RETURN(values_[id], NewDeviceCopy(t));
    }
  }
  for (int id : parameter_ids_) {
    CF_CHECK_ARG(values_[id].defined(), "Run: parameter '", run_graph_.value(id).name, "' (",
                 run_graph_.value(id).type.ToString(), ") has no value (declared by shape only; call SetParameter)");
  }
  return absl::OkStatus();
}

Status Executor::PrepareOutputs() {
  for (int id : output_ids_) {
    const ValueInfo& v = run_graph_.value(id);
    if (v.kind != ValueKind::kIntermediate) continue;  // an input or parameter returned as it is
    if (options_.cuda_graph) {
      values_[id] = fixed_[id];
    } else {
      CF_ASSIGN_OR_RETURN(values_[id], Tensor::Empty(v.type.shape, v.type.dtype, options_.device));
    }
  }
  return absl::OkStatus();
}

Status Executor::Poison() {
  if (arena_->bytes() > 0) CF_RETURN_IF_ERROR(FillBytes(Tensor(arena_, 0, Shape{arena_->bytes()}, DType::u8), 0xff));
  for (int id : output_ids_)
    if (run_graph_.value(id).kind == ValueKind::kIntermediate) CF_RETURN_IF_ERROR(FillBytes(values_[id], 0xff));
  return absl::OkStatus();
}

Status Executor::RunStep(Step& s) {
  const Node& n = *s.node;
  if (s.bind_view) {
    const Tensor& src = values_[n.inputs[0]];
    const TensorType& t = run_graph_.value(n.outputs[0]).type;
    values_[n.outputs[0]] = Tensor(src.storage(), src.offset(), t.shape, t.dtype);
    ++last_run_.views;
    return absl::OkStatus();
  }
  CF_NVTX_RANGE(s.label.c_str());
  scratch_in_.clear();
  scratch_out_.clear();
  for (int id : n.inputs) scratch_in_.push_back(values_[id]);
  for (int id : n.outputs) scratch_out_.push_back(values_[id]);
  KernelContext ctx{n.op->name, n.attrs,          scratch_in_, absl::MakeSpan(scratch_out_),
                    options_.device, stream_.get(), workspace_fn_, &s.state, s.stable_inputs};
  Status st = (*s.kernel)(ctx);
  ++last_run_.kernels;
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("running ", NodeName(n), ": ", st.message()));
  return absl::OkStatus();
}

Status Executor::RunSteps() {
  const bool timed = options_.time_nodes;
  for (size_t i = 0; i < steps_.size(); ++i) {
    if (timed) CF_RETURN_IF_ERROR(events_[i]->Record(*stream_));
    CF_RETURN_IF_ERROR(RunStep(steps_[i]));
  }
  if (timed) CF_RETURN_IF_ERROR(events_.back()->Record(*stream_));
  return absl::OkStatus();
}

Status Executor::Capture() {
#if CF_HAS_CUDA
  cudaStream_t st = static_cast<cudaStream_t>(stream_->native());
  CF_RETURN_IF_ERROR(stream_->Synchronize());
  // Review fix: a kernel that takes a cached block (no cudaMalloc, so the
  // capture stays valid) and frees it on return leaves the graph pointing at
  // memory the allocator hands out again (e.g. to the output copies below);
  // count Allocate calls across the capture and refuse the graph if any.
  CF_ASSIGN_OR_RETURN(Allocator * alloc, AllocatorFor(options_.device));
  const int64_t allocs_before = alloc->stats().num_allocs;
  CF_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  const int eager_kernels = last_run_.kernels;  // RunStep counts the captured launches too
  Status failure;
  const Node* culprit = nullptr;
  for (Step& s : steps_) {
    if (s.bind_view) continue;  // bound by the eager pass; the addresses do not change
    Status r = RunStep(s);
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    cudaError_t q = cudaStreamIsCapturing(st, &cs);
    if (!r.ok() || q != cudaSuccess || cs != cudaStreamCaptureStatusActive) {
      culprit = s.node;
      failure = !r.ok() ? r
                : q != cudaSuccess
                    ? absl::InternalError(absl::StrCat("cudaStreamIsCapturing: ", cudaGetErrorString(q)))
                    : absl::InternalError("the kernel invalidated the stream capture");
      break;
    }
  }
  bool failed = culprit != nullptr;
  if (!failed && alloc->stats().num_allocs != allocs_before) {
    failed = true;
    failure = absl::FailedPreconditionError(absl::StrCat(
        alloc->stats().num_allocs - allocs_before,
        " device allocation(s) during capture (a kernel allocates temporaries, or another thread "
        "allocated on this device meanwhile)"));
  }
  capturing_ = false;
  last_run_.kernels = eager_kernels;
  cudaGraph_t graph = nullptr;
  cudaError_t end = cudaStreamEndCapture(st, &graph);
  if (failed || end != cudaSuccess) {
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last error
    std::string where = culprit != nullptr ? absl::StrCat(" at ", NodeName(*culprit)) : "";
    std::string why = failed ? std::string(failure.message())
                             : absl::StrCat("cudaStreamEndCapture: ", cudaGetErrorString(end));
    return absl::FailedPreconditionError(absl::StrCat(
        "CUDA Graph capture failed", where, ": ", why,
        ". A kernel that synchronises, allocates or copies pageable host memory cannot be captured; "
        "run this graph with ExecutorOptions::cuda_graph = false"));
  }
  cudaGraphExec_t exec = nullptr;
  cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (inst != cudaSuccess) {
    (void)cudaGetLastError();
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA Graph instantiation failed: ", cudaGetErrorString(inst)));
  }
  graph_exec_ = exec;
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError("CUDA Graph capture needs the CUDA backend");
#endif
}

Status Executor::Launch() {
#if CF_HAS_CUDA
  CF_NVTX_RANGE("cuda_graph_replay");
  CF_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec_),
                                static_cast<cudaStream_t>(stream_->native())));
  last_run_.replayed = true;
  return absl::OkStatus();
#else
  return absl::FailedPreconditionError("CUDA Graph replay needs the CUDA backend");
#endif
}

StatusOr<std::vector<Tensor>> Executor::Run(const std::map<std::string, Tensor>& inputs) {
  CF_EXECUTOR_DEVICE_SCOPE();
  last_run_ = {};
  CF_RETURN_IF_ERROR(BindInputs(inputs));
  CF_RETURN_IF_ERROR(PrepareOutputs());
  if (options_.poison) CF_RETURN_IF_ERROR(Poison());
  if (hoist_dirty_ && !hoist_steps_.empty()) CF_RETURN_IF_ERROR(RunHoisted());

  const bool replay = options_.cuda_graph && !cuda_graph_off_;
  if (replay && graph_exec_ != nullptr) {
    CF_RETURN_IF_ERROR(Launch());
  } else {
    CF_RETURN_IF_ERROR(RunSteps());
    if (replay) {
      // The eager pass reserved every workspace and bound every view; record
      // the same launches for the next runs.
      Status s = Capture();
      if (s.ok()) {
        last_run_.captured = true;
      } else {
        cuda_graph_status_ = s;
        cuda_graph_off_ = true;
        if (options_.cuda_graph_strict) return s;
      }
    }
  }

  std::vector<Tensor> outs;
  outs.reserve(output_ids_.size());
  for (int id : output_ids_) {
    if (options_.cuda_graph) {
      // The fixed buffers are overwritten by the next run: hand out copies.
      CF_ASSIGN_OR_RETURN(Tensor copy, NewDeviceCopy(values_[id]));
      outs.push_back(std::move(copy));
    } else {
      outs.push_back(values_[id]);
    }
  }
  CF_RETURN_IF_ERROR(stream_->Synchronize());

  if (options_.time_nodes) {
    timings_.resize(steps_.size());
    for (size_t i = 0; i < steps_.size(); ++i) {
      const Node& n = *steps_[i].node;
      CF_ASSIGN_OR_RETURN(float ms, events_[i + 1]->ElapsedMsSince(*events_[i]));
      timings_[i] = {run_node_of_[n.id], n.op->name, n.scope, ms, n.backward};
    }
  }
  if (!options_.cuda_graph) {
    // Do not keep the caller's inputs or the returned outputs alive.
    for (int id : input_ids_) values_[id] = Tensor();
    for (int id : output_ids_)
      if (run_graph_.value(id).kind == ValueKind::kIntermediate) values_[id] = Tensor();
    for (const Step& s : steps_)
      if (s.bind_view) values_[s.node->outputs[0]] = Tensor();
  }
  return outs;
}

StatusOr<std::map<std::string, Tensor>> Executor::RunNamed(const std::map<std::string, Tensor>& inputs) {
  CF_ASSIGN_OR_RETURN(std::vector<Tensor> outs, Run(inputs));
  std::map<std::string, Tensor> named;
  for (size_t i = 0; i < output_ids_.size(); ++i) named[run_graph_.value(output_ids_[i]).output_name] = outs[i];
  return named;
}

}  // namespace cf
