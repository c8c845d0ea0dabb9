// Self-test of the CUDA-against-CPU comparison (tests/support/op_harness.h),
// run on the CPU: for every op the gpu tests compare, a fake "kernel under
// test" (the CPU kernel in the low-precision dtype) goes through the same
// MatchesCpuReference the CUDA kernels do, with the gpu tests' tolerances:
// honest, it must pass; with any one output all zeros, only its first half
// written, or every other element left unwritten (zeros: a memset buffer), it
// must fail. A tolerance that lets an empty or half-written output pass would
// make the gpu tests unable to catch a kernel that does nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "ops/fused/fused_elementwise.h"
#include "ops/op.h"
#include "runtime/tensor.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Case {
  std::string op;
  std::vector<Tensor> inputs;
  Attrs attrs;
  double rtol = -1, atol = -1;  // as the gpu test passes them (-1: the defaults)
  std::vector<DType> dtypes = {DType::f32, DType::f16, DType::bf16};
};

Tensor R(const Shape& s, uint64_t seed, double lo = -1, double hi = 1) { return RandomTensor(s, DType::f32, seed, lo, hi); }
std::vector<int64_t> V(std::initializer_list<int64_t> v) { return v; }

// The cases: the gpu tests' shapes and tolerances, smaller where the size
// does not matter, and the ones the audit found passing with zeros (bf16
// softmax / softmax_backward of long rows, mse_loss_backward, adaptive
// average pooling to 1x1, long means).
std::vector<Case> Cases() {
  std::vector<Case> c;
  uint64_t seed = 1;
  // activation
  for (const char* op : {"silu", "gelu", "quick_gelu", "sigmoid"}) {
    c.push_back({op, {R({3, 5, 7}, seed++, -5, 5)}, {}});
    c.push_back({absl::StrCat(op, "_backward"), {R({3, 5, 7}, seed++, -5, 5), R({3, 5, 7}, seed++)}, {}});
  }
  c.push_back({"leaky_relu", {R({13}, seed++, -5, 5)}, Attrs{{"negative_slope", 0.2}}});
  c.push_back({"leaky_relu_backward", {R({13}, seed++, -5, 5), R({13}, seed++)}, Attrs{{"negative_slope", 0.2}}});
  c.push_back({"elu", {R({13}, seed++, -5, 5)}, Attrs{{"alpha", 0.7}}});
  c.push_back({"elu_backward", {R({13}, seed++, -5, 5), R({13}, seed++)}, Attrs{{"alpha", 0.7}}});
  c.push_back({"geglu", {R({2, 7, 26}, seed++, -4, 4)}, {}});
  c.push_back({"geglu_backward", {R({2, 7, 26}, seed++, -4, 4), R({2, 7, 13}, seed++)}, {}});
  // elementwise
  for (const char* op : {"add", "sub", "mul"}) c.push_back({op, {R({2, 5, 1}, seed++), R({2, 1, 7}, seed++)}, {}});
  c.push_back({"div", {R({4, 6, 32}, seed++), R({32}, seed++, 0.5, 2)}, {}});
  c.push_back({"scale", {R({3, 7, 11}, seed++, -2, 2)}, Attrs{{"mul", 1.5}, {"add", -0.25}}});
  c.push_back({"exp", {R({2, 409}, seed++, -3, 3)}, {}});
  c.push_back({"sqrt", {R({2, 409}, seed++, 0.1, 4)}, {}});
  c.push_back({"rsqrt", {R({2, 409}, seed++, 0.1, 4)}, {}});
  c.push_back({"neg", {R({13}, seed++)}, {}});
  c.push_back({"square", {R({13}, seed++, -2, 2)}, {}});
  {  // fused: silu((a + b) * sigmoid(c)) over broadcast inputs
    FusedProgram p;
    const int ab = *p.AddOp("add", {}, {p.Input(0), p.Input(1)});
    *p.AddOp("silu", {}, {*p.AddOp("mul", {}, {ab, *p.AddOp("sigmoid", {}, {p.Input(2)})})});
    c.push_back({"fused_elementwise", {R({2, 5, 7}, seed++), R({7}, seed++), R({2, 1, 7}, seed++, -3, 3)}, p.ToAttrs()});
  }
  c.push_back({"sum_to", {R({2, 30000}, seed++)}, Attrs{{"shape", V({1})}}});
  c.push_back({"sum_to", {R({2, 9, 10, 13}, seed++)}, Attrs{{"shape", V({13})}}});
  c.push_back({"broadcast_to", {R({13}, seed++)}, Attrs{{"shape", V({2, 9, 10, 13})}}});
  c.push_back({"cast", {R({3, 101}, seed++, -300, 300)}, Attrs{{"dtype", DType::f16}}, 0, 0});
  // reduce: long rows and long means, where small values let zeros through
  // with a fixed absolute bound.
  for (const char* op : {"sum", "mean"}) {
    c.push_back({op, {R({2, 9, 11, 13}, seed++)}, Attrs{{"axes", V({1, 2})}, {"keepdim", false}}});
    c.push_back({op, {R({2, 600000}, seed++)}, Attrs{{"axes", V({})}, {"keepdim", false}}});
  }
  c.push_back({"mean", {R({2, 64, 64, 32}, seed++)}, Attrs{{"axes", V({1, 2})}, {"keepdim", true}}});
  {
    Tensor x = R({2, 9000}, seed++, -20, 40);
    c.push_back({"softmax", {x}, {}});
    c.push_back({"softmax_backward", {RunOp1("softmax", {x}).value(), R({2, 9000}, seed++)}, {}});
    Tensor xs = R({5, 77}, seed++, -20, 40);
    c.push_back({"softmax", {xs}, {}});
    c.push_back({"softmax_backward", {RunOp1("softmax", {xs}).value(), R({5, 77}, seed++)}, {}});
  }
  // loss: the backward's values are ~2.5e-5 at this size.
  {
    const Shape s{4, 128, 128, 4};
    Tensor p = R(s, seed++), t = R(s, seed++), w = R({4}, seed++, 0.1, 5), dy = R({}, seed++, 0.5, 2);
    c.push_back({"mse_loss", {p, t}, {}});
    c.push_back({"mse_loss", {p, t, w}, {}});
    c.push_back({"mse_loss_backward", {p, t, dy}, {}});
    c.push_back({"mse_loss_backward", {p, t, dy, w}, {}});
  }
  // matmul (f32 tolerance as matmul_gpu_test: 1e-5 sqrt(K))
  {
    const double k = 53;
    for (DType t : kGpuDTypes) {
      const double tol = t == DType::f32 ? 1e-5 * std::sqrt(k) : -1;
      c.push_back({"matmul", {R({37, 53}, seed++), R({53, 29}, seed++), R({29}, seed++)},
                   Attrs{{"activation", std::string("gelu")}}, tol, tol, {t}});
      c.push_back({"linear", {R({2, 17, 53}, seed++), R({24, 53}, seed++)}, Attrs{{"activation", std::string("none")}},
                   tol, tol, {t}});
    }
  }
  // conv (tolerances as conv_gpu_test's CheckAll)
  {
    const int64_t n = 2, h = 9, w = 11, cin = 8, cout = 12, k = 3;
    const double taps = k * k * cin, pixels = n * h * w;
    const Attrs a{{"stride", V({1, 1})}, {"padding", V({1, 1})}, {"dilation", V({1, 1})}, {"groups", int64_t{1}}};
    Attrs bi = a, bw = a;
    bi.Set("input_shape", V({n, h, w, cin}));
    bw.Set("weight_shape", V({cout, k, k, cin}));
    Tensor x = R({n, h, w, cin}, seed++), wt = R({cout, k, k, cin}, seed++), b = R({cout}, seed++);
    Tensor dy = R({n, h, w, cout}, seed++);
    for (DType t : kGpuDTypes) {
      const bool f32 = t == DType::f32;
      const double fwd = f32 ? 2e-6 * std::sqrt(taps) : -1, bwd_w = f32 ? 2e-6 * std::sqrt(pixels) : -1;
      c.push_back({"conv2d", {x, wt, b}, a, fwd, fwd, {t}});
      c.push_back({"conv2d_backward_input", {dy, wt}, bi, fwd * 2, fwd * 2, {t}});
      c.push_back({"conv2d_backward_weight", {x, dy}, bw, f32 ? bwd_w : -1,
                   f32 ? bwd_w : (t == DType::f16 ? 5e-3 : 2e-2) * std::sqrt(pixels) / 4, {t}});
    }
  }
  // embed
  c.push_back({"gather", {R({100, 64}, seed++), RandomIndices({2, 77}, DType::i64, seed++, 100)}, {}, 0, 0});
  c.push_back({"embedding_backward", {R({4, 300, 13}, seed++), RandomIndices({4, 300}, DType::i32, seed++, 60)},
               Attrs{{"num_embeddings", int64_t{60}}}});
  for (DType t : kGpuDTypes) {
    c.push_back({"timestep_embedding", {FromDoubles({0, 1, 17.5, 500, 999, 250}, {6}, DType::f32)},
                 Attrs{{"dim", int64_t{320}}, {"flip_sin_to_cos", true}, {"downscale_freq_shift", 0.0}, {"dtype", t}},
                 -1, -1, {t}});
    c.push_back({"sincos_pos_embed_2d", {},
                 Attrs{{"embed_dim", int64_t{64}}, {"h", int64_t{8}}, {"w", int64_t{12}}, {"base_size", 8.0},
                       {"interpolation_scale", 1.0}, {"dtype", t}},
                 -1, -1, {t}});
    c.push_back({"full", {}, Attrs{{"shape", V({3, 5})}, {"value", 0.75}, {"dtype", t}}, -1, -1, {t}});
  }
  // norm (f32 backward tolerance 1e-4 as norm_gpu_test)
  for (DType t : kGpuDTypes) {
    const double bt = t == DType::f32 ? 1e-4 : -1;
    Tensor x = R({2, 8, 8, 64}, seed++, -2, 3), dy = R({2, 8, 8, 64}, seed++), g = R({64}, seed++, 0.5, 1.5);
    const Attrs groups{{"groups", int64_t{32}}};
    c.push_back({"group_norm", {x, g, R({64}, seed++)}, groups, -1, -1, {t}});
    c.push_back({"group_norm_backward", {x, dy, g}, groups, bt, bt, {t}});
    Tensor lx = R({2, 77, 32}, seed++, -3, 2), ldy = R({2, 77, 32}, seed++), lg = R({32}, seed++, 0.5, 1.5);
    c.push_back({"layer_norm", {lx, lg, R({32}, seed++)}, Attrs{{"eps", 1e-6}}, -1, -1, {t}});
    c.push_back({"layer_norm_backward", {lx, ldy, lg}, {}, bt, bt, {t}});
    Tensor ax = R({2, 77, 16}, seed++), sh = R({2, 16}, seed++), sc = R({2, 16}, seed++);
    c.push_back({"adaln_modulate", {ax, sh, sc}, {}, -1, -1, {t}});
    c.push_back({"adaln_modulate_backward", {ax, sc, R({2, 77, 16}, seed++)}, {}, bt, bt, {t}});
  }
  // pool: adaptive average to 1x1, whose backward spreads dy / (H·W).
  {
    auto pool_attrs = [](const Attrs& a, int64_t h, int64_t w) {
      Attrs b = a;
      b.Set("input_hw", V({h, w}));
      return b;
    };
    const Attrs k2{{"kernel", V({2})}};
    c.push_back({"avg_pool2d", {R({2, 16, 16, 8}, seed++)}, k2});
    c.push_back({"avg_pool2d_backward", {R({2, 8, 8, 8}, seed++)}, pool_attrs(k2, 16, 16)});
    const Attrs one{{"output_size", V({1, 1})}};
    c.push_back({"adaptive_avg_pool2d", {R({2, 64, 64, 16}, seed++)}, one});
    c.push_back({"adaptive_avg_pool2d_backward", {R({2, 1, 1, 16}, seed++)}, pool_attrs(one, 64, 64)});
    const Attrs rs{{"size", V({13, 5})}};
    c.push_back({"resize_bilinear", {R({2, 7, 9, 3}, seed++)}, rs});
    c.push_back({"resize_bilinear_backward", {R({2, 13, 5, 3}, seed++)}, pool_attrs(rs, 7, 9)});
    c.push_back({"upsample_nearest2x", {R({1, 3, 5, 6}, seed++)}, {}});
    c.push_back({"upsample_nearest2x_backward", {R({1, 6, 10, 6}, seed++)}, pool_attrs({}, 3, 5)});
  }
  // attention: the forward in every dtype; the backward's lse input is f32
  // by contract, so its cases run in f32 (the harness rounds every floating
  // input to the case's dtype).
  {
    const Attrs a{{"heads", int64_t{2}}};
    Tensor q = R({2, 37, 80}, seed++, -2, 2), k = R({2, 45, 80}, seed++, -2, 2), v = R({2, 45, 80}, seed++);
    Tensor mask = FromDoubles(std::vector<double>(90, 1.0), {2, 45}, DType::u8);
    c.push_back({"attention", {q, k, v}, a});
    c.push_back({"attention", {q, k, v, mask}, Attrs{{"heads", int64_t{2}}, {"causal", true}}});
    auto fwd = RunOp("attention", {q, k, v}, a).value();
    c.push_back({"attention_backward", {q, k, v, fwd[0], fwd[1], R({2, 37, 80}, seed++)}, a, -1, -1, {DType::f32}});
    c.push_back({"attention_probs", {q, k}, Attrs{{"heads", int64_t{2}}, {"queries", V({0, 5, 36})}}});
    const Attrs na{{"heads", int64_t{2}}, {"kernel", V({3, 5})}, {"dilation", V({1, 2})}};
    Tensor nq = R({2, 9, 11, 16}, seed++, -2, 2), nk = R({2, 9, 11, 16}, seed++, -2, 2), nv = R({2, 9, 11, 16}, seed++);
    c.push_back({"neighborhood_attention", {nq, nk, nv}, na});
    auto nfwd = RunOp("neighborhood_attention", {nq, nk, nv}, na).value();
    c.push_back({"neighborhood_attention_backward", {nq, nk, nv, nfwd[0], nfwd[1], R({2, 9, 11, 16}, seed++)}, na, -1,
                 -1, {DType::f32}});
  }
  // The fused ConvBlock pyramid: a full-size and a pooled stage, both gates.
  for (const char* gate : {"product", "sigmoid"}) {
    const Attrs a{{"sizes", V({9, 11, 4, 5})}, {"kernel", int64_t{5}}, {"gate", std::string(gate)},
                  {"factor", 0.5}, {"has_bias", true}};
    c.push_back({"convblock_pyramid",
                 {R({2, 9, 11, 34}, seed++, -2, 2), R({5, 5, 34}, seed++, -0.3, 0.3), R({5, 5, 34}, seed++, -0.3, 0.3),
                  R({34}, seed++), R({34}, seed++)},
                 a});
  }
  // shape: exact data movement
  c.push_back({"permute", {R({2, 9, 11, 19}, seed++)}, Attrs{{"perm", V({0, 3, 1, 2})}}, 0, 0});
  c.push_back({"concat", {R({2, 3, 7}, seed++), R({2, 5, 7}, seed++)}, Attrs{{"axis", int64_t{1}}}, 0, 0});
  c.push_back({"split", {R({3, 9, 5}, seed++)}, Attrs{{"sizes", V({2, 3, 4})}, {"axis", int64_t{1}}}, 0, 0});
  c.push_back({"slice", {R({3, 17, 12}, seed++)},
               Attrs{{"axis", int64_t{1}}, {"start", int64_t{3}}, {"end", int64_t{11}}, {"step", int64_t{1}}}, 0, 0});
  c.push_back({"slice_backward", {R({3, 4, 12}, seed++)},
               Attrs{{"axis", int64_t{1}}, {"start", int64_t{2}}, {"step", int64_t{4}}, {"dim", int64_t{17}}}, 0, 0});
  c.push_back({"pad", {R({2, 9, 11, 3}, seed++)},
               Attrs{{"pads", V({0, 0, 0, 1, 0, 1, 0, 0})}, {"value", -2.5}}, 0, 0});
  return c;
}

