#include "apps/common/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace cf::cli {
namespace {

}  // namespace

Status WriteFileAtomic(const std::string& path, std::string_view text) {
  namespace fs = std::filesystem;
  if (path.empty()) return absl::InvalidArgumentError("the output path is empty");
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec))
    return absl::FailedPreconditionError(absl::StrCat("cannot write '", path, "': it is a directory"));
  if (p.filename().empty())
    return absl::FailedPreconditionError(absl::StrCat("cannot write '", path, "': a file name cannot end in '/'"));
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(dir, ec))
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write '", path, "': '", dir.string(), "' is not a directory"));

  std::string tmp = (dir / ("." + p.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    return absl::UnavailableError(
        absl::StrCat("cannot write '", path, "': cannot create a temporary file in '", dir.string(), "': ", std::strerror(errno)));
  // Closes the file (unless closed), removes the temporary, says what failed.
  bool open = true;
  auto fail = [&](const char* what) {
    const std::string message = absl::StrCat("cannot write '", path, "': ", what, ": ", std::strerror(errno));
    if (open) ::close(fd);
    ::unlink(tmp.c_str());
    return absl::UnavailableError(message);
  };
  // mkstemp makes the file 0600; give it the mode a plain open() would.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0) {
    return fail("fchmod");
  }
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return fail("write");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    return fail("fsync");
  }
  open = false;
  if (::close(fd) != 0) return fail("close");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  return absl::OkStatus();
}

}  // namespace cf::cli
