// One table of results, written as markdown, CSV or JSON from the same
// cells, so the three formats of every convfusion-bench subcommand agree.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "graph/accounting.h"

namespace cf::bench {

// A cell: empty (null in JSON, "" in CSV, "-" in markdown), a string, an
// exact integer, or a double printed with `digits` decimals (JSON keeps the
// full value).
struct Cell {
  enum class Kind : uint8_t { kNull, kString, kInt, kDouble };
  Kind kind = Kind::kNull;
  std::string s;
  int64_t i = 0;
  double d = 0;
  int digits = 2;

  static Cell Null() { return {}; }
  static Cell Str(std::string v) { return {Kind::kString, std::move(v)}; }
  static Cell Int(int64_t v) { return {Kind::kInt, {}, v}; }
  static Cell Num(double v, int digits = 2) { return {Kind::kDouble, {}, 0, v, digits}; }
  std::string Text() const;  // as markdown and CSV show it
};

struct Column {
  Column(std::string k, std::string h = "", bool md = true)  // NOLINT: {"key", "header"} reads best in tables
      : key(std::move(k)), header(std::move(h)), markdown(md) {}
  std::string key;       // CSV header and JSON key
  std::string header;    // markdown header ("" : the key)
  bool markdown = true;  // shown in markdown (CSV and JSON have every column)
};

struct Table {
  std::string name;   // "table1", "memory", ...: file names under --out
  std::string title;  // the markdown heading's text, JSON "what"
  std::vector<Column> columns;
  std::vector<std::vector<Cell>> rows;
  std::vector<std::string> notes;  // printed under the markdown table, JSON "notes"

  void Add(std::vector<Cell> row) { rows.push_back(std::move(row)); }
  int Index(const std::string& key) const;  // -1 when absent
  std::string ToMarkdown() const;
  std::string ToCsv() const;
  void ToJson(JsonWriter& j) const;  // one object: what, columns' rows, notes
  std::string ToJson() const;
};

// "markdown" | "csv" | "json" of several tables (markdown: one after the
// other; CSV: the first only, the others' rows would not fit its header;
// JSON: {"tables": [...]} or the one table's object).
std::string Format(const std::vector<Table>& tables, const std::string& format);

}  // namespace cf::bench
