// The CUDA kernels of the embed family (ops/embed/embed_kernels.cuh) on the
// kdev interpreter against the CPU kernels, with the launchers' geometry:
// gather with every word width (2..16 bytes, chosen by row size and the
// alignment of table and output), odd widths, views off alignment,
// out-of-range indices (NaN rows on CUDA); embedding_backward across index
// chunks, odd D, several row parts and column blocks, out-of-range indices
// (ignored); timestep_embedding and sincos_pos_embed_2d; zero and huge sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "ops/embed/embed_kernels.cuh"
#include "tests/support/kdev_tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

namespace ki = kd::interp;

template <typename F> Status DispatchIdx(DType t, F&& f) {
  if (t == DType::i32) return f(int32_t{});
  return f(int64_t{});
}

// GatherTyped of embed_gather.cu on the interpreter; *word gets the word width.
StatusOr<Tensor> RunGather(const Tensor& table, const Tensor& idx, int64_t off_table, int64_t off_out, int* word) {
  const int64_t V = table.shape()[0], D = table.shape()[1], N = idx.numel();
  DevTensor dt(table, "table", off_table), di(idx, "idx"), dout(Shape{N, D}, table.dtype(), "out", off_out);
  const int64_t es = DTypeSize(table.dtype());
  const embed::GatherLaunch g = embed::GatherGeometry(N, D * es, es, reinterpret_cast<uintptr_t>(dt.data()),
                                                      reinterpret_cast<uintptr_t>(dout.data()));
  *word = g.word_bytes;
  uint8_t pattern[16];
  embed::GatherNanPattern(table.dtype(), pattern);
  auto launch = [&](auto wtag) -> Status {
    using W = decltype(wtag);
    W fill;
    std::memcpy(static_cast<void*>(&fill), pattern, sizeof(W));
    // The word view of the rows: as the launcher's data_as<W>().
    kd::interp::Buffer<W> bt(static_cast<W*>(dt.data()), static_cast<size_t>(V * g.row_words), "table");
    kd::interp::Buffer<W> bo(static_cast<W*>(dout.data()), static_cast<size_t>(g.total), "out");
    return DispatchIdx(idx.dtype(), [&](auto itag) -> Status {
      using I = decltype(itag);
      return ki::Launch(KdConfig("gather", g.grid, g.block), &embed::GatherKernel<W, I>, bo, bt, di.ptr<I>(), g.total,
                        g.row_words, V, fill);
    });
  };
  switch (g.word_bytes) {
    case 2: CF_RETURN_IF_ERROR(launch(uint16_t{})); break;
    case 4: CF_RETURN_IF_ERROR(launch(uint32_t{})); break;
    case 8: CF_RETURN_IF_ERROR(launch(kd::uint2{})); break;
    default: CF_RETURN_IF_ERROR(launch(kd::uint4{})); break;
  }
  return dout.ToTensor();
}

TEST(EmbedInterp, Gather) {
  uint64_t seed = 1;
  for (DType t : kGpuDTypes) {
    for (DType it : {DType::i32, DType::i64}) {
      for (int64_t D : {1, 3, 4, 8, 33, 64}) {
        for (int64_t N : {1, 5, 37}) {
          for (auto [ot, oo] : {std::pair<int64_t, int64_t>{0, 0}, {1, 0}, {0, 1}, {2, 2}}) {
            const int64_t V = 11;
            const Tensor table = RandomTensor({V, D}, t, seed++);
            const Tensor idx = RandomIndices({N}, it, seed++, V);
            CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("gather", {table, idx}));
            int word = 0;
            CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunGather(table, idx, ot, oo, &word));
            ASSERT_EQ(got.nbytes(), want.nbytes());
            EXPECT_EQ(0, std::memcmp(got.raw(), want.raw(), static_cast<size_t>(want.nbytes())))
                << DTypeName(t) << " D " << D << " N " << N << " offsets " << ot << "," << oo << " word " << word;
            // The widest word that divides the row and both addresses.
            const int64_t es = DTypeSize(t), row = D * es;
            int64_t expect = es;
            for (int64_t w = 16; w > es; w /= 2)
              if (row % w == 0 && (ot * es) % w == 0 && (oo * es) % w == 0) {
                expect = w;
                break;
              }
            EXPECT_EQ(word, expect) << DTypeName(t) << " D " << D << " offsets " << ot << "," << oo;
          }
        }
      }
    }
  }
}

