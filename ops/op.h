// The op interface. An op family defines each op once (DESIGN.md, "one op, one
// place"): its schema, shape and dtype rule, cost, kernels per device and VJP.
// Families register themselves with CF_REGISTER_OP / CF_REGISTER_KERNEL from
// their own folder; nothing else needs to change to add an op.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/shape.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace cf {

class Builder;
class Stream;
struct Node;
struct Value;

// ---- Attributes -------------------------------------------------------------

using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>,
                               std::vector<double>, DType>;

// Typed, named attributes of one op call. Getters with a default return it
// when the attribute is absent; the Status-returning getters say which op and
// attribute is missing or has the wrong type.
class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<const std::string, AttrValue>> init) : map_(init) {}

  Attrs& Set(const std::string& name, AttrValue v) {
    map_[name] = std::move(v);
    return *this;
  }
  bool Has(const std::string& name) const { return map_.count(name) != 0; }

  int64_t Int(const std::string& name, int64_t def) const { return Get<int64_t>(name, def); }
  double Float(const std::string& name, double def) const;  // accepts an int attribute too
  bool Bool(const std::string& name, bool def) const { return Get<bool>(name, def); }
  std::string Str(const std::string& name, const std::string& def) const { return Get<std::string>(name, def); }
  std::vector<int64_t> Ints(const std::string& name, std::vector<int64_t> def = {}) const {
    return Get<std::vector<int64_t>>(name, std::move(def));
  }
  std::vector<double> Floats(const std::string& name, std::vector<double> def = {}) const {
    return Get<std::vector<double>>(name, std::move(def));
  }
  DType Type(const std::string& name, DType def) const { return Get<DType>(name, def); }

  // Errors when absent or of another type.
  StatusOr<int64_t> RequireInt(const std::string& name) const { return Require<int64_t>(name); }
  StatusOr<std::vector<int64_t>> RequireInts(const std::string& name) const {
    return Require<std::vector<int64_t>>(name);
  }
  StatusOr<DType> RequireType(const std::string& name) const { return Require<DType>(name); }

  const std::map<std::string, AttrValue>& map() const { return map_; }
  std::string ToString() const;  // "axis=-1, keepdim=true"

 private:
  template <typename T> T Get(const std::string& name, T def) const {
    auto it = map_.find(name);
    if (it == map_.end()) return def;
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    return def;
  }
  template <typename T> StatusOr<T> Require(const std::string& name) const {
    auto it = map_.find(name);
    if (it == map_.end()) return absl::InvalidArgumentError(absl::StrCat("missing attribute '", name, "'"));
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' has the wrong type"));
  }
  std::map<std::string, AttrValue> map_;
};

// ---- Types and cost ------------------------------------------------------------

struct TensorType {
  Shape shape;
  DType dtype = DType::f32;
  int64_t bytes() const { return shape.numel() * DTypeSize(dtype); }
  bool operator==(const TensorType& o) const { return shape == o.shape && dtype == o.dtype; }
  std::string ToString() const { return absl::StrCat(DTypeName(dtype), shape.ToString()); }
};

// Exact cost of one op call, kept by category (docs/flops.md states the rules):
// the paper's Table 1 counts mac_flops + bias_flops; the complete count adds
// the rest. Integers, so that large graphs add up exactly.
struct Cost {
  int64_t mac_flops = 0;          // 2 per multiply-add (matmul, conv, attention)
  int64_t bias_flops = 0;         // 1 per bias add of a linear / conv
  int64_t elementwise_flops = 0;  // 1 per other arithmetic op (+, -, *, /, max, ...)
  int64_t transcendentals = 0;    // 1 per exp, log, sqrt, rsqrt, erf, tanh, sin, cos, ...
  int64_t bytes_read = 0;
  int64_t bytes_written = 0;

  int64_t table1_flops() const { return mac_flops + bias_flops; }
  int64_t total_flops() const { return mac_flops + bias_flops + elementwise_flops + transcendentals; }
  Cost& operator+=(const Cost& o);
  std::string ToString() const;
};

// What shape inference and cost see of one call.
struct OpCall {
  const std::string& op;
  const Attrs& attrs;
  absl::Span<const TensorType> inputs;
};

// ---- Kernels -------------------------------------------------------------------

