// The attention family: scaled dot-product attention (self and cross, with
// key padding, causal and band masks), attention probabilities of chosen
// queries, 2D neighborhood attention (NATTEN semantics) and LinFusion's
// generalized linear attention. See docs/ops/attention.md and docs/attention.md.
//
// Layouts are token-major so that an NHWC map needs no transpose: a
// [B, H, W, C] feature map is the same memory as [B, H*W, C], and C = heads*d
// with head h owning channels [h*d, (h+1)*d).
//
//   "attention": q [B, Nq, heads*d], k [B, Nkv, heads*d], v [B, Nkv, heads*d],
//       optional key_mask [B, Nkv] (boolean or u8, nonzero: the key is
//       visible) -> out [B, Nq, heads*d] (q's dtype) and lse [B, heads, Nq]
//       f32, the natural log of each row's softmax denominator of the scaled
//       scores. Attributes: heads (int, required), scale (float, default
//       1/sqrt(d)), causal (bool: key j is visible to query i iff j <= i, top
//       left aligned like PyTorch's is_causal), window (int, default -1 =
//       none: key j is visible iff |i - j| <= window, DiTFastAttn's band over
//       the flattened tokens). A query that sees no key gets a zero output and
//       lse = -inf (PyTorch returns NaN there).
//   "attention_backward": q, k, v, out, lse, dout, optional key_mask (same
//       attributes) -> dq, dk, dv, from the saved lse (no Nq x Nkv buffer).
//   "attention_probs": q, k, optional key_mask, attribute queries (ints, each
//       in [0, Nq)) plus the attributes above -> [B, heads, Q, Nkv] f32: the
//       exact softmax rows of those queries (zeros where a key is masked).
//   "neighborhood_attention": q, k, v [B, H, W, heads*d] -> out [B, H, W,
//       heads*d], lse [B, H, W, heads] f32 (f64 for f64 storage). Attributes: heads, kernel (ints
//       {K_h, K_w}, odd, 3..31 up to the dilated map), dilation (ints {d_h,
//       d_w}, default {1, 1}), scale. Query (i, j) attends to the K_h x K_w
//       keys of NATTEN's window: on the grid of positions congruent to i mod
//       d_h (length L), the window starts at clamp(i' - K_h/2, 0, L - K_h) in
//       that grid's coordinates i' = i / d_h (likewise for j).
//   "neighborhood_attention_backward": q, k, v, out, lse, dout, optional
//       dlse (lse's gradient, passed by the VJP only when lse is used) -> dq, dk, dv.
//
// Cost (docs/flops.md): QK^T and PV as multiply-adds (2 FLOPs each) over the
// visible (query, key) pairs, the scale as elementwise, one exponential per
// visible pair as a transcendental, the softmax bookkeeping as elementwise.
#pragma once

#include <optional>
#include <vector>

#include "graph/builder.h"

namespace cf {

struct AttentionOptions {
  int64_t heads = 1;
  std::optional<double> scale = std::nullopt;  // default 1/sqrt(d)
  bool causal = false;
  int64_t window = -1;                         // band half-width, -1: none
  std::optional<Value> key_mask = std::nullopt;  // [B, Nkv] boolean or u8
};
// softmax(q k^T * scale) v per head:  Attention(q, k, v, {.heads = 8})
Value Attention(Value q, Value k, Value v, const AttentionOptions& options);
// The same, also returning lse [B, heads, Nq] f32: {out, lse}.
std::vector<Value> AttentionWithLse(Value q, Value k, Value v, const AttentionOptions& options);
// The softmax rows of the queries at `queries`: [B, heads, Q, Nkv] f32.
Value AttentionProbs(Value q, Value k, std::vector<int64_t> queries, const AttentionOptions& options);

struct NeighborhoodAttentionOptions {
  int64_t heads = 1;
  Size2 kernel = 7;    // odd, per axis
  Size2 dilation = 1;
  std::optional<double> scale = std::nullopt;  // default 1/sqrt(d)
};
// q, k, v [B, H, W, heads*d]:  NeighborhoodAttention(q, k, v, {.heads = 8, .kernel = 13})
Value NeighborhoodAttention(Value q, Value k, Value v, const NeighborhoodAttentionOptions& options);

struct LinearAttentionOptions {
  int64_t heads = 8;
  double eps = 1e-4;  // added to the normaliser z
};
// LinFusion's generalized linear attention on projected q, k, v [B, N, heads*d]:
// per head phi = elu + 1 on q and k, z = phi(q) . mean_N(phi(k)) + eps,
// kv = (phi(k)^T / sqrt(N)) (v / sqrt(N)), out = (phi(q) kv) / z.
Value LinearAttention(Value q, Value k, Value v, const LinearAttentionOptions& options = {});

}  // namespace cf
