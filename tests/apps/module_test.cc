// convfusion-module run as a process: inputs written with nn/safetensors,
// the output read back and compared with float64 references written here
// (naive softmax attention with key mask, causal and band limits; naive
// neighborhood attention over NATTEN's windows built explicitly; the
// ConvBlock against the PyTorch golden files of tests/data/convblock), plus usage
// errors (exit 2) and bad file contents (exit 1, naming the tensor). The
// executable's path comes from tests/CMakeLists.txt (CF_MODULE_EXE).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nn/safetensors.h"
#include "runtime/device.h"
#include "tests/support/process.h"

namespace cf {
namespace {

namespace fs = std::filesystem;

const std::string kExe = CF_MODULE_EXE;

using testing::ReadAll;
using testing::TempDir;
using Result = testing::ProcessResult;

// Runs the executable with `args` in `cwd`, capturing stdout and stderr.
Result RunModule(const std::vector<std::string>& args, const fs::path& cwd) {
  return testing::RunProcess(kExe, args, cwd);
}

std::string Show(const std::vector<std::string>& args) {
  std::string s = "convfusion-module";
  for (const std::string& a : args) s += " " + a;
  return s;
}

// Random normal values rounded to `file_dtype` (what the file holds).
Tensor RandomTensor(const Shape& shape, DType file_dtype, uint64_t seed, double stddev = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, stddev);
  std::vector<double> v(static_cast<size_t>(shape.numel()));
  for (double& x : v) x = dist(rng);
  return Tensor::FromValues<double>(v, shape, file_dtype).value();
}

// The values the module computes on: the file's tensor converted to the
// compute dtype (as the executable does), as doubles.
std::vector<double> AsCompute(const Tensor& t, DType compute) {
  Tensor c = Tensor::Empty(t.shape(), compute).value();
  EXPECT_TRUE(c.CopyFrom(t).ok());
  return c.ToVector<double>().value();
}

// ---- float64 references ---------------------------------------------------------

// One query's softmax attention over the listed keys (rows of [*, heads, d]
// arrays); no key: zeros, as the op's contract says.
void AttendRow(const double* q, const std::vector<const double*>& keys, const std::vector<const double*>& values,
               int64_t d, double scale, double* out) {
  std::fill(out, out + d, 0.0);
  if (keys.empty()) return;
  std::vector<double> s(keys.size());
  double mx = -std::numeric_limits<double>::infinity();
  for (size_t j = 0; j < keys.size(); ++j) {
    double dot = 0;
    for (int64_t c = 0; c < d; ++c) dot += q[c] * keys[j][c];
    s[j] = dot * scale;
    mx = std::max(mx, s[j]);
  }
  double sum = 0;
  for (double& x : s) sum += (x = std::exp(x - mx));
  for (size_t j = 0; j < keys.size(); ++j)
    for (int64_t c = 0; c < d; ++c) out[c] += s[j] / sum * values[j][c];
}

struct AttnCase {
  int64_t B = 1, nq = 1, nkv = 1, heads = 1, d = 1;
  bool causal = false;
  int64_t window = -1;
  std::optional<double> scale = std::nullopt;
};

// q [B, Nq, H, d], k and v [B, Nkv, H, d], mask [B * Nkv] (empty: none).
std::vector<double> ReferenceAttention(const AttnCase& c, const std::vector<double>& q, const std::vector<double>& k,
                                       const std::vector<double>& v, const std::vector<double>& mask) {
  const double scale = c.scale.value_or(1.0 / std::sqrt(static_cast<double>(c.d)));
  std::vector<double> out(q.size());
  const int64_t row = c.heads * c.d;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t i = 0; i < c.nq; ++i) {
        std::vector<const double*> keys, values;
        for (int64_t j = 0; j < c.nkv; ++j) {
          if (!mask.empty() && mask[b * c.nkv + j] == 0) continue;
          if (c.causal && j > i) continue;
          if (c.window >= 0 && std::abs(i - j) > c.window) continue;
          keys.push_back(&k[(b * c.nkv + j) * row + h * c.d]);
          values.push_back(&v[(b * c.nkv + j) * row + h * c.d]);
        }
        AttendRow(&q[(b * c.nq + i) * row + h * c.d], keys, values, c.d, scale, &out[(b * c.nq + i) * row + h * c.d]);
      }
  return out;
}

