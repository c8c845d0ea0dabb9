#include "tests/support/model_golden.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "tests/support/op_harness.h"

namespace cf::testing {

std::string TestDataDir(const std::string& sub) {
#ifdef CF_SOURCE_DIR
  return (std::filesystem::path(CF_SOURCE_DIR) / "tests" / "data" / sub).string();
#else
  return (std::filesystem::path("tests") / "data" / sub).string();
#endif
}

int64_t ParameterCount(const Graph& g) {
  int64_t n = 0;
  for (int id : g.Parameters()) n += g.value(id).type.shape.numel();
  return n;
}

std::vector<double> NhwcToNchw(const Tensor& t) {
  const std::vector<double> v = ToDoubles(t);
  if (t.shape().rank() != 4) return v;
  const int64_t B = t.shape()[0], H = t.shape()[1], W = t.shape()[2], C = t.shape()[3];
  std::vector<double> out(v.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x)
        for (int64_t c = 0; c < C; ++c) out[((b * C + c) * H + y) * W + x] = v[((b * H + y) * W + x) * C + c];
  return out;
}

double RelativeError(const std::vector<double>& got, const std::vector<double>& want) {
  if (got.size() != want.size() || want.empty()) return std::numeric_limits<double>::infinity();
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(got[i])) return std::numeric_limits<double>::infinity();
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / scale;
}

}  // namespace cf::testing