// Ops with a CPU kernel that the gpu tests do not compare through the harness.
const std::set<std::string> kNotCompared = {
    "reshape",  // a view: no kernel runs, nothing to write
};

enum class Corruption { kNone, kZeros, kFirstHalf, kEveryOther };
const char* Name(Corruption c) {
  switch (c) {
    case Corruption::kNone: return "honest";
    case Corruption::kZeros: return "all zeros";
    case Corruption::kFirstHalf: return "first half only";
    case Corruption::kEveryOther: return "every other element";
  }
  return "?";
}

// The CPU kernel in the test dtype, then output `which` corrupted. `changed`
// reports whether the corruption changed anything (it cannot where the
// reference is zero there: such a case would test nothing).
KernelUnderTest Fake(const Case& c, Corruption how, size_t which, bool* changed) {
  return [&c, how, which, changed](const std::vector<Tensor>& in) -> StatusOr<std::vector<Tensor>> {
    CF_ASSIGN_OR_RETURN(std::vector<Tensor> out, RunOp(c.op, in, c.attrs, Device::CPU()));
    if (how == Corruption::kNone || which >= out.size()) return out;
    std::vector<double> v = ToDoubles(out[which]);
    const std::vector<double> before = v;
    for (size_t i = 0; i < v.size(); ++i) {
      const bool keep = how == Corruption::kFirstHalf ? i < v.size() / 2 : how == Corruption::kEveryOther && i % 2 == 0;
      if (!keep) v[i] = 0;
    }
    *changed = v != before;
    out[which] = FromDoubles(v, out[which].shape(), out[which].dtype());
    return out;
  };
}

