// nn/weights.h.
#include "nn/weights.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace cf {

namespace fs = std::filesystem;

Status WeightFiles::Add(const std::string& file, bool override_keys) {
  CF_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(file));
  const size_t index = files_.size();
  for (const std::string& n : f.names()) {
    auto [it, fresh] = where_.emplace(n, index);
    if (!fresh) {
      if (!override_keys)
        return absl::InvalidArgumentError(absl::StrCat("weights: tensor '", n, "' is in both '",
                                                       paths_[it->second], "' and '", file, "'"));
      it->second = index;
    }
  }
  files_.push_back(std::make_shared<SafetensorsFile>(std::move(f)));
  paths_.push_back(file);
  return absl::OkStatus();
}

namespace {

// The shard files a *.safetensors.index.json names, in first-use order.
StatusOr<std::vector<std::string>> Shards(const fs::path& index) {
  std::ifstream in(index, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("weights: cannot open '", index.string(), "'"));
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("weights: '", index.string(), "' is not valid JSON: ", e.what()));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    return absl::InvalidArgumentError(absl::StrCat("weights: '", index.string(), "' has no \"weight_map\" object"));
  std::vector<std::string> out;
  for (const auto& [key, file] : j["weight_map"].items()) {
    if (!file.is_string())
      return absl::InvalidArgumentError(
          absl::StrCat("weights: '", index.string(), "' maps '", key, "' to ", file.dump(), ", not a file name"));
    const std::string f = file.get<std::string>();
    // Shards sit beside the index; a name with a folder in it is refused.
    if (f.find('/') != std::string::npos || f.find('\\') != std::string::npos || f == "..")
      return absl::InvalidArgumentError(absl::StrCat("weights: '", index.string(), "' names shard '", f,
                                                     "' outside its folder"));
    const std::string p = (index.parent_path() / f).string();
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The files `path` stands for (see Open).
StatusOr<std::vector<std::string>> Resolve(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (!fs::is_directory(p, ec)) {
    if (EndsWith(path, ".index.json")) return Shards(p);
    if (!fs::exists(p, ec)) return absl::NotFoundError(absl::StrCat("weights: '", path, "' does not exist"));
    return std::vector<std::string>{path};
  }
  for (const char* stem : {"diffusion_pytorch_model", "model"}) {
    const fs::path index = p / absl::StrCat(stem, ".safetensors.index.json");
    if (fs::exists(index, ec)) return Shards(index);
    const fs::path single = p / absl::StrCat(stem, ".safetensors");
    if (fs::exists(single, ec)) return std::vector<std::string>{single.string()};
  }
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(p, ec))
    if (e.path().extension() == ".safetensors") found.push_back(e.path().string());
  if (found.size() == 1) return found;
  return absl::NotFoundError(absl::StrCat("weights: folder '", path, "' has ",
                                          found.empty() ? "no" : "several", " .safetensors files",
                                          found.empty() ? "" : " and no index naming them"));
}

// One element converted between the floating storage types (through f32,
// or f64 when either side is f64).
template <typename D, typename S>
D Convert(S v) {
  if constexpr (std::is_same_v<D, S>) {
    return v;
  } else if constexpr (std::is_same_v<D, double>) {
    return static_cast<double>(ToFloat(v));
  } else {
    const float f = static_cast<float>(ToFloat(v));
    if constexpr (std::is_same_v<D, float>) return f;
    if constexpr (std::is_same_v<D, f16_t>) return f16_t{F32ToF16Bits(f)};
    if constexpr (std::is_same_v<D, bf16_t>) return bf16_t{F32ToBF16Bits(f)};
  }
}

// Calls f(T{}) with T the element type of floating dtype t.
template <typename F>
void VisitFloating(DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::f64: f(double{}); break;
    case DType::f16: f(f16_t{}); break;
    case DType::bf16: f(bf16_t{}); break;
    default: break;
  }
}

