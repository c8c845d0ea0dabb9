// The scaled dot-product attention CUDA kernels (ops/attention/sdpa_kernels.cuh)
// on the CPU interpreter of runtime/kdev, with the launch geometry the CUDA
// launchers use, against a float64 reference written here and against the
// CPU ops "attention", "attention_backward" and "attention_probs": the
// tensor-core forward for every head dim in f16 and some in bf16 (37 x 45
// tokens, so query and key tiles have tails; 130 x 150 for several query
// blocks and a three-tile cp.async pipeline), the CUDA-core forward in f32
// and for misaligned f16/bf16, key masks with a fully masked batch, causal,
// window bands, cross attention with 77 keys, both backward paths (CUDA
// cores; tensor cores for every head dim) and attention_probs. The
// interpreter's race, bounds, init and barrier checks must stay clean.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "ops/attention/sdpa_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace sdpa_kernels;

struct Case {
  int64_t batch = 1, nq = 37, nkv = 45, heads = 2, d = 64;
  bool causal = false;
  int64_t window = -1;
  bool mask = false;  // random key mask, batch 1 (if any) fully masked
  double scale = 0;   // 0: the default 1/sqrt(d)
  std::string Name() const {
    return absl::StrCat("B", batch, " Nq", nq, " Nkv", nkv, " ", heads, "x", d, causal ? " causal" : "",
                        window >= 0 ? absl::StrCat(" window ", window) : "", mask ? " mask" : "",
                        scale > 0 ? absl::StrCat(" scale ", scale) : "");
  }
};

Attrs AttrsOf(const Case& c) {
  Attrs a{{"heads", c.heads}};
  if (c.causal) a.Set("causal", true);
  if (c.window >= 0) a.Set("window", c.window);
  if (c.scale > 0) a.Set("scale", c.scale);
  return a;
}

// Relative precision of the storage dtype (one rounding).
double Eps(DType t) { return t == DType::f32 ? 0x1p-24 : t == DType::f16 ? 0x1p-11 : 0x1p-8; }

struct Inputs {
  SdpaParams p;
  Tensor q, k, v, mask;  // mask undefined when absent
  std::vector<double> qd, kd_, vd;
  std::vector<uint8_t> maskd;
};

Inputs MakeInputs(const Case& c, DType dt, uint64_t seed) {
  Inputs in;
  const int64_t ch = c.heads * c.d;
  in.q = RandomTensor(Shape({c.batch, c.nq, ch}), dt, seed, -1.5, 1.5);
  in.k = RandomTensor(Shape({c.batch, c.nkv, ch}), dt, seed + 1, -1.5, 1.5);
  in.v = RandomTensor(Shape({c.batch, c.nkv, ch}), dt, seed + 2, -1, 1);
  in.qd = ToDoubles(in.q);
  in.kd_ = ToDoubles(in.k);
  in.vd = ToDoubles(in.v);
  TensorType mt{Shape({c.batch, c.nkv}), DType::u8};
  if (c.mask) {
    in.maskd.resize(size_t(c.batch * c.nkv));
    uint64_t s = seed * 2654435761u + 7;
    for (int64_t b = 0; b < c.batch; ++b)
      for (int64_t j = 0; j < c.nkv; ++j) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        in.maskd[size_t(b * c.nkv + j)] = b == 1 ? 0 : ((s >> 33) % 4 != 0);  // batch 1: nothing visible
      }
    in.mask = Tensor::Empty(mt.shape, DType::u8).value();
    std::memcpy(in.mask.data<uint8_t>(), in.maskd.data(), in.maskd.size());
  }
  in.p = SdpaParamsOf("attention", AttrsOf(c), TensorType{in.q.shape(), dt}, TensorType{in.k.shape(), dt},
                      TensorType{in.v.shape(), dt}, c.mask ? &mt : nullptr)
             .value();
  return in;
}

bool Kept(const Inputs& in, int64_t b, int64_t j) { return in.maskd.empty() || in.maskd[size_t(b * in.p.nkv + j)]; }
int64_t Tok(const SdpaParams& p, int64_t b, int64_t n, int64_t tokens, int64_t h) {
  return ((b * tokens + n) * p.heads + h) * p.head_dim;
}

