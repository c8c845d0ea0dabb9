// Test harness shared by the op tests (in the spirit of ggml's
// test-backend-ops): random inputs, running one op through the real graph
// executor, float64 comparisons, VJP against finite differences, CUDA
// against CPU with poisoned outputs, tolerances per dtype, costs and error
// messages of one-node graphs. Tests that use it live in namespace
// cf::testing (inside an anonymous namespace), so its names need no
// qualification there.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "graph/executor.h"

namespace cf::testing {

// The floating storage types: all of them (CPU kernels against the float64
// reference) and the ones CUDA kernels are checked in against the CPU.
inline constexpr DType kFloatDTypes[] = {DType::f64, DType::f32, DType::f16, DType::bf16};
inline constexpr DType kGpuDTypes[] = {DType::f32, DType::f16, DType::bf16};

// A tolerance per storage dtype, e.g. `constexpr DTypeTol Tol{1e-12, 1e-5,
// 2e-3, 1e-2};` then `Tol(t)`; dtypes other than f64, f32 and f16 get bf16's.
struct DTypeTol {
  double f64, f32, f16, bf16;
  double operator()(DType t) const {
    return t == DType::f64 ? f64 : t == DType::f32 ? f32 : t == DType::f16 ? f16 : bf16;
  }
  // An absolute tolerance for sums of `terms` products (GEMM, conv): the
  // rounding errors of the accumulation grow like sqrt(terms); f64 keeps its own.
  double ForSum(DType t, int64_t terms) const {
    return t == DType::f64 ? f64 : (*this)(t)*std::sqrt(static_cast<double>(terms));
  }
};
// One rounding of the output to the storage dtype (with f32 arithmetic): the
// tolerance of most CPU kernels against their float64 reference.
inline constexpr DTypeTol kStorageTol{1e-12, 1e-5, 2e-3, 1e-2};

// Uniform random tensor on the CPU, values in [lo, hi) rounded to `dtype`.
Tensor RandomTensor(const Shape& shape, DType dtype, uint64_t seed, double lo = -1.0, double hi = 1.0);
// Integer tensor with values in [0, bound).
Tensor RandomIndices(const Shape& shape, DType dtype, uint64_t seed, int64_t bound);
// Elements as doubles (copied to the CPU first when needed).
std::vector<double> ToDoubles(const Tensor& t);
// A CPU tensor of `dtype` holding `values` (rounded to the dtype).
Tensor FromDoubles(const std::vector<double>& values, const Shape& shape, DType dtype);
// `t` converted to `dtype` on the CPU.
Tensor CastTo(const Tensor& t, DType dtype);

// Runs `op` on `device` as a one-node graph through the executor, with the
// arena and outputs poisoned (NaN) first. Inputs may live on any device.
StatusOr<std::vector<Tensor>> RunOp(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs = {},
                                    Device device = Device::CPU());
// The same for a single-output op.
StatusOr<Tensor> RunOp1(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs = {},
                        Device device = Device::CPU());
// Shape/dtype inference only; the Status of building the one-node graph.
Status BuildStatus(absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs = {});
// The Cost of the one-node graph (a failed build is a test failure; an op
// that builds no node, such as an identity, costs nothing).
Cost CostOfOp(absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs = {});

// `s` is an error whose message contains each of `parts` (test failures
// otherwise; stops at a non-error).
void ExpectError(const Status& s, const std::vector<std::string>& parts);
// Building `op` on `inputs` fails with a message containing each of `parts`.
void ExpectError(absl::string_view op, const std::vector<TensorType>& inputs, const Attrs& attrs,
                 const std::vector<std::string>& parts);

// |actual - expected| <= atol + rtol * |expected| elementwise; NaN or a size
// mismatch fails. The message names the worst element.
::testing::AssertionResult AllClose(const std::vector<double>& actual, const std::vector<double>& expected,
                                    double rtol, double atol);

// AllClose for values that include NaN and infinities on purpose: an expected
// NaN needs a NaN, an expected infinity the same infinity, and the rest
// |actual - expected| <= atol + rtol * |expected|.
::testing::AssertionResult AllCloseWithSpecials(const std::vector<double>& actual,
                                                const std::vector<double>& expected, double rtol, double atol);

// Signed values with magnitudes log-uniform in [10^lo_exp, 10^hi_exp] (tiny
// and huge ones alike), rounded to `dtype` (so they may underflow or overflow).
Tensor LogUniformTensor(const Shape& shape, DType dtype, uint64_t seed, double lo_exp, double hi_exp,
                        bool positive = false);

// Runs the one-input `op` on `x` (CPU) and compares its output, which must
// have x's shape, with `f` applied to each element of x in float64
// (rtol = atol = tol).
::testing::AssertionResult MatchesElementwiseRef(absl::string_view op, const Tensor& x, const Attrs& attrs,
                                                 const std::function<double(double)>& f, double tol);

// Checks the VJP of `op` against central finite differences, everything in
// float64 on the CPU. `inputs` are f64 tensors (integer inputs are passed as
// they are and not differentiated). The loss is sum_k <y_k, r_k> with random
// r_k; `check` lists the inputs to differentiate (empty: all floating ones).
// At most `max_points` elements per input are perturbed (chosen at random).
::testing::AssertionResult CheckVjp(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs = {},
                                    std::vector<int> check = {}, double tol = 1e-6, int max_points = 40);

// Tolerance of a CUDA kernel against the CPU one (docs/conventions.md): the
// relative bound, and the absolute one as a fraction of the output's largest
// magnitude (an all-zero output never passes for a nonzero reference).
double DefaultRtol(DType dtype);
double DefaultAtol(DType dtype);
// The largest finite |v| (0 for none).
double MaxAbs(const std::vector<double>& v);
// The absolute tolerance `rel` * MaxAbs(expected), but at least two of the
// dtype's smallest subnormals (so an exactly-zero reference allows rounding
// noise at the bottom of the range only).
double ScaledAtol(const std::vector<double>& expected, double rel, DType dtype);

// The kernel under test: runs `op` on `inputs` (the rounded `dtype` tensors,
// on the CPU) somewhere and returns its outputs.
using KernelUnderTest = std::function<StatusOr<std::vector<Tensor>>(const std::vector<Tensor>& inputs)>;

// Runs `op` on the CPU in f32 (inputs of floating type rounded to `dtype`,
// then cast to f32) as the reference, and `run` on the same rounded inputs in
// `dtype`, and compares every output: same shape, and
// |got - want| <= rtol * |want| + atol_abs, where atol_abs is
// ScaledAtol(want, DefaultAtol(dtype)) when atol < 0, else atol itself
// (absolute). rtol < 0 means DefaultRtol(dtype). NaN never passes.
::testing::AssertionResult MatchesCpuReference(absl::string_view op, const std::vector<Tensor>& inputs,
                                               const Attrs& attrs, DType dtype, const KernelUnderTest& run,
                                               double rtol = -1, double atol = -1);

// MatchesCpuReference with `op` run on CUDA (inputs copied to the device,
// outputs poisoned first).
::testing::AssertionResult CudaMatchesCpu(absl::string_view op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                                          DType dtype, double rtol = -1, double atol = -1);

// The number of distinct threads that ran ParallelFor chunks while `fn` ran
// (runtime/thread_pool.h's observer; each chunk is delayed by a millisecond
// so idle workers get to claim some). 0 when no chunk ran.
int ThreadsUsedBy(const std::function<void()>& fn);

// OK when a CUDA device is usable; otherwise the reason.
Status GpuAvailable();
// CF_REQUIRE_GPU is set (to anything but "" or "0"): gpu tests fail instead of
// skipping where there is no usable device (scripts/gpu_check.sh sets it).
bool GpuRequired();

}  // namespace cf::testing

