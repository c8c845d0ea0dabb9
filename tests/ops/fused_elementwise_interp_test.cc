// The CUDA kernel of fused_elementwise (ops/fused/fused_elementwise_kernels.cuh)
// on the kdev interpreter against the CPU kernel, with the launcher's
// arguments and geometry: broadcast operands, every instruction code, rank 0,
// sizes off the block size, inputs one element off alignment, f32/f16/bf16.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/fused/fused_elementwise.h"
#include "ops/fused/fused_elementwise_kernels.cuh"
#include "tests/ops/fused_test_cases.h"
#include "tests/support/kdev_tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;

// FusedCuda of fused_elementwise.cu on the interpreter; inputs `offset`
// elements off their allocation's alignment.
StatusOr<std::vector<Tensor>> RunInterp(const std::vector<Tensor>& in, const Attrs& attrs, int64_t offset,
                                        int max_blocks) {
  CF_ASSIGN_OR_RETURN(FusedProgram prog, FusedProgram::FromAttrs(attrs));
  std::vector<TensorType> types;
  for (const Tensor& t : in) types.push_back({t.shape(), t.dtype()});
  CF_ASSIGN_OR_RETURN(const OpDef* def, OpRegistry::Global().Get("fused_elementwise"));
  CF_ASSIGN_OR_RETURN(std::vector<TensorType> out_t, InferOp(*def, attrs, types));
  std::vector<std::unique_ptr<DevTensor>> dev;
  std::vector<Shape> shapes;
  for (size_t k = 0; k < in.size(); ++k) {
    dev.push_back(std::make_unique<DevTensor>(in[k], "in" + std::to_string(k), offset));
    shapes.push_back(in[k].shape());
  }
  DevTensor out(out_t[0].shape, out_t[0].dtype, "out", offset);
  const int64_t n = out.numel();
  CF_RETURN_IF_ERROR(DispatchKdFloat(out.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    fused::Args<T> args;
    args.plan = fused::MakePlan(out.shape(), shapes);
    for (size_t k = 0; k < dev.size(); ++k) args.in[k] = dev[k]->ptr<T>();
    args.out = out.ptr<T>();
    args.num_code = static_cast<int>(prog.code().size());
    for (int j = 0; j < args.num_code; ++j) args.code[j] = prog.code()[j];
    for (int j = 0; j <= fused::kMaxConsts; ++j)
      args.consts[j] = j < static_cast<int>(prog.consts().size()) ? static_cast<float>(prog.consts()[j]) : 0.f;
    const fused::Launch g = fused::Geometry(n);
    if (g.index64) return absl::InternalError("64-bit indices not expected here");
    // Fewer blocks than the launcher's (the grid-stride loop covers the rest), so the test stays fast.
    const unsigned grid = std::min<unsigned>(g.g.grid, static_cast<unsigned>(max_blocks));
    return ki::Launch(KdConfig("fused_elementwise", kd::Dim3(grid), kd::Dim3(g.g.block)),
                      &fused::FusedElementwiseKernel<T, uint32_t>, args, uint32_t(n));
  }));
  return std::vector<Tensor>{out.ToTensor()};
}

using Case = FusedCase;

std::vector<Case> Cases() {
  std::vector<Case> cs;
  cs.push_back(GateCase());
  {
    Case c{"bias_silu_const", {{3, 11, 19}, {19}}, {}};
    FusedProgram& p = c.prog;
    const int two = p.Const(2.0);
    Op(p, "mul", {two, Op(p, "silu", {Op(p, "add", {p.Input(0), p.Input(1)})})});
    cs.push_back(c);
  }
  {
    Case c{"scalars", {{}, {}}, {}};
    FusedProgram& p = c.prog;
    Op(p, "div", {Op(p, "exp", {p.Input(0)}), Op(p, "scale", {p.Input(1)}, Attrs{{"add", 3.0}})});
    cs.push_back(c);
  }
  cs.push_back(InnerBroadcastCase());
  cs.push_back(AllCodes(Shape{2, 301}));
  return cs;
}

TEST(FusedElementwiseInterp, MatchesCpu) {
  uint64_t seed = 1;
  for (const Case& c : Cases()) {
    ASSERT_LE(c.prog.code().size(), size_t{fused::kMaxInstrs});
    std::vector<Tensor> in;
    for (const Shape& s : c.shapes) in.push_back(RandomTensor(s, DType::f32, seed++, -2, 2));
    const Attrs attrs = c.prog.ToAttrs();
    for (DType t : kGpuDTypes) {
      for (int64_t offset : {0, 1}) {
        auto run = [&](const std::vector<Tensor>& rounded) { return RunInterp(rounded, attrs, offset, 3); };
        EXPECT_TRUE(MatchesCpuReference("fused_elementwise", in, attrs, t, run))
            << c.name << " " << DTypeName(t) << " offset " << offset;
      }
    }
  }
}

// The launcher's geometry: every element by its own thread over several
// blocks (none left to the grid-stride loop), 32-bit indices.
TEST(FusedElementwiseInterp, LauncherGeometry) {
  const fused::Launch g = fused::Geometry(1000);
  EXPECT_FALSE(g.index64);
  EXPECT_EQ(g.g.block, 256u);
  EXPECT_EQ(g.g.grid, 4u);
  EXPECT_TRUE(fused::Geometry(int64_t{1} << 31).index64);
  FusedProgram p;
  Op(p, "silu", {Op(p, "add", {p.Input(0), p.Input(1)})});
  const std::vector<Tensor> in = {RandomTensor({1000}, DType::f32, 9), RandomTensor({1}, DType::f32, 10)};
  auto run = [&](const std::vector<Tensor>& rounded) { return RunInterp(rounded, p.ToAttrs(), 0, 1 << 20); };
  EXPECT_TRUE(MatchesCpuReference("fused_elementwise", in, p.ToAttrs(), DType::f32, run));
}

}  // namespace
}  // namespace cf::testing
