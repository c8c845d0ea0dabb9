// Executor: runs a planned graph on one device and stream. Inputs are bound by
// name; transients live in one arena laid out by the memory planner; outputs
// are returned as fresh tensors. See docs/executor.md.
//
// Contract with the planner (graph/planner.h):
//  - plan.offset[v] >= 0: v lives in the arena at that byte offset. Values with
//    the same offset whose lifetimes touch (in-place ops) need nothing special.
//  - plan.alias_of[v] >= 0 on the output of a view op (OpDef::view_of_input0):
//    the output shares input 0's bytes. Its kernel is skipped and, at run
//    time, the output is bound to input 0's tensor under the output's shape
//    (that also covers views of inputs, parameters and constants, which have
//    offset -1). A view whose output is a graph output is not aliased by the
//    planner; its kernel (a copy) runs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "graph/graph.h"
#include "graph/passes/pass.h"
#include "graph/planner.h"
#include "runtime/stream.h"

namespace cf {

struct ExecutorOptions {
  Device device = Device::CPU();
  // Graph passes (graph/passes/pass.h), run before the memory planner: fusion
  // and CSE rewrite the graph (graph() is the rewritten one), fold_constants
  // runs parameter-only nodes once instead of every Run (graph/passes/hoist.h).
  // PassOptions::None() (`--no-fuse`) runs the graph as built. The default
  // is DefaultPassOptions() (all on unless a program's --no-fuse said otherwise).
  PassOptions passes = DefaultPassOptions();
  PlanOptions plan;
  // Fill the arena and the outputs with 0xff (NaN for floats) before each run,
  // so a kernel that leaves an element unwritten is caught by tests.
  bool poison = false;
  // Record the time of every node (CUDA events / steady clock); see timings().
  // Not with cuda_graph (a replayed graph has no per-node boundaries).
  bool time_nodes = false;
  // CUDA only: inputs and outputs get executor-owned device buffers (fixed
  // addresses), the first Run executes eagerly and then captures the node
  // launches into a CUDA Graph, and later Runs replay it with one
  // cudaGraphLaunch. When a kernel cannot be captured (it synchronises,
  // allocates, copies pageable memory, ...) the executor falls back to eager
  // runs and cuda_graph_status() says which node failed and why.
  bool cuda_graph = false;
  // With cuda_graph: a failed capture is returned as Run's error instead of
  // falling back to eager execution.
  bool cuda_graph_strict = false;
};

struct NodeTiming {
  int node = -1;
  std::string op;
  std::string scope;
  double ms = 0;
  bool backward = false;  // Node::backward: built by autodiff
};

// What the last Run did (for tests and benchmarks).
struct RunStats {
  int kernels = 0;         // kernels launched eagerly
  int views = 0;           // view nodes bound without a kernel
  int hoisted = 0;         // parameter-only nodes run before the step (first run, or after SetParameter)
  bool replayed = false;   // the run was one cudaGraphLaunch
  bool captured = false;   // the run captured the CUDA Graph (after its eager pass)
};

// ---- Timing tables --------------------------------------------------------------

struct TimingRow {
  std::string key;  // a scope prefix ("unet.down_blocks.0") or an op name
  int nodes = 0;
  double ms = 0;
};

// Node times aggregated by scope prefix and by op. Concatenate the timings of
// several runs to sum them (the rows then count node executions).
struct TimingSummary {
  double total_ms = 0;
  double backward_ms = 0;  // of which in nodes built by autodiff
  int nodes = 0;
  // Every scope prefix ("a", "a.b", "a.b.c"), in order of first execution, so
  // a parent comes before its children; nodes at the top level are "(top)".
  std::vector<TimingRow> by_scope;
  std::vector<TimingRow> by_op;  // most time first
  // Two markdown tables (scope, then op) with node counts, ms and % of total.
  std::string ToMarkdown() const;
};

// Prefixes deeper than `max_scope_depth` dot-separated parts are folded into
// their ancestor at that depth (0: no limit).
TimingSummary SummarizeTimings(absl::Span<const NodeTiming> timings, int max_scope_depth = 0);

// ---- Executor -------------------------------------------------------------------------

// Not thread-safe: one Run (or SetParameter) at a time per executor.
class Executor {
 public:
  // Plans memory, allocates the arena and uploads parameters and constants
  // that carry data. Fails when an op has no kernel for the device, or when
  // the options do not fit the device.
  static StatusOr<std::unique_ptr<Executor>> Create(const Graph& graph, ExecutorOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Sets (or replaces) a parameter's value; copied to the device into the
  // parameter's existing buffer (so a captured CUDA Graph sees the new value).
  Status SetParameter(absl::string_view name, const Tensor& value);
  // The device tensor bound to a parameter (shares memory; undefined when the
  // parameter has no value yet). Read it only: kernels may keep state derived
  // from a parameter (a packed weight), so change values with SetParameter.
  StatusOr<Tensor> GetParameter(absl::string_view name) const;

  // Runs the graph. `inputs` maps every graph input name to a tensor of the
  // declared shape and dtype (on any device: copied when needed; without
  // cuda_graph, a tensor already on the device is used in place and must not
  // change until Run returns). Returns the outputs in the order of
  // graph().Outputs(), as tensors on the device that the caller owns.
  StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs);
  // The same, keyed by output name.
  StatusOr<std::map<std::string, Tensor>> RunNamed(const std::map<std::string, Tensor>& inputs);