// The exact softmax row of (b, h, i) in float64: probabilities over all keys
// (zeros where invisible) and the lse (-inf when nothing is visible).
double RefRow(const Inputs& in, int64_t b, int64_t h, int64_t i, std::vector<double>* prob) {
  const SdpaParams& p = in.p;
  prob->assign(size_t(p.nkv), 0.0);
  std::vector<double> s(size_t(p.nkv), -INFINITY);
  double mx = -INFINITY;
  for (int64_t j = 0; j < p.nkv; ++j) {
    if (!p.Visible(i, j) || !Kept(in, b, j)) continue;
    double acc = 0;
    for (int64_t c = 0; c < p.head_dim; ++c)
      acc += in.qd[size_t(Tok(p, b, i, p.nq, h) + c)] * in.kd_[size_t(Tok(p, b, j, p.nkv, h) + c)];
    s[size_t(j)] = acc * p.scale;
    mx = std::max(mx, s[size_t(j)]);
  }
  if (mx == -INFINITY) return -INFINITY;
  double sum = 0;
  for (int64_t j = 0; j < p.nkv; ++j)
    if (s[size_t(j)] != -INFINITY) sum += std::exp(s[size_t(j)] - mx);
  for (int64_t j = 0; j < p.nkv; ++j)
    if (s[size_t(j)] != -INFINITY) (*prob)[size_t(j)] = std::exp(s[size_t(j)] - mx) / sum;
  return mx + std::log(sum);
}

void RefForward(const Inputs& in, std::vector<double>* out, std::vector<double>* lse) {
  const SdpaParams& p = in.p;
  out->assign(size_t(p.batch * p.nq * p.channels()), 0.0);
  lse->assign(size_t(p.batch * p.heads * p.nq), 0.0);
  std::vector<double> prob;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t i = 0; i < p.nq; ++i) {
        (*lse)[size_t((b * p.heads + h) * p.nq + i)] = RefRow(in, b, h, i, &prob);
        for (int64_t j = 0; j < p.nkv; ++j) {
          if (prob[size_t(j)] == 0) continue;
          for (int64_t c = 0; c < p.head_dim; ++c)
            (*out)[size_t(Tok(p, b, i, p.nq, h) + c)] += prob[size_t(j)] * in.vd[size_t(Tok(p, b, j, p.nkv, h) + c)];
        }
      }
}

// dq, dk, dv in float64 from the softmax recomputed exactly, with D from the
// given (rounded) out, as the kernels do.
void RefBackward(const Inputs& in, const std::vector<double>& out, const std::vector<double>& dout,
                 std::vector<double>* dq, std::vector<double>* dk, std::vector<double>* dv) {
  const SdpaParams& p = in.p;
  dq->assign(in.qd.size(), 0.0);
  dk->assign(in.kd_.size(), 0.0);
  dv->assign(in.vd.size(), 0.0);
  std::vector<double> prob;
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t i = 0; i < p.nq; ++i) {
        RefRow(in, b, h, i, &prob);
        const int64_t qi = Tok(p, b, i, p.nq, h);
        double dsum = 0;
        for (int64_t c = 0; c < p.head_dim; ++c) dsum += dout[size_t(qi + c)] * out[size_t(qi + c)];
        for (int64_t j = 0; j < p.nkv; ++j) {
          const double pr = prob[size_t(j)];
          if (pr == 0) continue;
          const int64_t kj = Tok(p, b, j, p.nkv, h);
          double dp = 0;
          for (int64_t c = 0; c < p.head_dim; ++c) dp += dout[size_t(qi + c)] * in.vd[size_t(kj + c)];
          const double ds = pr * (dp - dsum);
          for (int64_t c = 0; c < p.head_dim; ++c) {
            (*dq)[size_t(qi + c)] += p.scale * ds * in.kd_[size_t(kj + c)];
            (*dk)[size_t(kj + c)] += p.scale * ds * in.qd[size_t(qi + c)];
            (*dv)[size_t(kj + c)] += pr * dout[size_t(qi + c)];
          }
        }
      }
}