// NATTEN's window along one axis, built from its definition: the positions
// congruent to i mod dil form a grid; on it the window of k positions is
// centred on i and shifted inward where it would leave the grid.
std::vector<int64_t> NattenWindow(int64_t i, int64_t len, int64_t k, int64_t dil) {
  std::vector<int64_t> grid;
  for (int64_t p = i % dil; p < len; p += dil) grid.push_back(p);
  const int64_t at = i / dil, n = static_cast<int64_t>(grid.size());
  int64_t start = at - k / 2;
  if (start < 0) start = 0;
  if (start + k > n) start = n - k;
  return std::vector<int64_t>(grid.begin() + start, grid.begin() + start + k);
}

struct NaCase {
  int64_t B = 1, H = 1, W = 1, heads = 1, d = 1, kh = 3, kw = 3, dh = 1, dw = 1;
};

// q, k, v [B, H, W, heads, d].
std::vector<double> ReferenceNeighborhood(const NaCase& c, const std::vector<double>& q, const std::vector<double>& k,
                                          const std::vector<double>& v) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  std::vector<double> out(q.size());
  const int64_t row = c.heads * c.d;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t y = 0; y < c.H; ++y)
      for (int64_t x = 0; x < c.W; ++x)
        for (int64_t h = 0; h < c.heads; ++h) {
          std::vector<const double*> keys, values;
          for (int64_t ky : NattenWindow(y, c.H, c.kh, c.dh))
            for (int64_t kx : NattenWindow(x, c.W, c.kw, c.dw)) {
              const int64_t t = (b * c.H + ky) * c.W + kx;
              keys.push_back(&k[t * row + h * c.d]);
              values.push_back(&v[t * row + h * c.d]);
            }
          const int64_t t = (b * c.H + y) * c.W + x;
          AttendRow(&q[t * row + h * c.d], keys, values, c.d, scale, &out[t * row + h * c.d]);
        }
  return out;
}

// Max |got - want| against a tolerance scaled by the largest |want|.
void ExpectClose(const std::vector<double>& got, const std::vector<double>& want, double rel, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double mag = 0, err = 0;
  size_t worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    mag = std::max(mag, std::abs(want[i]));
    const double e = std::isfinite(got[i]) ? std::abs(got[i] - want[i]) : std::numeric_limits<double>::infinity();
    if (e > err) err = e, worst = i;
  }
  EXPECT_LE(err, rel * std::max(mag, 1e-3)) << what << ": worst element " << worst << " is " << got[worst]
                                            << ", want " << want[worst] << " (max |want| " << mag << ")";
}

double RelTol(DType t) { return t == DType::f32 ? 2e-5 : t == DType::f16 ? 4e-3 : 2.5e-2; }

// Reads the output file: tensor "output" of `dtype` and `shape`, as doubles.
std::vector<double> ReadOutput(const std::string& path, DType dtype, const Shape& shape, const std::string& module) {
  auto f = SafetensorsFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return {};
  EXPECT_EQ(f->names(), std::vector<std::string>{"output"});
  EXPECT_EQ(f->metadata().at("module"), module);
  auto t = f->Read("output");
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return {};
  EXPECT_EQ(t->dtype(), dtype);
  EXPECT_EQ(t->shape(), shape);
  return t->ToVector<double>().value();
}

// ---- attention -------------------------------------------------------------------

struct AttnRun {
  AttnCase c;
  DType compute = DType::f32;
  DType q_file = DType::f32, kv_file = DType::f32;
  std::optional<DType> mask_dtype = std::nullopt;  // the mask's dtype in the file; none: no mask
  bool mask_a_whole_batch = false;  // batch 1 sees no key at all
  std::string device = "cpu";
};