// src viewed as [outer, a, b] -> dst [outer, b, a], converted on the way:
// PyTorch's [O, I, kh·kw] -> [O, kh·kw, I], and [C, K·K] -> [K·K, C] with
// outer = 1. a == 1 or b == 1 is a converting copy. One pass over the bytes.
void TransposeConvert(const Tensor& src, Tensor& dst, int64_t outer, int64_t a, int64_t b) {
  VisitFloating(src.dtype(), [&](auto s0) {
    using S = decltype(s0);
    VisitFloating(dst.dtype(), [&](auto d0) {
      using D = decltype(d0);
      const S* in = static_cast<const S*>(src.raw());
      D* out = static_cast<D*>(dst.raw());
      if (a == 1 || b == 1) {
        const int64_t n = outer * a * b;
        for (int64_t i = 0; i < n; ++i) out[i] = Convert<D>(in[i]);
        return;
      }
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t j = 0; j < b; ++j)
          for (int64_t i = 0; i < a; ++i) out[(o * b + j) * a + i] = Convert<D>(in[(o * a + i) * b + j]);
    });
  });
}

}  // namespace

StatusOr<WeightFiles> WeightFiles::Open(const std::string& path) { return Open(std::vector<std::string>{path}); }

StatusOr<WeightFiles> WeightFiles::Open(const std::vector<std::string>& paths) {
  WeightFiles w;
  for (size_t i = 0; i < paths.size(); ++i) {
    CF_ASSIGN_OR_RETURN(std::vector<std::string> files, Resolve(paths[i]));
    for (const std::string& f : files) CF_RETURN_IF_ERROR(w.Add(f, /*override_keys=*/i > 0));
  }
  return w;
}

std::vector<std::string> WeightFiles::names() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : where_) out.push_back(k);
  return out;
}

namespace {

bool HasRows(const WeightAlias& a) { return a.row_begin != 0 || a.row_end >= 0; }

// `info` (the source tensor's) as `a` presents it under `name`.
StatusOr<SafetensorsTensorInfo> Presented(SafetensorsTensorInfo info, const WeightAlias& a, const std::string& name) {
  const auto fail = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("weights: '", name, "' from '", a.source, "' ",
                                                   SafetensorsDTypeName(info.dtype), info.shape.ToString(), ": ",
                                                   what));
  };
  if (HasRows(a)) {
    const int64_t rows = info.shape.rank() > 0 ? info.shape[0] : 0;
    const int64_t end = a.row_end < 0 ? rows : a.row_end;
    if (info.shape.rank() == 0 || a.row_begin < 0 || a.row_begin > end || end > rows)
      return fail(absl::StrCat("has no rows [", a.row_begin, ", ", end, ")"));
    const int64_t row_bytes = rows > 0 ? info.nbytes() / rows : 0;
    info.begin += a.row_begin * row_bytes;
    info.end = info.begin + (end - a.row_begin) * row_bytes;
    info.shape[0] = end - a.row_begin;
  }
  if (a.reshape) {
    if (a.reshape->numel() != info.shape.numel())
      return fail(absl::StrCat("cannot be read as ", a.reshape->ToString()));
    info.shape = *a.reshape;
  }
  if (a.transpose) {
    if (info.shape.rank() != 2) return fail("is not a matrix to transpose");
    info.shape = Shape{info.shape[1], info.shape[0]};
  }
  info.name = name;
  return info;
}

}  // namespace

StatusOr<SafetensorsTensorInfo> WeightFiles::Info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat("weights: no tensor '", name, "'"));
  auto a = aliases_.find(name);
  if (a == aliases_.end()) return files_[it->second]->Info(name);
  CF_ASSIGN_OR_RETURN(SafetensorsTensorInfo info, files_[it->second]->Info(a->second.source));
  return Presented(std::move(info), a->second, name);
}