kd::Ptr<const uint8_t> MaskPtr(DevTensor* m) { return m ? kd::Ptr<const uint8_t>(m->ptr<uint8_t>()) : nullptr; }

// SdpaForwardCuda (sdpa_kernels.cuh) on the interpreter.
template <class T, int D>
Status InterpForward(const SdpaParams& p, DevTensor& q, DevTensor& k, DevTensor& v, DevTensor* mask, DevTensor& out,
                     DevTensor& lse, bool mma) {
  CF_ASSIGN_OR_RETURN(SdpaLaunch l, SdpaFwdPlanFor(p, mma));
  if constexpr (!std::is_same_v<T, float>) {
    if (mma)
      return ki::Launch(KdConfig("SdpaFwdMmaKernel", l.grid, l.block, l.smem), &SdpaFwdMmaKernel<T, D>,
                        kd::Ptr<const T>(q.ptr<T>()), kd::Ptr<const T>(k.ptr<T>()), kd::Ptr<const T>(v.ptr<T>()),
                        MaskPtr(mask), out.ptr<T>(), lse.ptr<float>(), DevOf(p));
  }
  return ki::Launch(KdConfig("SdpaFwdFmaKernel", l.grid, l.block, l.smem), &SdpaFwdFmaKernel<T, D>,
                    kd::Ptr<const T>(q.ptr<T>()), kd::Ptr<const T>(k.ptr<T>()), kd::Ptr<const T>(v.ptr<T>()),
                    MaskPtr(mask), out.ptr<T>(), lse.ptr<float>(), DevOf(p));
}

// SdpaBackwardCuda on the interpreter (the three kernels, in order).
template <class T, int D>
Status InterpBackward(const SdpaParams& p, DevTensor& q, DevTensor& k, DevTensor& v, DevTensor& out, DevTensor& lse,
                      DevTensor& dout, DevTensor* mask, DevTensor& dq, DevTensor& dk, DevTensor& dv, bool mma) {
  CF_ASSIGN_OR_RETURN(SdpaBwdPlan bp, SdpaBwdPlanFor(p, mma));
  ki::Buffer<float> dvec(size_t(std::max<int64_t>(bp.dot_rows, 1)), "dvec");
  const SdpaDev dev = DevOf(p);
  const kd::Ptr<const T> qp = q.ptr<T>(), kp = k.ptr<T>(), vp = v.ptr<T>(), dop = dout.ptr<T>();
  const kd::Ptr<const float> lp = lse.ptr<float>(), dvp = dvec.ptr();
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("SdpaBwdDotKernel", bp.dot.grid, bp.dot.block), &SdpaBwdDotKernel<T>,
                                kd::Ptr<const T>(out.ptr<T>()), dop, dvec.ptr(), bp.dot_rows, D, p.nq,
                                int(p.heads)));
  auto kv_kernel = &SdpaBwdKvKernel<T, D>;
  auto q_kernel = &SdpaBwdQKernel<T, D>;
  if constexpr (!std::is_same_v<T, float>) {
    if (mma) {
      kv_kernel = &SdpaBwdKvMmaKernel<T, D>;
      q_kernel = &SdpaBwdQMmaKernel<T, D>;
    }
  }
  if (p.nkv > 0)
    CF_RETURN_IF_ERROR(ki::Launch(KdConfig(mma ? "SdpaBwdKvMmaKernel" : "SdpaBwdKvKernel", bp.kv.grid, bp.kv.block,
                                           bp.kv.smem),
                                  kv_kernel, qp, kp, vp, dop, lp, dvp, MaskPtr(mask), dk.ptr<T>(), dv.ptr<T>(), dev));
  if (p.nq == 0) return absl::OkStatus();
  return ki::Launch(KdConfig(mma ? "SdpaBwdQMmaKernel" : "SdpaBwdQKernel", bp.dq.grid, bp.dq.block, bp.dq.smem),
                    q_kernel, qp, kp, vp, dop, lp, dvp, MaskPtr(mask), dq.ptr<T>(), dev);
}