void CheckAttention(const AttnRun& r, uint64_t seed) {
  const AttnCase& c = r.c;
  SCOPED_TRACE(absl::StrFormat("B %d Nq %d Nkv %d heads %d d %d causal %d window %d dtype %s mask %s on %s", c.B, c.nq,
                               c.nkv, c.heads, c.d, c.causal, c.window, DTypeName(r.compute),
                               r.mask_dtype ? DTypeName(*r.mask_dtype) : "none", r.device));
  TempDir dir;
  const Tensor q = RandomTensor(Shape{c.B, c.nq, c.heads, c.d}, r.q_file, seed);
  const Tensor k = RandomTensor(Shape{c.B, c.nkv, c.heads, c.d}, r.kv_file, seed + 1);
  const Tensor v = RandomTensor(Shape{c.B, c.nkv, c.heads, c.d}, r.kv_file, seed + 2);
  std::vector<std::pair<std::string, Tensor>> inputs = {{"q", q}, {"k", k}, {"v", v}};
  std::vector<double> mask;
  if (r.mask_dtype) {
    std::mt19937_64 rng(seed + 3);
    std::vector<int64_t> m(static_cast<size_t>(c.B * c.nkv));
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t j = 0; j < c.nkv; ++j) {
        // Nonzero values other than 1 must count as visible too.
        const bool visible = !(r.mask_a_whole_batch && b == 1) && (j == 0 || rng() % 3 != 0);
        m[b * c.nkv + j] = visible ? (*r.mask_dtype == DType::boolean ? 1 : 1 + static_cast<int64_t>(rng() % 5)) : 0;
      }
    mask.assign(m.begin(), m.end());
    inputs.push_back({"mask", Tensor::FromValues<int64_t>(m, Shape{c.B, c.nkv}, *r.mask_dtype).value()});
  }
  ASSERT_TRUE(WriteSafetensors(dir / "in.safetensors", inputs).ok());
  std::vector<std::string> args = {"attention", "--input=in.safetensors", "--output=out.safetensors",
                                   "--dtype=" + std::string(DTypeName(r.compute)), "--device=" + r.device};
  if (c.causal) args.push_back("--causal");
  if (c.window >= 0) args.push_back("--window=" + std::to_string(c.window));
  if (c.scale) args.push_back(absl::StrCat("--scale=", *c.scale));
  const Result res = RunModule(args, dir.path());
  ASSERT_EQ(res.code, 0) << Show(args) << ": " << res.err;
  EXPECT_EQ(res.err, "");
  const std::vector<double> want =
      ReferenceAttention(c, AsCompute(q, r.compute), AsCompute(k, r.compute), AsCompute(v, r.compute), mask);
  const std::vector<double> got =
      ReadOutput(dir / "out.safetensors", r.compute, Shape{c.B, c.nq, c.heads, c.d}, "attention");
  ExpectClose(got, want, RelTol(r.compute), "attention output");
  if (r.mask_a_whole_batch) {  // a query that sees no key: zeros
    const int64_t per_batch = c.nq * c.heads * c.d;
    for (int64_t i = per_batch; i < 2 * per_batch; ++i) ASSERT_EQ(got[i], 0.0) << "element " << i;
  }
}

TEST(ModuleRunner, SelfAttentionOddTokenCount) {
  CheckAttention({.c = {.B = 2, .nq = 77, .nkv = 77, .heads = 2, .d = 40}}, 10);
}

TEST(ModuleRunner, CrossAttentionWithMasksOfEveryKind) {
  // Nkv = 77 CLIP tokens; masks as BOOL, U8, I64 and F32 in the file, one
  // batch with no visible key at all.
  uint64_t seed = 20;
  for (DType m : {DType::boolean, DType::u8, DType::i64, DType::f32}) {
    CheckAttention({.c = {.B = 2, .nq = 33, .nkv = 77, .heads = 3, .d = 64},
                    .mask_dtype = m,
                    .mask_a_whole_batch = m == DType::i64},
                   seed += 10);
  }
}

TEST(ModuleRunner, CausalBandScaleAndConvertedInputs) {
  // Inputs stored as F64 / BF16 are converted to the compute dtype.
  CheckAttention({.c = {.B = 1, .nq = 45, .nkv = 45, .heads = 2, .d = 72, .causal = true, .scale = 0.3},
                  .compute = DType::f16,
                  .q_file = DType::f64},
                 40);
  CheckAttention({.c = {.B = 2, .nq = 50, .nkv = 50, .heads = 1, .d = 80, .window = 5},
                  .compute = DType::bf16,
                  .kv_file = DType::bf16},
                 50);
  CheckAttention({.c = {.B = 1, .nq = 31, .nkv = 31, .heads = 4, .d = 40, .causal = true, .window = 3},
                  .q_file = DType::f16},
                 60);
}

TEST(ModuleRunner, AttentionOnCuda) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    CheckAttention({.c = {.B = 2, .nq = 77, .nkv = 77, .heads = 2, .d = 64}, .compute = t, .device = "cuda"}, 70);
}

