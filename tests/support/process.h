// Files and processes for tests that run the executables (tests/apps) or
// write files (nn/safetensors): a temporary directory removed with its
// contents, whole-file reads, and running a program with captured output.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cf::testing {

// A fresh directory under the system's temporary directory; removed with
// everything in it when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // The names of its entries, sorted.
  std::vector<std::string> Entries() const;

 private:
  std::filesystem::path path_;
};

// The bytes of a file ("" when it cannot be read).
std::string ReadAll(const std::filesystem::path& path);

struct ProcessResult {
  int code = -1;  // the exit status; -1 when it did not exit normally
  std::string out, err;
};
// Runs `exe args...` with `cwd` as its working directory; stdout and stderr
// are captured through files outside `cwd`, so it sees nothing extra there.
ProcessResult RunProcess(const std::string& exe, const std::vector<std::string>& args,
                         const std::filesystem::path& cwd);

}  // namespace cf::testing
