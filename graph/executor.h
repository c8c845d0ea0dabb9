// Executor: runs a planned graph on one device and stream. Inputs are bound by
// name; transients live in one arena laid out by the memory planner; outputs
// are returned as fresh tensors. See docs/executor.md.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "graph/planner.h"
#include "runtime/stream.h"

namespace cf {

struct ExecutorOptions {
  Device device = Device::CPU();
  PlanOptions plan;
  // Fill the arena and the outputs with 0xff (NaN for floats) before each run,
  // so a kernel that leaves an element unwritten is caught by tests.
  bool poison = false;
  // Record the time of every node (CUDA events / steady clock); see timings().
  bool time_nodes = false;
};

struct NodeTiming {
  int node = -1;
  std::string op;
  std::string scope;
  double ms = 0;
};

class Executor {
 public:
  // Plans memory, allocates the arena and uploads parameters and constants
  // that carry data. Fails when an op has no kernel for the device.
  static StatusOr<std::unique_ptr<Executor>> Create(const Graph& graph, ExecutorOptions options = {});
  ~Executor();

  // Sets (or replaces) a parameter's value; copied to the device.
  Status SetParameter(absl::string_view name, const Tensor& value);
  // Runs the graph. `inputs` maps every graph input name to a tensor of the
  // declared shape and dtype (on any device: copied when needed). Returns the
  // outputs in the order of graph().Outputs().
  StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs);
  // The same, keyed by output name.
  StatusOr<std::map<std::string, Tensor>> RunNamed(const std::map<std::string, Tensor>& inputs);

  const Graph& graph() const { return graph_; }
  const MemoryPlan& plan() const { return plan_; }
  Device device() const { return options_.device; }
  Stream& stream() { return *stream_; }
  // Per-node times of the last run (empty unless options.time_nodes).
  const std::vector<NodeTiming>& timings() const { return timings_; }
  // Bytes of backend workspace (cuBLASLt, cuDNN) the kernels asked for.
  int64_t workspace_bytes() const { return workspace_bytes_; }

 private:
  Executor(Graph graph, ExecutorOptions options) : graph_(std::move(graph)), options_(options) {}
  Status Init();
  Status RunNode(const Node& node);
  StatusOr<void*> Workspace(int64_t bytes);

  Graph graph_;
  ExecutorOptions options_;
  MemoryPlan plan_;
  std::unique_ptr<Stream> stream_;
  std::shared_ptr<Storage> arena_;
  std::vector<Tensor> values_;           // per value id: the tensor bound for this run
  std::vector<const KernelFn*> kernels_;  // per node
  std::shared_ptr<Storage> workspace_;
  int64_t workspace_bytes_ = 0;
  std::vector<NodeTiming> timings_;
};

}  // namespace cf
