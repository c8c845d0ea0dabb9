#include "graph/builder.h"

namespace cf {

const TensorType& Value::type() const {
  static const TensorType kInvalid{};
  return valid() ? b->graph().value(id).type : kInvalid;
}

int64_t Value::dim(int i) const {
  if (!valid()) return -1;
  const Shape& s = b->graph().value(id).type.shape;
  const int axis = NormalizeAxis(i, s.rank());
  return axis < 0 ? -1 : s[axis];
}

std::string Value::ToString() const {
  if (!valid()) {
    return b == nullptr ? "<invalid value: from a failed op (see Builder::status()) or default-constructed>"
                        : absl::StrCat("<invalid value %", id, ": not in this builder's graph>");
  }
  const ValueInfo& v = b->graph().value(id);
  return absl::StrCat("%", id, " ", v.type.ToString(), v.scope.empty() ? "" : absl::StrCat(" (", v.scope, ")"));
}

Builder::ScopeGuard Builder::scope(absl::string_view name) {
  std::string restore = scope_;
  scope_ = Qualified(name);
  return ScopeGuard(this, std::move(restore));
}

Builder::ScopeGuard Builder::absolute_scope(absl::string_view full) {
  std::string restore = scope_;
  scope_ = std::string(full);
  return ScopeGuard(this, std::move(restore));
}

std::string Builder::Qualified(absl::string_view name) const {
  return scope_.empty() ? std::string(name) : absl::StrCat(scope_, ".", name);
}

void Builder::Fail(const Status& s) {
  if (!status_.ok() || s.ok()) return;
  status_ = absl::Status(s.code(), scope_.empty() ? std::string(s.message())
                                                  : absl::StrCat("at '", scope_, "': ", s.message()));
  graph_->set_build_status(status_);
}

StatusOr<Graph*> Builder::Finish() {
  CF_RETURN_IF_ERROR(status_);
  CF_RETURN_IF_ERROR(graph_->Verify());
  return graph_;
}

bool Builder::ClaimName(ValueKind kind, const std::string& name) {
  auto& names = kind == ValueKind::kInput ? input_names_ : parameter_names_;
  if (names.insert(name).second) return true;
  Fail(absl::InvalidArgumentError(absl::StrCat("two ", ValueKindName(kind), "s named '", name, "'")));
  return false;
}

Value Builder::Input(absl::string_view name, Shape shape, DType dtype) {
  if (!ClaimName(ValueKind::kInput, std::string(name))) return {};
  ValueInfo v;
  v.type = {std::move(shape), dtype};
  v.kind = ValueKind::kInput;
  v.scope = scope_;
  v.name = std::string(name);
  return Wrap(graph_->AddValue(std::move(v)));
}

Value Builder::Parameter(absl::string_view name, Shape shape, DType dtype, Tensor data, bool frozen) {
  if (data.defined() && (data.shape() != shape || data.dtype() != dtype)) {
    Fail(absl::InvalidArgumentError(absl::StrCat("parameter '", Qualified(name), "' declared ",
                                                 TensorType{shape, dtype}.ToString(), " but given ",
                                                 data.DebugString())));
    return {};
  }
  if (!ClaimName(ValueKind::kParameter, Qualified(name))) return {};
  ValueInfo v;
  v.type = {std::move(shape), dtype};
  v.kind = ValueKind::kParameter;
  v.scope = scope_;
  v.name = Qualified(name);
  v.frozen = frozen;
  v.data = std::move(data);
  return Wrap(graph_->AddValue(std::move(v)));
}

Value Builder::Constant(Tensor data, absl::string_view name) {
  ValueInfo v;
  v.type = {data.shape(), data.dtype()};
  v.kind = ValueKind::kConstant;
  v.scope = scope_;
  v.name = Qualified(name);
  v.data = std::move(data);
  return Wrap(graph_->AddValue(std::move(v)));
}

std::vector<Value> Builder::Op(absl::string_view op, std::vector<Value> inputs, Attrs attrs) {
  if (!status_.ok()) return {};
  auto def = OpRegistry::Global().Get(op);
  if (!def.ok()) {
    Fail(def.status());
    return {};
  }
  std::vector<TensorType> in_types;
  std::vector<int> in_ids;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    if (!v.valid() || v.b != this) {
      Fail(absl::InvalidArgumentError(absl::StrCat(
          op, ": input ", i, v.valid() ? " belongs to another builder's graph"
                                       : " is an invalid Value (default-constructed, or from a failed op; an "
                                         "absent optional input is std::nullopt)")));
      return {};
    }
    in_types.push_back(v.type());
    in_ids.push_back(v.id);
  }
  auto out_types = InferOp(**def, attrs, in_types);
  if (!out_types.ok()) {
    Fail(out_types.status());
    return {};
  }
  Node n;
  n.op = *def;
  n.inputs = std::move(in_ids);
  n.scope = scope_;
  n.backward = backward_;
  n.update = !backward_ && after_backward_;
  n.cost = CostOf(**def, attrs, in_types, *out_types);
  n.attrs = std::move(attrs);
  std::vector<Value> outs;
  for (const TensorType& t : *out_types) {
    ValueInfo v;
    v.type = t;
    v.scope = scope_;
    int id = graph_->AddValue(std::move(v));
    n.outputs.push_back(id);
    outs.push_back(Wrap(id));
  }
  graph_->AddNode(std::move(n));
  return outs;
}

Value Builder::Op1(absl::string_view op, std::vector<Value> inputs, Attrs attrs) {
  std::vector<Value> outs = Op(op, std::move(inputs), std::move(attrs));
  if (outs.empty()) return {};
  if (outs.size() != 1) {
    Fail(absl::InvalidArgumentError(absl::StrCat(op, " has ", outs.size(), " outputs; use Op()")));
    return {};
  }
  return outs[0];
}

void Builder::MarkOutput(Value v, absl::string_view name) {
  if (!status_.ok()) return;  // `v` may be invalid because of that error
  if (!v.valid() || v.b != this) {
    Fail(absl::InvalidArgumentError(absl::StrCat("output '", name, "': ",
                                                 v.valid() ? "the value belongs to another builder's graph"
                                                           : "not a valid value")));
    return;
  }
  ValueInfo& info = graph_->mutable_value(v.id);
  if (info.is_output) {
    Fail(absl::InvalidArgumentError(absl::StrCat("output '", name, "': ", v.ToString(), " is already output '",
                                                 info.output_name, "' (mark a value once)")));
    return;
  }
  if (!output_names_.insert(std::string(name)).second) {
    Fail(absl::InvalidArgumentError(absl::StrCat("two outputs named '", name, "'")));
    return;
  }
  info.is_output = true;
  info.output_name = std::string(name);
}

}  // namespace cf
