#include "runtime/shape.h"

#include "absl/strings/str_join.h"

namespace cf {

int64_t Shape::numel() const { return prod(0, rank()); }

int64_t Shape::prod(int begin, int end) const {
  int64_t n = 1;
  for (int i = begin; i < end; ++i) n *= dims_[i];
  return n;
}

absl::InlinedVector<int64_t, Shape::kMaxRank> Shape::strides() const {
  absl::InlinedVector<int64_t, kMaxRank> s(dims_.size());
  int64_t acc = 1;
  for (int i = rank() - 1; i >= 0; --i) {
    s[i] = acc;
    acc *= dims_[i];
  }
  return s;
}

std::string Shape::ToString() const { return absl::StrCat("[", absl::StrJoin(dims_, ", "), "]"); }

}  // namespace cf
