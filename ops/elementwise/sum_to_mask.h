#pragma once

#include <cstdint>

#include "runtime/shape.h"

namespace cf {
// Bit d set when dimension d of `x` is summed away by sum_to(x, target):
// the leading dimensions target lacks, and those where target has 1.
uint32_t SumToMask(const Shape& x, const Shape& target);
}  // namespace cf
