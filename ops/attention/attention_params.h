// The geometry of one attention call, derived once from shapes and attributes
// and shared by the shape rules, cost rules and the CPU / CUDA kernels of the
// attention family (ops/attention/attention.h has the op contracts).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ops/op.h"

namespace cf {

// "attention", "attention_backward", "attention_probs".
struct SdpaParams {
  int64_t batch = 0, nq = 0, nkv = 0, heads = 0, head_dim = 0;
  double scale = 0;       // the softmax scale (default 1/sqrt(head_dim))
  bool causal = false;    // key j visible to query i iff j <= i
  int64_t window = -1;    // key j visible iff |i - j| <= window; -1: no band
  bool has_mask = false;  // a [B, Nkv] key mask is present

  int64_t channels() const { return heads * head_dim; }
  // Whether key j is visible to query i before the key mask.
  bool Visible(int64_t i, int64_t j) const {
    if (causal && j > i) return false;
    if (window >= 0 && (j < i - window || j > i + window)) return false;
    return true;
  }
  // The visible keys of query i are [KeyBegin(i), KeyEnd(i)) before the key
  // mask (the causal and band limits make them one contiguous range).
  int64_t KeyBegin(int64_t i) const { return window >= 0 ? std::max<int64_t>(0, i - window) : 0; }
  int64_t KeyEnd(int64_t i) const {
    int64_t end = nkv;
    if (causal) end = std::min(end, i + 1);
    if (window >= 0) end = std::min(end, i + window + 1);
    return std::max(end, KeyBegin(i));
  }
  // Visible (query, key) pairs of one (batch, head), before the key mask: the
  // pairs whose multiply-adds and exponentials the cost counts.
  int64_t VisiblePairs() const;
  std::string ToString() const;  // "B 2, Nq 4096, Nkv 77, 8 heads x 40, causal"
};

// Reads heads, scale, causal and window, checks q [B, Nq, heads*d], k and v
// [B, Nkv, heads*d] and the optional mask [B, Nkv] (boolean or u8). `mask`
// may be null. Errors name `op` and the shapes.
StatusOr<SdpaParams> SdpaParamsOf(absl::string_view op, const Attrs& attrs, const TensorType& q,
                                  const TensorType& k, const TensorType& v, const TensorType* mask);

// "neighborhood_attention" and its backward.
struct NaParams {
  int64_t batch = 0, height = 0, width = 0, heads = 0, head_dim = 0;
  int64_t kh = 0, kw = 0;  // odd kernel sizes
  int64_t dh = 1, dw = 1;  // dilations
  double scale = 0;

  int64_t channels() const { return heads * head_dim; }
  int64_t tokens() const { return height * width; }
  // NATTEN's window along one axis of length `len` with kernel k and
  // dilation d: the first key coordinate of query coordinate i (the window
  // is start, start + d, ..., start + (k - 1) * d). Positions congruent to i
  // mod d form a grid of length ceil((len - i % d) / d); on it the window
  // starts at clamp(i / d - k / 2, 0, grid_len - k) and so shifts inward at
  // the borders.
  static int64_t WindowStart(int64_t i, int64_t len, int64_t k, int64_t d) {
    const int64_t r = i % d, grid_len = (len - r + d - 1) / d;
    const int64_t s = std::clamp<int64_t>(i / d - k / 2, 0, grid_len - k);
    return r + s * d;
  }
  std::string ToString() const;  // "x[2, 64, 64, 8 x 40] kernel 13x13 dilation 1x1"
};

// Reads heads, kernel ({K} or {K_h, K_w}), dilation ({d} or {d_h, d_w}) and
// scale, and checks q, k, v [B, H, W, heads*d] (all equal) against them:
// odd K in [3, 31] per axis, K * dilation <= the map's size. Errors name `op`
// and the shapes.
StatusOr<NaParams> NaParamsOf(absl::string_view op, const Attrs& attrs, const TensorType& q, const TensorType& k,
                              const TensorType& v);

}  // namespace cf