// Compares out / lse with the float64 reference: the output within a few
// roundings of the storage dtype of its largest magnitude (the MMA path
// rounds P to the storage type once), lse within f32 accumulation error.
::testing::AssertionResult ForwardClose(const std::vector<double>& out, const std::vector<double>& lse,
                                        const std::vector<double>& want_out, const std::vector<double>& want_lse,
                                        DType dt) {
  const double e = std::max(Eps(dt), 0x1p-21);  // f32: the f32 accumulations dominate
  auto r = MatchesWithSpecials(out, want_out, 2 * e, 4 * e * std::max(MaxAbs(want_out), 1e-3));
  if (!r) return r << " (out)";
  r = MatchesWithSpecials(lse, want_lse, 1e-5, 1e-5);
  if (!r) return r << " (lse)";
  return ::testing::AssertionSuccess();
}

// The forward of case c on the interpreter against the reference (and the
// CPU op when registered); mma selects the kernel, offset misaligns q, k, v.
template <class T, int D> void CheckForward(const Case& c, bool mma, uint64_t seed, int64_t offset = 0) {
  const DType dt = KdDType<T>();
  SCOPED_TRACE(absl::StrCat(c.Name(), " ", DTypeName(dt), mma ? " mma" : " fma", offset ? " misaligned" : ""));
  ASSERT_EQ(c.d, D);
  Inputs in = MakeInputs(c, dt, seed);
  DevTensor q(in.q, "q", offset), k(in.k, "k", offset), v(in.v, "v", offset);
  std::unique_ptr<DevTensor> mask = c.mask ? std::make_unique<DevTensor>(in.mask, "key_mask") : nullptr;
  DevTensor out(in.q.shape(), dt, "out"), lse(Shape({c.batch, c.heads, c.nq}), DType::f32, "lse");
  const Status st = InterpForward<T, D>(in.p, q, k, v, mask.get(), out, lse, mma);
  ASSERT_TRUE(st.ok()) << st;
  std::vector<double> want_out, want_lse;
  RefForward(in, &want_out, &want_lse);
  const std::vector<double> got_out = ToDoubles(out.ToTensor()), got_lse = ToDoubles(lse.ToTensor());
  EXPECT_TRUE(ForwardClose(got_out, got_lse, want_out, want_lse, dt));
  std::vector<Tensor> ins{in.q, in.k, in.v};
  if (c.mask) ins.push_back(in.mask);
  auto cpu = RunOp("attention", ins, AttrsOf(c));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_TRUE(ForwardClose(got_out, got_lse, ToDoubles((*cpu)[0]), ToDoubles((*cpu)[1]), dt)) << "vs the CPU op";
}

template <class T, int D> void CheckBackward(const Case& c, bool mma, uint64_t seed) {
  const DType dt = KdDType<T>();
  SCOPED_TRACE(absl::StrCat(c.Name(), " ", DTypeName(dt), mma ? " mma" : " fma", " backward"));
  Inputs in = MakeInputs(c, dt, seed);
  std::vector<double> ref_out, ref_lse;
  RefForward(in, &ref_out, &ref_lse);
  const Tensor out_t = FromDoubles(ref_out, in.q.shape(), dt);  // the saved output, rounded like the forward's
  const Tensor lse_t = FromDoubles(ref_lse, Shape({c.batch, c.heads, c.nq}), DType::f32);
  const Tensor dout_t = RandomTensor(in.q.shape(), dt, seed + 5, -1, 1);
  DevTensor q(in.q, "q"), k(in.k, "k"), v(in.v, "v"), out(out_t, "out"), lse(lse_t, "lse"), dout(dout_t, "dout");
  std::unique_ptr<DevTensor> mask = c.mask ? std::make_unique<DevTensor>(in.mask, "key_mask") : nullptr;
  DevTensor dq(in.q.shape(), dt, "dq"), dk(in.k.shape(), dt, "dk"), dv(in.v.shape(), dt, "dv");
  const Status st = InterpBackward<T, D>(in.p, q, k, v, out, lse, dout, mask.get(), dq, dk, dv, mma);
  ASSERT_TRUE(st.ok()) << st;
  std::vector<double> want[3];
  RefBackward(in, ToDoubles(out_t), ToDoubles(dout_t), &want[0], &want[1], &want[2]);
  const std::vector<double> got[3] = {ToDoubles(dq.ToTensor()), ToDoubles(dk.ToTensor()), ToDoubles(dv.ToTensor())};
  const double e = std::max(Eps(dt), 0x1p-20);
  const char* names[3] = {"dq", "dk", "dv"};
  for (int g = 0; g < 3; ++g)
    EXPECT_TRUE(AllClose(got[g], want[g], 2 * e, 8 * e * std::max(MaxAbs(want[g]), 1e-3))) << names[g];
  std::vector<Tensor> ins{in.q, in.k, in.v, out_t, lse_t, dout_t};
  if (c.mask) ins.push_back(in.mask);
  auto cpu = RunOp("attention_backward", ins, AttrsOf(c));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  for (int g = 0; g < 3; ++g) {
    const std::vector<double> w = ToDoubles((*cpu)[size_t(g)]);
    EXPECT_TRUE(AllClose(got[g], w, 4 * e, 16 * e * std::max(MaxAbs(w), 1e-3))) << names[g] << " vs the CPU op";
  }
}

