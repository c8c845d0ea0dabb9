// Shape: up to kMaxRank dimensions, row-major (the last dimension is contiguous).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"

namespace cf {

class Shape {
 public:
  static constexpr int kMaxRank = 8;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(absl::Span<const int64_t> dims) : dims_(dims.begin(), dims.end()) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  // Python-style index: dim(-1) is the last dimension.
  int64_t dim(int i) const { return dims_[i < 0 ? i + rank() : i]; }
  int64_t numel() const;
  absl::Span<const int64_t> dims() const { return dims_; }
  // Row-major strides in elements.
  absl::InlinedVector<int64_t, kMaxRank> strides() const;
  // Product of dims in [begin, end).
  int64_t prod(int begin, int end) const;

  void push_back(int64_t d) { dims_.push_back(d); }
  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string ToString() const;  // "[2, 64, 64, 320]"

 private:
  absl::InlinedVector<int64_t, kMaxRank> dims_;
};

// A 2D extent or step [h, w] for builder options; one integer means both:
// `.stride = 2`, `.padding = {1, 0}`.
struct Size2 {
  int64_t h = 0, w = 0;
  constexpr Size2() = default;
  constexpr Size2(int64_t both) : h(both), w(both) {}  // NOLINT: implicit on purpose
  constexpr Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
  bool operator==(const Size2&) const = default;
};

// Normalises a possibly negative axis; returns -1 when out of range.
inline int NormalizeAxis(int axis, int rank) {
  if (axis < 0) axis += rank;
  return (axis < 0 || axis >= rank) ? -1 : axis;
}

}  // namespace cf
