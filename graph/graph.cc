#include "graph/graph.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_join.h"

namespace cf {

const char* ValueKindName(ValueKind k) {
  switch (k) {
    case ValueKind::kInput: return "input";
    case ValueKind::kParameter: return "parameter";
    case ValueKind::kConstant: return "constant";
    case ValueKind::kIntermediate: return "intermediate";
  }
  return "?";
}

int Graph::AddValue(ValueInfo v) {
  v.id = num_values();
  values_.push_back(std::move(v));
  return values_.back().id;
}

int Graph::AddNode(Node n) {
  n.id = num_nodes();
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    values_[n.outputs[i]].producer = n.id;
    values_[n.outputs[i]].output_index = static_cast<int>(i);
  }
  nodes_.push_back(std::move(n));
  return nodes_.back().id;
}

static std::vector<int> Select(const std::deque<ValueInfo>& vs, auto pred) {
  std::vector<int> out;
  for (const auto& v : vs)
    if (pred(v)) out.push_back(v.id);
  return out;
}
std::vector<int> Graph::Inputs() const {
  return Select(values_, [](const ValueInfo& v) { return v.kind == ValueKind::kInput; });
}
std::vector<int> Graph::Parameters() const {
  return Select(values_, [](const ValueInfo& v) { return v.kind == ValueKind::kParameter; });
}
std::vector<int> Graph::Outputs() const {
  std::vector<int> out = Select(values_, [](const ValueInfo& v) { return v.is_output; });
  std::stable_sort(out.begin(), out.end(), [this](int a, int b) {
    const int pa = values_[a].output_position, pb = values_[b].output_position;
    if ((pa >= 0) != (pb >= 0)) return pa >= 0;  // positioned outputs first
    return pa >= 0 && pa < pb;                   // then creation order (stable)
  });
  return out;
}

static int FindBy(const std::deque<ValueInfo>& vs, absl::string_view name, auto pred) {
  for (const auto& v : vs)
    if (pred(v) && v.name == name) return v.id;
  return -1;
}
int Graph::FindInput(absl::string_view name) const {
  return FindBy(values_, name, [](const ValueInfo& v) { return v.kind == ValueKind::kInput; });
}
int Graph::FindParameter(absl::string_view name) const {
  return FindBy(values_, name, [](const ValueInfo& v) { return v.kind == ValueKind::kParameter; });
}
int Graph::FindOutput(absl::string_view name) const {
  for (const auto& v : values_)
    if (v.is_output && v.output_name == name) return v.id;
  return -1;
}

std::vector<std::vector<int>> Graph::Consumers() const {
  std::vector<std::vector<int>> c(values_.size());
  for (const Node& n : nodes_)
    for (int in : n.inputs) c[in].push_back(n.id);
  return c;
}

void Graph::set_build_status(Status s) { build_status_ = std::move(s); }

Status Graph::Verify() const {
  if (!build_status_.ok()) {
    return Status(build_status_.code(),
                  absl::StrCat("the graph's builder failed: ", build_status_.message()));
  }
  const int nv = num_values();
  // Where each value becomes available: leaves at -1, intermediates at their producer.
  std::vector<int> produced_at(nv, -2);
  for (const ValueInfo& v : values_) {
    if (v.kind != ValueKind::kIntermediate) {
      if (v.producer != -1)
        return absl::FailedPreconditionError(absl::StrCat("graph: ", ValueKindName(v.kind), " %", v.id,
                                                          " '", v.name, "' has a producer"));
      produced_at[v.id] = -1;
    }
  }
  for (const Node& n : nodes_) {
    if (n.op == nullptr) return absl::FailedPreconditionError(absl::StrCat("graph: node ", n.id, " has no op"));
    for (int in : n.inputs) {
      if (in < 0 || in >= nv)
        return absl::FailedPreconditionError(absl::StrCat("graph: node ", n.id, " (", n.op->name, ", scope '",
                                                          n.scope, "') reads missing value %", in));
      if (produced_at[in] == -2)
        return absl::FailedPreconditionError(absl::StrCat(
            "graph: node ", n.id, " (", n.op->name, ", scope '", n.scope, "') reads %", in,
            " before it is produced (a cycle or a dangling value)"));
    }
    for (int out : n.outputs) {
      if (out < 0 || out >= nv)
        return absl::FailedPreconditionError(absl::StrCat("graph: node ", n.id, " writes missing value %", out));
      if (produced_at[out] != -2 || values_[out].producer != n.id)
        return absl::FailedPreconditionError(absl::StrCat("graph: value %", out, " is produced more than once"));
      produced_at[out] = n.id;
    }
  }
  std::set<std::pair<int, std::string>> names;
  for (const ValueInfo& v : values_) {
    if (produced_at[v.id] == -2)
      return absl::FailedPreconditionError(absl::StrCat("graph: intermediate %", v.id, " (scope '", v.scope,
                                                        "') is never produced (dangling)"));
    if (v.kind == ValueKind::kInput || v.kind == ValueKind::kParameter) {
      if (!names.insert({static_cast<int>(v.kind), v.name}).second)
        return absl::FailedPreconditionError(absl::StrCat("graph: two ", ValueKindName(v.kind), "s named '",
                                                          v.name, "'"));
    }
    if (v.is_output && !names.insert({100, v.output_name}).second)
      return absl::FailedPreconditionError(absl::StrCat("graph: two outputs named '", v.output_name, "'"));
  }
  return absl::OkStatus();
}