// Every head dim on the tensor cores in f16, with tails in both tiles.
TEST(AttentionInterp, ForwardMmaF16EveryHeadDim) {
  CheckForward<kd::half, 40>({.d = 40}, true, 10);
  CheckForward<kd::half, 64>({.d = 64}, true, 20);
  CheckForward<kd::half, 72>({.d = 72}, true, 30);
  CheckForward<kd::half, 80>({.d = 80}, true, 40);
  CheckForward<kd::half, 128>({.d = 128}, true, 50);
  CheckForward<kd::half, 160>({.d = 160}, true, 60);
}

TEST(AttentionInterp, ForwardMmaBf16) {
  CheckForward<kd::bfloat16, 40>({.d = 40}, true, 70);
  CheckForward<kd::bfloat16, 72>({.d = 72}, true, 80);
  // Three query blocks and three key tiles: the cp.async double buffer turns over.
  CheckForward<kd::bfloat16, 64>({.batch = 2, .nq = 130, .nkv = 150, .heads = 1, .d = 64}, true, 90);
}

TEST(AttentionInterp, ForwardCudaCores) {
  CheckForward<float, 40>({.d = 40}, false, 100);
  CheckForward<float, 80>({.nq = 70, .nkv = 100, .heads = 1, .d = 80}, false, 110);
  CheckForward<float, 160>({.nq = 20, .nkv = 40, .heads = 1, .d = 160}, false, 115);
  // f16 / bf16 views that are not 16-byte aligned take the CUDA-core kernel.
  CheckForward<kd::half, 72>({.d = 72}, false, 120, 1);
  CheckForward<kd::bfloat16, 128>({.nq = 20, .nkv = 33, .heads = 1, .d = 128}, false, 130, 3);
}

// Key mask; batch 1 sees no key at all: zero output and lse = -inf.
TEST(AttentionInterp, ForwardKeyMask) {
  CheckForward<kd::half, 64>({.batch = 2, .nq = 37, .nkv = 100, .heads = 1, .d = 64, .mask = true}, true, 140);
  CheckForward<float, 40>({.batch = 2, .nq = 20, .nkv = 45, .heads = 2, .d = 40, .mask = true}, false, 150);
  // Batch and head indexing together, and a scale attribute.
  CheckForward<kd::half, 40>({.batch = 3, .nq = 21, .nkv = 70, .heads = 3, .d = 40, .mask = true, .scale = 0.3}, true,
                             155);
}

TEST(AttentionInterp, ForwardCausal) {
  // Self-attention over three 64-query blocks: tiles past the diagonal are skipped.
  CheckForward<kd::half, 64>({.nq = 150, .nkv = 150, .heads = 1, .d = 64, .causal = true}, true, 160);
  // Top-left aligned with Nq != Nkv, plus a mask.
  CheckForward<kd::bfloat16, 80>({.batch = 2, .nq = 45, .nkv = 37, .heads = 1, .d = 80, .causal = true, .mask = true},
                                 true, 170);
  CheckForward<float, 64>({.nq = 70, .nkv = 70, .heads = 1, .d = 64, .causal = true}, false, 180);
}

