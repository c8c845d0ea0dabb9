// Small helpers for the builder functions of the op families in ops/elementwise,
// ops/activation, ops/reduce and ops/loss.
#pragma once

#include <initializer_list>
#include <vector>

#include "graph/builder.h"

namespace cf::detail {

// The builder of the first value that has one. After an earlier error a value
// may be invalid with no builder; then there is nothing to build on and the
// caller returns an invalid value (the builder already holds the error).
inline Builder* AnyBuilder(std::initializer_list<Value> vs) {
  for (const Value& v : vs)
    if (v.b != nullptr) return v.b;
  return nullptr;
}

inline std::vector<int64_t> DimsOf(const Shape& s) { return std::vector<int64_t>(s.dims().begin(), s.dims().end()); }

// Checks that every input is floating and all share input 0's dtype.
inline Status CheckSameFloat(absl::Span<const TensorType> ins) {
  for (size_t i = 0; i < ins.size(); ++i) {
    CF_CHECK_ARG(IsFloating(ins[i].dtype), "input ", i, " has dtype ", DTypeName(ins[i].dtype),
                 "; a floating dtype (f32, f16, bf16, f64) is required");
    CF_CHECK_ARG(ins[i].dtype == ins[0].dtype, "inputs have different dtypes (", DTypeName(ins[0].dtype),
                 " and ", DTypeName(ins[i].dtype), ")");
  }
  return absl::OkStatus();
}

}  // namespace cf::detail
