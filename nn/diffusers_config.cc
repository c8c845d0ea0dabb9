// nn/diffusers_config.h. nlohmann json stays in this file (a private
// dependency of libcf); the ordered flavour keeps the file's key order for
// the note.
#include "nn/diffusers_config.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace cf {

using Json = nlohmann::ordered_json;

struct DiffusersConfig::Impl {
  Json root;
  mutable std::set<std::string> read;  // keys a getter or Accept touched
};

DiffusersConfig::DiffusersConfig(const DiffusersConfig& o)
    : source_(o.source_), impl_(o.impl_ ? std::make_unique<Impl>(*o.impl_) : nullptr) {}
DiffusersConfig& DiffusersConfig::operator=(const DiffusersConfig& o) {
  if (this != &o) {
    source_ = o.source_;
    impl_ = o.impl_ ? std::make_unique<Impl>(*o.impl_) : nullptr;
  }
  return *this;
}
DiffusersConfig::DiffusersConfig(DiffusersConfig&&) noexcept = default;
DiffusersConfig& DiffusersConfig::operator=(DiffusersConfig&&) noexcept = default;
DiffusersConfig::~DiffusersConfig() = default;

StatusOr<DiffusersConfig> DiffusersConfig::Parse(const std::string& text, const std::string& source) {
  DiffusersConfig c;
  c.source_ = source;
  c.impl_ = std::make_unique<Impl>();
  try {
    c.impl_->root = Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config ", source, ": not valid JSON: ", e.what()));
  }
  if (!c.impl_->root.is_object())
    return absl::InvalidArgumentError(absl::StrCat("config ", source, ": not a JSON object"));
  return c;
}

StatusOr<DiffusersConfig> DiffusersConfig::Load(const std::string& path) {
  std::filesystem::path p(path);
  std::error_code ec;
  // A folder, or a path that names none and is no .json file: the folder's config.json.
  if (std::filesystem::is_directory(p, ec) || p.extension() != ".json") p /= "config.json";
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("config: cannot open '", p.string(), "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), p.string());
}

namespace {

// A value as the error messages show it (short).
std::string Shown(const Json& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

Status WrongType(const std::string& source, const std::string& key, const Json& v, const char* want) {
  return absl::InvalidArgumentError(
      absl::StrCat("config ", source, ": key '", key, "' must be ", want, ", got ", Shown(v)));
}

StatusOr<int64_t> AsInt(const std::string& source, const std::string& key, const Json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  // 8.0 is an integer written as a float; 8.5 is not.
  if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>())))
    return static_cast<int64_t>(v.get<double>());
  return WrongType(source, key, v, "an integer");
}

}  // namespace

std::string DiffusersConfig::class_name() const {
  auto it = impl_->root.find("_class_name");
  return it != impl_->root.end() && it->is_string() ? it->get<std::string>() : "";
}

bool DiffusersConfig::Has(const std::string& key) const {
  impl_->read.insert(key);
  auto it = impl_->root.find(key);
  return it != impl_->root.end() && !it->is_null();
}

bool DiffusersConfig::Contains(const std::string& key) const {
  impl_->read.insert(key);
  return impl_->root.contains(key);
}

#define CF_CONFIG_REQUIRE(key)                                                                                \
  if (!Has(key))                                                                                              \
    return absl::NotFoundError(absl::StrCat("config ", source_, ": required key '", key, "' is missing"));   \
  const Json& v = impl_->root.at(key)

StatusOr<int64_t> DiffusersConfig::Int(const std::string& key) const {
  CF_CONFIG_REQUIRE(key);
  return AsInt(source_, key, v);
}

StatusOr<double> DiffusersConfig::Double(const std::string& key) const {
  CF_CONFIG_REQUIRE(key);
  if (!v.is_number()) return WrongType(source_, key, v, "a number");
  return v.get<double>();
}

StatusOr<bool> DiffusersConfig::Bool(const std::string& key) const {
  CF_CONFIG_REQUIRE(key);
  if (!v.is_boolean()) return WrongType(source_, key, v, "true or false");
  return v.get<bool>();
}

StatusOr<std::string> DiffusersConfig::String(const std::string& key) const {
  CF_CONFIG_REQUIRE(key);
  if (!v.is_string()) return WrongType(source_, key, v, "a string");
  return v.get<std::string>();
}