// A name or string attribute inside ToText's double quotes: backslash,
// quote and newline escaped (\\, \", \n), so every line parses back.
static std::string TextEscape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '\n') {
      r += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') r.push_back('\\');
    r.push_back(c);
  }
  return r;
}

// The node's attributes as Attrs::ToString writes them, string values escaped.
static std::string TextAttrs(const Attrs& attrs) {
  Attrs escaped = attrs;
  for (const auto& [k, v] : attrs.map())
    if (const std::string* str = std::get_if<std::string>(&v)) escaped.Set(k, TextEscape(*str));
  return escaped.ToString();
}

std::string Graph::ToText() const {
  std::string s;
  for (const ValueInfo& v : values_) {
    if (v.kind == ValueKind::kIntermediate) continue;
    absl::StrAppend(&s, "%", v.id, " = ", ValueKindName(v.kind), " \"", TextEscape(v.name), "\" ",
                    v.type.ToString(), v.frozen ? " frozen" : "", "\n");
  }
  for (const Node& n : nodes_) {
    std::vector<std::string> outs, ins;
    for (int o : n.outputs) outs.push_back(absl::StrCat("%", o));
    for (int i : n.inputs) ins.push_back(absl::StrCat("%", i));
    std::vector<std::string> types;
    for (int o : n.outputs) types.push_back(values_[o].type.ToString());
    absl::StrAppend(&s, absl::StrJoin(outs, ", "), " = ", n.op->name, "(", absl::StrJoin(ins, ", "), ")",
                    n.attrs.map().empty() ? "" : " {" + TextAttrs(n.attrs) + "}", " : ",
                    absl::StrJoin(types, ", "), n.scope.empty() ? "" : "  # " + n.scope, "\n");
  }
  for (int o : Outputs()) absl::StrAppend(&s, "output \"", TextEscape(values_[o].output_name), "\" = %", o, "\n");
  return s;
}

static std::string DotEscape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') r.push_back('\\');
    r.push_back(c);
  }
  return r;
}

std::string Graph::ToDot() const {
  std::string s = "digraph cf {\n  rankdir=TB;\n  node [fontname=\"monospace\", fontsize=10];\n";
  for (const ValueInfo& v : values_) {
    if (v.kind == ValueKind::kIntermediate) continue;
    const char* shape = v.kind == ValueKind::kInput ? "invhouse" : "note";
    absl::StrAppend(&s, "  v", v.id, " [shape=", shape, ", label=\"", DotEscape(v.name), "\\n",
                    v.type.ToString(), "\"];\n");
  }
  for (const Node& n : nodes_) {
    absl::StrAppend(&s, "  n", n.id, " [shape=box, label=\"", n.op->name, "\\n", DotEscape(n.scope), "\"];\n");
    for (int in : n.inputs) {
      const ValueInfo& v = values_[in];
      std::string src = v.producer >= 0 ? absl::StrCat("n", v.producer) : absl::StrCat("v", v.id);
      absl::StrAppend(&s, "  ", src, " -> n", n.id, " [label=\"", v.type.ToString(), "\"];\n");
    }
  }
  for (int o : Outputs()) {
    absl::StrAppend(&s, "  out", o, " [shape=house, label=\"", DotEscape(values_[o].output_name), "\"];\n");
    const ValueInfo& v = values_[o];
    std::string src = v.producer >= 0 ? absl::StrCat("n", v.producer) : absl::StrCat("v", v.id);
    absl::StrAppend(&s, "  ", src, " -> out", o, ";\n");
  }
  s += "}\n";
  return s;
}

}  // namespace cf
