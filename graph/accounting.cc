// Accounting (docs/accounting.md): node costs and parameters summed over the
// tree of scope prefixes, filters over that tree, and table exports.
#include "graph/accounting.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <regex>

#include "absl/container/flat_hash_map.h"

namespace cf {

// ---- Glob -------------------------------------------------------------------------

bool GlobMatch(absl::string_view glob, absl::string_view text) {
  // Greedy with backtracking to the last '*' (linear in practice).
  size_t g = 0, t = 0, star = absl::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == text[t])) {
      ++g;
      ++t;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = t;
    } else if (star != absl::string_view::npos) {
      g = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

// ---- Account ------------------------------------------------------------------------

namespace {

// Token count of an activation (see ScopeCost::tokens).
int64_t TokensOf(const TensorType& t) {
  const Shape& s = t.shape;
  if (s.rank() < 3) return 0;
  int64_t n = 1;
  for (int i = 1; i + 1 < s.rank(); ++i) n *= s[i];
  return n;
}

bool Counted(bool backward, bool update, const std::string& op, const AccountOptions& o) {
  if (o.pass == Pass::kForward && (backward || update)) return false;
  if (o.pass == Pass::kBackward && !backward) return false;
  if (o.pass == Pass::kUpdate && !update) return false;
  if (!o.ops.empty() && std::find(o.ops.begin(), o.ops.end(), op) == o.ops.end()) return false;
  return true;
}
bool Counted(const Node& n, const AccountOptions& o) { return Counted(n.backward, n.update, n.op->name, o); }

}  // namespace

StatusOr<CostReport> Account(const Graph& graph, const AccountOptions& options) {
  CF_RETURN_IF_ERROR(graph.Verify());
  // Scopes in order of creation first; reordered to preorder at the end.
  std::vector<ScopeCost> made;
  absl::flat_hash_map<std::string, int> index;
  made.emplace_back();
  made[0].name = "(total)";
  index[""] = 0;
  auto scope_of = [&](const std::string& path) {
    // Creates the missing ancestors first, so a parent always exists.
    auto it = index.find(path);
    if (it != index.end()) return it->second;
    std::vector<std::string> missing{path};
    int parent = 0;
    for (;;) {
      const std::string& p = missing.back();
      const size_t dot = p.rfind('.');
      if (dot == std::string::npos) break;
      std::string up = p.substr(0, dot);
      auto found = index.find(up);
      if (found != index.end()) {
        parent = found->second;
        break;
      }
      missing.push_back(std::move(up));
    }
    for (auto m = missing.rbegin(); m != missing.rend(); ++m) {
      ScopeCost s;
      s.path = *m;
      const size_t dot = m->rfind('.');
      s.name = dot == std::string::npos ? *m : m->substr(dot + 1);
      s.depth = made[parent].depth + 1;
      s.parent = parent;
      const int id = static_cast<int>(made.size());
      made[parent].children.push_back(id);
      index[*m] = id;
      made.push_back(std::move(s));
      parent = id;
    }
    return parent;
  };

  std::vector<bool> has_tokens;  // per made scope: tokens already decided
  auto add_node = [&](const Node& n) {
    // What a fusion pass removed into n counts under its own scope and pass,
    // so per-scope FLOPs do not depend on the passes (graph/passes/).
    for (const AbsorbedCost& a : n.absorbed)
      if (Counted(a.backward, a.update, a.op, options)) made[scope_of(a.scope)].self += a.cost;
    if (!Counted(n, options)) return;
    const int s = scope_of(n.scope);
    made[s].self += n.cost;
    ++made[s].nodes;  // summed up the tree below
    int64_t tokens = 0;
    for (int in : n.inputs) {
      const ValueInfo& v = graph.value(in);
      if (v.kind == ValueKind::kParameter || v.kind == ValueKind::kConstant) continue;
      tokens = TokensOf(v.type);
      break;
    }
    has_tokens.resize(made.size(), false);
    for (int a = s; a >= 0 && !has_tokens[a]; a = made[a].parent) {
      has_tokens[a] = true;
      made[a].tokens = tokens;
    }
  };

  // Walk values in creation order: a parameter registers its scope, the first
  // output of a node stands for the node (outputs are made just before their
  // node), so scopes appear in the order the model was built.
  std::vector<bool> done(graph.num_nodes(), false);
  for (const ValueInfo& v : graph.values()) {
    if (v.kind == ValueKind::kParameter) {
      const int s = scope_of(v.scope);
      made[s].params += v.type.shape.numel();
      made[s].param_bytes += v.type.bytes();
    } else if (v.producer >= 0 && v.output_index == 0 && !done[v.producer]) {
      done[v.producer] = true;
      add_node(graph.node(v.producer));
    }
  }
  for (const Node& n : graph.nodes())
    if (!done[n.id]) add_node(n);

  // Subtree totals: children were created after their parent.
  for (size_t i = made.size(); i-- > 1;) {
    ScopeCost& s = made[i];
    s.cost += s.self;
    ScopeCost& p = made[s.parent];
    p.cost += s.cost;
    p.nodes += s.nodes;
    p.params += s.params;
    p.param_bytes += s.param_bytes;
  }
  made[0].cost += made[0].self;

  // Preorder.
  CostReport report;
  std::vector<int> new_id(made.size(), -1);
  std::vector<int> stack{0};
  while (!stack.empty()) {
    const int s = stack.back();
    stack.pop_back();
    new_id[s] = static_cast<int>(report.scopes_.size());
    report.scopes_.push_back(made[s]);
    for (auto c = made[s].children.rbegin(); c != made[s].children.rend(); ++c) stack.push_back(*c);
  }
  for (ScopeCost& s : report.scopes_) {
    if (s.parent >= 0) s.parent = new_id[s.parent];
    for (int& c : s.children) c = new_id[c];
  }
  return report;
}

// ---- Queries ---------------------------------------------------------------------------

const ScopeCost* CostReport::Find(absl::string_view path) const {
  for (const ScopeCost& s : scopes_)
    if (s.path == path) return &s;
  return nullptr;
}

std::vector<const ScopeCost*> CostReport::Match(absl::string_view glob) const {
  std::vector<const ScopeCost*> out;
  for (size_t i = 1; i < scopes_.size(); ++i)
    if (GlobMatch(glob, scopes_[i].path)) out.push_back(&scopes_[i]);
  return out;
}

StatusOr<std::vector<const ScopeCost*>> CostReport::MatchRegex(const std::string& regex) const {
  std::regex re;
  try {
    re = std::regex(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad scope regex '", regex, "': ", e.what()));
  }
  std::vector<const ScopeCost*> out;
  for (size_t i = 1; i < scopes_.size(); ++i)
    if (std::regex_match(scopes_[i].path, re)) out.push_back(&scopes_[i]);
  return out;
}

ScopeCost CostReport::Sum(const std::vector<const ScopeCost*>& list) const {
  std::vector<bool> listed(scopes_.size(), false);
  for (const ScopeCost* s : list) listed[s - scopes_.data()] = true;
  ScopeCost sum;
  sum.name = sum.path = absl::StrCat("(sum of ", list.size(), ")");
  std::vector<bool> counted(scopes_.size(), false);
  for (const ScopeCost* s : list) {
    bool nested = false;
    for (int a = s->parent; a >= 0 && !nested; a = scopes_[a].parent) nested = listed[a];
    if (nested || counted[s - scopes_.data()]) continue;  // inside another, or listed twice
    counted[s - scopes_.data()] = true;
    sum.cost += s->cost;
    sum.self += s->self;
    sum.nodes += s->nodes;
    sum.params += s->params;
    sum.param_bytes += s->param_bytes;
    sum.tokens = std::max(sum.tokens, s->tokens);
  }
  return sum;
}

StatusOr<const ScopeCost*> CostReport::HighestResolution(absl::string_view glob) const {
  const ScopeCost* best = nullptr;
  for (const ScopeCost* s : Match(glob)) {
    if (best == nullptr || s->tokens > best->tokens ||
        (s->tokens == best->tokens && s->cost.mac_flops > best->cost.mac_flops))
      best = s;
  }
  if (best == nullptr) return absl::NotFoundError(absl::StrCat("no scope matches '", std::string(glob), "'"));
  return best;
}

// ---- Exports -------------------------------------------------------------------------------

namespace {

struct Column {
  const char* header;   // markdown header, before its unit
  const char* key;      // CSV / JSON key
  int64_t (*get)(const ScopeCost&);
  enum Unit { kCount, kFlops, kScaledCount, kBytes } unit;
};

std::vector<Column> Columns(const TableOptions& t) {
  std::vector<Column> c;
  c.push_back({"nodes", "nodes", [](const ScopeCost& s) { return s.nodes; }, Column::kCount});
  if (t.params) {
    c.push_back({"params", "params", [](const ScopeCost& s) { return s.params; }, Column::kCount});
    c.push_back({"param", "param_bytes", [](const ScopeCost& s) { return s.param_bytes; }, Column::kBytes});
  }
  if (t.table1)
    c.push_back({"Table-1", "table1_flops", [](const ScopeCost& s) { return s.cost.table1_flops(); },
                 Column::kFlops});
  if (t.complete) {
    c.push_back({"total", "total_flops", [](const ScopeCost& s) { return s.cost.total_flops(); }, Column::kFlops});
    c.push_back({"MAC", "mac_flops", [](const ScopeCost& s) { return s.cost.mac_flops; }, Column::kFlops});
    c.push_back({"bias", "bias_flops", [](const ScopeCost& s) { return s.cost.bias_flops; }, Column::kFlops});
    c.push_back({"elementwise", "elementwise_flops", [](const ScopeCost& s) { return s.cost.elementwise_flops; },
                 Column::kFlops});
    c.push_back({"transcendentals", "transcendentals", [](const ScopeCost& s) { return s.cost.transcendentals; },
                 Column::kScaledCount});
  }
  if (t.bytes) {
    c.push_back({"read", "bytes_read", [](const ScopeCost& s) { return s.cost.bytes_read; }, Column::kBytes});
    c.push_back({"written", "bytes_written", [](const ScopeCost& s) { return s.cost.bytes_written; },
                 Column::kBytes});
  }
  c.push_back({"tokens", "tokens", [](const ScopeCost& s) { return s.tokens; }, Column::kCount});
  return c;
}

// The unit of one markdown column, chosen from its largest value so that a
// small net does not print 0.000 everywhere: decimal prefixes for FLOPs and
// counts (K, M, G, T), binary ones for bytes (KiB, MiB, GiB).
struct Scale {
  double divisor = 1;
  std::string suffix;  // appended to the header
};

Scale ScaleFor(Column::Unit u, int64_t largest) {
  const double v = static_cast<double>(largest);
  if (u == Column::kBytes) {
    static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    double d = 1;
    while (i < 4 && v >= d * 1024) d *= 1024, ++i;
    return {d, kNames[i]};
  }
  static constexpr const char* kPrefix[] = {"", "K", "M", "G", "T"};
  int i = 0;
  double d = 1;
  while (i < 4 && v >= d * 1000) d *= 1000, ++i;
  if (u == Column::kFlops) return {d, absl::StrCat(kPrefix[i], "FLOP")};
  return {d, i == 0 ? "" : absl::StrCat("(", kPrefix[i], ")")};
}

std::string Human(int64_t v, Column::Unit u, const Scale& scale) {
  if (u == Column::kCount || scale.divisor == 1) return absl::StrCat(v);
  return absl::StrFormat("%.3f", static_cast<double>(v) / scale.divisor);
}

std::string DisplayPath(const ScopeCost& s) { return s.path.empty() ? s.name : s.path; }

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string r = "\"";
  for (char c : s) {
    if (c == '"') r += '"';
    r += c;
  }
  return r + "\"";
}

}  // namespace

std::vector<const ScopeCost*> CostReport::Rows(const TableOptions& t,
                                               const std::vector<const ScopeCost*>* rows) const {
  if (rows != nullptr) return *rows;
  std::vector<const ScopeCost*> out;
  for (const ScopeCost& s : scopes_) {
    if (s.depth == 0 ? !t.include_root : (t.max_depth >= 0 && s.depth > t.max_depth)) continue;
    out.push_back(&s);
  }
  return out;
}

std::string CostReport::ToMarkdown(const TableOptions& t, const std::vector<const ScopeCost*>* rows) const {
  const std::vector<Column> cols = Columns(t);
  const std::vector<const ScopeCost*> shown = Rows(t, rows);
  std::vector<Scale> scales;
  for (const Column& c : cols) {
    int64_t largest = 0;
    for (const ScopeCost* r : shown) largest = std::max(largest, c.get(*r));
    scales.push_back(ScaleFor(c.unit, largest));
  }
  std::string s = "| scope |";
  std::string rule = "|---|";
  for (size_t i = 0; i < cols.size(); ++i) {
    const Column& c = cols[i];
    if (!t.human) {
      absl::StrAppend(&s, " ", c.key, " |");
    } else if (c.unit == Column::kCount || scales[i].suffix.empty()) {
      absl::StrAppend(&s, " ", c.header, " |");
    } else {
      absl::StrAppend(&s, " ", c.header, " ", scales[i].suffix, " |");
    }
    rule += "---:|";
  }
  absl::StrAppend(&s, "\n", rule, "\n");
  for (const ScopeCost* r : shown) {
    absl::StrAppend(&s, "| ", DisplayPath(*r), " |");
    for (size_t i = 0; i < cols.size(); ++i) {
      const int64_t v = cols[i].get(*r);
      absl::StrAppend(&s, " ", t.human ? Human(v, cols[i].unit, scales[i]) : absl::StrCat(v), " |");
    }
    s += "\n";
  }
  return s;
}

std::string CostReport::ToCsv(const TableOptions& t, const std::vector<const ScopeCost*>* rows) const {
  const std::vector<Column> cols = Columns(t);
  std::string s = "scope,depth";
  for (const Column& c : cols) absl::StrAppend(&s, ",", c.key);
  s += "\n";
  for (const ScopeCost* r : Rows(t, rows)) {
    absl::StrAppend(&s, CsvField(DisplayPath(*r)), ",", r->depth);
    for (const Column& c : cols) absl::StrAppend(&s, ",", c.get(*r));
    s += "\n";
  }
  return s;
}

std::string CostReport::ToJson(const TableOptions& t, const std::vector<const ScopeCost*>* rows) const {
  const std::vector<Column> cols = Columns(t);
  JsonWriter j;
  j.BeginObject().Key("scopes").BeginArray();
  for (const ScopeCost* r : Rows(t, rows)) {
    j.BeginObject();
    j.Key("path").String(r->path).Key("name").String(r->name).Key("depth").Int(r->depth);
    for (const Column& c : cols) j.Key(c.key).Int(c.get(*r));
    j.EndObject();
  }
  j.EndArray().EndObject();
  return j.str() + "\n";
}

// ---- JSON writer --------------------------------------------------------------------------

std::string JsonWriter::Escape(absl::string_view s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\r': r += "\\r"; break;
      case '\t': r += "\\t"; break;
      case '\b': r += "\\b"; break;
      case '\f': r += "\\f"; break;
      default:
        if (c < 0x20) {
          r += absl::StrFormat("\\u%04x", c);
        } else {
          r += static_cast<char>(c);  // UTF-8 passes through
        }
    }
  }
  return r + "\"";
}

