// The command line of every executable in apps/: one parser (CLI11 inside,
// not exposed here), one behaviour.
//
//   --help (or -h)  prints usage to stdout and exits 0.
//   Flags are --name=value or --name value; a repeated flag takes the last.
//   Usage errors (unknown flag, a positional argument, a missing or bad value,
//   a value out of range, a string not in the fixed set) print one line to
//   stderr, "PROGRAM: --flag: what was wrong (see --help)", and exit 2.
//   Failures at run time (a Status error from the body, an exception) print
//   one line, "PROGRAM: message", and exit 1.
//
//   int main(int argc, char** argv) {
//     cf::cli::App app("cf_train_demo", "Trains a small MLP ...");
//     int64_t steps = 2000;
//     app.Int("--steps", &steps, 1, 10'000'000, "training steps");
//     return app.Run(argc, argv, [&] { return Main(steps); });
//   }
//
// The value a variable holds when its option is added is its default (shown
// in --help); it is overwritten only when the flag is given.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace cf::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the program ran and failed
inline constexpr int kExitUsage = 2;    // the command line was wrong

// The values a double option accepts; always finite. Written "(0, 1000]".
struct Interval {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  static Interval Any() { return {}; }
  static Interval Closed(double lo, double hi) { return {lo, hi, false, false}; }
  // (lo, hi]: e.g. a learning rate, Interval::AboveUpTo(0, 1000).
  static Interval AboveUpTo(double lo, double hi) { return {lo, hi, true, false}; }
  bool Contains(double v) const;
  std::string ToString() const;
};

// What parsing decided: go on, or exit with `exit_code` after printing
// `out` (to stdout: the help) or `err` (to stderr: one line).
struct ParseOutcome {
  bool proceed = false;
  int exit_code = kExitOk;
  std::string out, err;
};

class App {
 public:
  // `name` is the program name used in usage and in every message.
  App(std::string name, std::string description);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // An integer in [min, max]; anything else (not an integer, overflow, out of
  // range) is a usage error.
  void Int(const std::string& flag, int64_t* value, int64_t min, int64_t max, const std::string& help);
  void Int(const std::string& flag, int* value, int min, int max, const std::string& help);
  // A finite double inside `range`.
  void Double(const std::string& flag, double* value, Interval range, const std::string& help);
  // One of `choices`, exactly as written. An empty *value means "not given"
  // and is shown as no default.
  void Enum(const std::string& flag, std::string* value, std::vector<std::string> choices, const std::string& help);
  // A non-empty string, e.g. a path; `placeholder` names it in --help (FILE).
  void String(const std::string& flag, std::string* value, const std::string& placeholder, const std::string& help);
  // A flag without a value: true when given.
  void Flag(const std::string& flag, bool* value, const std::string& help);

  // Parses args (without the program name) into the bound variables.
  ParseOutcome TryParse(const std::vector<std::string>& args);
  // TryParse on argv[1..]; prints what it says. Returns -1 to go on, else the
  // exit code.
  int Parse(int argc, char** argv);
  // Parse, then body(): 0 when it returns OK, 1 with one line on stderr when
  // it fails or throws.
  int Run(int argc, char** argv, const std::function<Status()>& body);
  // The part of Run after parsing, for subcommands that check more flags
  // themselves: kExitOk, or kExitFailure with one line on a failure, an
  // exception or an unwritable stdout.
  int RunBody(const std::function<Status()>& body) const;
  // "NAME: what (see --help)" as one line on stderr; returns kExitUsage.
  int UsageError(const std::string& what) const;

  std::string Help() const;
  const std::string& name() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Prints "program: message" as one line to stderr (newlines in the message
// become "; ") and returns kExitFailure.
int Fail(std::string_view program, const Status& status);

// The message on one line: newlines become "; ", trailing ones are dropped.
std::string OneLine(std::string_view text);

// A program of subcommands (convfusion-bench, convfusion-module) is a table
// of these; Dispatch runs the one argv[1] names.
struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);  // argv[0] is the subcommand's name
};
// "a, b, c".
std::string SubcommandNames(const std::vector<Subcommand>& table);
// `header`, then one line per subcommand (name padded to `name_width`), then
// how to get a subcommand's flags.
std::string SubcommandHelp(std::string_view program, const std::string& header,
                           const std::vector<Subcommand>& table, int name_width);
// argv[1] picks the subcommand, run on argv + 1; --help / -h prints `help`
// and exits 0; no subcommand, an unknown one or a flag first is a usage
// error naming the choices (exit 2).
int Dispatch(std::string_view program, const std::vector<Subcommand>& table, const std::string& help, int argc,
             char** argv);

// A repeatable flag, which App does not have: moves every `FLAG=V` and
// `FLAG V` of argv[1..] into *values and the other arguments (argv[0]
// first) into *rest, for App::Parse. An error for a trailing FLAG without
// its value.
Status TakeRepeated(int argc, char** argv, const std::string& flag, std::vector<std::string>* values,
                    std::vector<char*>* rest);

}  // namespace cf::cli
