// CLI11 does the syntax (--name=value, --name value, -h/--help, the help
// text); every value is taken as a string and converted here, so that ranges,
// overflow and the one-line messages are the same in every executable.
#include "apps/common/cli.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "CLI/CLI.hpp"
#include "graph/passes/pass.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace cf::cli {
namespace {

std::string Num(double v) { return absl::StrFormat("%g", v); }

// Each returns "" on success, else what was wrong (without the flag).
std::string ParseInt(const std::string& s, int64_t lo, int64_t hi, int64_t* out) {
  int64_t v = 0;
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, v);
  const std::string range = absl::StrCat("[", lo, ", ", hi, "]");
  if (s.empty() || p != end || (ec != std::errc() && ec != std::errc::result_out_of_range))
    return absl::StrCat("'", s, "' is not an integer");
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    return absl::StrCat("value ", s, " is out of range ", range);
  *out = v;
  return "";
}

std::string ParseDouble(const std::string& s, const Interval& range, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return absl::StrCat("'", s, "' is not a number");
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return absl::StrCat("'", s, "' is not a number");
  if (!std::isfinite(v)) return absl::StrCat("value ", s, " is not a finite number");
  if (!range.Contains(v)) return absl::StrCat("value ", s, " is out of range ", range.ToString());
  *out = v;
  return "";
}

}  // namespace

bool Interval::Contains(double v) const {
  if (!std::isfinite(v)) return false;
  if (lo_open ? !(v > lo) : !(v >= lo)) return false;
  if (hi_open ? !(v < hi) : !(v <= hi)) return false;
  return true;
}

std::string Interval::ToString() const {
  return absl::StrCat(lo_open || std::isinf(lo) ? "(" : "[", Num(lo), ", ", Num(hi),
                      hi_open || std::isinf(hi) ? ")" : "]");
}

std::string OneLine(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::string s;
  for (char c : text) {
    if (c == '\n') {
      s += "; ";
    } else if (c != '\r') {
      s += c;
    }
  }
  return s;
}

int Fail(std::string_view program, const Status& status) {
  std::fprintf(stderr, "%s: %s\n", std::string(program).c_str(), OneLine(std::string(status.message())).c_str());
  return kExitFailure;
}

struct App::Impl {
  struct Spec {
    std::string flag;
    CLI::Option* option = nullptr;
    std::function<std::string(const std::string&)> apply;  // null: CLI11 binds it (flags)
  };
  std::string name;
  CLI::App app;
  std::vector<Spec> specs;
  bool no_fuse = false;

  Impl(std::string n, const std::string& description) : name(std::move(n)), app(description, name) {
    app.set_help_flag("-h,--help", "print this help and exit");
    app.allow_extras();  // unknown flags and positionals are reported below, in our words
    app.get_formatter()->column_width(34);
  }

  CLI::Option* AddValue(const std::string& flag, const std::string& help, const std::string& type,
                        const std::string& default_text, std::function<std::string(const std::string&)> apply) {
    // The default goes into the description: CLI11 would glue it to the type ("INT=5").
    CLI::Option* o =
        app.add_option(flag, default_text.empty() ? help : absl::StrCat(help, " (default: ", default_text, ")"));
    o->type_name(type)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    specs.push_back({flag, o, std::move(apply)});
    return o;
  }

  std::string Usage(const std::string& what) const { return absl::StrCat(name, ": ", OneLine(what), " (see --help)"); }
};

App::App(std::string name, std::string description) : impl_(std::make_unique<Impl>(std::move(name), description)) {
  // Every program: the graph passes off, for debugging (docs/passes.md).
  Flag("--no-fuse", &impl_->no_fuse,
       "run graphs as built: no fusion, CSE or constant hoisting (graph passes; for debugging)");
}
App::~App() = default;

const std::string& App::name() const { return impl_->name; }
std::string App::Help() const { return impl_->app.help(); }