TEST(AttentionInterp, ForwardWindow) {
  // A band of +-20 over 200 tokens: key tiles on both sides are skipped.
  CheckForward<kd::half, 80>({.nq = 200, .nkv = 200, .heads = 1, .d = 80, .window = 20}, true, 190);
  CheckForward<float, 40>({.nq = 90, .nkv = 90, .heads = 1, .d = 40, .causal = true, .window = 7}, false, 200);
  CheckForward<kd::half, 40>({.nq = 30, .nkv = 30, .heads = 1, .d = 40, .window = 0}, true, 210);
}

// Cross attention with 77 CLIP tokens.
TEST(AttentionInterp, ForwardCross77) {
  CheckForward<kd::half, 40>({.nq = 70, .nkv = 77, .heads = 2, .d = 40}, true, 220);
  CheckForward<kd::bfloat16, 72>({.nq = 70, .nkv = 77, .heads = 1, .d = 72, .mask = true}, true, 230);
}

// No keys: every row sees nothing.
TEST(AttentionInterp, ForwardNoKeys) {
  CheckForward<kd::half, 64>({.nq = 20, .nkv = 0, .heads = 1, .d = 64}, true, 240);
  CheckForward<float, 64>({.nq = 20, .nkv = 0, .heads = 1, .d = 64}, false, 250);
}

// softmax(q k^T * scale) v as eager code in T computes it: each product in
// f32 rounded to T (the scores, the scaled scores, the softmax row computed in
// f32, the output).
template <class T> std::vector<double> NaiveSamePrecision(const Inputs& in) {
  auto r = [](double x) { return double(float(T(float(x)))); };
  const SdpaParams& p = in.p;
  std::vector<double> out(size_t(p.batch * p.nq * p.channels()), 0.0), s(size_t(p.nkv));
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t h = 0; h < p.heads; ++h)
      for (int64_t i = 0; i < p.nq; ++i) {
        float mx = -INFINITY;
        for (int64_t j = 0; j < p.nkv; ++j) {
          float acc = 0;
          for (int64_t c = 0; c < p.head_dim; ++c)
            acc += float(in.qd[size_t(Tok(p, b, i, p.nq, h) + c)]) * float(in.kd_[size_t(Tok(p, b, j, p.nkv, h) + c)]);
          s[size_t(j)] = p.Visible(i, j) && Kept(in, b, j) ? r(r(acc) * float(p.scale)) : -INFINITY;
          mx = std::max(mx, float(s[size_t(j)]));
        }
        if (mx == -INFINITY) continue;
        float sum = 0;
        for (int64_t j = 0; j < p.nkv; ++j) sum += std::exp(float(s[size_t(j)]) - mx);
        for (int64_t c = 0; c < p.head_dim; ++c) {
          float acc = 0;
          for (int64_t j = 0; j < p.nkv; ++j)
            acc += float(r(std::exp(float(s[size_t(j)]) - mx) / sum)) * float(in.vd[size_t(Tok(p, b, j, p.nkv, h) + c)]);
          out[size_t(Tok(p, b, i, p.nq, h) + c)] = r(acc);
        }
      }
  return out;
}

double MaxAbsError(const std::vector<double>& got, const std::vector<double>& want) {
  double e = 0;
  for (size_t i = 0; i < got.size(); ++i) e = std::max(e, std::abs(got[i] - want[i]));
  return e;
}

// The bound: the tensor-core kernel's error against float64 is at
// most 2x that of a naive implementation in the same precision.
template <class T, int D> void CheckErrorAgainstNaive(const Case& c, uint64_t seed) {
  const DType dt = KdDType<T>();
  SCOPED_TRACE(absl::StrCat(c.Name(), " ", DTypeName(dt)));
  Inputs in = MakeInputs(c, dt, seed);
  DevTensor q(in.q, "q"), k(in.k, "k"), v(in.v, "v");
  DevTensor out(in.q.shape(), dt, "out"), lse(Shape({c.batch, c.heads, c.nq}), DType::f32, "lse");
  const Status st = InterpForward<T, D>(in.p, q, k, v, nullptr, out, lse, true);
  ASSERT_TRUE(st.ok()) << st;
  std::vector<double> want, want_lse;
  RefForward(in, &want, &want_lse);
  const double kernel_err = MaxAbsError(ToDoubles(out.ToTensor()), want);
  const double naive_err = MaxAbsError(NaiveSamePrecision<T>(in), want);
  EXPECT_GT(naive_err, 0);
  EXPECT_LE(kernel_err, 2 * naive_err) << "kernel " << kernel_err << ", naive " << naive_err;
}