TEST(EmbedInterp, GatherOutOfRangeGivesNanRows) {
  for (DType t : kGpuDTypes) {
    for (int64_t D : {3, 8}) {
      const Tensor table = RandomTensor({6, D}, t, 3);
      const Tensor idx = FromDoubles({1, 6, -2, 0, 5, 1000000}, {6}, DType::i64);
      int word = 0;
      CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunGather(table, idx, 0, 0, &word));
      const std::vector<double> v = ToDoubles(got), tv = ToDoubles(table);
      const int rows[] = {1, -1, -1, 0, 5, -1};
      for (int n = 0; n < 6; ++n)
        for (int64_t d = 0; d < D; ++d) {
          if (rows[n] < 0) {
            EXPECT_TRUE(std::isnan(v[n * D + d])) << n << " " << DTypeName(t);
          } else {
            EXPECT_EQ(v[n * D + d], tv[rows[n] * D + d]) << n << " " << DTypeName(t);
          }
        }
    }
  }
}

TEST(EmbedInterp, GatherGeometry) {
  const embed::GatherLaunch z = embed::GatherGeometry(0, 64, 2, 0, 0);
  EXPECT_EQ(z.total, 0);  // the launcher returns before launching
  EXPECT_EQ(z.grid, 1u);
  const embed::GatherLaunch h = embed::GatherGeometry(int64_t{1} << 30, 4096 * 2, 2, 256, 512);
  EXPECT_EQ(h.word_bytes, 16);
  EXPECT_EQ(h.row_words, 512);
  EXPECT_EQ(h.total, int64_t{1} << 39);
  EXPECT_EQ(h.grid, 65535u * 16);
  EXPECT_EQ(embed::GatherGeometry(5, 6, 2, 0, 0).word_bytes, 2);   // 3 halves a row
  EXPECT_EQ(embed::GatherGeometry(5, 12, 4, 0, 0).word_bytes, 4);  // 3 floats
  EXPECT_EQ(embed::GatherGeometry(5, 8, 2, 0, 8).word_bytes, 8);
  EXPECT_EQ(embed::GatherGeometry(5, 32, 4, 4, 0).word_bytes, 4);  // misaligned table
}

// ---------------------------------------------------------------------------
// embedding_backward

StatusOr<Tensor> RunEmbeddingBackward(const Tensor& grad, const Tensor& idx, int64_t V) {
  const int64_t N = idx.numel(), D = grad.shape().dim(-1);
  DevTensor dg(grad, "grad"), di(idx, "idx"), dout(Shape{V, D}, grad.dtype(), "out");
  DevTensor dacc(Shape{V, D}, DType::f32, "acc");  // the workspace for f16 / bf16
  const embed::EmbedBackwardLaunch g = embed::EmbedBackwardGeometry(V, D);
  CF_RETURN_IF_ERROR(DispatchKdFloat(grad.dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    kd::Ptr<float> acc = std::is_same_v<T, float> ? dout.ptr<float>() : dacc.ptr<float>();
    return DispatchIdx(idx.dtype(), [&](auto itag) -> Status {
      using I = decltype(itag);
      return ki::Launch(KdConfig("embedding_backward", g.grid, g.block), &embed::EmbeddingBackwardKernel<T, I>, acc,
                        dout.ptr<T>(), dg.ptr<T>(), di.ptr<I>(), N, V, D, g.rows_per_part);
    });
  }));
  return dout.ToTensor();
}