// ---- neighborhood ----------------------------------------------------------------

void CheckNeighborhood(const NaCase& c, DType compute, uint64_t seed, const std::string& device = "cpu") {
  SCOPED_TRACE(absl::StrFormat("B %d map %dx%d heads %d d %d kernel %dx%d dilation %dx%d dtype %s on %s", c.B, c.H,
                               c.W, c.heads, c.d, c.kh, c.kw, c.dh, c.dw, DTypeName(compute), device));
  TempDir dir;
  const Shape shape{c.B, c.H, c.W, c.heads, c.d};
  const Tensor q = RandomTensor(shape, DType::f32, seed), k = RandomTensor(shape, DType::f32, seed + 1),
               v = RandomTensor(shape, DType::f32, seed + 2);
  ASSERT_TRUE(WriteSafetensors(dir / "in.safetensors", {{"q", q}, {"k", k}, {"v", v}}).ok());
  const std::vector<std::string> args = {
      "neighborhood",
      "--input=in.safetensors",
      "--output=out.safetensors",
      "--dtype=" + std::string(DTypeName(compute)),
      "--device=" + device,
      c.kh == c.kw ? absl::StrCat("--kernel=", c.kh) : absl::StrCat("--kernel=", c.kh, ",", c.kw),
      c.dh == c.dw ? absl::StrCat("--dilation=", c.dh) : absl::StrCat("--dilation=", c.dh, ",", c.dw)};
  const Result res = RunModule(args, dir.path());
  ASSERT_EQ(res.code, 0) << Show(args) << ": " << res.err;
  const std::vector<double> want =
      ReferenceNeighborhood(c, AsCompute(q, compute), AsCompute(k, compute), AsCompute(v, compute));
  const std::vector<double> got = ReadOutput(dir / "out.safetensors", compute, shape, "neighborhood");
  ExpectClose(got, want, RelTol(compute), "neighborhood output");
}

TEST(ModuleRunner, NeighborhoodAttentionNattenWindows) {
  CheckNeighborhood({.B = 2, .H = 9, .W = 11, .heads = 2, .d = 8, .kh = 3, .kw = 5}, DType::f32, 100);
  CheckNeighborhood({.B = 1, .H = 7, .W = 6, .heads = 1, .d = 16, .kh = 7, .kw = 3}, DType::f32, 110);  // K = H
  CheckNeighborhood({.B = 1, .H = 9, .W = 11, .heads = 2, .d = 8, .kh = 3, .kw = 5, .dh = 2, .dw = 2}, DType::f32,
                    120);
  CheckNeighborhood({.B = 1, .H = 10, .W = 11, .heads = 1, .d = 8, .kh = 3, .kw = 3, .dh = 3, .dw = 2}, DType::bf16,
                    130);
  CheckNeighborhood({.B = 1, .H = 13, .W = 13, .heads = 2, .d = 40, .kh = 13, .kw = 13}, DType::f16, 140);
}

TEST(ModuleRunner, NeighborhoodOnCuda) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    CheckNeighborhood({.B = 1, .H = 16, .W = 15, .heads = 2, .d = 40, .kh = 7, .kw = 5, .dh = 2, .dw = 1}, t, 150,
                      "cuda");
}

// ---- errors ------------------------------------------------------------------------

struct Bad {
  std::vector<std::string> args;
  int code;
  std::string mentions;
};

// A directory holding good.safetensors (attention inputs, 5-d inputs in
// na.safetensors) and files with one thing wrong each.
class ModuleErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    const Tensor q = RandomTensor(Shape{2, 5, 2, 8}, DType::f32, 1), k = RandomTensor(Shape{2, 7, 2, 8}, DType::f32, 2);
    const Tensor na = RandomTensor(Shape{1, 5, 5, 1, 4}, DType::f32, 3);
    auto write = [&](const std::string& name, std::vector<std::pair<std::string, Tensor>> tensors) {
      ASSERT_TRUE(WriteSafetensors(dir_ / name, tensors).ok());
    };
    write("good.safetensors", {{"q", q}, {"k", k}, {"v", k}});
    write("no_v.safetensors", {{"q", q}, {"k", k}, {"value", k}});
    write("rank3.safetensors", {{"q", q.Reshape({2, 5, 16}).value()}, {"k", k}, {"v", k}});
    write("batch.safetensors", {{"q", q}, {"k", RandomTensor(Shape{1, 7, 2, 8}, DType::f32, 4)}, {"v", k}});
    write("kv.safetensors", {{"q", q}, {"k", k}, {"v", RandomTensor(Shape{2, 6, 2, 8}, DType::f32, 5)}});
    write("mask.safetensors", {{"q", q}, {"k", k}, {"v", k}, {"mask", RandomTensor(Shape{2, 6}, DType::f32, 6)}});
    write("int.safetensors",
          {{"q", Tensor::Zeros(Shape{2, 5, 2, 8}, DType::i32).value()}, {"k", k}, {"v", k}});
    write("na.safetensors", {{"q", na}, {"k", na}, {"v", na}});
    write("na_mismatch.safetensors", {{"q", na}, {"k", na}, {"v", RandomTensor(Shape{1, 5, 4, 1, 4}, DType::f32, 7)}});
    std::ofstream(dir_ / "garbage.safetensors") << "not a safetensors file";
  }
  TempDir dir_;
};