StatusOr<std::vector<std::string>> DiffusersConfig::StringList(const std::string& key) const {
  CF_CONFIG_REQUIRE(key);
  if (!v.is_array()) return WrongType(source_, key, v, "a list of strings");
  std::vector<std::string> out;
  for (const Json& e : v) {
    if (!e.is_string()) return WrongType(source_, key, v, "a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

#undef CF_CONFIG_REQUIRE

StatusOr<int64_t> DiffusersConfig::Int(const std::string& key, int64_t fallback) const {
  return Has(key) ? Int(key) : fallback;
}
StatusOr<double> DiffusersConfig::Double(const std::string& key, double fallback) const {
  return Has(key) ? Double(key) : fallback;
}
StatusOr<bool> DiffusersConfig::Bool(const std::string& key, bool fallback) const {
  return Has(key) ? Bool(key) : fallback;
}
StatusOr<std::string> DiffusersConfig::String(const std::string& key, const std::string& fallback) const {
  return Has(key) ? String(key) : fallback;
}
StatusOr<std::optional<std::string>> DiffusersConfig::OptionalString(const std::string& key) const {
  if (!Has(key)) return std::optional<std::string>();
  CF_ASSIGN_OR_RETURN(std::string s, String(key));
  return std::optional<std::string>(std::move(s));
}
StatusOr<std::optional<int64_t>> DiffusersConfig::OptionalInt(const std::string& key) const {
  if (!Has(key)) return std::optional<int64_t>();
  CF_ASSIGN_OR_RETURN(int64_t i, Int(key));
  return std::optional<int64_t>(i);
}

StatusOr<std::vector<int64_t>> DiffusersConfig::IntListOr(const std::string& key, int n, int64_t fallback) const {
  if (!Has(key)) return std::vector<int64_t>(static_cast<size_t>(n < 0 ? 1 : n), fallback);
  return IntList(key, n);
}

StatusOr<std::vector<int64_t>> DiffusersConfig::IntList(const std::string& key, int n) const {
  if (!Has(key)) return absl::NotFoundError(absl::StrCat("config ", source_, ": required key '", key, "' is missing"));
  const Json& v = impl_->root.at(key);
  if (!v.is_array()) {
    CF_ASSIGN_OR_RETURN(int64_t i, AsInt(source_, key, v));
    return std::vector<int64_t>(static_cast<size_t>(n < 0 ? 1 : n), i);
  }
  if (n >= 0 && v.size() != static_cast<size_t>(n))
    return absl::InvalidArgumentError(absl::StrCat("config ", source_, ": key '", key, "' must have ", n,
                                                   " entries (one per block), got ", Shown(v)));
  std::vector<int64_t> out;
  for (const Json& e : v) {
    if (e.is_null()) {
      out.push_back(0);
      continue;
    }
    CF_ASSIGN_OR_RETURN(int64_t i, AsInt(source_, key, e));
    out.push_back(i);
  }
  return out;
}

StatusOr<std::vector<bool>> DiffusersConfig::BoolList(const std::string& key, int n, bool fallback) const {
  if (!Has(key)) return std::vector<bool>(static_cast<size_t>(n), fallback);
  const Json& v = impl_->root.at(key);
  if (v.is_boolean()) return std::vector<bool>(static_cast<size_t>(n), v.get<bool>());
  if (!v.is_array() || v.size() != static_cast<size_t>(n))
    return WrongType(source_, key, v, absl::StrCat("true, false or a list of ", n, " of them").c_str());
  std::vector<bool> out;
  for (const Json& e : v) {
    if (!e.is_boolean()) return WrongType(source_, key, v, "a list of true / false");
    out.push_back(e.get<bool>());
  }
  return out;
}

void DiffusersConfig::Accept(const std::vector<std::string>& keys) const {
  for (const std::string& k : keys) impl_->read.insert(k);
}

std::vector<std::string> DiffusersConfig::UnknownKeys() const {
  std::vector<std::string> out;
  for (auto it = impl_->root.begin(); it != impl_->root.end(); ++it)
    if (!it.key().empty() && it.key()[0] != '_' && !impl_->read.count(it.key())) out.push_back(it.key());
  return out;
}

std::string DiffusersConfig::UnknownKeysNote() const {
  const std::vector<std::string> u = UnknownKeys();
  if (u.empty()) return "";
  return absl::StrCat("config ", source_, ": ignored unknown keys ", absl::StrJoin(u, ", "));
}

}  // namespace cf
