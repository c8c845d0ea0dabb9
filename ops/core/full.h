#pragma once

#include "graph/builder.h"

namespace cf {
// A value of `shape` filled with `value`.
Value Full(Builder& b, const Shape& shape, DType dtype, double value);
}  // namespace cf