TEST(AttentionInterp, ErrorAtMostTwiceNaive) {
  CheckErrorAgainstNaive<kd::half, 40>({.nq = 64, .nkv = 200, .heads = 2, .d = 40}, 500);
  CheckErrorAgainstNaive<kd::bfloat16, 72>({.nq = 64, .nkv = 200, .heads = 1, .d = 72}, 510);
  CheckErrorAgainstNaive<kd::half, 160>({.nq = 30, .nkv = 77, .heads = 1, .d = 160}, 520);
}

TEST(AttentionInterp, BackwardCudaCores) {
  CheckBackward<float, 40>({.nq = 37, .nkv = 45, .heads = 2, .d = 40}, false, 300);
  CheckBackward<kd::half, 64>({.batch = 2, .nq = 37, .nkv = 77, .heads = 1, .d = 64, .mask = true}, false, 310);
  CheckBackward<kd::bfloat16, 72>({.nq = 70, .nkv = 70, .heads = 1, .d = 72, .causal = true}, false, 320);
  CheckBackward<float, 160>({.nq = 40, .nkv = 40, .heads = 1, .d = 160, .window = 5}, false, 330);
  CheckBackward<kd::bfloat16, 128>({.nq = 20, .nkv = 50, .heads = 1, .d = 128}, false, 335);
  CheckBackward<float, 80>({.nq = 33, .nkv = 0, .heads = 1, .d = 80}, false, 340);  // no keys: dq = 0
  CheckBackward<float, 64>({.nq = 0, .nkv = 20, .heads = 1, .d = 64}, false, 350);  // no queries: dk = dv = 0
}

// Every head dim on the tensor cores in f16 (tails in both tiles), bf16, masks and bands.
TEST(AttentionInterp, BackwardMma) {
  CheckBackward<kd::half, 40>({.d = 40}, true, 360);
  CheckBackward<kd::half, 64>({.d = 64}, true, 370);
  CheckBackward<kd::half, 72>({.d = 72}, true, 380);
  CheckBackward<kd::half, 80>({.d = 80}, true, 390);
  CheckBackward<kd::half, 128>({.d = 128}, true, 400);
  CheckBackward<kd::half, 160>({.d = 160}, true, 410);
  CheckBackward<kd::bfloat16, 40>({.batch = 2, .nq = 37, .nkv = 77, .heads = 1, .d = 40, .mask = true}, true, 420);
  // Several query and key blocks: both cp.async pipelines turn over; tiles off the diagonal are skipped.
  CheckBackward<kd::bfloat16, 64>({.nq = 150, .nkv = 150, .heads = 1, .d = 64, .causal = true}, true, 430);
  CheckBackward<kd::half, 128>({.nq = 140, .nkv = 140, .heads = 1, .d = 128, .window = 20}, true, 440);
  CheckBackward<kd::half, 80>({.nq = 33, .nkv = 0, .heads = 1, .d = 80}, true, 450);
  CheckBackward<kd::half, 72>({.batch = 3, .nq = 21, .nkv = 70, .heads = 2, .d = 72, .mask = true, .scale = 0.3}, true,
                              460);
}

