// The kernels of runtime/kdev/kdev_samples.cuh (compiled by nvcc in
// kdev_samples.cu) run on the CPU interpreter against plain references: the
// same source on both sides.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "runtime/kdev/kdev_samples.cuh"

namespace cf {
namespace {

namespace ki = kd::interp;
using ki::Buffer;
using ki::Launch;
using ki::LaunchConfig;

LaunchConfig Cfg(const char* name, kd::Dim3 grid, kd::Dim3 block) {
  LaunchConfig c;
  c.name = name;
  c.grid = grid;
  c.block = block;
  return c;
}

TEST(KdevSamplesInterp, BlockSum) {
  const int64_t n = 5000;
  std::vector<float> xs(n);
  std::vector<kd::half> hs(n);
  for (int64_t i = 0; i < n; ++i) {
    xs[i] = float((i * 37) % 11) - 5.f;  // small integers: every order of summation is exact
    hs[i] = kd::half(xs[i]);
  }
  Buffer<float> x(xs, "x"), out(3, "out");
  Buffer<kd::half> xh(hs, "xh");
  ASSERT_TRUE(Launch(Cfg("block_sum", 3, 256), &kdev_samples::BlockSum<float>, x, out, n).ok());
  std::vector<float> want(3, 0.f);
  for (int64_t i = 0; i < n; ++i) want[(i / 256) % 3] += xs[i];
  EXPECT_EQ(out.ToVector(), want);
  ASSERT_TRUE(Launch(Cfg("block_sum", 3, 256), &kdev_samples::BlockSum<kd::half>, xh, out, n).ok());
  EXPECT_EQ(out.ToVector(), want);
}

TEST(KdevSamplesInterp, Transpose) {
  const int rows = 50, cols = 70;
  std::vector<float> xs(rows * cols);
  for (int i = 0; i < rows * cols; ++i) xs[i] = float(i);
  Buffer<float> x(xs, "x"), y(rows * cols, "y");
  ASSERT_TRUE(Launch(Cfg("transpose", kd::Dim3(3, 2), kd::Dim3(32, 8)), &kdev_samples::Transpose<float>, x, y, rows,
                     cols)
                  .ok());
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) ASSERT_EQ(y.host()[c * rows + r], xs[r * cols + c]);
}

template <class T> void CheckGemm(bool bf16) {
  const int M = 32, N = 48, K = 64;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<T> a(M * K), b(K * N);
  std::vector<double> av(M * K), bv(K * N);
  for (int i = 0; i < M * K; ++i) {
    a[i] = T(u(rng));
    av[i] = float(a[i]);
  }
  for (int i = 0; i < K * N; ++i) {
    b[i] = T(u(rng));
    bv[i] = float(b[i]);
  }
  Buffer<T> ab(a, "a"), bb(b, "b");
  Buffer<float> c(M * N, "c");
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(Launch(Cfg("mma_gemm", kd::Dim3(N / 16, M / 16), 32), &kdev_samples::MmaGemm<T>, ab, bb, c, M, N, K).ok());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 2.0) << "an interpreted test should take well under a second";
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      double ref = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        ref += av[i * K + k] * bv[k * N + j];
        mag += std::fabs(av[i * K + k] * bv[k * N + j]);
      }
      // Four chained f32 accumulations of 16 products.
      ASSERT_NEAR(c.host()[i * N + j], ref, 4 * 17 * std::ldexp(mag, -24)) << (bf16 ? "bf16 " : "f16 ") << i << "," << j;
    }
  }
}

TEST(KdevSamplesInterp, MmaGemmF16) { CheckGemm<kd::half>(false); }
TEST(KdevSamplesInterp, MmaGemmBf16) { CheckGemm<kd::bfloat16>(true); }

}  // namespace
}  // namespace cf
