// The scaled dot-product attention CUDA kernels (ops/attention/sdpa_cuda.cu)
// against the CPU op in f32 on the same rounded inputs, outputs poisoned
// first (RunOp): forward (tensor cores for f16/bf16, CUDA cores for f32),
// backward and attention_probs, every head dim, SD1.5 / PixArt / CLIP
// shapes (4097 self-attention tokens, 77 and 120 cross-attention tokens),
// key masks with a fully masked batch, causal and window bands; unsupported
// head dims are a Status error. Skips (with the reason) where there is no GPU.
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/op.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Case {
  int64_t batch = 1, nq = 333, nkv = 333, heads = 2, d = 64;
  bool causal = false;
  int64_t window = -1;
  bool mask = false;  // random key mask; batch 1 (if any) sees no key
  std::string Name() const {
    return absl::StrCat("B", batch, " Nq", nq, " Nkv", nkv, " ", heads, "x", d, causal ? " causal" : "",
                        window >= 0 ? absl::StrCat(" window ", window) : "", mask ? " mask" : "");
  }
};

Attrs AttrsOf(const Case& c) {
  Attrs a{{"heads", c.heads}};
  if (c.causal) a.Set("causal", true);
  if (c.window >= 0) a.Set("window", c.window);
  return a;
}

double Eps(DType t) { return t == DType::f32 ? 0x1p-24 : t == DType::f16 ? 0x1p-11 : 0x1p-8; }

Tensor MaskFor(const Case& c, uint64_t seed) {
  Tensor m = Tensor::Empty(Shape({c.batch, c.nkv}), DType::u8).value();
  uint8_t* p = m.data<uint8_t>();
  uint64_t s = seed * 2654435761u + 3;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t j = 0; j < c.nkv; ++j) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      p[b * c.nkv + j] = b == 1 ? 0 : ((s >> 33) % 3 != 0);
    }
  return m;
}

// q, k, v (rounded to dt) and the optional mask.
std::vector<Tensor> QkvFor(const Case& c, DType dt, uint64_t seed) {
  const int64_t ch = c.heads * c.d;
  std::vector<Tensor> in{CastTo(RandomTensor(Shape({c.batch, c.nq, ch}), DType::f32, seed, -1.5, 1.5), dt),
                         CastTo(RandomTensor(Shape({c.batch, c.nkv, ch}), DType::f32, seed + 1, -1.5, 1.5), dt),
                         CastTo(RandomTensor(Shape({c.batch, c.nkv, ch}), DType::f32, seed + 2), dt)};
  if (c.mask) in.push_back(MaskFor(c, seed));
  return in;
}

std::vector<Tensor> AsF32(const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  for (const Tensor& t : in) out.push_back(t.dtype() == DType::f16 || t.dtype() == DType::bf16 ? CastTo(t, DType::f32) : t);
  return out;
}

// got against want (the CPU op in f32): within a few roundings of the
// storage dtype of the output's largest magnitude (f32: accumulation order
// over thousands of keys), infinities where the CPU has them.
::testing::AssertionResult Close(const Tensor& got, const Tensor& want, DType dt, double f32_rel, const char* what) {
  const std::vector<double> g = ToDoubles(got), w = ToDoubles(want);
  const double e = dt == DType::f32 ? f32_rel : Eps(dt);
  auto r = AllCloseWithSpecials(g, w, 2 * e, 8 * e * std::max(MaxAbs(w), 1e-3));
  if (!r) return r << " (" << what << ", " << DTypeName(dt) << ")";
  return r;
}

void CheckForward(const Case& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(c.Name());
  const std::vector<Tensor> in = QkvFor(c, dt, seed);
  auto want = RunOp("attention", AsF32(in), AttrsOf(c));
  ASSERT_TRUE(want.ok()) << want.status();
  auto got = RunOp("attention", in, AttrsOf(c), Device::CUDA(0));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(Close((*got)[0], (*want)[0], dt, 1e-5, "out"));
  const std::vector<double> gl = ToDoubles((*got)[1]), wl = ToDoubles((*want)[1]);
  EXPECT_TRUE(AllCloseWithSpecials(gl, wl, 1e-5, 1e-4)) << "lse " << DTypeName(dt);
}

void CheckBackward(const Case& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(c.Name());
  std::vector<Tensor> in = QkvFor(c, dt, seed);
  // The saved out / lse of the CPU forward (out rounded like a dt forward's).
  auto fwd = RunOp("attention", AsF32(in), AttrsOf(c));
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  const Tensor out = CastTo((*fwd)[0], dt), lse = (*fwd)[1];
  const Tensor dout = CastTo(RandomTensor(in[0].shape(), DType::f32, seed + 7), dt);
  std::vector<Tensor> args{in[0], in[1], in[2], out, lse, dout};
  if (c.mask) args.push_back(in[3]);
  auto want = RunOp("attention_backward", AsF32(args), AttrsOf(c));
  ASSERT_TRUE(want.ok()) << want.status();
  auto got = RunOp("attention_backward", args, AttrsOf(c), Device::CUDA(0));
  ASSERT_TRUE(got.ok()) << got.status();
  const char* names[3] = {"dq", "dk", "dv"};
  for (size_t g = 0; g < 3; ++g) EXPECT_TRUE(Close((*got)[g], (*want)[g], dt, 1e-5, names[g]));
}

