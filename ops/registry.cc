#include "absl/strings/str_join.h"
#include "ops/op.h"

namespace cf {

double Attrs::Float(const std::string& name, double def) const {
  auto it = map_.find(name);
  if (it == map_.end()) return def;
  if (const double* v = std::get_if<double>(&it->second)) return *v;
  if (const int64_t* v = std::get_if<int64_t>(&it->second)) return static_cast<double>(*v);
  return def;
}

std::string Attrs::ToString() const {
  std::vector<std::string> parts;
  for (const auto& [k, v] : map_) {
    std::string s = std::visit(
        [](const auto& x) -> std::string {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, int64_t>) return absl::StrCat(x);
          else if constexpr (std::is_same_v<T, double>) return absl::StrCat(x);
          else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
          else if constexpr (std::is_same_v<T, std::string>) return "\"" + x + "\"";
          else if constexpr (std::is_same_v<T, DType>) return std::string(DTypeName(x));
          else return "[" + absl::StrJoin(x, ",") + "]";
        },
        v);
    parts.push_back(k + "=" + s);
  }
  return absl::StrJoin(parts, ", ");
}

Cost& Cost::operator+=(const Cost& o) {
  mac_flops += o.mac_flops;
  bias_flops += o.bias_flops;
  elementwise_flops += o.elementwise_flops;
  transcendentals += o.transcendentals;
  bytes_read += o.bytes_read;
  bytes_written += o.bytes_written;
  return *this;
}

std::string Cost::ToString() const {
  return absl::StrFormat("mac %d, bias %d, elementwise %d, transcendental %d, read %d B, written %d B",
                         mac_flops, bias_flops, elementwise_flops, transcendentals, bytes_read,
                         bytes_written);
}

OpRegistry& OpRegistry::Global() {
  static OpRegistry* r = new OpRegistry();
  return *r;
}

void OpRegistry::Register(OpDef def) {
  std::string name = def.name;
  defs_[name] = std::move(def);
}

void OpRegistry::RegisterKernel(const std::string& op, DeviceKind device, KernelFn fn) {
  kernels_[{op, device}] = std::move(fn);
}

const OpDef* OpRegistry::Find(absl::string_view name) const {
  auto it = defs_.find(std::string(name));
  return it == defs_.end() ? nullptr : &it->second;
}

StatusOr<const OpDef*> OpRegistry::Get(absl::string_view name) const {
  if (const OpDef* d = Find(name)) return d;
  return absl::NotFoundError(absl::StrCat("unknown op '", name, "'"));
}

const KernelFn* OpRegistry::FindKernel(absl::string_view op, DeviceKind device) const {
  auto it = kernels_.find({std::string(op), device});
  return it == kernels_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [k, v] : defs_) names.push_back(k);
  return names;
}

static std::string TypesString(absl::Span<const TensorType> ts) {
  std::vector<std::string> parts;
  for (const auto& t : ts) parts.push_back(t.ToString());
  return "(" + absl::StrJoin(parts, ", ") + ")";
}

StatusOr<std::vector<TensorType>> InferOp(const OpDef& def, const Attrs& attrs,
                                          absl::Span<const TensorType> inputs) {
  const int n = static_cast<int>(inputs.size());
  if (n < def.min_inputs || (def.max_inputs >= 0 && n > def.max_inputs)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: expects %d%s inputs, got %d %s", def.name, def.min_inputs,
        def.max_inputs == def.min_inputs ? ""
        : def.max_inputs < 0             ? " or more"
                                         : absl::StrCat(" to ", def.max_inputs),
        n, TypesString(inputs)));
  }
  OpCall call{def.name, attrs, inputs};
  auto result = def.infer(call);
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat(def.name, TypesString(inputs),
                                     attrs.map().empty() ? "" : " {" + attrs.ToString() + "}", ": ",
                                     result.status().message()));
  }
  return result;
}

Cost CostOf(const OpDef& def, const Attrs& attrs, absl::Span<const TensorType> inputs,
            absl::Span<const TensorType> outputs) {
  OpCall call{def.name, attrs, inputs};
  if (def.cost) return def.cost(call, outputs);
  return IoBytes(inputs, outputs);
}

Cost IoBytes(absl::Span<const TensorType> inputs, absl::Span<const TensorType> outputs) {
  Cost c;
  for (const auto& t : inputs) c.bytes_read += t.bytes();
  for (const auto& t : outputs) c.bytes_written += t.bytes();
  return c;
}

}  // namespace cf
