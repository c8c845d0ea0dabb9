// CUDA kernels of the embed family against the CPU ones: gather (and its NaN
// rows for bad indices), embedding_backward (also run twice: bitwise equal),
// timestep_embedding and sincos_pos_embed_2d.
#include <cmath>

#include "ops/embed/embed.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

TEST(EmbedGpu, Gather) {
  CF_SKIP_WITHOUT_GPU();
  for (DType it : {DType::i32, DType::i64}) {
    for (int64_t D : {7, 64, 768}) {
      Tensor table = RandomTensor({100, D}, DType::f32, 1);
      Tensor idx = RandomIndices({2, 77}, it, 2, 100);
      for (DType t : kGpuDTypes)
        EXPECT_TRUE(CudaMatchesCpu("gather", {table, idx}, {}, t, 0, 0)) << D << " " << DTypeName(t);
    }
  }
}

TEST(EmbedGpu, GatherOutOfRangeGivesNanRows) {
  CF_SKIP_WITHOUT_GPU();
  for (DType t : kGpuDTypes) {
    Tensor table = testing::CastTo(RandomTensor({6, 8}, DType::f32, 3), t).To(Device::CUDA(0)).value();
    Tensor idx = FromDoubles({1, 6, -2, 0}, {4}, DType::i64).To(Device::CUDA(0)).value();
    CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("gather", {table, idx}, {}, Device::CUDA(0)));
    std::vector<double> v = ToDoubles(y), tv = ToDoubles(table);
    const int rows[] = {1, -1, -1, 0};  // the table row of each valid index
    for (int n = 0; n < 4; ++n)
      for (int d = 0; d < 8; ++d) {
        if (rows[n] < 0) {
          EXPECT_TRUE(std::isnan(v[n * 8 + d])) << n << " " << DTypeName(t);
        } else {
          EXPECT_EQ(v[n * 8 + d], tv[rows[n] * 8 + d]) << "valid index " << n << ", element " << d << " "
                                                       << DTypeName(t);
        }
      }
  }
}

TEST(EmbedGpu, EmbeddingBackwardMatchesCpuAndIsDeterministic) {
  CF_SKIP_WITHOUT_GPU();
  for (DType it : {DType::i32, DType::i64}) {
    for (int64_t D : {13, 320}) {
      const int64_t V = 1000;
      Tensor idx = RandomIndices({4, 300}, it, 4, 50);  // many duplicates
      Tensor g = RandomTensor({4, 300, D}, DType::f32, 5);
      const Attrs attrs{{"num_embeddings", V}};
      for (DType t : kGpuDTypes)
        EXPECT_TRUE(CudaMatchesCpu("embedding_backward", {g, idx}, attrs, t)) << D << " " << DTypeName(t);
      Tensor gd = g.To(Device::CUDA(0)).value(), id = idx.To(Device::CUDA(0)).value();
      CF_ASSERT_OK_AND_ASSIGN(Tensor a, RunOp1("embedding_backward", {gd, id}, attrs, Device::CUDA(0)));
      CF_ASSERT_OK_AND_ASSIGN(Tensor b, RunOp1("embedding_backward", {gd, id}, attrs, Device::CUDA(0)));
      EXPECT_EQ(ToDoubles(a), ToDoubles(b));
    }
  }
}

TEST(EmbedGpu, TimestepEmbedding) {
  CF_SKIP_WITHOUT_GPU();
  Tensor tf = FromDoubles({0, 1, 17.5, 500, 999, 250}, {6}, DType::f32);
  Tensor ti = FromDoubles({0, 1, 17, 500, 999, 250}, {6}, DType::i64);
  for (DType t : kGpuDTypes) {
    for (int64_t dim : {320, 7}) {
      const Attrs attrs{{"dim", dim}, {"flip_sin_to_cos", dim == 320}, {"downscale_freq_shift", dim == 320 ? 0.0 : 1.0},
                        {"dtype", t}};
      EXPECT_TRUE(CudaMatchesCpu("timestep_embedding", {tf}, attrs, t)) << dim << " " << DTypeName(t);
      EXPECT_TRUE(CudaMatchesCpu("timestep_embedding", {ti}, attrs, t)) << dim << " " << DTypeName(t);
    }
  }
}

TEST(EmbedGpu, SinCosPosEmbed2d) {
  CF_SKIP_WITHOUT_GPU();
  for (DType t : kGpuDTypes) {
    EXPECT_TRUE(CudaMatchesCpu("sincos_pos_embed_2d", {},
                               {{"embed_dim", int64_t{1152}}, {"h", int64_t{32}}, {"w", int64_t{48}},
                                {"base_size", 32.0}, {"interpolation_scale", 1.0}, {"dtype", t}},
                               t));
  }
}

}  // namespace
}  // namespace cf::testing
