#include "graph/executor.h"

#include <chrono>

#include "runtime/nvtx.h"

namespace cf {

Executor::~Executor() = default;

StatusOr<std::unique_ptr<Executor>> Executor::Create(const Graph& graph, ExecutorOptions options) {
  std::unique_ptr<Executor> e(new Executor(graph, options));
  CF_RETURN_IF_ERROR(e->Init());
  return e;
}

Status Executor::Init() {
  const Device dev = options_.device;
  CF_RETURN_IF_ERROR(CheckDeviceAvailable(dev));
  CF_ASSIGN_OR_RETURN(plan_, PlanMemory(graph_, options_.plan));
  CF_ASSIGN_OR_RETURN(stream_, Stream::Create(dev));
  kernels_.resize(graph_.num_nodes());
  for (const Node& n : graph_.nodes()) {
    kernels_[n.id] = OpRegistry::Global().FindKernel(n.op->name, dev.kind);
    if (kernels_[n.id] == nullptr)
      return absl::UnimplementedError(absl::StrCat("op '", n.op->name, "' (scope '", n.scope,
                                                   "') has no kernel for ", dev.ToString()));
  }
  CF_ASSIGN_OR_RETURN(arena_, Storage::Allocate(dev, plan_.arena_bytes));
  values_.assign(graph_.num_values(), Tensor());
  for (const ValueInfo& v : graph_.values()) {
    if (plan_.offset[v.id] >= 0) {
      values_[v.id] = Tensor(arena_, plan_.offset[v.id], v.type.shape, v.type.dtype);
    } else if ((v.kind == ValueKind::kParameter || v.kind == ValueKind::kConstant) && v.data.defined()) {
      CF_ASSIGN_OR_RETURN(values_[v.id], v.data.To(dev));
    }
  }
  return absl::OkStatus();
}

Status Executor::SetParameter(absl::string_view name, const Tensor& value) {
  int id = graph_.FindParameter(name);
  CF_CHECK_ARG(id >= 0, "SetParameter: the graph has no parameter '", name, "'");
  const TensorType& t = graph_.value(id).type;
  CF_CHECK_ARG(value.shape() == t.shape && value.dtype() == t.dtype, "SetParameter: '", name, "' is ",
               t.ToString(), ", given ", value.DebugString());
  if (!values_[id].defined() || !(values_[id].device() == options_.device)) {
    CF_ASSIGN_OR_RETURN(values_[id], Tensor::Empty(t.shape, t.dtype, options_.device));
  }
  return values_[id].CopyFrom(value, stream_.get());
}

StatusOr<void*> Executor::Workspace(int64_t bytes) {
  if (!workspace_ || workspace_->bytes() < bytes) {
    workspace_.reset();
    CF_ASSIGN_OR_RETURN(workspace_, Storage::Allocate(options_.device, bytes));
    workspace_bytes_ = std::max(workspace_bytes_, bytes);
  }
  return workspace_->data();
}

Status Executor::RunNode(const Node& n) {
  std::vector<Tensor> ins, outs;
  ins.reserve(n.inputs.size());
  for (int id : n.inputs) ins.push_back(values_[id]);
  for (int id : n.outputs) outs.push_back(values_[id]);
  KernelContext ctx{n.op->name, n.attrs, ins, absl::MakeSpan(outs), options_.device, stream_.get(),
                    [this](int64_t bytes) { return Workspace(bytes); }};
  Status s = (*kernels_[n.id])(ctx);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("running ", n.op->name, " (node ", n.id, ", scope '", n.scope,
                                               "'): ", s.message()));
  }
  return absl::OkStatus();
}

StatusOr<std::vector<Tensor>> Executor::Run(const std::map<std::string, Tensor>& inputs) {
  const Device dev = options_.device;
  for (const auto& [name, t] : inputs) {
    CF_CHECK_ARG(graph_.FindInput(name) >= 0, "Run: the graph has no input named '", name, "'");
  }
  for (int id : graph_.Inputs()) {
    const ValueInfo& v = graph_.value(id);
    auto it = inputs.find(v.name);
    CF_CHECK_ARG(it != inputs.end(), "Run: input '", v.name, "' (", v.type.ToString(), ") is not bound");
    const Tensor& t = it->second;
    CF_CHECK_ARG(t.defined() && t.shape() == v.type.shape && t.dtype() == v.type.dtype, "Run: input '", v.name,
                 "' must be ", v.type.ToString(), ", got ", t.defined() ? t.DebugString() : "an undefined tensor");
    if (t.device() == dev) {
      values_[id] = t;
    } else {
      CF_ASSIGN_OR_RETURN(values_[id], t.To(dev));
    }
  }
  for (int id : graph_.Parameters()) {
    CF_CHECK_ARG(values_[id].defined(), "Run: parameter '", graph_.value(id).name,
                 "' has no value (declared by shape only; call SetParameter)");
  }
  // Outputs that are produced by nodes get fresh tensors; inputs/parameters
  // marked as outputs are returned as they are.
  for (int id : graph_.Outputs()) {
    const ValueInfo& v = graph_.value(id);
    if (v.kind != ValueKind::kIntermediate) continue;
    CF_ASSIGN_OR_RETURN(values_[id], Tensor::Empty(v.type.shape, v.type.dtype, dev));
    if (options_.poison) CF_RETURN_IF_ERROR(values_[id].FillBytes(0xff));
  }
  if (options_.poison && arena_->bytes() > 0) {
    Tensor whole(arena_, 0, Shape{arena_->bytes()}, DType::u8);
    CF_RETURN_IF_ERROR(whole.FillBytes(0xff));
  }
  timings_.clear();
  std::unique_ptr<Event> start, stop;
  if (options_.time_nodes) {
    CF_ASSIGN_OR_RETURN(start, Event::Create(dev));
    CF_ASSIGN_OR_RETURN(stop, Event::Create(dev));
  }
  for (const Node& n : graph_.nodes()) {
    std::string label = absl::StrCat(n.scope, n.scope.empty() ? "" : "/", n.op->name);
    CF_NVTX_RANGE(label.c_str());
    if (options_.time_nodes) CF_RETURN_IF_ERROR(start->Record(*stream_));
    CF_RETURN_IF_ERROR(RunNode(n));
    if (options_.time_nodes) {
      CF_RETURN_IF_ERROR(stop->Record(*stream_));
      CF_RETURN_IF_ERROR(stop->Synchronize());
      CF_ASSIGN_OR_RETURN(float ms, stop->ElapsedMsSince(*start));
      timings_.push_back({n.id, n.op->name, n.scope, ms});
    }
  }
  CF_RETURN_IF_ERROR(stream_->Synchronize());
  std::vector<Tensor> outs;
  for (int id : graph_.Outputs()) outs.push_back(values_[id]);
  return outs;
}

StatusOr<std::map<std::string, Tensor>> Executor::RunNamed(const std::map<std::string, Tensor>& inputs) {
  CF_ASSIGN_OR_RETURN(std::vector<Tensor> outs, Run(inputs));
  std::map<std::string, Tensor> named;
  std::vector<int> ids = graph_.Outputs();
  for (size_t i = 0; i < ids.size(); ++i) named[graph_.value(ids[i]).output_name] = outs[i];
  return named;
}

}  // namespace cf
