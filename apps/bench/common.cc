// apps/bench/common.h.
#include "apps/bench/common.h"

#include <cstdio>
#include <exception>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "apps/common/output_file.h"

namespace cf::bench {



void AddSelectionFlags(cli::App& app, Selection* s, bool resolutions) {
  app.String("--model", &s->models, "LIST",
             absl::StrCat("all, or a comma list of ", absl::StrJoin(ModelNames(), ", ")));
  app.String("--method", &s->methods, "LIST",
             absl::StrCat("all, or a comma list of ", absl::StrJoin(MethodNames(), ", ")));
  if (resolutions)
    app.String("--resolution", &s->resolutions, "LIST",
               "paper (512, 1024, 2K, 4K, 8K, 16K), or a comma list of those labels and WIDTHxHEIGHT");
}

namespace {
template <typename T>
int ParseList(const cli::App& app, const std::string& flag, const std::string& text, const std::vector<T>& all,
              const char* (*name)(T), std::vector<T>* out) {
  out->clear();
  if (text == "all") {
    *out = all;
    return -1;
  }
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    bool found = false;
    for (T v : all)
      if (part == name(v)) {
        found = true;
        if (std::find(out->begin(), out->end(), v) == out->end()) out->push_back(v);
      }
    if (!found) {
      std::vector<std::string> names;
      for (T v : all) names.push_back(name(v));
      return app.UsageError(absl::StrCat(flag, ": '", part, "' is not all or one of ", absl::StrJoin(names, ", ")));
    }
  }
  return -1;
}
}  // namespace

int CheckSelection(const cli::App& app, Selection* s) {
  if (int c = ParseList<Model>(app, "--model", s->models, AllModels(), ModelName, &s->model_list); c >= 0) return c;
  if (int c = ParseList<Method>(app, "--method", s->methods, AllMethods(), MethodName, &s->method_list); c >= 0)
    return c;
  if (s->resolutions != "paper")
    for (Model m : s->model_list)
      for (absl::string_view part : absl::StrSplit(s->resolutions, ',')) {
        auto r = ParseResolution(std::string(part), m);
        if (!r.ok()) return app.UsageError(absl::StrCat("--resolution: ", r.status().message()));
      }
  return -1;
}

std::vector<Resolution> ResolutionsFor(const Selection& s, Model m) {
  if (s.resolutions == "paper") return PaperResolutions(m);
  std::vector<Resolution> v;
  for (absl::string_view part : absl::StrSplit(s.resolutions, ',')) v.push_back(*ParseResolution(std::string(part), m));
  return v;
}

void AddOutputFlags(cli::App& app, OutputFlags* o) {
  app.Enum("--format", &o->format, {"markdown", "csv", "json"}, "what stdout gets");
  app.String("--out", &o->out, "DIR",
             "write NAME.md, NAME.csv, NAME.json (and plots, NAME_*.svg) into DIR, atomically, instead of stdout");
}

Status Emit(const OutputFlags& o, const std::vector<Table>& tables, const std::vector<Plot>& plots) {
  if (o.out.empty()) {
    std::fputs(Format(tables, o.format).c_str(), stdout);
    return absl::OkStatus();
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(o.out, ec) && !fs::is_directory(o.out, ec))
    return absl::FailedPreconditionError(absl::StrCat("--out: '", o.out, "' exists and is not a directory"));
  fs::create_directories(o.out, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("--out: cannot make '", o.out, "': ", ec.message()));
  std::vector<std::string> written;
  for (const Table& t : tables) {
    const std::string base = (fs::path(o.out) / t.name).string();
    CF_RETURN_IF_ERROR(cli::WriteFileAtomic(base + ".md", t.ToMarkdown()));
    CF_RETURN_IF_ERROR(cli::WriteFileAtomic(base + ".csv", t.ToCsv()));
    CF_RETURN_IF_ERROR(cli::WriteFileAtomic(base + ".json", t.ToJson()));
    written.push_back(t.name + ".{md,csv,json}");
  }
  for (const Plot& p : plots) {
    CF_RETURN_IF_ERROR(cli::WriteFileAtomic((fs::path(o.out) / (p.name + ".svg")).string(), p.svg));
    written.push_back(p.name + ".svg");
  }
  Progress(absl::StrCat("wrote ", absl::StrJoin(written, ", "), " in ", o.out));
  return absl::OkStatus();
}

void Progress(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", kProgram, what.c_str());
  std::fflush(stderr);
}

DType ParseDTypeFlag(const std::string& s) { return s == "bf16" ? DType::bf16 : s == "f32" ? DType::f32 : DType::f16; }

}  // namespace cf::bench