  // The graph after the passes (accounting of it equals the built graph's).
  const Graph& graph() const { return graph_; }
  // The graph that is planned and run each step: graph() without the
  // hoisted parameter-only nodes, whose outputs are constants here (same
  // value ids as graph()).
  const Graph& run_graph() const { return run_graph_; }
  const PassReport& pass_report() const { return pass_report_; }
  // Nodes of graph() run once (first Run, and after SetParameter of an input)
  // instead of every step (PassOptions::fold_constants).
  int num_hoisted() const { return graph_.num_nodes() - run_graph_.num_nodes(); }
  const MemoryPlan& plan() const { return plan_; }
  Device device() const { return options_.device; }
  const ExecutorOptions& options() const { return options_; }
  Stream& stream() { return *stream_; }
  // Per-node times of the last run, one per node in execution order (empty
  // unless options.time_nodes).
  const std::vector<NodeTiming>& timings() const { return timings_; }
  const RunStats& last_run() const { return last_run_; }
  // Bytes of backend workspace (cuBLASLt, cuDNN) the kernels asked for so far
  // (also in plan().workspace_bytes); known after the first run.
  int64_t workspace_bytes() const { return workspace_bytes_; }
  // Device bytes the executor holds: arena + workspace (+ the fixed input and
  // output buffers with cuda_graph). Parameters are not included.
  int64_t device_bytes() const;
  // OK while CUDA Graph replay is on (or not asked for); the capture error
  // after a fallback to eager runs.
  const Status& cuda_graph_status() const { return cuda_graph_status_; }
  bool has_cuda_graph() const { return graph_exec_ != nullptr; }

 private:
  // One per node, prepared at Init.
  struct Step {
    const Node* node = nullptr;
    const KernelFn* kernel = nullptr;
    bool bind_view = false;  // aliased view: bind a view of input 0, no kernel
    std::string label;       // NVTX range name "scope/op"
    uint64_t stable_inputs = 0;    // KernelContext::stable_inputs
    std::shared_ptr<void> state;   // KernelContext::state, kept across runs
  };

  Executor(Graph graph, ExecutorOptions options) : graph_(std::move(graph)), options_(options) {}
  Status InitHoisting();   // splits graph_ into hoist_steps_ and run_graph_
  Status RunHoisted();     // the parameter-only nodes, into their persistent buffers
  Status Init();
  Status CheckViewPlan(const Node& n) const;
  Status BindInputs(const std::map<std::string, Tensor>& inputs);
  Status PrepareOutputs();
  Status Poison();
  Status RunSteps();       // eager: every node in order (optionally timed)
  Status RunStep(Step& s);
  Status Capture();        // records the node launches into graph_exec_
  Status Launch();         // replays graph_exec_
  void DestroyCudaGraph();
  StatusOr<void*> Workspace(int64_t bytes);
  StatusOr<Tensor> NewDeviceCopy(const Tensor& src);
  Status FillBytes(const Tensor& t, uint8_t byte);
  std::string NodeName(const Node& n) const;

  Graph graph_;      // after the passes
  Graph run_graph_;  // graph_ less the hoisted nodes: planned and run
  ExecutorOptions options_;
  PassReport pass_report_;
  std::vector<int> run_node_of_;  // run_graph_ node id -> graph_ node id
  std::vector<Step> hoist_steps_;  // the prelude: graph_'s parameter-only nodes (and views they read), in order
  std::vector<bool> hoist_kept_;   // per value: a hoisted output that run_graph_ reads (persistent buffer)
  bool hoist_dirty_ = true;        // run hoist_steps_ before the next step
  MemoryPlan plan_;
  std::unique_ptr<Stream> stream_;
  std::shared_ptr<Storage> arena_;
  std::vector<Tensor> values_;  // per value id: the tensor bound for this run
  std::vector<Step> steps_;     // per node
  std::vector<int> input_ids_, parameter_ids_, output_ids_;
  // cuda_graph: executor-owned buffers with fixed addresses, per value id.
  std::vector<Tensor> fixed_;
  // Reused by RunStep to avoid allocating per node.
  std::vector<Tensor> scratch_in_, scratch_out_;
  std::function<StatusOr<void*>(int64_t)> workspace_fn_;
  std::shared_ptr<Storage> workspace_;
  int64_t workspace_bytes_ = 0;
  bool capturing_ = false;
  void* graph_exec_ = nullptr;  // cudaGraphExec_t
  Status cuda_graph_status_;
  bool cuda_graph_off_ = false;  // fell back to eager runs
  std::vector<std::unique_ptr<Event>> events_;  // time_nodes: one per node boundary
  std::vector<NodeTiming> timings_;
  RunStats last_run_;
};

}  // namespace cf
