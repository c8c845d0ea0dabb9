// The neighborhood-attention CUDA kernels (ops/attention/neighborhood_cuda*.cu)
// against the CPU op in f32 on the same rounded inputs, outputs poisoned
// first (RunOp): SD1.5-like 64 x 64 maps with 8 heads x 40 and K = 13, K = 31,
// K_h != K_w, dilation with sizes not divisible by it, head dims 10 (scalar
// loads, CUDA-core forward in every dtype), 40, 64, 72, 128 and 160 (the
// tensor-core forward and backward in f16/bf16), forward and backward (with and without
// dlse), the backward run twice bit for bit (no atomics), and an
// unsupported head dim as a Status error. Skips (with the reason) where there
// is no GPU.
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/op.h"
#include "tests/support/op_harness.h"

namespace cf::testing {
namespace {

struct Case {
  int64_t batch = 1, h = 64, w = 64, heads = 2, d = 40;
  int64_t kh = 13, kw = 13, dh = 1, dw = 1;
  std::string Name() const {
    return absl::StrCat("B", batch, " ", h, "x", w, " ", heads, "x", d, " K", kh, "x", kw, " dil", dh, "x", dw);
  }
};

Attrs AttrsOf(const Case& c) {
  return Attrs{{"heads", c.heads}, {"kernel", std::vector<int64_t>{c.kh, c.kw}},
               {"dilation", std::vector<int64_t>{c.dh, c.dw}}};
}

double Eps(DType t) { return t == DType::f32 ? 0x1p-24 : t == DType::f16 ? 0x1p-11 : 0x1p-8; }

Shape ShapeOf(const Case& c) { return Shape({c.batch, c.h, c.w, c.heads * c.d}); }

std::vector<Tensor> QkvFor(const Case& c, DType dt, uint64_t seed) {
  return {CastTo(RandomTensor(ShapeOf(c), DType::f32, seed, -1.5, 1.5), dt),
          CastTo(RandomTensor(ShapeOf(c), DType::f32, seed + 1, -1.5, 1.5), dt),
          CastTo(RandomTensor(ShapeOf(c), DType::f32, seed + 2), dt)};
}

std::vector<Tensor> AsF32(const std::vector<Tensor>& in) {
  std::vector<Tensor> out;
  for (const Tensor& t : in) out.push_back(t.dtype() == DType::f16 || t.dtype() == DType::bf16 ? CastTo(t, DType::f32) : t);
  return out;
}

// got against want (the CPU op in f32): a few roundings of the storage dtype
// of the output's largest magnitude; f32: accumulation order over the window.
::testing::AssertionResult Close(const Tensor& got, const Tensor& want, DType dt, double f32_rel, const char* what) {
  const std::vector<double> g = ToDoubles(got), w = ToDoubles(want);
  const double e = dt == DType::f32 ? f32_rel : Eps(dt);
  auto r = AllClose(g, w, 2 * e, 8 * e * std::max(MaxAbs(w), 1e-3));
  if (!r) return r << " (" << what << ", " << DTypeName(dt) << ")";
  return r;
}

void CheckForward(const Case& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(c.Name());
  const std::vector<Tensor> in = QkvFor(c, dt, seed);
  auto want = RunOp("neighborhood_attention", AsF32(in), AttrsOf(c));
  ASSERT_TRUE(want.ok()) << want.status();
  auto got = RunOp("neighborhood_attention", in, AttrsOf(c), Device::CUDA(0));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(Close((*got)[0], (*want)[0], dt, 1e-5, "out"));
  EXPECT_TRUE(AllClose(ToDoubles((*got)[1]), ToDoubles((*want)[1]), 1e-5, 1e-4)) << "lse " << DTypeName(dt);
}

void CheckBackward(const Case& c, DType dt, uint64_t seed, bool dlse) {
  SCOPED_TRACE(absl::StrCat(c.Name(), dlse ? " dlse" : ""));
  const std::vector<Tensor> in = QkvFor(c, dt, seed);
  // The saved out / lse of the CPU forward (out rounded like a dt forward's).
  auto fwd = RunOp("neighborhood_attention", AsF32(in), AttrsOf(c));
  ASSERT_TRUE(fwd.ok()) << fwd.status();
  const Tensor out = CastTo((*fwd)[0], dt), lse = (*fwd)[1];
  const Tensor dout = CastTo(RandomTensor(ShapeOf(c), DType::f32, seed + 7), dt);
  std::vector<Tensor> args{in[0], in[1], in[2], out, lse, dout};
  if (dlse) args.push_back(RandomTensor(lse.shape(), DType::f32, seed + 8, -0.5, 0.5));
  auto want = RunOp("neighborhood_attention_backward", AsF32(args), AttrsOf(c));
  ASSERT_TRUE(want.ok()) << want.status();
  auto got = RunOp("neighborhood_attention_backward", args, AttrsOf(c), Device::CUDA(0));
  ASSERT_TRUE(got.ok()) << got.status();
  const char* names[3] = {"dq", "dk", "dv"};
  for (size_t g = 0; g < 3; ++g) EXPECT_TRUE(Close((*got)[g], (*want)[g], dt, 2e-5, names[g]));
  // Deterministic: a second run gives the same bits.
  auto again = RunOp("neighborhood_attention_backward", args, AttrsOf(c), Device::CUDA(0));
  ASSERT_TRUE(again.ok()) << again.status();
  for (size_t g = 0; g < 3; ++g) {
    const Tensor a = (*got)[g].To(Device::CPU()).value(), b = (*again)[g].To(Device::CPU()).value();
    EXPECT_EQ(std::memcmp(a.raw(), b.raw(), size_t(a.nbytes())), 0) << names[g] << " differs between runs";
  }
}

const Case kCases[] = {
    {.batch = 2, .h = 64, .w = 64, .heads = 8, .d = 40, .kh = 13, .kw = 13},  // SD1.5 top level at 512, K = 13
    {.batch = 1, .h = 64, .w = 64, .heads = 2, .d = 40, .kh = 31, .kw = 31},  // the largest kernel
    {.batch = 1, .h = 61, .w = 67, .heads = 2, .d = 72, .kh = 7, .kw = 9, .dh = 2, .dw = 3},  // dilation
    {.batch = 2, .h = 33, .w = 47, .heads = 3, .d = 64, .kh = 5, .kw = 11},  // K_h != K_w
    {.batch = 1, .h = 20, .w = 23, .heads = 3, .d = 10, .kh = 7, .kw = 7},   // scalar loads
    {.batch = 1, .h = 24, .w = 24, .heads = 2, .d = 128, .kh = 9, .kw = 9, .dh = 2, .dw = 2},
    {.batch = 1, .h = 17, .w = 19, .heads = 1, .d = 160, .kh = 13, .kw = 17},
};

TEST(NeighborhoodGpu, ForwardMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 1;
  for (const Case& c : kCases)
    for (DType dt : kGpuDTypes) CheckForward(c, dt, seed += 10);
}

TEST(NeighborhoodGpu, BackwardMatchesCpu) {
  CF_SKIP_WITHOUT_GPU();
  uint64_t seed = 500;
  bool dlse = false;
  for (const Case& c : kCases)
    for (DType dt : kGpuDTypes) CheckBackward(c, dt, seed += 10, dlse = !dlse);
}

TEST(NeighborhoodGpu, UnsupportedHeadDimIsAnError) {
  CF_SKIP_WITHOUT_GPU();
  const Case c{.h = 8, .w = 8, .heads = 1, .d = 264, .kh = 3, .kw = 3};
  ExpectError(RunOp("neighborhood_attention", QkvFor(c, DType::f16, 900), AttrsOf(c), Device::CUDA(0)).status(),
              {"neighborhood_attention", "head dims", "264"});
}

}  // namespace
}  // namespace cf::testing