void JsonWriter::Newline() {
  if (!pretty_) return;
  out_ += '\n';
  out_.append(2 * first_.size(), ' ');
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (first_.empty()) return;
  if (!first_.back()) out_ += ',';
  first_.back() = false;
  Newline();
}

JsonWriter& JsonWriter::BeginObject() {
  BeforeValue();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  const bool empty = first_.back();
  first_.pop_back();
  if (!empty) Newline();
  out_ += '}';
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  const bool empty = first_.back();
  first_.pop_back();
  if (!empty) Newline();
  out_ += ']';
  return *this;
}

JsonWriter& JsonWriter::Key(absl::string_view key) {
  BeforeValue();
  out_ += Escape(key);
  out_ += pretty_ ? ": " : ":";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(absl::string_view s) {
  BeforeValue();
  out_ += Escape(s);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t v) {
  BeforeValue();
  absl::StrAppend(&out_, v);
  return *this;
}

JsonWriter& JsonWriter::Double(double v) {
  BeforeValue();
  if (!std::isfinite(v)) {
    out_ += "null";
    return *this;
  }
  // The shortest of %.15g / %.17g that reads back exactly.
  std::string s = absl::StrFormat("%.15g", v);
  if (std::strtod(s.c_str(), nullptr) != v) s = absl::StrFormat("%.17g", v);
  out_ += s;
  return *this;
}

JsonWriter& JsonWriter::Bool(bool v) {
  BeforeValue();
  out_ += v ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

}  // namespace cf
