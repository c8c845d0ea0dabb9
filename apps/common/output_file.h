// Writing an executable's output file so that a failure never leaves a
// half-written file or a stray temporary behind.
#pragma once

#include <string>
#include <string_view>

#include "runtime/status.h"

namespace cf::cli {

// Writes `text` to `path`: into a new temporary ".NAME.tmp.XXXXXX" in the
// same directory, flushed to disk, then renamed over `path`. A directory, a
// path ending in '/', or a missing or unwritable directory is an error; on any
// error the temporary is removed and `path` is left as it was.
Status WriteFileAtomic(const std::string& path, std::string_view text);

}  // namespace cf::cli
