// The geometry of one conv2d call (NHWC input, [out, kh, kw, in/groups]
// weights), shared by the CPU and CUDA conv tests: shapes, output size,
// attributes of the forward and backward ops, and a description for traces.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/op.h"

namespace cf::testing {

struct ConvGeometry {
  int64_t n, h, w, cin, cout, kh, kw;
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;

  int64_t ho() const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t wo() const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
  Shape x() const { return {n, h, w, cin}; }
  Shape wt() const { return {cout, kh, kw, cin / groups}; }
  Shape y() const { return {n, ho(), wo(), cout}; }
  // Products summed per output element (forward and backward input) and per
  // weight gradient element (over all output pixels).
  int64_t taps() const { return kh * kw * cin / groups; }
  int64_t pixels() const { return n * ho() * wo(); }

  Attrs attrs() const {
    return Attrs{{"stride", std::vector<int64_t>{sh, sw}},
                 {"padding", std::vector<int64_t>{ph, pw}},
                 {"dilation", std::vector<int64_t>{dh, dw}},
                 {"groups", groups}};
  }
  // attrs() plus the shape the backward op produces.
  Attrs backward_input_attrs() const {
    Attrs a = attrs();
    a.Set("input_shape", std::vector<int64_t>{n, h, w, cin});
    return a;
  }
  Attrs backward_weight_attrs() const {
    Attrs a = attrs();
    a.Set("weight_shape", std::vector<int64_t>{cout, kh, kw, cin / groups});
    return a;
  }
  std::string str() const {
    return absl::StrCat("x", x().ToString(), " w", wt().ToString(), " s", sh, "x", sw, " p", ph, "x", pw, " d", dh,
                        "x", dw, " g", groups);
  }
};

// A k x k conv with stride 1, no padding, no dilation, one group (callers set
// the rest).
inline ConvGeometry SquareConv(int64_t n, int64_t h, int64_t w, int64_t cin, int64_t cout, int64_t k) {
  return ConvGeometry{n, h, w, cin, cout, k, k};
}

}  // namespace cf::testing
