// Errors are values: absl::Status / absl::StatusOr across module boundaries.
// These macros keep call sites one line.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#define CF_CONCAT_INNER(a, b) a##b
#define CF_CONCAT(a, b) CF_CONCAT_INNER(a, b)

// Returns from the enclosing function when `expr` is not OK.
#define CF_RETURN_IF_ERROR(expr)                   \
  do {                                             \
    ::absl::Status cf_status_ = (expr);            \
    if (!cf_status_.ok()) return cf_status_;       \
  } while (0)

// `CF_ASSIGN_OR_RETURN(auto x, MakeX());` binds the value or returns the error.
#define CF_ASSIGN_OR_RETURN(lhs, expr) \
  CF_ASSIGN_OR_RETURN_IMPL(CF_CONCAT(cf_statusor_, __LINE__), lhs, expr)
#define CF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// Checks a condition that depends on input; returns InvalidArgument with a
// formatted message when it fails.
#define CF_CHECK_ARG(cond, ...)                                          \
  do {                                                                   \
    if (!(cond)) return ::absl::InvalidArgumentError(absl::StrCat(__VA_ARGS__)); \
  } while (0)

namespace cf {
using absl::Status;
using absl::StatusOr;
}  // namespace cf