TEST(HarnessSelfTest, ZeroOrHalfWrittenOutputsFailEveryOp) {
  for (const Case& c : Cases()) {
    for (DType t : c.dtypes) {
      SCOPED_TRACE(absl::StrCat(c.op, " ", DTypeName(t)));
      bool changed = false;
      EXPECT_TRUE(MatchesCpuReference(c.op, c.inputs, c.attrs, t, Fake(c, Corruption::kNone, 0, &changed), c.rtol,
                                      c.atol))
          << "an honest kernel must pass";
      // The number of outputs: the honest CPU run's.
      std::vector<Tensor> rounded;
      for (const Tensor& x : c.inputs) rounded.push_back(IsFloating(x.dtype()) ? CastTo(x, t) : x);
      auto outs = RunOp(c.op, rounded, c.attrs);
      ASSERT_TRUE(outs.ok()) << outs.status().message();
      for (size_t k = 0; k < outs->size(); ++k) {
        if ((*outs)[k].numel() == 0) continue;
        for (Corruption how : {Corruption::kZeros, Corruption::kFirstHalf, Corruption::kEveryOther}) {
          if (how != Corruption::kZeros && (*outs)[k].numel() < 2) continue;
          changed = false;
          auto r = MatchesCpuReference(c.op, c.inputs, c.attrs, t, Fake(c, how, k, &changed), c.rtol, c.atol);
          EXPECT_TRUE(changed) << "output " << k << ", " << Name(how)
                               << ": the reference is zero there, so this case tests nothing; change its inputs";
          EXPECT_FALSE(r) << "output " << k << " " << Name(how) << " passed the comparison";
        }
      }
    }
  }
}

