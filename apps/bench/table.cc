// apps/bench/table.h.
#include "apps/bench/table.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace cf::bench {

std::string Cell::Text() const {
  switch (kind) {
    case Kind::kNull: return "";
    case Kind::kString: return s;
    case Kind::kInt: return absl::StrCat(i);
    case Kind::kDouble: return absl::StrFormat("%.*f", digits, d);
  }
  return "";
}

int Table::Index(const std::string& key) const {
  for (size_t c = 0; c < columns.size(); ++c)
    if (columns[c].key == key) return static_cast<int>(c);
  return -1;
}

std::string Table::ToMarkdown() const {
  std::string head = "|", rule = "|";
  for (const Column& c : columns) {
    if (!c.markdown) continue;
    absl::StrAppend(&head, " ", c.header.empty() ? c.key : c.header, " |");
    absl::StrAppend(&rule, "---|");
  }
  std::string s = absl::StrCat("## ", title, "\n\n", head, "\n", rule, "\n");
  for (const auto& row : rows) {
    s += "|";
    for (size_t c = 0; c < columns.size(); ++c) {
      if (!columns[c].markdown) continue;
      const std::string t = c < row.size() ? row[c].Text() : "";
      absl::StrAppend(&s, " ", t.empty() ? "-" : absl::StrReplaceAll(t, {{"|", "\\|"}}), " |");
    }
    s += "\n";
  }
  if (!notes.empty()) s += "\n";
  for (const std::string& n : notes) absl::StrAppend(&s, "- ", n, "\n");
  return s;
}

namespace {
std::string CsvField(const std::string& t) {
  if (t.find_first_of(",\"\n") == std::string::npos) return t;
  return absl::StrCat("\"", absl::StrReplaceAll(t, {{"\"", "\"\""}}), "\"");
}
}  // namespace

std::string Table::ToCsv() const {
  std::string s;
  for (size_t c = 0; c < columns.size(); ++c) absl::StrAppend(&s, c ? "," : "", columns[c].key);
  s += "\n";
  for (const auto& row : rows) {
    for (size_t c = 0; c < columns.size(); ++c) {
      const Cell& cell = c < row.size() ? row[c] : Cell();
      // CSV carries full precision for doubles (the markdown rounds).
      const std::string t = cell.kind == Cell::Kind::kDouble ? absl::StrFormat("%.*f", std::max(cell.digits, 6), cell.d)
                                                             : cell.Text();
      absl::StrAppend(&s, c ? "," : "", CsvField(t));
    }
    s += "\n";
  }
  return s;
}

void Table::ToJson(JsonWriter& j) const {
  j.BeginObject();
  j.Key("table").String(name);
  j.Key("what").String(title);
  j.Key("rows").BeginArray();
  for (const auto& row : rows) {
    j.BeginObject();
    for (size_t c = 0; c < columns.size(); ++c) {
      const Cell& cell = c < row.size() ? row[c] : Cell();
      j.Key(columns[c].key);
      switch (cell.kind) {
        case Cell::Kind::kNull: j.Null(); break;
        case Cell::Kind::kString: j.String(cell.s); break;
        case Cell::Kind::kInt: j.Int(cell.i); break;
        case Cell::Kind::kDouble: j.Double(cell.d); break;
      }
    }
    j.EndObject();
  }
  j.EndArray();
  j.Key("notes").BeginArray();
  for (const std::string& n : notes) j.String(n);
  j.EndArray();
  j.EndObject();
}

std::string Table::ToJson() const {
  JsonWriter j;
  ToJson(j);
  return j.str() + "\n";
}

std::string Format(const std::vector<Table>& tables, const std::string& format) {
  if (format == "csv") return tables.empty() ? "" : tables[0].ToCsv();
  if (format == "json") {
    if (tables.size() == 1) return tables[0].ToJson();
    JsonWriter j;
    j.BeginObject().Key("tables").BeginArray();
    for (const Table& t : tables) t.ToJson(j);
    j.EndArray().EndObject();
    return j.str() + "\n";
  }
  std::string s;
  for (size_t i = 0; i < tables.size(); ++i) absl::StrAppend(&s, i ? "\n" : "", tables[i].ToMarkdown());
  return s;
}

}  // namespace cf::bench
