// CUDA "matmul" / "linear" (cuBLASLt) against the CPU kernel, f32/f16/bf16,
// outputs poisoned first: transposes, every batching path (folded rows, one
// strided-batched call, one call per inner batch run), bias and the fused
// and unfused activation epilogues, K = 0, TF32.
#include <cmath>
#include <cstdint>

#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Case {
  Shape a, b;
  bool ta = false, tb = false;
  bool bias = false;
  std::string act = "none";
};

// f32 tolerance grows with K (different summation orders); low precision uses
// the harness defaults (one rounding of the output).
void Check(const char* op, const Case& c, uint64_t seed) {
  const int64_t k = op == std::string("linear") ? c.a.dim(-1) : (c.ta ? c.a.dim(-2) : c.a.dim(-1));
  const int64_t n = op == std::string("linear") ? c.b.dim(0) : (c.tb ? c.b.dim(-2) : c.b.dim(-1));
  std::vector<Tensor> ins{RandomTensor(c.a, DType::f32, seed), RandomTensor(c.b, DType::f32, seed + 1)};
  if (c.bias) ins.push_back(RandomTensor(Shape{n}, DType::f32, seed + 2));
  Attrs attrs{{"activation", c.act}};
  if (op == std::string("matmul")) {
    attrs.Set("trans_a", c.ta);
    attrs.Set("trans_b", c.tb);
  }
  const double f32_tol = 1e-5 * std::sqrt(static_cast<double>(std::max<int64_t>(k, 1)));
  for (DType t : kGpuDTypes) {
    const double tol = t == DType::f32 ? f32_tol : -1;
    EXPECT_TRUE(CudaMatchesCpu(op, ins, attrs, t, tol, tol))
        << op << " a" << c.a.ToString() << " b" << c.b.ToString() << " ta " << c.ta << " tb " << c.tb << " bias "
        << c.bias << " act " << c.act;
  }
}

TEST(MatmulGpu, ShapesAndTransposes) {
  CF_SKIP_WITHOUT_GPU();
  const std::vector<Case> cases = {
      {{1, 1}, {1, 1}},
      {{37, 53}, {53, 29}},
      {{37, 53}, {29, 53}, false, true},
      {{53, 37}, {53, 29}, true, false},
      {{53, 37}, {29, 53}, true, true},
      {{130, 300}, {300, 270}},
      {{256, 320}, {320, 128}},
  };
  uint64_t seed = 1;
  for (const Case& c : cases) Check("matmul", c, seed += 3);
}

TEST(MatmulGpu, Batching) {
  CF_SKIP_WITHOUT_GPU();
  const std::vector<Case> cases = {
      {{4, 5, 7}, {7, 6}},                   // shared b, folded into one [20, 7] product
      {{4, 7, 5}, {7, 6}, true, false},      // shared b, transposed a: stride-0 batch
      {{3, 5, 7}, {3, 7, 4}},                // same batch: one strided-batched call
      {{5, 7}, {3, 7, 6}},                   // shared a: stride 0
      {{2, 1, 5, 7}, {3, 7, 4}},             // both broadcast: one call per inner run
      {{2, 1, 5, 7}, {1, 3, 4, 7}, false, true},
      {{2, 3, 1, 37, 20}, {3, 4, 20, 29}, false, false, true, "gelu"},
  };
  uint64_t seed = 100;
  for (const Case& c : cases) Check("matmul", c, seed += 3);
}

TEST(MatmulGpu, BiasAndActivations) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 200;
  for (const char* act : {"none", "gelu", "gelu_tanh", "silu"})
    for (bool bias : {false, true}) {
      Check("matmul", {{37, 53}, {53, 29}, false, false, bias, act}, seed += 3);
      Check("matmul", {{2, 64, 96}, {96, 72}, false, false, bias, act}, seed += 3);
      Check("linear", {{2, 17, 40}, {24, 40}, false, false, bias, act}, seed += 3);
    }
}

