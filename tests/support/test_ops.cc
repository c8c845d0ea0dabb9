#include "tests/support/test_ops.h"

namespace cf::testing {

OpDef SameTypeTestOp(std::string name, int num_inputs) {
  OpDef d;
  d.name = std::move(name);
  d.min_inputs = d.max_inputs = num_inputs;
  d.infer = [](const OpCall& c) -> StatusOr<std::vector<TensorType>> { return std::vector<TensorType>{c.inputs[0]}; };
  d.cost = [](const OpCall&, absl::Span<const TensorType>) { return Cost{}; };
  return d;
}

}  // namespace cf::testing
