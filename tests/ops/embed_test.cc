// CPU tests of the embed family: gather and embedding_backward against plain
// loops, timestep_embedding and sincos_pos_embed_2d against float64 formulas
// written here independently of the kernels (following diffusers' code step by
// step), VJPs by finite differences, errors and cost formulas.
#include <cmath>

#include "graph/autodiff.h"
#include "ops/embed/embed.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

// One rounding of a float64 value to the storage dtype.
double Tol(DType t) {
  switch (t) {
    case DType::f64: return 1e-12;
    case DType::f32: return 1e-6;
    case DType::f16: return 1e-3;
    default: return 8e-3;  // bf16
  }
}

// ---- gather

TEST(Gather, MatchesReference) {
  uint64_t seed = 1;
  const Shape index_shapes[] = {{5}, {2, 3}, {}, {2, 2, 3}, {1, 1, 1, 4}};
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    for (DType it : {DType::i32, DType::i64}) {
      for (const Shape& is : index_shapes) {
        const int64_t V = 11, D = 7;
        Tensor table = RandomTensor({V, D}, t, ++seed);
        Tensor idx = RandomIndices(is, it, ++seed, V);
        std::vector<double> tv = ToDoubles(table), iv = ToDoubles(idx), want;
        for (double v : iv)
          for (int64_t d = 0; d < D; ++d) want.push_back(tv[static_cast<int64_t>(v) * D + d]);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("gather", {table, idx}));
        Shape out = is;
        out.push_back(D);
        EXPECT_EQ(y.shape(), out);
        EXPECT_TRUE(AllClose(ToDoubles(y), want, 0, 0)) << DTypeName(t) << " " << is.ToString();
      }
    }
  }
}

TEST(Gather, OutOfRangeIndexIsAnError) {
  Tensor table = RandomTensor({6, 3}, DType::f32, 2);
  for (double bad : {6.0, -1.0}) {
    Tensor idx = FromDoubles({0, 5, bad, 1}, {2, 2}, DType::i64);
    auto y = RunOp1("gather", {table, idx});
    ExpectError(y.status(), {"gather", absl::StrCat("index ", static_cast<int>(bad)), "position 2", "[2, 2]",
                             "[0, 6)"});
  }
}

TEST(Gather, Errors) {
  ExpectError(BuildStatus("gather", {{{6, 3}, DType::f32}, {{4}, DType::f32}}), {"gather", "i32 or i64", "f32"});
  ExpectError(BuildStatus("gather", {{{6, 3, 2}, DType::f32}, {{4}, DType::i32}}), {"gather", "[V, D]", "[6, 3, 2]"});
  ExpectError(BuildStatus("gather", {{{6, 3}, DType::i32}, {{4}, DType::i32}}), {"floating"});
}

TEST(Gather, VjpWithRepeatedIndices) {
  Tensor table = RandomTensor({5, 4}, DType::f64, 3);
  Tensor idx = FromDoubles({1, 3, 1, 1, 0, 3}, {2, 3}, DType::i32);
  EXPECT_TRUE(CheckVjp("gather", {table, idx}, {}, {0}));
}

TEST(Gather, Cost) {
  Cost c = CostOfOp("gather", {{{49408, 768}, DType::f16}, {{2, 77}, DType::i64}}, {});
  EXPECT_EQ(c.bytes_read, 2 * 77 * 768 * 2 + 2 * 77 * 8);  // the gathered rows and the indices
  EXPECT_EQ(c.bytes_written, 2 * 77 * 768 * 2);
  EXPECT_EQ(c.total_flops(), 0);
}

// ---- embedding_backward

