// Float64 references of conv2d and its backward ops written with plain
// loops over every tap (any stride, padding, dilation and groups), shared by
// the CPU conv tests.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/conv/conv_params.h"
#include "tests/support/conv_geometry.h"

namespace cf::testing {

// Calls f(n, oy, ox, co, ky, kx, ci_in_group, iy, ix) for every tap that lands
// inside the input: the one loop nest all three references share.
template <typename F> void ForEachTap(const ConvGeometry& g, F&& f) {
  const int64_t cig = g.cin / g.groups, cog = g.cout / g.groups;
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oy = 0; oy < g.ho(); ++oy)
      for (int64_t ox = 0; ox < g.wo(); ++ox)
        for (int64_t co = 0; co < g.cout; ++co)
          for (int64_t ky = 0; ky < g.kh; ++ky)
            for (int64_t kx = 0; kx < g.kw; ++kx) {
              const int64_t iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
              if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
              for (int64_t ci = 0; ci < cig; ++ci) {
                const int64_t cin = (co / cog) * cig + ci;
                const int64_t xi = ((n * g.h + iy) * g.w + ix) * g.cin + cin;
                const int64_t wi = ((co * g.kh + ky) * g.kw + kx) * cig + ci;
                const int64_t yi = ((n * g.ho() + oy) * g.wo() + ox) * g.cout + co;
                f(xi, wi, yi);
              }
            }
}

inline std::vector<double> RefForward(const ConvGeometry& g, const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>* bias) {
  std::vector<double> y(g.y().numel(), 0.0);
  if (bias)
    for (size_t i = 0; i < y.size(); ++i) y[i] = (*bias)[i % g.cout];
  ForEachTap(g, [&](int64_t xi, int64_t wi, int64_t yi) { y[yi] += x[xi] * w[wi]; });
  return y;
}
inline std::vector<double> RefBackwardInput(const ConvGeometry& g, const std::vector<double>& dy, const std::vector<double>& w) {
  std::vector<double> dx(g.x().numel(), 0.0);
  ForEachTap(g, [&](int64_t xi, int64_t wi, int64_t yi) { dx[xi] += dy[yi] * w[wi]; });
  return dx;
}
inline std::vector<double> RefBackwardWeight(const ConvGeometry& g, const std::vector<double>& x, const std::vector<double>& dy) {
  std::vector<double> dw(g.wt().numel(), 0.0);
  ForEachTap(g, [&](int64_t xi, int64_t wi, int64_t yi) { dw[wi] += dy[yi] * x[xi]; });
  return dw;
}

// The kernels' ConvParams of geometry g.
inline ConvParams ParamsOf(const ConvGeometry& g) {
  ConvParams p;
  p.n = g.n, p.h = g.h, p.w = g.w, p.cin = g.cin, p.cout = g.cout, p.kh = g.kh, p.kw = g.kw;
  p.sh = g.sh, p.sw = g.sw, p.ph = g.ph, p.pw = g.pw, p.dh = g.dh, p.dw = g.dw, p.groups = g.groups;
  p.ho = g.ho(), p.wo = g.wo();
  return p;
}

}  // namespace cf::testing
