// Accounting: the cost of a graph (Node::cost, filled by the builder) summed
// over the tree of module scopes, with parameter counts, exported as a
// markdown table, CSV or JSON. See docs/accounting.md for how to get the
// paper's tables and docs/flops.md for the counting convention. A node that
// a graph pass fused others into counts their FLOPs under their own scopes
// (Node::absorbed), so the numbers are the same with and without the passes.
//
//   CF_ASSIGN_OR_RETURN(CostReport r, Account(graph));
//   r.root().cost.table1_flops();                    // whole graph, Table 1 convention
//   r.Find("unet.mid_block")->cost.total_flops();    // one module, complete count
//   r.HighestResolution("*.attn1");                  // the paper's attention row
#pragma once

#include <string>
#include <vector>

#include "graph/graph.h"

namespace cf {

// Which nodes are counted.
enum class Pass : uint8_t {
  kAll,
  kForward,   // the rest: nodes neither backward nor update
  kBackward,  // nodes built by autodiff (Node::backward)
  kUpdate,    // nodes built after a gradient, outside it: optimizer updates (Node::update)
};

struct AccountOptions {
  Pass pass = Pass::kAll;
  // Only nodes of these ops (e.g. {"matmul", "linear"}); empty: every op.
  std::vector<std::string> ops = {};
};

// One scope of the tree. A scope path "a.b.c" has the ancestors "a" and "a.b"
// (each dot-separated prefix is a level), and the root has the path "".
struct ScopeCost {
  std::string path;  // "unet.down_blocks.0.attentions.1"; "" for the root
  std::string name;  // the last component ("1"); "(total)" for the root
  int depth = 0;     // number of components; 0 for the root
  int parent = -1;
  std::vector<int> children;  // indices into CostReport::scopes(), in order of first appearance

  Cost cost;             // nodes in this scope and every scope below it
  Cost self;             // nodes whose scope is exactly this path
  int64_t nodes = 0;     // counted nodes in the subtree
  int64_t params = 0;    // elements of the parameters created in the subtree
  int64_t param_bytes = 0;
  // The token count of the activation entering the subtree: the first counted
  // node in the subtree (node order), its first input that is not a parameter
  // or constant, of rank >= 3, the product of its dimensions between the
  // batch (first) and channel (last) ones: [B, N, C] -> N, [B, H, W, C] -> H*W.
  // 0 when unknown.
  int64_t tokens = 0;
};

// Columns of the exported tables (and which FLOP convention to show).
struct TableOptions {
  int max_depth = -1;         // deepest scope level printed (-1: all); the root is always printed
  bool include_root = true;
  bool human = true;          // markdown only: each column in the unit its largest value needs (MFLOP,
                              // GFLOP, KiB, MiB, ...); CSV and JSON are always exact integers
  bool table1 = true;         // the Table 1 convention column (mac + bias)
  bool complete = true;       // the complete count and its categories
  bool bytes = true;          // bytes read / written
  bool params = true;         // parameter count and bytes
};

class CostReport {
 public:
  // Preorder (a scope before its children, siblings in order of first
  // appearance); scopes()[0] is the root.
  const std::vector<ScopeCost>& scopes() const { return scopes_; }
  const ScopeCost& root() const { return scopes_[0]; }
  // Null when absent.
  const ScopeCost* Find(absl::string_view path) const;

  // Scopes whose path matches `glob` in full: `*` matches any run of
  // characters (dots included), `?` one character. "*.attn1" matches every
  // "....attn1"; "unet.down_blocks.?.attentions.*" the attentions below.
  std::vector<const ScopeCost*> Match(absl::string_view glob) const;
  // The same with an ECMAScript regular expression matched against the whole path.
  StatusOr<std::vector<const ScopeCost*>> MatchRegex(const std::string& regex) const;
  // The sum over `scopes`, each node counted once (a scope nested inside
  // another one of the list adds nothing).
  ScopeCost Sum(const std::vector<const ScopeCost*>& scopes) const;
  // The paper's "highest-resolution attention layer": among the scopes
  // matching `glob`, the one with the most tokens, ties broken by mac_flops
  // and then by order. NotFound when nothing matches.
  StatusOr<const ScopeCost*> HighestResolution(absl::string_view glob) const;

  // Exports. `rows` (when given) replaces the scope tree: e.g. the matches of
  // a glob. Numbers in CSV and JSON are exact integers.
  std::string ToMarkdown(const TableOptions& t = {}, const std::vector<const ScopeCost*>* rows = nullptr) const;
  std::string ToCsv(const TableOptions& t = {}, const std::vector<const ScopeCost*>* rows = nullptr) const;
  std::string ToJson(const TableOptions& t = {}, const std::vector<const ScopeCost*>* rows = nullptr) const;

 private:
  friend StatusOr<CostReport> Account(const Graph& graph, const AccountOptions& options);
  std::vector<const ScopeCost*> Rows(const TableOptions& t, const std::vector<const ScopeCost*>* rows) const;
  std::vector<ScopeCost> scopes_;
};

StatusOr<CostReport> Account(const Graph& graph, const AccountOptions& options = {});

// Does `text` match `glob` in full (`*`: any run of characters, `?`: one)?
bool GlobMatch(absl::string_view glob, absl::string_view text);

// A small streaming JSON writer (no dependency): commas and escaping are
// handled; the caller nests Begin/End calls correctly.
//   JsonWriter j; j.BeginObject(); j.Key("n"); j.Int(3); j.EndObject(); j.str();
class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = true) : pretty_(pretty) {}
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(absl::string_view key);
  JsonWriter& String(absl::string_view s);
  JsonWriter& Int(int64_t v);
  JsonWriter& Double(double v);  // non-finite values are written as null
  JsonWriter& Bool(bool v);
  JsonWriter& Null();
  const std::string& str() const { return out_; }
  static std::string Escape(absl::string_view s);  // the quoted JSON string

 private:
  void BeforeValue();
  void Newline();
  bool pretty_;
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

}  // namespace cf