TEST_F(ModuleErrors, UsageErrorsExitTwoAndRuntimeErrorsExitOne) {
  const std::vector<std::string> io = {"--input=good.safetensors", "--output=out.safetensors"};
  auto with = [&](std::vector<std::string> head, std::vector<std::string> tail = {}) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  const std::vector<Bad> table = {
      {{}, 2, "needs a subcommand: attention, neighborhood"},
      {{"conv"}, 2, "unknown subcommand 'conv'"},
      {{"--input=good.safetensors", "attention"}, 2, "--input: the subcommand"},
      {{"attention"}, 2, "--input: is required"},
      {{"attention", "--input=good.safetensors"}, 2, "--output: is required"},
      {with({"attention"}, {"--input=good.safetensors", "--output=out.safetensors", "--bogus"}), 2, "--bogus"},
      {with({"attention", "extra"}, io), 2, "extra"},
      {with({"attention", "--dtype=f64"}, io), 2, "--dtype"},
      {with({"attention", "--device=tpu"}, io), 2, "--device"},
      {with({"attention", "--scale=abc"}, io), 2, "--scale: 'abc' is not a finite number"},
      {with({"attention", "--scale=inf"}, io), 2, "--scale"},
      {with({"attention", "--window=-2"}, io), 2, "--window"},
      {with({"attention", "--kernel=3"}, io), 2, "--kernel"},  // not an attention flag
      {with({"neighborhood"}, io), 2, "--kernel: is required"},
      {with({"neighborhood", "--kernel=4"}, io), 2, "--kernel: 4 is not an odd integer in [3, 31]"},
      {with({"neighborhood", "--kernel=33"}, io), 2, "--kernel: 33"},
      {with({"neighborhood", "--kernel=3,4"}, io), 2, "--kernel: 4"},
      {with({"neighborhood", "--kernel=3,5,7"}, io), 2, "--kernel: '3,5,7'"},
      {with({"neighborhood", "--kernel=x"}, io), 2, "--kernel: 'x'"},
      {with({"neighborhood", "--kernel=3", "--dilation=0"}, io), 2, "--dilation: 0"},
      {with({"neighborhood", "--kernel=3", "--causal"}, io), 2, "--causal"},
      // Run-time failures: the file's contents.
      {{"attention", "--input=missing.safetensors", "--output=out.safetensors"}, 1, "missing.safetensors"},
      {{"attention", "--input=garbage.safetensors", "--output=out.safetensors"}, 1, "garbage.safetensors"},
      {{"attention", "--input=no_v.safetensors", "--output=out.safetensors"}, 1,
       "has no tensor 'v' (attention needs q [B, Nq, heads, d]"},
      {{"attention", "--input=rank3.safetensors", "--output=out.safetensors"}, 1,
       "'q' f32[2, 5, 16] has rank 3; expected [B, Nq, heads, d]"},
      {{"attention", "--input=batch.safetensors", "--output=out.safetensors"}, 1,
       "'q' f32[2, 5, 2, 8] and 'k' f32[1, 7, 2, 8] differ in B, heads or d"},
      {{"attention", "--input=kv.safetensors", "--output=out.safetensors"}, 1,
       "'k' f32[2, 7, 2, 8] and 'v' f32[2, 6, 2, 8] differ in shape"},
      {{"attention", "--input=mask.safetensors", "--output=out.safetensors"}, 1,
       "'mask' f32[2, 6] is not [B, Nkv] = [2, 7]"},
      {{"attention", "--input=int.safetensors", "--output=out.safetensors"}, 1, "'q' i32[2, 5, 2, 8] is not floating"},
      {{"attention", "--input=good.safetensors", "--output=missing/out.safetensors"}, 1, "missing"},
      {{"neighborhood", "--kernel=3", "--input=good.safetensors", "--output=out.safetensors"}, 1,
       "'q' f32[2, 5, 2, 8] has rank 4; expected [B, H, W, heads, d]"},
      {{"neighborhood", "--kernel=3", "--input=na_mismatch.safetensors", "--output=out.safetensors"}, 1,
       "'v' f32[1, 5, 4, 1, 4] differ in shape"},
      // K larger than the map: the op's own shape check.
      {{"neighborhood", "--kernel=7", "--input=na.safetensors", "--output=out.safetensors"}, 1, "neighborhood"},
      {{"neighborhood", "--kernel=3", "--dilation=2", "--input=na.safetensors", "--output=out.safetensors"}, 1,
       "neighborhood"},
  };
  for (const Bad& b : table) {
    const Result r = RunModule(b.args, dir_.path());
    EXPECT_EQ(r.code, b.code) << Show(b.args) << ": " << r.err;
    EXPECT_NE(r.err.find(b.mentions), std::string::npos) << Show(b.args) << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Show(b.args) << ": " << r.err;
    EXPECT_EQ(r.err.rfind("convfusion-module", 0), 0u) << r.err;
    EXPECT_FALSE(fs::exists(dir_.path() / "out.safetensors")) << Show(b.args);
  }
  // No temporary is left behind.
  for (const auto& e : fs::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST_F(ModuleErrors, CudaWithoutAGpuIsARuntimeError) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a CUDA device is present";
  const Result r = RunModule({"attention", "--input=good.safetensors", "--output=out.safetensors", "--device=cuda"},
                       dir_.path());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_.path() / "out.safetensors"));
}