StatusOr<Tensor> WeightFiles::Get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) return absl::NotFoundError(absl::StrCat("weights: no tensor '", name, "'"));
  const SafetensorsFile& f = *files_[it->second];
  auto a = aliases_.find(name);
  const std::string& key = a == aliases_.end() ? name : a->second.source;
  auto v = f.View(key);
  if (!v.ok()) v = f.Read(key);
  if (!v.ok() || a == aliases_.end()) return v;
  CF_ASSIGN_OR_RETURN(SafetensorsTensorInfo info, Info(name));  // validates the alias
  Tensor t = *std::move(v);
  const WeightAlias& w = a->second;
  if (HasRows(w)) {
    const int64_t end = w.row_end < 0 ? t.shape()[0] : w.row_end;
    CF_ASSIGN_OR_RETURN(t, t.Narrow0(w.row_begin, end));
  }
  if (w.reshape) {
    CF_ASSIGN_OR_RETURN(t, t.Reshape(*w.reshape));
  }
  if (!w.transpose) return t;
  // [r, c] -> [c, r], element by element whatever the dtype.
  CF_ASSIGN_OR_RETURN(Tensor out, Tensor::Empty(info.shape, t.dtype()));
  const int64_t r = t.shape()[0], c = t.shape()[1], es = DTypeSize(t.dtype());
  const char* in = static_cast<const char*>(t.raw());
  char* o = static_cast<char*>(out.raw());
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) std::memcpy(o + (j * r + i) * es, in + (i * c + j) * es, static_cast<size_t>(es));
  return out;
}

StatusOr<WeightFiles> WeightFiles::WithAliases(const std::map<std::string, WeightAlias>& aliases,
                                               std::function<std::string(const std::string&)> source_of) const {
  WeightFiles w;
  w.paths_ = paths_;
  w.files_ = files_;
  w.source_of_ = std::move(source_of);
  for (const auto& [name, a] : aliases) {
    // Aliases of aliases resolve to the first source: a plain rename of an
    // alias is that alias, an alias of a plain rename reads its source.
    WeightAlias resolved = a;
    auto inner = aliases_.find(a.source);
    if (inner != aliases_.end()) {
      const WeightAlias& i = inner->second;
      const bool outer_plain = !HasRows(a) && !a.reshape && !a.transpose;
      if (outer_plain) {
        resolved = i;
      } else if (HasRows(i) || i.reshape || i.transpose) {
        return absl::UnimplementedError(absl::StrCat("weights: '", name, "' reshapes '", a.source,
                                                     "', itself a reshaped alias"));
      } else {
        resolved.source = i.source;
      }
    }
    auto it = where_.find(a.source);
    if (it == where_.end())
      return absl::NotFoundError(absl::StrCat("weights: '", name, "' is read from '", a.source,
                                              "', which is in none of ", absl::StrJoin(paths_, ", ")));
    CF_ASSIGN_OR_RETURN(SafetensorsTensorInfo info, files_[it->second]->Info(resolved.source));
    CF_RETURN_IF_ERROR(Presented(std::move(info), resolved, name).status());
    w.where_[name] = it->second;
    w.aliases_[name] = std::move(resolved);
  }
  return w;
}

std::string WeightFiles::SourceKey(const std::string& name) const {
  auto a = aliases_.find(name);
  if (a != aliases_.end()) return a->second.source;
  if (where_.count(name)) return name;
  return source_of_ ? source_of_(name) : "";
}

std::string WeightFiles::FileOf(const std::string& name) const {
  auto it = where_.find(name);
  return it == where_.end() ? "" : paths_[it->second];
}

std::string LoadedWeights::Summary() const {
  return absl::StrFormat("loaded %d tensors (%.3g MB), %d missing, %d unexpected", parameters.size(),
                         static_cast<double>(bytes_read) / 1e6, missing.size(), unexpected.size());
}