void App::Int(const std::string& flag, int64_t* value, int64_t min, int64_t max, const std::string& help) {
  impl_->AddValue(flag, help, absl::StrCat("INT in [", min, ", ", max, "]"), absl::StrCat(*value),
                  [=](const std::string& s) { return ParseInt(s, min, max, value); });
}

void App::Int(const std::string& flag, int* value, int min, int max, const std::string& help) {
  impl_->AddValue(flag, help, absl::StrCat("INT in [", min, ", ", max, "]"), absl::StrCat(*value),
                  [=](const std::string& s) {
                    int64_t v = 0;
                    std::string err = ParseInt(s, min, max, &v);
                    if (err.empty()) *value = static_cast<int>(v);
                    return err;
                  });
}

void App::Double(const std::string& flag, double* value, Interval range, const std::string& help) {
  const std::string type = range.lo == -std::numeric_limits<double>::infinity() &&
                                   range.hi == std::numeric_limits<double>::infinity()
                               ? "NUMBER"
                               : absl::StrCat("NUMBER in ", range.ToString());
  impl_->AddValue(flag, help, type, Num(*value), [=](const std::string& s) { return ParseDouble(s, range, value); });
}

void App::Enum(const std::string& flag, std::string* value, std::vector<std::string> choices,
               const std::string& help) {
  const std::string joined = absl::StrJoin(choices, "|");
  impl_->AddValue(flag, help, joined, *value, [=](const std::string& s) -> std::string {
    if (std::find(choices.begin(), choices.end(), s) == choices.end())
      return absl::StrCat("'", s, "' is not one of ", absl::StrJoin(choices, ", "));
    *value = s;
    return "";
  });
}

void App::String(const std::string& flag, std::string* value, const std::string& placeholder,
                 const std::string& help) {
  impl_->AddValue(flag, help, placeholder, *value, [=](const std::string& s) -> std::string {
    if (s.empty()) return "needs a non-empty value";
    *value = s;
    return "";
  });
}

void App::Flag(const std::string& flag, bool* value, const std::string& help) {
  CLI::Option* o = impl_->app.add_flag(flag, *value, help);
  o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  impl_->specs.push_back({flag, o, nullptr});
}

ParseOutcome App::TryParse(const std::vector<std::string>& args) {
  ParseOutcome r;
  r.exit_code = kExitUsage;
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  try {
    impl_->app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    r.exit_code = kExitOk;
    r.out = Help();
    return r;
  } catch (const CLI::CallForAllHelp&) {
    r.exit_code = kExitOk;
    r.out = Help();
    return r;
  } catch (const CLI::ArgumentMismatch& e) {
    // "--steps: 1 required INT in [...] missing": a flag at the end without its value.
    const std::string what = e.what();
    for (const Impl::Spec& s : impl_->specs) {
      if (what.rfind(s.flag + ":", 0) == 0) {
        r.err = impl_->Usage(absl::StrCat(s.flag, ": needs a value"));
        return r;
      }
    }
    r.err = impl_->Usage(what);
    return r;
  } catch (const CLI::ParseError& e) {
    r.err = impl_->Usage(e.what());
    return r;
  }
  const std::vector<std::string> rest = impl_->app.remaining();
  if (!rest.empty()) {
    // "--" ends the options in CLI11; report what follows it, as nothing here takes positionals.
    auto it = std::find_if(rest.begin(), rest.end(), [](const std::string& x) { return x != "--"; });
    const std::string& a = it == rest.end() ? rest.front() : *it;
    if (a.size() > 1 && a[0] == '-' && it != rest.end() && !(a.size() > 2 && a[1] == '-' && a[2] == '=')) {
      r.err = impl_->Usage(absl::StrCat(a.substr(0, a.find('=')), ": unknown flag"));
    } else {
      r.err = impl_->Usage(absl::StrCat("unexpected argument '", a, "': options are --name=value"));
    }
    return r;
  }
  for (const Impl::Spec& s : impl_->specs) {
    if (!s.apply || s.option->count() == 0) continue;
    const std::vector<std::string>& given = s.option->results();
    const std::string err = s.apply(given.empty() ? std::string() : given.back());
    if (!err.empty()) {
      r.err = impl_->Usage(absl::StrCat(s.flag, ": ", err));
      return r;
    }
  }
  if (impl_->no_fuse) SetDefaultPassOptions(PassOptions::None());
  r.proceed = true;
  r.exit_code = kExitOk;
  return r;
}

