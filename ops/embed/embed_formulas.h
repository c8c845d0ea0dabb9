// The per-element formulas of timestep_embedding and sincos_pos_embed_2d,
// shared by the CPU and CUDA kernels (float64 math on both, so the two agree
// to the output dtype's rounding).
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/op.h"
#include "runtime/dtype.h"  // CF_HD

namespace cf::embed_internal {

struct TimestepParams {
  int64_t dim = 0;
  int64_t half = 0;
  bool flip = false;
  double log_max_period = 0;  // ln(max_period)
  double denom = 1;           // half - downscale_freq_shift
  double scale = 1;
};

// Column j of the embedding of timestep t.
CF_HD double TimestepValue(const TimestepParams& p, double t, int64_t j) {
  if (j >= 2 * p.half) return 0.0;  // the zero column of an odd dim
  const bool first = j < p.half;
  const int64_t k = first ? j : j - p.half;
  const double freq = exp(-p.log_max_period * static_cast<double>(k) / p.denom);
  const double arg = p.scale * (t * freq);
  return first != p.flip ? sin(arg) : cos(arg);
}

struct SinCosParams {
  int64_t dim = 0;  // embed_dim, divisible by 4
  int64_t h = 0, w = 0;
  double base_size = 16;
  double interpolation_scale = 1;
};

// Element (r, c) of the [h * w, dim] embedding.
CF_HD double SinCosValue(const SinCosParams& p, int64_t r, int64_t c) {
  const int64_t half = p.dim / 2, quarter = p.dim / 4;
  const int64_t i = r / p.w, j = r % p.w;
  const bool col = c < half;  // the first half encodes the column coordinate
  const double pos = col ? static_cast<double>(j) / (static_cast<double>(p.w) / p.base_size) / p.interpolation_scale
                         : static_cast<double>(i) / (static_cast<double>(p.h) / p.base_size) / p.interpolation_scale;
  const int64_t cc = col ? c : c - half;
  const int64_t k = cc < quarter ? cc : cc - quarter;
  const double omega = 1.0 / pow(10000.0, static_cast<double>(k) / static_cast<double>(quarter));
  return cc < quarter ? sin(pos * omega) : cos(pos * omega);
}

// The attributes of each op, checked (defined beside the ops).
StatusOr<TimestepParams> TimestepParamsOf(const Attrs& attrs);
StatusOr<SinCosParams> SinCosParamsOf(const Attrs& attrs);

}  // namespace cf::embed_internal