const Case kHeadDimCases[] = {{.d = 40}, {.d = 64}, {.d = 72}, {.d = 80}, {.d = 128}, {.d = 160}};

TEST(AttentionGpu, ForwardEveryHeadDim) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const Case& c : kHeadDimCases)
    for (DType dt : kGpuDTypes) CheckForward(c, dt, seed += 10);
}

TEST(AttentionGpu, ForwardModelShapes) {
  CF_SKIP_WITHOUT_GPU();
  const Case cases[] = {
      {.batch = 1, .nq = 4097, .nkv = 4097, .heads = 2, .d = 40},          // SD1.5 top level, odd tokens
      {.batch = 2, .nq = 1024, .nkv = 77, .heads = 8, .d = 40, .mask = true},  // SD1.5 cross attention
      {.batch = 2, .nq = 1024, .nkv = 120, .heads = 4, .d = 72, .mask = true},  // PixArt with T5 tokens
      {.batch = 2, .nq = 77, .nkv = 77, .heads = 4, .d = 64, .causal = true},  // CLIP text encoder
      {.batch = 1, .nq = 1000, .nkv = 1000, .heads = 2, .d = 80, .window = 64},  // DiTFastAttn band
      {.batch = 1, .nq = 513, .nkv = 700, .heads = 1, .d = 160, .causal = true},
  };
  uint64_t seed = 100;
  for (const Case& c : cases)
    for (DType dt : kGpuDTypes) CheckForward(c, dt, seed += 10);
}

TEST(AttentionGpu, BackwardEveryHeadDim) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 200;
  for (const Case& c : kHeadDimCases)
    for (DType dt : kGpuDTypes) CheckBackward(c, dt, seed += 10);
}

TEST(AttentionGpu, BackwardModelShapes) {
  CF_SKIP_WITHOUT_GPU();
  const Case cases[] = {
      {.batch = 1, .nq = 4097, .nkv = 4097, .heads = 1, .d = 40},
      {.batch = 2, .nq = 1024, .nkv = 77, .heads = 2, .d = 40, .mask = true},
      {.batch = 2, .nq = 77, .nkv = 77, .heads = 2, .d = 64, .causal = true},
      {.batch = 1, .nq = 1000, .nkv = 1000, .heads = 1, .d = 72, .window = 64},
  };
  uint64_t seed = 300;
  for (const Case& c : cases)
    for (DType dt : kGpuDTypes) CheckBackward(c, dt, seed += 10);
}

TEST(AttentionGpu, ProbsMatchCpu) {
  CF_SKIP_WITHOUT_GPU();
  const Case cases[] = {{.batch = 2, .nq = 4097, .nkv = 4097, .heads = 2, .d = 40},
                        {.batch = 2, .nq = 300, .nkv = 77, .heads = 2, .d = 33, .mask = true},
                        {.batch = 1, .nq = 200, .nkv = 200, .heads = 1, .d = 72, .causal = true, .window = 9}};
  uint64_t seed = 400;
  for (const Case& c : cases)
    for (DType dt : kGpuDTypes) {
      SCOPED_TRACE(c.Name());
      std::vector<Tensor> in = QkvFor(c, dt, seed += 10);
      in.erase(in.begin() + 2);  // q, k[, mask]
      Attrs a = AttrsOf(c);
      a.Set("queries", std::vector<int64_t>{0, c.nq / 2, c.nq - 1, 3});
      auto want = RunOp1("attention_probs", AsF32(in), a);
      ASSERT_TRUE(want.ok()) << want.status();
      auto got = RunOp1("attention_probs", in, a, Device::CUDA(0));
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(AllClose(ToDoubles(*got), ToDoubles(*want), 1e-5, 1e-6)) << DTypeName(dt);
    }
}

TEST(AttentionGpu, UnsupportedHeadDimIsAnError) {
  CF_SKIP_WITHOUT_GPU();
  const std::vector<Tensor> in = QkvFor({.nq = 10, .nkv = 10, .heads = 1, .d = 48}, DType::f16, 500);
  ExpectError(RunOp("attention", in, Attrs{{"heads", int64_t{1}}}, Device::CUDA(0)).status(),
              {"attention on CUDA supports head dims 40, 64, 72, 80, 128, 160; got 48"});
}

}  // namespace
}  // namespace cf::testing