// Every op with a CPU kernel has a case above (or is listed as not compared),
// so a new op family cannot skip this check.
TEST(HarnessSelfTest, CoversEveryOp) {
  std::set<std::string> covered;
  for (const Case& c : Cases()) covered.insert(c.op);
  for (const std::string& name : OpRegistry::Global().Names()) {
    if (OpRegistry::Global().FindKernel(name, DeviceKind::kCPU) == nullptr) continue;
    if (name.find("test") != std::string::npos) continue;  // test-only ops of other test files
    EXPECT_TRUE(covered.count(name) || kNotCompared.count(name)) << name << " has no harness self-test case";
  }
}

// The tolerance scales with the output: a reference of small values (a
// gradient divided by a large count) does not let zeros through.
TEST(HarnessSelfTest, AbsoluteToleranceScalesWithTheOutput) {
  const std::vector<double> want = {2.5e-5, -1e-5, 3e-6, 0};
  EXPECT_DOUBLE_EQ(ScaledAtol(want, 2e-2, DType::bf16), 2e-2 * 2.5e-5);
  EXPECT_FALSE(AllClose({0, 0, 0, 0}, want, 2e-2, ScaledAtol(want, 2e-2, DType::bf16)));
  EXPECT_TRUE(AllClose({2.51e-5, -1e-5, 3e-6, 1e-8}, want, 2e-2, ScaledAtol(want, 2e-2, DType::bf16)));
  // An exactly-zero reference allows only the dtype's bottom rounding noise.
  EXPECT_EQ(ScaledAtol({0, 0}, 5e-3, DType::f16), 2 * std::ldexp(1.0, -24));
  EXPECT_FALSE(AllClose({1e-3, 0}, {0, 0}, 5e-3, ScaledAtol({0, 0}, 5e-3, DType::f16)));
  // NaN never passes; infinities pass only when equal.
  EXPECT_FALSE(AllClose({NAN}, {NAN}, 1, 1));
  EXPECT_TRUE(AllClose({INFINITY}, {INFINITY}, 0, 0));
  EXPECT_FALSE(AllClose({-INFINITY}, {INFINITY}, 1, 1));
}

}  // namespace
}  // namespace cf::testing