int App::Parse(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  ParseOutcome r = TryParse(args);
  if (r.proceed) return -1;
  std::fputs(r.out.c_str(), stdout);
  if (!r.err.empty()) std::fprintf(stderr, "%s\n", r.err.c_str());
  std::fflush(stdout);
  return r.exit_code;
}

int App::Run(int argc, char** argv, const std::function<Status()>& body) {
  if (const int code = Parse(argc, argv); code >= 0) return code;
  return RunBody(body);
}

int App::RunBody(const std::function<Status()>& body) const {
  try {
    const Status s = body();
    if (!s.ok()) return Fail(impl_->name, s);
  } catch (const std::exception& e) {
    return Fail(impl_->name, absl::InternalError(absl::StrCat("unexpected exception: ", e.what())));
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) return Fail(impl_->name, absl::DataLossError("cannot write to stdout"));
  return kExitOk;
}

int App::UsageError(const std::string& what) const {
  std::fprintf(stderr, "%s: %s (see --help)\n", impl_->name.c_str(), OneLine(what).c_str());
  return kExitUsage;
}

std::string SubcommandNames(const std::vector<Subcommand>& table) {
  std::vector<std::string> names;
  for (const Subcommand& sc : table) names.push_back(sc.name);
  return absl::StrJoin(names, ", ");
}

std::string SubcommandHelp(std::string_view program, const std::string& header,
                           const std::vector<Subcommand>& table, int name_width) {
  std::string s = header + "\nSubcommands:\n";
  for (const Subcommand& sc : table) s += absl::StrFormat("  %-*s %s\n", name_width, sc.name, sc.summary);
  return absl::StrCat(s, "\n", std::string(program), " SUBCOMMAND --help shows its flags.\n");
}

int Dispatch(std::string_view program, const std::vector<Subcommand>& table, const std::string& help, int argc,
             char** argv) {
  const std::string names = SubcommandNames(table);
  if (argc < 2) {
    std::fprintf(stderr, "%.*s: needs a subcommand: %s (see --help)\n", static_cast<int>(program.size()),
                 program.data(), names.c_str());
    return kExitUsage;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h") {
    std::fputs(help.c_str(), stdout);
    return kExitOk;
  }
  for (const Subcommand& sc : table)
    if (first == sc.name) return sc.run(argc - 1, argv + 1);
  if (!first.empty() && first[0] == '-') {
    std::fprintf(stderr, "%.*s: %s: the subcommand (%s) comes first (see --help)\n", static_cast<int>(program.size()),
                 program.data(), first.substr(0, first.find('=')).c_str(), names.c_str());
  } else {
    std::fprintf(stderr, "%.*s: unknown subcommand '%s': one of %s (see --help)\n", static_cast<int>(program.size()),
                 program.data(), first.c_str(), names.c_str());
  }
  return kExitUsage;
}

Status TakeRepeated(int argc, char** argv, const std::string& flag, std::vector<std::string>* values,
                    std::vector<char*>* rest) {
  rest->assign(argv, argv + std::min(argc, 1));
  const std::string eq = flag + "=";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind(eq, 0) == 0) {
      values->push_back(a.substr(eq.size()));
    } else if (a == flag) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(flag, ": needs a value"));
      values->push_back(argv[++i]);
    } else {
      rest->push_back(argv[i]);
    }
  }
  return absl::OkStatus();
}

}  // namespace cf::cli