TEST(EmbedInterp, EmbeddingBackward) {
  struct Case {
    int64_t V, D, N;
  };
  uint64_t seed = 100;
  for (const Case& c : std::vector<Case>{{1, 1, 1}, {5, 13, 7}, {9, 33, 21}, {3, 33, 1030}, {4, 300, 9}, {40, 2, 50},
                                         {6, 5, 0}}) {
    for (DType t : kGpuDTypes) {
      for (DType it : {DType::i32, DType::i64}) {
        const Tensor idx = RandomIndices({c.N}, it, seed++, c.V);
        const Tensor g = RandomTensor({c.N, c.D}, DType::f32, seed++);
        auto run = [&](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
          CF_ASSIGN_OR_RETURN(Tensor y, RunEmbeddingBackward(in[0], in[1], c.V));
          return std::vector<Tensor>{y};
        };
        // Sums of up to N products: the accumulation order is the same
        // (token order), so the default tolerances hold.
        EXPECT_TRUE(MatchesCpuReference("embedding_backward", {g, idx}, {{"num_embeddings", c.V}}, t, run))
            << "V " << c.V << " D " << c.D << " N " << c.N << " " << DTypeName(t) << " " << DTypeName(it);
      }
    }
  }
}

// Out-of-range indices match no owner: the same as the CPU result without
// those tokens (the CPU kernel rejects them).
TEST(EmbedInterp, EmbeddingBackwardIgnoresOutOfRange) {
  const int64_t V = 4, D = 5;
  const Tensor idx = FromDoubles({0, 4, 2, -1, 2, 100, 3}, {7}, DType::i64);
  const Tensor clean_idx = FromDoubles({0, 0, 2, 0, 2, 0, 3}, {7}, DType::i64);
  const Tensor g = RandomTensor({7, D}, DType::f32, 9);
  std::vector<double> gv = ToDoubles(g);
  for (int n : {1, 3, 5})
    for (int64_t d = 0; d < D; ++d) gv[n * D + d] = 0;
  CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("embedding_backward", {FromDoubles(gv, {7, D}, DType::f32), clean_idx},
                                              {{"num_embeddings", V}}));
  CF_ASSERT_OK_AND_ASSIGN(Tensor got, RunEmbeddingBackward(g, idx, V));
  EXPECT_TRUE(AllClose(ToDoubles(got), ToDoubles(want), 1e-6, 1e-6));
}

TEST(EmbedInterp, EmbeddingBackwardGeometry) {
  for (auto [V, D] : std::vector<std::pair<int64_t, int64_t>>{
           {1, 1}, {5, 33}, {49408, 768}, {int64_t{1} << 30, 100}, {3, int64_t{1} << 26}, {1, 256}, {7, 257}}) {
    const embed::EmbedBackwardLaunch g = embed::EmbedBackwardGeometry(V, D);
    EXPECT_EQ(g.block.x % 32, 0u) << V << " " << D;
    EXPECT_LE(g.block.x, 256u);
    EXPECT_GE(int64_t(g.grid.x) * g.block.x, D);              // every column has a thread
    EXPECT_GE(int64_t(g.grid.y) * g.rows_per_part, V);        // every row has a part
    EXPECT_LT(int64_t(g.grid.y - 1) * g.rows_per_part, V);    // and no part is empty
    EXPECT_LE(g.grid.y, 65535u);
    EXPECT_LE(int64_t(g.grid.x) * g.grid.y, std::max<int64_t>(1024, g.grid.x));
  }
}

// ---------------------------------------------------------------------------
// timestep_embedding and sincos_pos_embed_2d

template <typename F> Status DispatchTs(DType t, F&& f) {
  if (t == DType::i32) return f(int32_t{});
  if (t == DType::i64) return f(int64_t{});
  return DispatchKdFloat(t, f);
}