// What a kernel gets: inputs and preallocated outputs on one device, and a
// stream (null on the CPU). Kernels never allocate outputs.
struct KernelContext {
  const std::string& op;
  const Attrs& attrs;
  absl::Span<const Tensor> inputs;
  absl::Span<Tensor> outputs;
  Device device;
  Stream* stream = nullptr;
  // Scratch memory for backends that need it (cuBLASLt, cuDNN). Valid until
  // the kernel returns; may be called more than once (each call may reuse).
  std::function<StatusOr<void*>(int64_t bytes)> workspace;
  // State the caller keeps for this node from one run to the next (null when
  // it keeps none, e.g. a one-off call): a kernel may store what it derived
  // from its unchanging inputs here, such as a weight packed for the CPU GEMM
  // (through ops/kernel_state.h, which stores a KernelStateBase). The caller
  // resets it when any of the node's inputs is given a new value.
  std::shared_ptr<void>* state = nullptr;
  // Bit i set: input i holds the same values at every run of this node (a
  // parameter or constant: no node writes it, and the executor resets `state`
  // when SetParameter replaces it). Only inputs 0..63 are tracked.
  uint64_t stable_inputs = 0;
  bool input_is_stable(int i) const { return state != nullptr && i < 64 && ((stable_inputs >> i) & 1) != 0; }
};
using KernelFn = std::function<Status(KernelContext&)>;

// ---- VJP -----------------------------------------------------------------------

// What a VJP gets: the forward node's inputs and outputs as graph values, the
// gradients flowing into its outputs (an invalid Value means zero), and which
// inputs need a gradient. It returns one gradient per input (invalid Value for
// none), built from ordinary ops on `b`.
struct VjpContext {
  Builder& b;
  const Attrs& attrs;
  std::vector<Value> inputs;
  std::vector<Value> outputs;
  std::vector<Value> grad_outputs;
  std::vector<bool> needs_grad;
};
using VjpFn = std::function<StatusOr<std::vector<Value>>(VjpContext&)>;

// ---- Definition and registry -------------------------------------------------------

// Built with designated initializers, e.g.
//   OpDef{.name = "silu", .min_inputs = 1, .max_inputs = 1, .infer = ..., .doc = ...}
// (every member has a default, so omitted ones are simply empty).
struct OpDef {
  std::string name{};
  int min_inputs = 0;
  int max_inputs = 0;  // -1: unbounded
  std::function<StatusOr<std::vector<TensorType>>(const OpCall&)> infer{};
  // Empty: IoBytes (no arithmetic; the bytes of the inputs and outputs).
  std::function<Cost(const OpCall&, absl::Span<const TensorType> outputs)> cost{};
  VjpFn vjp{};  // empty: not differentiable
  // The output may share input 0's memory when input 0 dies here and both have
  // the same type (elementwise ops; the planner's in-place rule).
  bool inplace_ok = false;
  // The output is input 0's bytes under another shape (reshape, flatten): no
  // kernel runs, the planner gives it no memory of its own and extends input
  // 0's lifetime instead, and the executor binds a view.
  bool view_of_input0 = false;
  // Draws random numbers or has an effect beyond its outputs: two calls with
  // the same inputs and attributes are not interchangeable, so graph passes
  // never merge them (graph/passes/cse.h).
  bool stateful = false;
  std::string doc{};  // one line: what it computes
};

class OpRegistry {
 public:
  static OpRegistry& Global();
  void Register(OpDef def);
  void RegisterKernel(const std::string& op, DeviceKind device, KernelFn fn);

  const OpDef* Find(absl::string_view name) const;
  StatusOr<const OpDef*> Get(absl::string_view name) const;
  // Null when `op` has no kernel for `device`.
  const KernelFn* FindKernel(absl::string_view op, DeviceKind device) const;
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, OpDef, std::less<>> defs_;
  std::map<std::pair<std::string, DeviceKind>, KernelFn> kernels_;
};

// Checks the input count and runs the op's shape rule; errors name the op and
// the input types.
StatusOr<std::vector<TensorType>> InferOp(const OpDef& def, const Attrs& attrs,
                                          absl::Span<const TensorType> inputs);
Cost CostOf(const OpDef& def, const Attrs& attrs, absl::Span<const TensorType> inputs,
            absl::Span<const TensorType> outputs);
// Bytes of all inputs and outputs: the usual bytes_read / bytes_written of an op.
Cost IoBytes(absl::Span<const TensorType> inputs, absl::Span<const TensorType> outputs);

namespace detail {
struct Registrar {
  explicit Registrar(OpDef def) { OpRegistry::Global().Register(std::move(def)); }
  Registrar(const char* op, DeviceKind d, KernelFn fn) { OpRegistry::Global().RegisterKernel(op, d, std::move(fn)); }
};
}  // namespace detail

// At namespace scope in an op family's .cc / .cu file:
//   CF_REGISTER_OP(MatMulDef());              // an OpDef
//   CF_REGISTER_KERNEL("matmul", kCPU, MatMulCpu);
#define CF_REGISTER_OP(def) \
  static ::cf::detail::Registrar CF_CONCAT(cf_op_registrar_, __COUNTER__)(def)
#define CF_REGISTER_KERNEL(op, device, fn) \
  static ::cf::detail::Registrar CF_CONCAT(cf_kernel_registrar_, __COUNTER__)(op, ::cf::DeviceKind::device, fn)

}  // namespace cf
