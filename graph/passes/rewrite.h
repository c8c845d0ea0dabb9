// GraphRewriter: the one way a pass changes a graph. The Graph is append-only
// (its values and nodes live in deques and ids are positions), so a pass
// builds a new graph from the old one, node by node in the old order: it
// copies a node, drops it, emits a replacement, or says that an old value is
// now stood for by another new one. The rewriter keeps what must not change:
// every leaf (input, parameter, constant) with its kind, name, scope, data and
// `frozen` flag, in its old place among the nodes; the values' types, scopes
// and names; the nodes' scopes, costs, backward / update flags and absorbed
// costs; and the graph outputs, under the same names and in the same order.
//
//   GraphRewriter rw(g);
//   for (const Node& n : g.nodes()) {
//     if (!Fusable(n)) { CF_RETURN_IF_ERROR(rw.Copy(n.id)); continue; }
//     ...  // drop n, later rw.Emit(fused, {old output of the last fused node})
//   }
//   CF_ASSIGN_OR_RETURN(Graph out, rw.Finish());
#pragma once

#include <vector>

#include "graph/graph.h"

namespace cf {

class GraphRewriter {
 public:
  explicit GraphRewriter(const Graph& old);
  GraphRewriter(const GraphRewriter&) = delete;
  GraphRewriter& operator=(const GraphRewriter&) = delete;

  const Graph& old() const { return old_; }
  const Graph& graph() const { return new_; }  // the graph being built

  // The new id that stands for old value `old_value`: a leaf is copied on
  // first use (with every leaf made before it, to keep their order); an
  // intermediate is known once its producer was copied or emitted, or after
  // Alias. -1 when it is not known (its producer was dropped).
  int Map(int old_value);

  // Emits old node `old_node` as it is, its inputs mapped; its outputs get new
  // values that copy the old ones.
  Status Copy(int old_node);

  // Emits a new node. `n.inputs` are NEW value ids (from Map); `n.outputs` is
  // ignored: the node gets one output per entry of `old_outputs`, a copy of
  // that old value (type, scope, output name), which it now stands for. The
  // op's shape rule is checked against the old values' types.
  StatusOr<int> Emit(Node n, const std::vector<int>& old_outputs);

  // From now on old value `old_value` is stood for by new value `new_value`
  // (e.g. CSE: a duplicate's output is the first copy's output).
  void Alias(int old_value, int new_value);

  // Copies the remaining leaves and marks the outputs: every old output must
  // be mapped, and no two may map to one new value. Verify()s the result.
  StatusOr<Graph> Finish();

 private:
  void CopyLeavesBefore(int old_value_end);  // every old leaf with id < end
  int CopyValue(const ValueInfo& v);

  const Graph& old_;
  Graph new_;
  std::vector<int> map_;  // old value id -> new value id, -1 when not (yet) known
  int leaf_cursor_ = 0;   // old values below it have been looked at for leaf copies
};

// What a fused node keeps of a node it replaces: `removed`'s FLOPs (bytes 0)
// under its scope and flags, followed by whatever `removed` had absorbed.
void Absorb(const Node& removed, std::vector<AbsorbedCost>* into);

// A fused node's own cost: the FLOPs of the node it mainly stands for
// (`primary`, e.g. the matmul) and the bytes of the fused op's cost rule
// (what it actually reads and writes).
Cost FusedCost(const Cost& primary, const Cost& fused_rule);

// Every FLOP category of `n`'s cost plus its absorbed costs (bytes excluded):
// the total a fusion must keep.
Cost FlopsWithAbsorbed(const Node& n);

}  // namespace cf