TEST(EmbedInterp, Timestep) {
  struct Case {
    int64_t dim;
    bool flip;
    double shift, scale, max_period;
  };
  const std::vector<double> ts = {0, 1, 17.5, 500, 999};
  for (const Case& c : std::vector<Case>{{320, true, 0.0, 1.0, 10000.0}, {7, false, 1.0, 1.0, 10000.0},
                                         {10, false, 0.5, 2.0, 1000.0}, {1, true, 0.0, 1.0, 10000.0},
                                         {2, false, 0.0, 1.0, 10000.0}}) {
    for (DType in : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64}) {
      for (DType out : kGpuDTypes) {
        const Attrs attrs{{"dim", c.dim},     {"flip_sin_to_cos", c.flip},   {"downscale_freq_shift", c.shift},
                          {"scale", c.scale}, {"max_period", c.max_period}, {"dtype", out}};
        const Tensor t = FromDoubles(ts, {5}, in);
        CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("timestep_embedding", {t}, attrs));
        CF_ASSERT_OK_AND_ASSIGN(embed_internal::TimestepParams p, embed_internal::TimestepParamsOf(attrs));
        const int64_t B = 5, n = B * c.dim;
        DevTensor dt(t, "timesteps"), dy(Shape{B, c.dim}, out, "out", 1);
        const GridStride g = embed::SinusoidalGeometry(n);
        const Status st = DispatchKdFloat(out, [&](auto otag) -> Status {
          using T = decltype(otag);
          return DispatchTs(in, [&](auto stag) -> Status {
            using S = decltype(stag);
            return ki::Launch(KdConfig("timestep", g.grid, g.block), &embed::TimestepKernel<T, S>, dy.ptr<T>(),
                              dt.ptr<S>(), B, p);
          });
        });
        ASSERT_TRUE(st.ok()) << st;
        const std::vector<double> w = ToDoubles(want);
        EXPECT_TRUE(AllClose(ToDoubles(dy.ToTensor()), w, DefaultRtol(out), ScaledAtol(w, DefaultAtol(out), out)))
            << "dim " << c.dim << " in " << DTypeName(in) << " out " << DTypeName(out);
      }
    }
  }
}

TEST(EmbedInterp, SinCos) {
  struct Case {
    int64_t dim, h, w;
    double base, interp;
  };
  for (const Case& c : std::vector<Case>{{4, 1, 1, 16, 1}, {12, 3, 5, 16, 1}, {36, 7, 2, 8, 2}, {8, 2, 9, 1, 0.5}}) {
    for (DType out : kGpuDTypes) {
      const Attrs attrs{{"embed_dim", c.dim}, {"h", c.h}, {"w", c.w}, {"base_size", c.base},
                        {"interpolation_scale", c.interp}, {"dtype", out}};
      CF_ASSERT_OK_AND_ASSIGN(Tensor want, RunOp1("sincos_pos_embed_2d", {}, attrs));
      CF_ASSERT_OK_AND_ASSIGN(embed_internal::SinCosParams p, embed_internal::SinCosParamsOf(attrs));
      const int64_t n = c.h * c.w * c.dim;
      DevTensor dy(Shape{c.h * c.w, c.dim}, out, "out", 1);
      const GridStride g = embed::SinusoidalGeometry(n);
      const Status st = DispatchKdFloat(out, [&](auto otag) -> Status {
        using T = decltype(otag);
        return ki::Launch(KdConfig("sincos", g.grid, g.block), &embed::SinCosKernel<T>, dy.ptr<T>(), p);
      });
      ASSERT_TRUE(st.ok()) << st;
      const std::vector<double> w = ToDoubles(want);
      EXPECT_TRUE(AllClose(ToDoubles(dy.ToTensor()), w, DefaultRtol(out), ScaledAtol(w, DefaultAtol(out), out)))
          << c.dim << " " << c.h << "x" << c.w << " " << DTypeName(out);
    }
  }
  EXPECT_EQ(embed::SinusoidalGeometry(0).grid, 1u);
  EXPECT_EQ(embed::SinusoidalGeometry(int64_t{1} << 36).grid, 65535u * 16);
}

}  // namespace
}  // namespace cf::testing
