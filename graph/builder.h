// Builder: makes graphs that read like the model. It keeps a scope stack (so
// every value and node knows its module path) and the first error: once an
// op fails shape inference, later ops return invalid values and status()
// reports the first failure with its scope, op and shapes.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "graph/graph.h"

namespace cf {

class Builder;

// A handle to a graph value. Cheap to copy. An op that fails returns an
// invalid Value (the builder keeps the error). Every accessor is safe on an
// invalid value: type() is an empty TensorType (rank 0), dim() is -1 and
// ToString() says the value is invalid, so a debug print after a failed op
// prints instead of crashing. The references returned stay valid for the
// graph's lifetime: values live in a deque, which never moves them when more
// ops are built.
struct Value {
  Builder* b = nullptr;
  int id = -1;

  // Made by a builder, and one of its graph's values.
  bool valid() const;
  const TensorType& type() const;
  const Shape& shape() const { return type().shape; }
  DType dtype() const { return type().dtype; }
  int rank() const { return type().shape.rank(); }
  // Python-style index (-1 is the last dimension); -1 when invalid or out of range.
  int64_t dim(int i) const;
  // "%12 f16[2, 4096, 320] (unet.down_blocks.0)" or "<invalid value ...>".
  std::string ToString() const;
};

class Builder {
 public:
  explicit Builder(Graph* graph) : graph_(graph) {}
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  Graph& graph() { return *graph_; }
  const Graph& graph() const { return *graph_; }

  // ---- scopes
  class ScopeGuard {
   public:
    ScopeGuard(Builder* b, std::string restore) : b_(b), restore_(std::move(restore)) {}
    ~ScopeGuard() { if (b_) b_->scope_ = std::move(restore_); }
    ScopeGuard(ScopeGuard&& o) noexcept : b_(o.b_), restore_(std::move(o.restore_)) { o.b_ = nullptr; }
    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;
   private:
    Builder* b_;
    std::string restore_;
  };
  // `auto s = b.scope("down_blocks.0");` for the rest of the C++ scope.
  [[nodiscard]] ScopeGuard scope(absl::string_view name);
  // Replaces the whole scope path (autodiff builds a VJP in its node's scope).
  [[nodiscard]] ScopeGuard absolute_scope(absl::string_view full);
  const std::string& current_scope() const { return scope_; }

  // ---- forward / backward
  // Nodes built while the returned guard lives are marked Node::backward
  // (autodiff's Gradients opens one); nodes built after it closes are marked
  // Node::update (an optimizer step), so accounting can split the passes.
  class BackwardGuard {
   public:
    BackwardGuard(Builder* b, bool restore) : b_(b), restore_(restore) {}
    ~BackwardGuard() {
      if (b_ == nullptr) return;
      b_->backward_ = restore_;
      if (!restore_) b_->after_backward_ = true;
    }
    BackwardGuard(BackwardGuard&& o) noexcept : b_(o.b_), restore_(o.restore_) { o.b_ = nullptr; }
    BackwardGuard(const BackwardGuard&) = delete;
    BackwardGuard& operator=(const BackwardGuard&) = delete;
   private:
    Builder* b_;
    bool restore_;
  };
  [[nodiscard]] BackwardGuard backward_section() {
    BackwardGuard g(this, backward_);
    backward_ = true;
    return g;
  }
  bool building_backward() const { return backward_; }
  // "scope.name" (or "name" at the top).
  std::string Qualified(absl::string_view name) const;

  // ---- leaves
  // Names are unique per kind (inputs, parameters, outputs): a second input
  // or parameter of the same full name is an error.
  Value Input(absl::string_view name, Shape shape, DType dtype);
  // A parameter named by the current scope: `b.Parameter("weight", ...)` inside
  // scope "unet.conv_in" is "unet.conv_in.weight". `data` may be undefined
  // (shape-only graphs for accounting).
  Value Parameter(absl::string_view name, Shape shape, DType dtype, Tensor data = {},
                  bool frozen = false);
  Value Constant(Tensor data, absl::string_view name = "const");

  // ---- ops
  std::vector<Value> Op(absl::string_view op, std::vector<Value> inputs, Attrs attrs = {});
  // Single-output op; an error when the op has several outputs.
  Value Op1(absl::string_view op, std::vector<Value> inputs, Attrs attrs = {});

  // Makes `v` a graph output named `name`. Errors (recorded like an op's):
  // `v` invalid or from another builder, `name` already taken, or `v`
  // already an output under another name.
  void MarkOutput(Value v, absl::string_view name);

  // ---- errors
  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  // Records an error (the first one wins) with the current scope. The graph
  // keeps it too (Graph::build_status()), so Account, PlanMemory and
  // Executor::Create refuse a graph whose construction failed even when
  // nobody looked at status().
  void Fail(const Status& s);

  // The finished graph: the first error if building failed, else the graph
  // once Graph::Verify() accepts it.
  //   CF_ASSIGN_OR_RETURN(const Graph* g, b.Finish());
  StatusOr<Graph*> Finish();

  Value Wrap(int id) { return Value{this, id}; }

 private:
  // Fails (and returns false) when a leaf of `kind` named `name` exists.
  bool ClaimName(ValueKind kind, const std::string& name);

  Graph* graph_;
  std::string scope_;
  bool backward_ = false;
  bool after_backward_ = false;  // a backward section has closed: later nodes are updates
  Status status_;
  absl::flat_hash_set<std::string> input_names_, parameter_names_, output_names_;
};

inline bool Value::valid() const { return b != nullptr && id >= 0 && id < b->graph().num_values(); }

}  // namespace cf
