// The CUDA epilogue kernels of linear / matmul (ops/matmul/matmul_epilogue_kernels.cuh)
// on the kdev interpreter: each kernel applied to the unfused product (the
// CPU product rounded to the storage type, as cuBLASLt writes it) against
// the fused CPU op, f32 / f16 / bf16, odd sizes, the launchers' geometry and
// a short grid (the grid-stride loop), operands one element off alignment;
// the interpreter reports races and out-of-bounds accesses as errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/matmul/matmul_epilogue_kernels.cuh"
#include "ops/grid_for.h"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

struct Act {
  const char* name;
  int code;  // matmul_epilogue_kernels.cuh's codes
};
constexpr Act kActs[] = {{"none", 0}, {"gelu", 1}, {"gelu_tanh", 2}, {"silu", 3}};

enum class Kernel { kActivation, kBiasAct, kFused };

struct Case {
  Kernel kernel;
  Shape x;  // [B, ..., K]
  int64_t n;
  int act;  // index into kActs
  bool bias, image_bias, residual;
  bool bias_in_kernel;  // the bias added by the kernel (K = 0 path), not by the product
};

// The linear inputs of c: x, w [n, K], [bias], [image_bias], [residual].
std::vector<Tensor> Inputs(const Case& c, uint64_t seed) {
  std::vector<Tensor> in{RandomTensor(c.x, DType::f32, seed), RandomTensor({c.n, c.x.dim(-1)}, DType::f32, seed + 1)};
  std::vector<int64_t> out(c.x.dims().begin(), c.x.dims().end());
  out.back() = c.n;
  if (c.bias) in.push_back(RandomTensor({c.n}, DType::f32, seed + 2));
  if (c.image_bias) {
    std::vector<int64_t> ib = out;
    for (size_t i = 1; i + 1 < ib.size(); ++i) ib[i] = 1;
    in.push_back(RandomTensor(Shape(ib), DType::f32, seed + 3));
  }
  if (c.residual) in.push_back(RandomTensor(Shape(out), DType::f32, seed + 4, -2, 2));
  return in;
}

Attrs FusedAttrs(const Case& c) {
  return Attrs{{"activation", std::string(kActs[c.act].name)}, {"image_bias", c.image_bias}, {"residual", c.residual}};
}

// The kernel of c on the interpreter, run on the product of `in` (rounded to
// in's dtype); `grid` 0: the launchers' GridFor(count).
StatusOr<std::vector<Tensor>> RunKernel(const Case& c, const std::vector<Tensor>& in, unsigned grid, int64_t offset) {
  const DType t = in[0].dtype();
  std::vector<Tensor> prod_in{CastTo(in[0], DType::f32), CastTo(in[1], DType::f32)};
  if (c.bias && !c.bias_in_kernel && c.kernel != Kernel::kBiasAct) prod_in.push_back(CastTo(in[2], DType::f32));
  CF_ASSIGN_OR_RETURN(Tensor prod, RunOp1("linear", prod_in));
  DevTensor y(CastTo(prod, t), "y", offset);
  const int64_t count = prod.numel(), n = c.n;
  int next = 2;
  DevTensor bias(c.bias ? in[next++] : in[0], "bias", offset);
  DevTensor image_bias(c.image_bias ? in[next++] : in[0], "image_bias", offset);
  DevTensor residual(c.residual ? in[next++] : in[0], "residual", offset);
  const int64_t image_rows = c.image_bias ? count / n / c.x[0] : 0;
  const int code = kActs[c.act].code;
  CF_RETURN_IF_ERROR(DispatchKdFloat(t, [&](auto tag) -> Status {
    using T = decltype(tag);
    const auto cfg = KdConfig("epilogue", grid ? grid : GridFor(count), 256);
    kd::Ptr<const T> none;
    switch (c.kernel) {
      case Kernel::kActivation:
        return ki::Launch(cfg, &epilogue::ActivationInPlace<T>, y.ptr<T>(), count, code);
      case Kernel::kBiasAct:
        return ki::Launch(cfg, &epilogue::BiasActInPlace<T>, y.ptr<T>(), count, n, kd::Ptr<const T>(bias.ptr<T>()),
                          code);
      case Kernel::kFused:
        return ki::Launch(cfg, &epilogue::FusedEpilogueInPlace<T>, y.ptr<T>(), count, n,
                          c.bias && c.bias_in_kernel ? kd::Ptr<const T>(bias.ptr<T>()) : none,
                          c.image_bias ? kd::Ptr<const T>(image_bias.ptr<T>()) : none, image_rows,
                          c.residual ? kd::Ptr<const T>(residual.ptr<T>()) : none, code);
    }
    return absl::InternalError("unknown kernel");
  }));
  return std::vector<Tensor>{y.ToTensor()};
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (int a = 0; a < 4; ++a) {
    cases.push_back({Kernel::kActivation, {7, 5}, 13, a, true, false, false, false});
    cases.push_back({Kernel::kBiasAct, {3, 5, 9}, 11, a, true, false, false, false});
    // the fused forms: image bias (with and without bias), residual after the activation, K = 0's bias
    cases.push_back({Kernel::kFused, {3, 7, 6}, 13, a, true, true, false, false});
    cases.push_back({Kernel::kFused, {2, 5, 3, 4}, 9, a, false, true, true, false});
    cases.push_back({Kernel::kFused, {5, 17}, 19, a, true, false, true, false});
    cases.push_back({Kernel::kFused, {3, 1, 4}, 7, a, true, true, true, true});
  }
  cases.push_back({Kernel::kFused, {2, 3, 0}, 5, 3, true, true, true, true});  // K = 0: act(bias + image bias) + r
  cases.push_back({Kernel::kFused, {1, 1, 1}, 1, 1, true, true, true, true});  // one element
  cases.push_back({Kernel::kFused, {2, 33, 40}, 37, 3, true, true, true, false});  // several blocks
  return cases;
}

TEST(MatmulEpilogueInterp, MatchesFusedCpuLinear) {
  uint64_t seed = 1;
  for (const Case& c : Cases()) {
    for (DType t : kInterpDTypes) {
      for (unsigned grid : {0u, 2u}) {
        const int64_t offset = grid == 0 ? 0 : 1;
        const std::vector<Tensor> in = Inputs(c, seed += 5);
        // BiasActInPlace and ActivationInPlace are linear with bias and activation, no image bias / residual
        auto run = [&](const std::vector<Tensor>& rin) { return RunKernel(c, rin, grid, offset); };
        EXPECT_TRUE(MatchesCpuReference("linear", in, FusedAttrs(c), t, run))
            << "kernel " << int(c.kernel) << " x " << c.x.ToString() << " n " << c.n << " act " << kActs[c.act].name
            << " bias " << c.bias << " image_bias " << c.image_bias << " residual " << c.residual << " in kernel "
            << c.bias_in_kernel << " " << DTypeName(t) << " grid " << grid;
      }
    }
  }
}

// The fused form without any term is the activation alone: a bias-free
// product through FusedEpilogueInPlace with no pointers set.
TEST(MatmulEpilogueInterp, NoTermsIsTheActivation) {
  const Case c{Kernel::kFused, {4, 9}, 6, 2, false, false, false, false};
  const std::vector<Tensor> in = Inputs(c, 99);
  auto run = [&](const std::vector<Tensor>& rin) { return RunKernel(c, rin, 0, 1); };
  for (DType t : kInterpDTypes) EXPECT_TRUE(MatchesCpuReference("linear", in, FusedAttrs(c), t, run)) << DTypeName(t);
}

}  // namespace
}  // namespace cf::testing