StatusOr<LoadedWeights> LoadWeights(const Graph& graph, const WeightFiles& files, const LoadWeightsOptions& o) {
  LoadedWeights out;
  std::vector<std::string> missing, mismatched;
  std::map<std::string, bool> used;  // file keys read
  for (int id : graph.Parameters()) {
    const ValueInfo& p = graph.value(id);
    if (p.name.compare(0, o.prefix.size(), o.prefix) != 0) continue;
    const std::string key = p.name.substr(o.prefix.size());
    const Shape& d = p.type.shape;
    if (!files.contains(key)) {
      const std::string source = files.SourceKey(key);
      missing.push_back(absl::StrCat(key, " ", p.type.ToString(),
                                     source.empty() || source == key ? "" : absl::StrCat(" (file key '", source, "')")));
      continue;
    }
    used[key] = true;
    CF_ASSIGN_OR_RETURN(SafetensorsTensorInfo info, files.Info(key));
    const Shape& f = info.shape;
    // Which layout the file holds (see the header); `transpose`: the file
    // is [outer, a, b] and the parameter [outer, b, a].
    bool fits = false, transpose = false;
    if (d.rank() == 4) {
      fits = transpose = f == Shape{d[0], d[3], d[1], d[2]};
    } else if (d.rank() == 2) {
      fits = f == d || f == Shape{d[0], d[1], 1, 1};
    } else if (d.rank() == 3 && d[0] == d[1]) {
      fits = f == d;
      if (!fits) fits = transpose = f == Shape{d[2], 1, d[0], d[1]};  // [C, 1, K, K] -> [K, K, C]
    } else {
      fits = f == d;
    }
    const DType fdt = SafetensorsReadDType(info.dtype);
    if (!fits || !IsFloating(fdt)) {
      std::string want = d.rank() == 4   ? Shape{d[0], d[3], d[1], d[2]}.ToString() + " (PyTorch's OIHW)"
                         : d.rank() == 2 ? absl::StrCat(d.ToString(), " or ", Shape{d[0], d[1], 1, 1}.ToString())
                                         : d.ToString();
      const std::string source = files.SourceKey(key);
      mismatched.push_back(absl::StrCat(key, ": file ", SafetensorsDTypeName(info.dtype), f.ToString(),
                                        source == key ? "" : absl::StrCat(" (key '", source, "')"), " in '",
                                        files.FileOf(key), "', expected ", want,
                                        IsFloating(fdt) ? "" : " (floating)"));
      continue;
    }
    if (!mismatched.empty()) continue;  // only collect the report from here on
    CF_ASSIGN_OR_RETURN(Tensor t, files.Get(key));
    out.bytes_read += info.nbytes();
    CF_ASSIGN_OR_RETURN(Tensor v, Tensor::Empty(d, p.type.dtype));
    if (!transpose) {
      TransposeConvert(t, v, 1, 1, d.numel());
    } else if (d.rank() == 4) {
      TransposeConvert(t, v, d[0], d[3], d[1] * d[2]);  // [O, I, kh·kw] -> [O, kh·kw, I]
    } else {
      TransposeConvert(t, v, 1, d[2], d[0] * d[1]);     // [C, K·K] -> [K·K, C]
    }
    out.parameters.push_back({p.name, std::move(v)});
  }
  std::vector<std::string> unexpected;
  for (const std::string& k : files.names())
    if (!used.count(k)) {
      auto info = files.Info(k);
      unexpected.push_back(absl::StrCat(k, " ", info.ok() ? SafetensorsDTypeName(info->dtype) : "?",
                                        info.ok() ? info->shape.ToString() : ""));
    }
  std::vector<std::string> problems;
  const auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    const size_t shown = std::min<size_t>(v.size(), 50);
    problems.push_back(absl::StrCat(v.size(), " ", what, ":\n  ",
                                    absl::StrJoin(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(shown), "\n  "),
                                    shown < v.size() ? absl::StrCat("\n  ... and ", v.size() - shown, " more") : ""));
  };
  list("mis-shaped", mismatched);
  if (!o.allow_missing) list("missing (parameters the files lack)", missing);
  if (!o.allow_unexpected) list("unexpected (tensors no parameter takes)", unexpected);
  if (!problems.empty())
    return absl::InvalidArgumentError(absl::StrCat("weights from ", absl::StrJoin(files.files(), ", "), ": ",
                                                   absl::StrJoin(problems, "\n")));
  out.missing = std::move(missing);
  out.unexpected = std::move(unexpected);
  return out;
}

}  // namespace cf