TEST_F(ModuleErrors, HelpListsSubcommandsAndFlags) {
  const Result top = RunModule({"--help"}, dir_.path());
  EXPECT_EQ(top.code, 0);
  EXPECT_NE(top.out.find("attention"), std::string::npos) << top.out;
  EXPECT_NE(top.out.find("neighborhood"), std::string::npos) << top.out;
  const Result attn = RunModule({"attention", "--help"}, dir_.path());
  EXPECT_EQ(attn.code, 0);
  for (const char* flag : {"--input", "--output", "--causal", "--scale", "--window", "--device", "--dtype"})
    EXPECT_NE(attn.out.find(flag), std::string::npos) << flag << "\n" << attn.out;
  const Result na = RunModule({"neighborhood", "-h"}, dir_.path());
  EXPECT_EQ(na.code, 0);
  for (const char* flag : {"--kernel", "--dilation"}) EXPECT_NE(na.out.find(flag), std::string::npos) << flag;
}

// ---- convblock ---------------------------------------------------------------------

// The golden files of tests/nn/convblock_test.cc (tools/make_convblock_golden.py):
// input, weights under conv1.* and PyTorch's float64 output, options in the metadata.
std::string ConvBlockGolden(const std::string& name) {
  return (fs::path(CF_SOURCE_DIR) / "tests" / "data" / "convblock" / name).string();
}

// Runs one golden file through `convblock` with the options in its metadata
// and compares the output with PyTorch's.
void CheckConvBlockGolden(const std::string& name, DType t, const std::string& device = "cpu") {
  auto f = SafetensorsFile::Open(ConvBlockGolden(name));
  ASSERT_TRUE(f.ok()) << f.status();
  const auto& meta = f->metadata();
  const Tensor want_t = f->Read("output").value();
  const std::vector<double> want = want_t.ToVector<double>().value();
  TempDir dir;
  std::vector<std::string> args = {"convblock",
                                   "--kernel=" + meta.at("kernel"),
                                   "--gate=" + meta.at("gate"),
                                   "--scales=" + meta.at("scales"),
                                   "--input=" + ConvBlockGolden(name),
                                   "--output=out.safetensors",
                                   std::string("--dtype=") + DTypeName(t),
                                   "--device=" + device};
  if (meta.at("depthwise_bias") == "1") args.push_back("--depthwise-bias");
  const Result r = RunModule(args, dir.path());
  ASSERT_EQ(r.code, 0) << Show(args) << ": " << r.err;
  const std::vector<double> got = ReadOutput(dir / "out.safetensors", t, want_t.shape(), "convblock");
  // Three projections and a KxK window, every intermediate stored in t.
  const double rel = t == DType::f32 ? 2e-5 : t == DType::f16 ? 1e-2 : 5e-2;
  ExpectClose(got, want, rel, Show(args));
}

