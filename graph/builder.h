// Builder: makes graphs that read like the model. It keeps a scope stack (so
// every value and node knows its module path) and the first error: once an
// op fails shape inference, later ops return invalid values and status()
// reports the first failure with its scope, op and shapes.
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"

namespace cf {

class Builder;

// A handle to a graph value. Cheap to copy; invalid after an error.
struct Value {
  Builder* b = nullptr;
  int id = -1;

  bool valid() const { return b != nullptr && id >= 0; }
  const TensorType& type() const;
  const Shape& shape() const { return type().shape; }
  DType dtype() const { return type().dtype; }
  int rank() const { return shape().rank(); }
  int64_t dim(int i) const { return shape().dim(i); }
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
  // (autodiff's Gradients opens one), so accounting can split the two passes.
  class BackwardGuard {
   public:
    BackwardGuard(Builder* b, bool restore) : b_(b), restore_(restore) {}
    ~BackwardGuard() { if (b_) b_->backward_ = restore_; }
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

  void MarkOutput(Value v, absl::string_view name);

  // ---- errors
  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  // Records an error (the first one wins) with the current scope.
  void Fail(const Status& s);

  Value Wrap(int id) { return Value{this, id}; }

 private:
  Graph* graph_;
  std::string scope_;
  bool backward_ = false;
  Status status_;
};

}  // namespace cf