TEST(EmbeddingBackward, SumsRowsByIndex) {
  uint64_t seed = 50;
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
    for (DType it : {DType::i32, DType::i64}) {
      const int64_t V = 9, D = 13;
      Tensor idx = RandomIndices({3, 7}, it, ++seed, 5);  // rows 5..8 get nothing; many duplicates
      Tensor g = RandomTensor({3, 7, D}, t, ++seed);
      std::vector<double> gv = ToDoubles(g), iv = ToDoubles(idx), want(V * D, 0.0);
      for (size_t n = 0; n < iv.size(); ++n)
        for (int64_t d = 0; d < D; ++d) want[static_cast<int64_t>(iv[n]) * D + d] += gv[n * D + d];
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("embedding_backward", {g, idx}, {{"num_embeddings", V}}));
      EXPECT_EQ(y.shape(), (Shape{V, D}));
      EXPECT_TRUE(AllClose(ToDoubles(y), want, 2 * Tol(t), 2 * Tol(t))) << DTypeName(t);
    }
  }
}

TEST(EmbeddingBackward, ErrorsAndCost) {
  ExpectError(BuildStatus("embedding_backward", {{{2, 3, 4}, DType::f32}, {{2, 4}, DType::i32}},
                          {{"num_embeddings", int64_t{10}}}),
              {"embedding_backward", "[2, 3, 4]", "[2, 4]", "+ [D]"});
  ExpectError(BuildStatus("embedding_backward", {{{2, 4}, DType::f32}, {{2}, DType::i32}}), {"num_embeddings"});
  Tensor g = RandomTensor({2, 3}, DType::f32, 1);
  Tensor idx = FromDoubles({0, 4}, {2}, DType::i32);
  ExpectError(RunOp1("embedding_backward", {g, idx}, {{"num_embeddings", int64_t{4}}}).status(),
              {"embedding_backward", "index 4", "[0, 4)"});
  Cost c = CostOfOp("embedding_backward", {{{2, 77, 768}, DType::f32}, {{2, 77}, DType::i32}},
                    {{"num_embeddings", int64_t{49408}}});
  EXPECT_EQ(c.elementwise_flops, 2 * 77 * 768);
  EXPECT_EQ(c.bytes_read, 2 * 77 * 768 * 4 + 2 * 77 * 4);
  EXPECT_EQ(c.bytes_written, int64_t{49408} * 768 * 4);
}

// ---- timestep_embedding