// In a gpu test (or its fixture's SetUp): skips (with the reason) where there
// is no usable device; fails instead when CF_REQUIRE_GPU is set.
#define CF_SKIP_WITHOUT_GPU()                                                                   \
  do {                                                                                          \
    ::absl::Status cf_gpu_ = ::cf::testing::GpuAvailable();                                     \
    if (!cf_gpu_.ok()) {                                                                        \
      if (::cf::testing::GpuRequired()) FAIL() << "CF_REQUIRE_GPU is set but there is no GPU: " \
                                               << cf_gpu_.message();                            \
      GTEST_SKIP() << "no GPU: " << cf_gpu_.message();                                          \
    }                                                                                           \
  } while (0)

#define CF_ASSERT_OK(expr)                                   \
  do {                                                       \
    ::absl::Status cf_s_ = (expr);                           \
    ASSERT_TRUE(cf_s_.ok()) << cf_s_.message();              \
  } while (0)
#define CF_EXPECT_OK(expr)                                   \
  do {                                                       \
    ::absl::Status cf_s_ = (expr);                           \
    EXPECT_TRUE(cf_s_.ok()) << cf_s_.message();              \
  } while (0)
#define CF_ASSERT_OK_AND_ASSIGN(lhs, expr) \
  CF_ASSERT_OK_AND_ASSIGN_IMPL(CF_CONCAT(cf_sor_, __LINE__), lhs, expr)
#define CF_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, expr)  \
  auto tmp = (expr);                                  \
  ASSERT_TRUE(tmp.ok()) << tmp.status().message();    \
  lhs = std::move(tmp).value()
