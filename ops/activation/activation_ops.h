// Internal to ops/activation: which formula an activation op computes, for
// the CPU (activation.cc, geglu.cc) and CUDA (activation.cu, geglu.cu) kernels.
#pragma once

#include <type_traits>

#include "ops/activation/activation_math.h"
#include "ops/op.h"

namespace cf::act {

// The formula of op `op` ("silu", "gelu_backward", "geglu", ...) with `attrs`,
// and its parameter (negative_slope or alpha; 0 for the others). An error for
// a bad `approximate` value.
struct Selected {
  Kind kind;
  double param;
};
StatusOr<Selected> Select(const std::string& op, const Attrs& attrs);

// Calls fn(std::integral_constant<Kind, k>{}) for the runtime kind k.
template <typename F>
Status DispatchKind(Kind k, F&& fn) {
  switch (k) {
    case Kind::kSilu: return fn(std::integral_constant<Kind, Kind::kSilu>{});
    case Kind::kGeluErf: return fn(std::integral_constant<Kind, Kind::kGeluErf>{});
    case Kind::kGeluTanh: return fn(std::integral_constant<Kind, Kind::kGeluTanh>{});
    case Kind::kQuickGelu: return fn(std::integral_constant<Kind, Kind::kQuickGelu>{});
    case Kind::kLeakyRelu: return fn(std::integral_constant<Kind, Kind::kLeakyRelu>{});
    case Kind::kElu: return fn(std::integral_constant<Kind, Kind::kElu>{});
    case Kind::kSigmoid: return fn(std::integral_constant<Kind, Kind::kSigmoid>{});
  }
  return absl::InternalError("unknown activation kind");
}

}  // namespace cf::act