// diffusers.models.embeddings.get_timestep_embedding, line by line, in float64.
std::vector<double> TimestepRef(const std::vector<double>& ts, int dim, bool flip, double shift, double scale,
                                double max_period) {
  const int half = dim / 2;
  std::vector<double> freqs(half);
  for (int i = 0; i < half; ++i) freqs[i] = std::exp(-std::log(max_period) * i / (half - shift));
  std::vector<double> out;
  for (double t : ts) {
    std::vector<double> s(half), c(half);
    for (int i = 0; i < half; ++i) {
      const double e = scale * (t * freqs[i]);
      s[i] = std::sin(e);
      c[i] = std::cos(e);
    }
    std::vector<double> row = flip ? c : s;
    row.insert(row.end(), flip ? s.begin() : c.begin(), flip ? s.end() : c.end());
    if (dim % 2 == 1) row.push_back(0.0);
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

struct TimestepCase {
  int dim;
  bool flip;
  double shift, scale, max_period;
};
const TimestepCase kTimestepCases[] = {
    {320, true, 0.0, 1.0, 10000.0},   // Stable Diffusion 1.5 / SDXL
    {256, true, 0.0, 1.0, 10000.0},   // PixArt
    {7, false, 1.0, 1.0, 10000.0},    // diffusers defaults, odd dim
    {10, false, 0.5, 2.0, 1000.0},
    {1, true, 0.0, 1.0, 10000.0},     // only the zero column
};

TEST(TimestepEmbedding, MatchesDiffusersFormula) {
  const std::vector<double> ts = {0, 1, 17.5, 500, 999};
  for (const TimestepCase& c : kTimestepCases) {
    for (DType in : {DType::f32, DType::f64, DType::i32, DType::i64, DType::bf16}) {
      for (DType out : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
        Attrs attrs{{"dim", int64_t{c.dim}},       {"flip_sin_to_cos", c.flip}, {"downscale_freq_shift", c.shift},
                    {"scale", c.scale},            {"max_period", c.max_period}, {"dtype", out}};
        Tensor t = FromDoubles(ts, {5}, in);  // rounded to the input dtype (999 -> 1000 in bf16, 17.5 -> 17 in ints)
        std::vector<double> expect = TimestepRef(ToDoubles(t), c.dim, c.flip, c.shift, c.scale, c.max_period);
        CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("timestep_embedding", {t}, attrs));
        EXPECT_EQ(y.shape(), (Shape{5, c.dim}));
        EXPECT_EQ(y.dtype(), out);
        EXPECT_TRUE(AllClose(ToDoubles(y), expect, Tol(out), Tol(out)))
            << "dim " << c.dim << " in " << DTypeName(in) << " out " << DTypeName(out);
      }
    }
  }
}

TEST(TimestepEmbedding, BuilderHelperDefaultsAreDiffusers) {
  Graph g;
  Builder b(&g);
  Value t = b.Input("t", {2}, DType::i64);
  Value e = TimestepEmbedding(t, 320, {.flip_sin_to_cos = true, .downscale_freq_shift = 0});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(e.shape(), (Shape{2, 320}));
  EXPECT_EQ(g.node(0).attrs.Bool("flip_sin_to_cos", false), true);
  Value d = TimestepEmbedding(t, 8);
  EXPECT_EQ(g.node(1).attrs.Float("downscale_freq_shift", -1), 1.0);
  EXPECT_EQ(d.dtype(), DType::f32);
}

TEST(TimestepEmbedding, ErrorsAndCost) {
  ExpectError(BuildStatus("timestep_embedding", {{{2, 1}, DType::f32}}, {{"dim", int64_t{8}}}),
              {"timestep_embedding", "[2, 1]", "[B]"});
  ExpectError(BuildStatus("timestep_embedding", {{{2}, DType::f32}}), {"dim"});
  ExpectError(BuildStatus("timestep_embedding", {{{2}, DType::f32}}, {{"dim", int64_t{2}}}),
              {"downscale_freq_shift"});  // half = 1 = default shift
  ExpectError(BuildStatus("timestep_embedding", {{{2}, DType::u8}}, {{"dim", int64_t{4}}}), {"u8"});
  Cost c = CostOfOp("timestep_embedding", {{{2}, DType::i64}}, {{"dim", int64_t{320}}, {"downscale_freq_shift", 0.0}});
  EXPECT_EQ(c.transcendentals, 160 + 2 * 2 * 160);
  EXPECT_EQ(c.elementwise_flops, 2 * 160 + 2 * 2 * 160);
  EXPECT_EQ(c.bytes_read, 2 * 8);
  EXPECT_EQ(c.bytes_written, 2 * 320 * 4);
}

// ---- sincos_pos_embed_2d

// diffusers.models.embeddings.get_2d_sincos_pos_embed (numpy version) step by
// step: grid_h / grid_w, meshgrid(grid_w, grid_h), emb_h from grid[0] and
// emb_w from grid[1], each get_1d_sincos_pos_embed_from_grid(D/2, .).
std::vector<double> SinCosRef(int D, int h, int w, double base_size, double interp) {
  std::vector<double> grid_h(h), grid_w(w);
  for (int i = 0; i < h; ++i) grid_h[i] = i / (h / base_size) / interp;
  for (int j = 0; j < w; ++j) grid_w[j] = j / (w / base_size) / interp;
  // meshgrid(grid_w, grid_h) ("xy" indexing): both [h, w]; grid0[i][j] =
  // grid_w[j], grid1[i][j] = grid_h[i]; flattened row-major.
  std::vector<double> grid0, grid1;
  for (int i = 0; i < h; ++i)
    for (int j = 0; j < w; ++j) {
      grid0.push_back(grid_w[j]);
      grid1.push_back(grid_h[i]);
    }
  auto emb_1d = [](int dim, const std::vector<double>& pos) {
    std::vector<double> omega(dim / 2);
    for (int k = 0; k < dim / 2; ++k) omega[k] = 1.0 / std::pow(10000.0, k / (dim / 2.0));
    std::vector<std::vector<double>> rows;
    for (double p : pos) {
      std::vector<double> r;
      for (double o : omega) r.push_back(std::sin(p * o));
      for (double o : omega) r.push_back(std::cos(p * o));
      rows.push_back(r);
    }
    return rows;
  };
  auto emb_h = emb_1d(D / 2, grid0), emb_w = emb_1d(D / 2, grid1);
  std::vector<double> out;
  for (size_t r = 0; r < emb_h.size(); ++r) {
    out.insert(out.end(), emb_h[r].begin(), emb_h[r].end());
    out.insert(out.end(), emb_w[r].begin(), emb_w[r].end());
  }
  return out;
}

TEST(SinCosPosEmbed2d, MatchesDiffusers) {
  struct Case {
    int D, h, w;
    double base, interp;
  };
  const Case cases[] = {
      {16, 4, 4, 4, 1.0},     // MAE: base_size = grid size
      {32, 6, 10, 8, 2.0},    // non-square, PixArt-style interpolation
      {1152, 8, 8, 64, 2.0},  // PixArt-alpha 512 (D = 1152) on a small grid
      {4, 1, 3, 16, 1.0},
  };
  for (const Case& c : cases) {
    std::vector<double> want = SinCosRef(c.D, c.h, c.w, c.base, c.interp);
    for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64}) {
      CF_ASSERT_OK_AND_ASSIGN(Tensor y, RunOp1("sincos_pos_embed_2d", {},
                                               {{"embed_dim", int64_t{c.D}}, {"h", int64_t{c.h}}, {"w", int64_t{c.w}},
                                                {"base_size", c.base}, {"interpolation_scale", c.interp},
                                                {"dtype", t}}));
      EXPECT_EQ(y.shape(), (Shape{int64_t{c.h} * c.w, c.D}));
      EXPECT_TRUE(AllClose(ToDoubles(y), want, Tol(t), Tol(t))) << c.D << " " << c.h << "x" << c.w << " " << DTypeName(t);
    }
  }
}