template <class T>
void CheckProbs(const Case& c, const std::vector<int64_t>& queries, uint64_t seed) {
  const DType dt = KdDType<T>();
  SCOPED_TRACE(absl::StrCat(c.Name(), " ", DTypeName(dt), " probs"));
  Inputs in = MakeInputs(c, dt, seed);
  const int64_t nqs = int64_t(queries.size());
  DevTensor q(in.q, "q"), k(in.k, "k");
  std::unique_ptr<DevTensor> mask = c.mask ? std::make_unique<DevTensor>(in.mask, "key_mask") : nullptr;
  ki::Buffer<int64_t> qidx(queries, "queries");
  DevTensor probs(Shape({c.batch, c.heads, nqs, c.nkv}), DType::f32, "probs");
  auto l = SdpaProbsPlanFor(in.p, nqs);
  ASSERT_TRUE(l.ok()) << l.status();
  const Status st = ki::Launch(KdConfig("SdpaProbsKernel", l->grid, l->block, l->smem), &SdpaProbsKernel<T>,
                               kd::Ptr<const T>(q.ptr<T>()), kd::Ptr<const T>(k.ptr<T>()), MaskPtr(mask.get()),
                               kd::Ptr<const int64_t>(qidx.ptr()), probs.ptr<float>(), DevOf(in.p), int(nqs));
  ASSERT_TRUE(st.ok()) << st;
  std::vector<double> want, row;
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t h = 0; h < c.heads; ++h)
      for (int64_t qi : queries) {
        RefRow(in, b, h, qi, &row);
        want.insert(want.end(), row.begin(), row.end());
      }
  const std::vector<double> got = ToDoubles(probs.ToTensor());
  EXPECT_TRUE(AllClose(got, want, 1e-5, 1e-6));
  std::vector<Tensor> ins{in.q, in.k};
  if (c.mask) ins.push_back(in.mask);
  Attrs a = AttrsOf(c);
  a.Set("queries", queries);
  auto cpu = RunOp1("attention_probs", ins, a);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_TRUE(AllClose(got, ToDoubles(*cpu), 1e-5, 1e-6)) << "vs the CPU op";
}

TEST(AttentionInterp, Probs) {
  CheckProbs<kd::half>({.nq = 37, .nkv = 300, .heads = 2, .d = 40}, {0, 5, 36, 5}, 400);
  CheckProbs<float>({.batch = 2, .nq = 20, .nkv = 45, .heads = 1, .d = 33, .mask = true}, {19, 0}, 410);
  CheckProbs<kd::bfloat16>({.nq = 50, .nkv = 50, .heads = 1, .d = 72, .causal = true, .window = 4}, {0, 25, 49}, 420);
}

TEST(AttentionInterp, Geometry) {
  SdpaParams p;
  p.batch = 2;
  p.nq = 4097;
  p.nkv = 77;
  p.heads = 8;
  p.head_dim = 40;
  auto l = SdpaFwdPlanFor(p, true);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->grid.x, 65u);  // ceil(4097 / 64)
  EXPECT_EQ(l->grid.y, 8u);
  EXPECT_EQ(l->grid.z, 2u);
  EXPECT_EQ(l->smem, MmaFwdSmemBytes(40));
  p.head_dim = 160;  // > 48 KiB: the launch opts in
  l = SdpaFwdPlanFor(p, true);
  ASSERT_TRUE(l.ok());
  EXPECT_GT(l->smem, 48u * 1024);
  EXPECT_TRUE(KdConfig("x", l->grid, l->block, l->smem).smem_opt_in);
  auto b = SdpaBwdPlanFor(p, false);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->kv.grid.x, 3u);   // ceil(77 / 32)
  EXPECT_EQ(b->dq.grid.x, 129u);  // ceil(4097 / 32)
  EXPECT_EQ(b->dot_rows, 2 * 4097 * 8);
  p.head_dim = 48;
  ExpectError(SdpaFwdPlanFor(p, true).status(),
              {"attention on CUDA supports head dims 40, 64, 72, 80, 128, 160; got 48"});
  ExpectError(SdpaBwdPlanFor(p, true).status(), {"attention_backward", "got 48"});
  p.head_dim = 64;
  p.heads = 70000;  // gridDim.y
  ExpectError(SdpaFwdPlanFor(p, false).status(), {"65535"});
  p.heads = 8;
  p.batch = 70000;  // gridDim.z
  ExpectError(SdpaBwdPlanFor(p, true).status(), {"65535"});
  ExpectError(SdpaProbsPlanFor(p, 3).status(), {"65535"});
}

}  // namespace
}  // namespace cf::testing