constexpr const char* kConvBlockGoldens[] = {"released_k13.safetensors", "nchw_sigmoid_k5.safetensors",
                                             "paper_k31.safetensors"};

TEST(ModuleRunner, ConvBlockMatchesTheAuthorsPyTorchBlock) {
  for (const char* name : kConvBlockGoldens)
    for (DType t : {DType::f32, DType::f16, DType::bf16}) CheckConvBlockGolden(name, t);
}

TEST(ModuleRunner, ConvBlockOnCuda) {
  if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  for (const char* name : kConvBlockGoldens)
    for (DType t : {DType::f32, DType::f16, DType::bf16}) CheckConvBlockGolden(name, t, "cuda");
}

TEST(ModuleRunner, ConvBlockErrorsNameTheFlagOrTheKey) {
  TempDir dir;
  const std::string k13 = "--input=" + ConvBlockGolden("released_k13.safetensors");
  const std::string k5 = "--input=" + ConvBlockGolden("nchw_sigmoid_k5.safetensors");
  const std::string out = "--output=out.safetensors";
  ASSERT_TRUE(
      WriteSafetensors(dir / "no_input.safetensors", {{"x", RandomTensor(Shape{1, 4, 4, 8}, DType::f32, 1)}}).ok());
  const std::vector<Bad> table = {
      {{"convblock", k13, out}, 2, "--kernel: is required"},
      {{"convblock", "--kernel=4", k13, out}, 2, "--kernel: 4 is not an odd integer"},
      {{"convblock", "--kernel=33", k13, out}, 2, "--kernel"},
      {{"convblock", "--kernel=13", "--gate=simple", k13, out}, 2, "--gate"},
      {{"convblock", "--kernel=13", "--scales=1,0", k13, out}, 2, "--scales: '0'"},
      {{"convblock", "--kernel=13", "--scales=1,x", k13, out}, 2, "--scales: 'x'"},
      {{"convblock", "--kernel=13", "--window=3", k13, out}, 2, "--window"},
      // Run-time failures: the weights do not fit the flags.
      {{"convblock", "--kernel=11", k13, out}, 1, "'conv1.gates.0.conv_spatial.weight' in"},
      {{"convblock", "--kernel=13", "--scales=1,0.5,0.25", k13, out}, 1,
       "has no tensor 'conv1.gates.2.conv_spatial.weight'"},
      {{"convblock", "--kernel=13", "--prefix=attn1", k13, out}, 1, "has no tensor 'attn1.conv_up.weight'"},
      {{"convblock", "--kernel=5", "--gate=sigmoid", k5, out}, 1,
       "'conv1.gates.0.conv_spatial.bias' but the block has no depthwise bias"},
      {{"convblock", "--kernel=3", "--input=no_input.safetensors", out}, 1, "has no tensor 'input'"},
  };
  for (const Bad& b : table) {
    const Result r = RunModule(b.args, dir.path());
    EXPECT_EQ(r.code, b.code) << Show(b.args) << ": " << r.err;
    EXPECT_NE(r.err.find(b.mentions), std::string::npos) << Show(b.args) << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << Show(b.args) << ": " << r.err;
    EXPECT_FALSE(fs::exists(dir.path() / "out.safetensors")) << Show(b.args);
  }
  // The wrong K's message gives the shape found and the shapes accepted.
  const Result r = RunModule({"convblock", "--kernel=11", k13, out}, dir.path());
  for (const char* part : {"f32[13, 13, 16]", "[11, 11, 16]", "[16, 1, 11, 11]"})
    EXPECT_NE(r.err.find(part), std::string::npos) << part << ": " << r.err;
  const Result help = RunModule({"convblock", "--help"}, dir.path());
  EXPECT_EQ(help.code, 0);
  for (const char* flag : {"--kernel", "--gate", "--scales", "--inter-ratio", "--depthwise-bias", "--prefix"})
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag << "\n" << help.out;
}

}  // namespace
}  // namespace cf
