// CUDA kernels of the norm family against the CPU kernels (outputs poisoned
// first), in f32, f16 and bf16, at shapes that exercise every launch path:
// group_norm's channels-per-thread variants (C = 15 .. 2560), multi-chunk
// statistics, the vectorised and scalar elementwise paths; layer_norm's
// register (C % 4 == 0, C <= 1152) and generic paths.
#include "ops/norm/norm.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct GnCase {
  Shape shape;
  int64_t groups;
  bool affine;
};

const GnCase kGnCases[] = {
    {{2, 8, 8, 64}, 32, true},   {{2, 64, 64, 320}, 32, true}, {{1, 9, 7, 15}, 5, false},
    {{2, 5, 3, 2560}, 32, true}, {{3, 16}, 4, true},           {{1, 130, 24}, 6, false},
    {{2, 16, 16, 4}, 2, true},   {{1, 3, 3, 1280}, 32, false},
};

std::vector<Tensor> GnInputs(const GnCase& k, bool backward, uint64_t seed) {
  const int64_t c = k.shape.dim(-1);
  std::vector<Tensor> ins{RandomTensor(k.shape, DType::f32, seed, -2, 3)};
  if (backward) ins.push_back(RandomTensor(k.shape, DType::f32, seed + 1));
  if (k.affine) {
    ins.push_back(RandomTensor(Shape({c}), DType::f32, seed + 2, 0.5, 1.5));
    if (!backward) ins.push_back(RandomTensor(Shape({c}), DType::f32, seed + 3));
  }
  return ins;
}

TEST(NormGpu, GroupNormMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const GnCase& k : kGnCases)
    for (DType dt : kGpuDTypes)
      for (const char* act : {"none", "silu"})  // silu: the fused GroupNorm -> SiLU
        EXPECT_TRUE(CudaMatchesCpu("group_norm", GnInputs(k, false, seed += 10),
                                   Attrs{{"groups", k.groups}, {"activation", std::string(act)}}, dt))
            << k.shape.ToString() << " activation " << act;
}

TEST(NormGpu, GroupNormBackwardMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 100;
  for (const GnCase& k : kGnCases)
    for (DType dt : kGpuDTypes) {
      // dgamma / dbeta sum N * P terms; allow for the summation order in f32.
      const double tol = dt == DType::f32 ? 1e-4 : -1;
      EXPECT_TRUE(CudaMatchesCpu("group_norm_backward", GnInputs(k, true, seed += 10), Attrs{{"groups", k.groups}},
                                 dt, tol, tol))
          << k.shape.ToString();
    }
}

// SD's 1024x1024 latent with a large mean: the chunked statistics must keep
// the variance (CPU and GPU both against each other in f32).
TEST(NormGpu, GroupNormLargeGroupsWithOffset) {
  CF_SKIP_WITHOUT_GPU();
  Tensor x = RandomTensor(Shape({2, 128, 128, 320}), DType::f32, 7, 99.0, 101.0);
  EXPECT_TRUE(CudaMatchesCpu("group_norm", {x}, Attrs{{"groups", int64_t{32}}}, DType::f32, 1e-4, 1e-4));
}

TEST(NormGpu, LayerNormMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  const Shape shapes[] = {{2, 77, 320}, {4, 1152}, {3, 5, 768}, {2, 7, 8}, {5, 1156}, {3, 13}, {1, 2, 4000}, {9, 1}};
  uint64_t seed = 200;
  for (const Shape& s : shapes) {
    const int64_t c = s.dim(-1);
    for (bool affine : {false, true})
      for (DType dt : kGpuDTypes) {
        std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++, -3, 2)};
        if (affine) {
          ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++, 0.5, 1.5));
          ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++));
        }
        EXPECT_TRUE(CudaMatchesCpu("layer_norm", ins, Attrs{{"eps", 1e-6}}, dt)) << s.ToString() << " " << affine;
      }
  }
}

TEST(NormGpu, LayerNormBackwardMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  const Shape shapes[] = {{2, 77, 320}, {4, 1152}, {3, 13}, {2, 4096, 64}};
  uint64_t seed = 300;
  for (const Shape& s : shapes) {
    const int64_t c = s.dim(-1);
    for (bool affine : {false, true})
      for (DType dt : kGpuDTypes) {
        std::vector<Tensor> ins{RandomTensor(s, DType::f32, seed++), RandomTensor(s, DType::f32, seed++)};
        if (affine) ins.push_back(RandomTensor(Shape({c}), DType::f32, seed++, 0.5, 1.5));
        const double tol = dt == DType::f32 ? 1e-4 : -1;
        EXPECT_TRUE(CudaMatchesCpu("layer_norm_backward", ins, {}, dt, tol, tol)) << s.ToString() << " " << affine;
      }
  }
}

TEST(NormGpu, AdaLnModulateMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 400;
  for (const Shape& s : {Shape({2, 77, 1152}), Shape({3, 5, 7}), Shape({1, 300, 64})})
    for (bool three_d : {false, true})
      for (DType dt : kGpuDTypes) {
        const Shape ps = three_d ? Shape({s[0], 1, s[2]}) : Shape({s[0], s[2]});
        Tensor x = RandomTensor(s, DType::f32, seed++);
        Tensor shift = RandomTensor(ps, DType::f32, seed++);
        Tensor scale = RandomTensor(ps, DType::f32, seed++);
        EXPECT_TRUE(CudaMatchesCpu("adaln_modulate", {x, shift, scale}, {}, dt)) << s.ToString();
        const double tol = dt == DType::f32 ? 1e-4 : -1;
        EXPECT_TRUE(CudaMatchesCpu("adaln_modulate_backward", {x, scale, RandomTensor(s, DType::f32, seed++)}, {}, dt,
                                   tol, tol))
            << s.ToString();
      }
}

}  // namespace
}  // namespace cf::testing
