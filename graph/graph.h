// Graph IR: SSA nodes and values. Nodes are stored in the order they were
// built, which is a topological order (a node only consumes values that exist).
#pragma once

#include <deque>
#include <string>
#include <vector>

#include "ops/op.h"

namespace cf {

enum class ValueKind : uint8_t { kInput, kParameter, kConstant, kIntermediate };
const char* ValueKindName(ValueKind k);

struct ValueInfo {
  int id = -1;
  TensorType type;
  ValueKind kind = ValueKind::kIntermediate;
  int producer = -1;      // node id, -1 for inputs, parameters, constants
  int output_index = 0;   // which output of the producer
  std::string scope;      // module scope it was built in, e.g. "unet.mid_block.attentions.0"
  std::string name;       // inputs / parameters / constants: the binding name
  bool is_output = false;
  std::string output_name;  // when is_output
  // Where Graph::Outputs() lists it: outputs with a position come first, in
  // position order, then the others in creation order. -1 (the builder's)
  // keeps creation order; a pass that rebuilds a graph sets it, so the outputs
  // keep their order even when it makes their values in another order.
  int output_position = -1;
  bool frozen = false;    // parameters: no gradient is built for them
  Tensor data;            // constants, and parameters given with values (may be undefined)
};

// The cost of a node that a graph pass fused into another one, kept under
// the removed node's own scope and pass (forward, backward, update), so that
// per-scope FLOPs are the same before and after fusion (graph/accounting.cc
// counts it there). Its bytes are 0: the removed node's memory traffic is
// gone, and the fused node's own Cost says what it reads and writes.
struct AbsorbedCost {
  std::string scope;
  Cost cost;
  bool backward = false;
  bool update = false;
  std::string op;  // the removed node's op, for AccountOptions::ops
};

struct Node {
  int id = -1;
  const OpDef* op = nullptr;
  std::vector<int> inputs;
  std::vector<int> outputs;
  Attrs attrs;
  std::string scope;
  Cost cost;
  // Built by autodiff (inside Builder::backward_section()): lets accounting
  // separate forward from backward work that shares a module scope.
  bool backward = false;
  // Built after a backward section closed and outside one: the optimizer's
  // update of the parameters, a pass of its own in accounting.
  bool update = false;
  // Nodes a fusion pass removed into this one (graph/passes/): their FLOPs,
  // each under its own scope. Empty for nodes the builder made.
  std::vector<AbsorbedCost> absorbed;
};

class Graph {
 public:
  const std::deque<ValueInfo>& values() const { return values_; }
  const std::deque<Node>& nodes() const { return nodes_; }
  const ValueInfo& value(int id) const { return values_[id]; }
  ValueInfo& mutable_value(int id) { return values_[id]; }
  const Node& node(int id) const { return nodes_[id]; }
  int num_values() const { return static_cast<int>(values_.size()); }
  int num_nodes() const { return static_cast<int>(nodes_.size()); }

  int AddValue(ValueInfo v);
  int AddNode(Node n);  // sets producer of its outputs

  // Ids of values by kind / flag, in creation order.
  std::vector<int> Inputs() const;
  std::vector<int> Parameters() const;
  std::vector<int> Outputs() const;
  // -1 when absent.
  int FindInput(absl::string_view name) const;
  int FindParameter(absl::string_view name) const;
  int FindOutput(absl::string_view name) const;

  // Consumers of each value (node ids), computed on demand.
  std::vector<std::vector<int>> Consumers() const;

  // Checks structure: ids in range, each intermediate produced exactly once
  // and before use (no cycles), outputs exist, names unique. A graph whose
  // builder recorded an error fails with that error first.
  Status Verify() const;

  // The first error of the Builder that made this graph (OK when none).
  Status build_status() const { return build_status_; }
  void set_build_status(Status s);  // in graph.cc: nvcc warns on the discarded Status& of an inline assignment

  std::string ToText() const;  // one line per node: "%5 = conv2d(%3, %4) {..} f32[..]  # scope"
  std::string ToDot() const;   // Graphviz

 private:
  // Deques: adding values or nodes never moves existing ones, so a
  // reference from Value::type() stays valid while more ops are built.
  std::deque<ValueInfo> values_;
  std::deque<Node> nodes_;
  Status build_status_;
};

}  // namespace cf
