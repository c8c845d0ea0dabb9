// Switches read from the environment, for a path a user may turn off
// (to measure what it saves, or to rule it out while debugging).
#pragma once

#include <cstdlib>
#include <string_view>

namespace cf {

// False when the variable `name` is set to "0", true otherwise (unset or any
// other value). Callers read it once and keep the result.
inline bool EnvSwitch(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr || std::string_view(v) != "0";
}

}  // namespace cf