TEST(SinCosPosEmbed2d, HelperErrorsAndCost) {
  Graph g;
  Builder b(&g);
  Value e = SinCosPosEmbed2d(b, 1152, 64, 64, {.base_size = 64, .dtype = DType::f16});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(e.shape(), (Shape{4096, 1152}));
  EXPECT_EQ(e.dtype(), DType::f16);
  ExpectError(BuildStatus("sincos_pos_embed_2d", {}, {{"embed_dim", int64_t{6}}, {"h", int64_t{2}}, {"w", int64_t{2}}}),
              {"sincos_pos_embed_2d", "multiple of 4"});
  ExpectError(BuildStatus("sincos_pos_embed_2d", {}, {{"embed_dim", int64_t{8}}, {"h", int64_t{0}}, {"w", int64_t{2}}}),
              {"1x1"});
  ExpectError(BuildStatus("sincos_pos_embed_2d", {}, {{"embed_dim", int64_t{8}}, {"h", int64_t{2}}}), {"'w'"});
  Cost c = CostOfOp("sincos_pos_embed_2d", {}, {{"embed_dim", int64_t{16}}, {"h", int64_t{3}}, {"w", int64_t{5}}});
  EXPECT_EQ(c.transcendentals, 15 * 16 + 4);
  EXPECT_EQ(c.elementwise_flops, 15 * 8 + 2 * 8 + 4);
  EXPECT_EQ(c.bytes_read, 0);
  EXPECT_EQ(c.bytes_written, 15 * 16 * 4);
}

}  // namespace
}  // namespace cf::testing