// A bias that is a view at an odd element offset (a slice of a fused bias):
// cuBLASLt's bias epilogue reads it with vector loads, so such a bias goes
// through the separate bias (+ activation) kernel; results must match an
// aligned bias's.
TEST(MatmulGpu, UnalignedBiasView) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 300;
  for (const char* act : {"none", "gelu", "gelu_tanh", "silu"}) {
    for (const char* op : {"matmul", "linear"}) {
      const bool linear = op == std::string("linear");
      const int64_t m = 37, k = 64, n = 48;
      Tensor a = RandomTensor(Shape{2, m, k}, DType::f32, seed++);
      Tensor b = RandomTensor(linear ? Shape{n, k} : Shape{k, n}, DType::f32, seed++);
      Tensor fused = RandomTensor(Shape{n + 3}, DType::f32, seed++);  // [n + 3]: the bias is elements 1 .. n
      const Attrs attrs{{"activation", std::string(act)}};
      for (DType t : kGpuDTypes) {
        SCOPED_TRACE(absl::StrCat(op, " ", act, " ", DTypeName(t)));
        Tensor fused_t = CastTo(fused, t);
        CF_ASSERT_OK_AND_ASSIGN(Tensor fused_dev, fused_t.To(Device::CUDA(0)));
        CF_ASSERT_OK_AND_ASSIGN(Tensor bias_view, fused_dev.Narrow0(1, n + 1));
        ASSERT_NE(reinterpret_cast<uintptr_t>(bias_view.raw()) % 16, 0u) << "the view must be misaligned";
        CF_ASSERT_OK_AND_ASSIGN(Tensor bias_host, CastTo(fused, DType::f32).Narrow0(1, n + 1));
        Tensor bias = CastTo(bias_host, DType::f32);
        Tensor at = CastTo(a, t), bt = CastTo(b, t);
        CF_ASSERT_OK_AND_ASSIGN(Tensor want,
                                RunOp1(op, {CastTo(at, DType::f32), CastTo(bt, DType::f32), bias}, attrs));
        CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunOp1(op, {at.To(Device::CUDA(0)).value(), bt.To(Device::CUDA(0)).value(),
                                                        bias_view},
                                                   attrs, Device::CUDA(0)));
        const std::vector<double> wv = ToDoubles(want);
        const double tol = t == DType::f32 ? 1e-5 * std::sqrt(double(k)) : -1;
        EXPECT_TRUE(AllClose(ToDoubles(got), wv, tol < 0 ? DefaultRtol(t) : tol,
                             tol < 0 ? ScaledAtol(wv, DefaultAtol(t), t) : tol));
      }
    }
  }
}

TEST(MatmulGpu, ZeroInnerDimension) {
  CF_SKIP_WITHOUT_GPU();
  std::vector<Tensor> ins{RandomTensor(Shape{3, 0}, DType::f32, 1), RandomTensor(Shape{0, 4}, DType::f32, 2),
                          RandomTensor(Shape{4}, DType::f32, 3)};
  for (DType t : kGpuDTypes) EXPECT_TRUE(CudaMatchesCpu("matmul", ins, Attrs{{"activation", std::string("silu")}}, t));
}

TEST(MatmulGpu, Tf32OnlyWhenAllowed) {
  CF_SKIP_WITHOUT_GPU();
  std::vector<Tensor> ins{RandomTensor(Shape{128, 512}, DType::f32, 5), RandomTensor(Shape{512, 96}, DType::f32, 6)};
  // Exact f32 by default: well inside TF32's error (~1e-3 relative per product).
  EXPECT_TRUE(CudaMatchesCpu("matmul", ins, {}, DType::f32, 1e-5, 3e-4));
  // With TF32, the DESIGN.md tolerance (~3e-4 relative, scaled by sqrt(K)).
  EXPECT_TRUE(CudaMatchesCpu("matmul", ins, Attrs{{"allow_tf32", true}}, DType::f32, 3e-3, 3e-4 * std::sqrt(512.0)));
  EXPECT_TRUE(CudaMatchesCpu("linear", {RandomTensor(Shape{64, 256}, DType::f32, 7),
                                        RandomTensor(Shape{48, 256}, DType::f32, 8)},
                             Attrs{{"allow_tf32", true}}, DType::f32, 3e-3, 3e-4 * 16));
}

TEST(MatmulGpu, Sd15Shapes) {
  CF_SKIP_WITHOUT_GPU();
  // Attention projection and GEGLU matmuls at 4096 tokens, bf16/f16.
  std::vector<Tensor> ins{RandomTensor(Shape{1, 4096, 320}, DType::f32, 11),
                          RandomTensor(Shape{2560, 320}, DType::f32, 12), RandomTensor(Shape{2560}, DType::f32, 13)};
  EXPECT_TRUE(CudaMatchesCpu("linear", ins, {}, DType::f16));
  EXPECT_TRUE(CudaMatchesCpu("linear", ins, {}, DType::bf16));
}

}  // namespace
}  // namespace cf::testing
