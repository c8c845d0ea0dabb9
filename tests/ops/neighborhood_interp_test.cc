// The neighborhood-attention CUDA kernels (ops/attention/neighborhood_kernels.cuh)
// on the CPU interpreter of runtime/kdev, with the launch geometry the CUDA
// launchers use (NaFwdPlanFor, NaBwdPlanFor), against a naive float64
// reference written here that builds NATTEN's windows explicitly from
// NaParams::WindowStart, and against the CPU op: corners and edges, K equal
// to H or W, K_h != K_w, dilation 2 and 3 (and mixed) with sizes not
// divisible by it, head dims 8, 16, 40, 72 and an odd 10 (scalar loads),
// misaligned views, several tiles per axis, halos streamed in several chunks,
// K = 31 per axis, a >48 KiB shared-memory opt-in, f32/f16/bf16, the backward with and
// without dlse. The interpreter's race, bounds, init and barrier checks must
// stay clean. Also: the device window rule and inverse ranges against
// NaParams, and the plans' limits.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ops/attention/neighborhood_kernels.cuh"
#include "tests/ops/kernel_interp_util.h"

namespace cf::testing {
namespace {

using namespace na_kernels;

struct Case {
  int64_t batch = 1, h = 9, w = 9, heads = 1, d = 8;
  int64_t kh = 3, kw = 3, dh = 1, dw = 1;
  int64_t offset = 0;    // element offset of every tensor (breaks 16-byte vectors)
  int chunk_rows = 0;    // > 0: force this many halo rows per staged chunk
  bool dlse = false;     // the backward gets a gradient into lse
  std::string Name() const {
    return absl::StrCat("B", batch, " ", h, "x", w, " ", heads, "x", d, " K", kh, "x", kw, " dil", dh, "x", dw,
                        offset ? " offset" : "", chunk_rows ? absl::StrCat(" chunk", chunk_rows) : "",
                        dlse ? " dlse" : "");
  }
};

Attrs AttrsOf(const Case& c) {
  return Attrs{{"heads", c.heads}, {"kernel", std::vector<int64_t>{c.kh, c.kw}},
               {"dilation", std::vector<int64_t>{c.dh, c.dw}}};
}

double Eps(DType t) { return t == DType::f32 ? 0x1p-24 : t == DType::f16 ? 0x1p-11 : 0x1p-8; }

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

// Storage rounding of the result (relative) plus f32 accumulation over the
// window, both relative to the tensor's magnitude.
::testing::AssertionResult Close(const std::vector<double>& got, const std::vector<double>& want, DType dt,
                                 double f32_rel) {
  const double rtol = 2 * Eps(dt), atol = (2 * Eps(dt) + f32_rel) * std::max(MaxAbs(want), 1e-30);
  return AllClose(got, want, rtol, atol);
}

struct Ref {
  std::vector<double> out, lse, dq, dk, dv;
  // scale sum |dS k|, scale sum |dS q|, sum |P dO|: the sums that rounding dS
  // and P to the storage type (tensor cores) perturbs.
  std::vector<double> dq_abs, dk_abs, dv_abs;
};

int64_t Idx(const NaParams& p, int64_t b, int64_t y, int64_t x) { return (b * p.height + y) * p.width + x; }

// Forward in float64 with the windows built explicitly.
void RefForward(const NaParams& p, const std::vector<double>& q, const std::vector<double>& k,
                const std::vector<double>& v, Ref* r) {
  const int64_t C = p.channels(), d = p.head_dim;
  r->out.assign(q.size(), 0.0);
  r->lse.assign(size_t(p.batch * p.tokens() * p.heads), 0.0);
  std::vector<double> s(size_t(p.kh * p.kw));
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t y = 0; y < p.height; ++y)
      for (int64_t x = 0; x < p.width; ++x)
        for (int64_t h = 0; h < p.heads; ++h) {
          const int64_t sy = NaParams::WindowStart(y, p.height, p.kh, p.dh);
          const int64_t sx = NaParams::WindowStart(x, p.width, p.kw, p.dw);
          const int64_t qo = Idx(p, b, y, x) * C + h * d;
          double mx = -INFINITY;
          for (int64_t i = 0; i < p.kh; ++i)
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t ko = Idx(p, b, sy + i * p.dh, sx + j * p.dw) * C + h * d;
              double acc = 0;
              for (int64_t c = 0; c < d; ++c) acc += q[size_t(qo + c)] * k[size_t(ko + c)];
              s[size_t(i * p.kw + j)] = acc * p.scale;
              mx = std::max(mx, acc * p.scale);
            }
          double sum = 0;
          for (double e : s) sum += std::exp(e - mx);
          for (int64_t i = 0; i < p.kh; ++i)
            for (int64_t j = 0; j < p.kw; ++j) {
              const double pr = std::exp(s[size_t(i * p.kw + j)] - mx) / sum;
              const int64_t vo = Idx(p, b, sy + i * p.dh, sx + j * p.dw) * C + h * d;
              for (int64_t c = 0; c < d; ++c) r->out[size_t(qo + c)] += pr * v[size_t(vo + c)];
            }
          r->lse[size_t(Idx(p, b, y, x) * p.heads + h)] = mx + std::log(sum);
        }
}

// Backward in float64 from the given out and lse (the rounded ones the
// kernels see): P = exp(s - lse), D = <dO, O> - dlse, dS = P (dO.v - D).
void RefBackward(const NaParams& p, const std::vector<double>& q, const std::vector<double>& k,
                 const std::vector<double>& v, const std::vector<double>& out, const std::vector<double>& lse,
                 const std::vector<double>& dout, const std::vector<double>* dlse, Ref* r) {
  const int64_t C = p.channels(), d = p.head_dim;
  r->dq.assign(q.size(), 0.0);
  r->dq_abs.assign(q.size(), 0.0);
  r->dk_abs.assign(q.size(), 0.0);
  r->dv_abs.assign(q.size(), 0.0);
  r->dk.assign(q.size(), 0.0);
  r->dv.assign(q.size(), 0.0);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t y = 0; y < p.height; ++y)
      for (int64_t x = 0; x < p.width; ++x)
        for (int64_t h = 0; h < p.heads; ++h) {
          const int64_t sy = NaParams::WindowStart(y, p.height, p.kh, p.dh);
          const int64_t sx = NaParams::WindowStart(x, p.width, p.kw, p.dw);
          const int64_t qo = Idx(p, b, y, x) * C + h * d, row = Idx(p, b, y, x) * p.heads + h;
          double dd = dlse ? -(*dlse)[size_t(row)] : 0.0;
          for (int64_t c = 0; c < d; ++c) dd += dout[size_t(qo + c)] * out[size_t(qo + c)];
          for (int64_t i = 0; i < p.kh; ++i)
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t ko = Idx(p, b, sy + i * p.dh, sx + j * p.dw) * C + h * d;
              double sc = 0, dp = 0;
              for (int64_t c = 0; c < d; ++c) {
                sc += q[size_t(qo + c)] * k[size_t(ko + c)];
                dp += dout[size_t(qo + c)] * v[size_t(ko + c)];
              }
              const double pr = std::exp(sc * p.scale - lse[size_t(row)]), ds = pr * (dp - dd);
              for (int64_t c = 0; c < d; ++c) {
                r->dq[size_t(qo + c)] += p.scale * ds * k[size_t(ko + c)];
                r->dq_abs[size_t(qo + c)] += std::abs(p.scale * ds * k[size_t(ko + c)]);
                r->dk_abs[size_t(ko + c)] += std::abs(p.scale * ds * q[size_t(qo + c)]);
                r->dv_abs[size_t(ko + c)] += std::abs(pr * dout[size_t(qo + c)]);
                r->dk[size_t(ko + c)] += p.scale * ds * q[size_t(qo + c)];
                r->dv[size_t(ko + c)] += pr * dout[size_t(qo + c)];
              }
            }
        }
}

bool Aligned16(const DevTensor& t) { return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

// A plan with its halo forced into chunks of `rows` rows (0: as planned).
void ForceChunks(NaLaunch* l, int rows) {
  if (rows <= 0 || rows >= l->dev.chunk_rows) return;
  const size_t row_bytes = l->smem / size_t(l->dev.chunk_rows);
  l->dev.chunk_rows = rows;
  l->smem = row_bytes * size_t(rows);
}

// NaForwardCuda on the interpreter.
template <class T, int CPT>
Status InterpForward(const NaParams& p, int chunk_rows, DevTensor& q, DevTensor& k, DevTensor& v, DevTensor& out,
                     DevTensor& lse, NaLaunch* used) {
  CF_ASSIGN_OR_RETURN(NaLaunch l, NaFwdPlanFor(p, int(sizeof(T)), Aligned16(q) && Aligned16(k) && Aligned16(v)));
  ForceChunks(&l, chunk_rows);
  *used = l;
  return ki::Launch(KdConfig("NaFwdKernel", l.grid, l.block, l.smem), &NaFwdKernel<T, CPT>,
                    kd::Ptr<const T>(q.ptr<T>()), kd::Ptr<const T>(k.ptr<T>()), kd::Ptr<const T>(v.ptr<T>()),
                    out.ptr<T>(), lse.ptr<float>(), l.dev);
}

// NaFwdMmaKernel (the tensor-core forward NaForwardCuda picks for aligned
// f16/bf16 with d % 8 == 0) on the interpreter.
template <class T, int DK>
Status InterpForwardMma(const NaParams& p, DevTensor& q, DevTensor& k, DevTensor& v, DevTensor& out, DevTensor& lse) {
  CF_ASSIGN_OR_RETURN(NaLaunch l, NaFwdMmaPlanFor(p, int(sizeof(T))));
  return ki::Launch(KdConfig("NaFwdMmaKernel", l.grid, l.block, l.smem), &NaFwdMmaKernel<T, DK>,
                    kd::Ptr<const T>(q.ptr<T>()), kd::Ptr<const T>(k.ptr<T>()), kd::Ptr<const T>(v.ptr<T>()),
                    out.ptr<T>(), lse.ptr<float>(), l.dev);
}

// NaBackwardCuda on the interpreter (the three kernels, in order).
template <class T, int CPT>
Status InterpBackward(const NaParams& p, int chunk_rows, DevTensor& q, DevTensor& k, DevTensor& v, DevTensor& out,
                      DevTensor& lse, DevTensor& dout, DevTensor* dlse, DevTensor& dq, DevTensor& dk,
                      DevTensor& dv, NaBwdPlan* used) {
  const bool aligned = Aligned16(q) && Aligned16(k) && Aligned16(v) && Aligned16(dout);
  CF_ASSIGN_OR_RETURN(NaBwdPlan bp, NaBwdPlanFor(p, int(sizeof(T)), aligned, NaUseMma(KdDType<T>(), p.head_dim, aligned)));
  if (!bp.mma) {
    ForceChunks(&bp.dq, chunk_rows);
    ForceChunks(&bp.kv, chunk_rows);
  }
  *used = bp;
  ki::Buffer<float> dvec(size_t(std::max<int64_t>(bp.dot_rows, 1)), "dvec");
  const kd::Ptr<const T> qp = q.ptr<T>(), kp = k.ptr<T>(), vp = v.ptr<T>(), dop = dout.ptr<T>();
  const kd::Ptr<const float> lp = lse.ptr<float>(), dvp = dvec.ptr();
  const kd::Ptr<const float> dlp = dlse ? kd::Ptr<const float>(dlse->ptr<float>()) : kd::Ptr<const float>(nullptr);
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("NaBwdDotKernel", bp.dot_grid, bp.dot_block), &NaBwdDotKernel<T>,
                                kd::Ptr<const T>(out.ptr<T>()), dop, dlp, dvec.ptr(), bp.dot_rows, int(p.heads),
                                int(p.head_dim)));
  if constexpr (!std::is_same_v<T, float>) {
    if (bp.mma) {
      CF_RETURN_IF_ERROR(WithMmaDk(p.head_dim, [&](auto dkc) {
        constexpr int DK = decltype(dkc)::value;
        CF_RETURN_IF_ERROR(ki::Launch(KdConfig("NaBwdQMmaKernel", bp.dq.grid, bp.dq.block, bp.dq.smem),
                                      &NaBwdQMmaKernel<T, DK>, qp, kp, vp, dop, lp, dvp, dq.ptr<T>(), bp.dq.dev));
        return ki::Launch(KdConfig("NaBwdKvMmaKernel", bp.kv.grid, bp.kv.block, bp.kv.smem),
                          &NaBwdKvMmaKernel<T, DK>, qp, kp, vp, dop, lp, dvp, dk.ptr<T>(), dv.ptr<T>(), bp.kv.dev);
      }));
      return absl::OkStatus();
    }
  }
  CF_RETURN_IF_ERROR(ki::Launch(KdConfig("NaBwdQKernel", bp.dq.grid, bp.dq.block, bp.dq.smem), &NaBwdQKernel<T, CPT>,
                                qp, kp, vp, dop, lp, dvp, dq.ptr<T>(), bp.dq.dev));
  return ki::Launch(KdConfig("NaBwdKvKernel", bp.kv.grid, bp.kv.block, bp.kv.smem), &NaBwdKvKernel<T, CPT>, qp, kp,
                    vp, dop, lp, dvp, dk.ptr<T>(), dv.ptr<T>(), bp.kv.dev);
}

// Forward and backward of one case in storage dtype dt: interpreted kernels
// against the float64 reference and against the CPU op.
void RunCase(const Case& c, DType dt, uint64_t seed) {
  SCOPED_TRACE(absl::StrCat(c.Name(), " ", DTypeName(dt)));
  const Shape shape({c.batch, c.h, c.w, c.heads * c.d});
  const TensorType tt{shape, dt};
  StatusOr<NaParams> ps = NaParamsOf("neighborhood_attention", AttrsOf(c), tt, tt, tt);
  ASSERT_TRUE(ps.ok()) << ps.status();
  const NaParams p = *ps;
  const Tensor q = RandomTensor(shape, dt, seed, -1.5, 1.5), k = RandomTensor(shape, dt, seed + 1, -1.5, 1.5),
               v = RandomTensor(shape, dt, seed + 2), dout = RandomTensor(shape, dt, seed + 3);
  const Shape lshape({c.batch, c.h, c.w, c.heads});
  const Tensor dlse = RandomTensor(lshape, DType::f32, seed + 4, -0.5, 0.5);
  const std::vector<double> qd = ToDoubles(q), kd_ = ToDoubles(k), vd = ToDoubles(v), dod = ToDoubles(dout);

  Ref ref;
  RefForward(p, qd, kd_, vd, &ref);
  DevTensor dq_(q, "q", c.offset), dk_(k, "k", c.offset), dv_(v, "v", c.offset);
  DevTensor out(shape, dt, "out", c.offset), lse(lshape, DType::f32, "lse");
  NaLaunch fl;
  const Status fst = DispatchKd(dt, [&](auto tag) {
    using T = decltype(tag);
    return WithCpt(p.head_dim, [&](auto cpt) {
      return InterpForward<T, decltype(cpt)::value>(p, c.chunk_rows, dq_, dk_, dv_, out, lse, &fl);
    });
  });
  ASSERT_TRUE(fst.ok()) << fst;
  EXPECT_EQ(fl.dev.vec > 1, c.offset == 0 && c.d % (16 / DTypeSize(dt)) == 0);
  const Tensor out_t = out.ToTensor(), lse_t = lse.ToTensor();
  const std::vector<double> outd = ToDoubles(out_t), lsed = ToDoubles(lse_t);
  EXPECT_TRUE(Close(outd, ref.out, dt, 1e-5)) << "out";
  EXPECT_TRUE(AllClose(lsed, ref.lse, 1e-6, 1e-5)) << "lse";

  // The tensor-core forward where the launcher would pick it. P is rounded to
  // the storage type for P V: half a unit of it on the largest |v| more.
  const bool mma = NaUseMma(dt, p.head_dim, Aligned16(dq_) && Aligned16(dk_) && Aligned16(dv_));
  EXPECT_EQ(mma, dt != DType::f32 && c.offset == 0 && c.d % 8 == 0);
  if (mma) {
    DevTensor out2(shape, dt, "out_mma", c.offset), lse2(lshape, DType::f32, "lse_mma");
    const Status mst = DispatchKd(dt, [&](auto tag) -> Status {
      using T = decltype(tag);
      if constexpr (std::is_same_v<T, float>) {
        return absl::InternalError("no tensor-core kernel for f32");
      } else {
        return WithMmaDk(p.head_dim, [&](auto dk) {
          return InterpForwardMma<T, decltype(dk)::value>(p, dq_, dk_, dv_, out2, lse2);
        });
      }
    });
    ASSERT_TRUE(mst.ok()) << mst;
    const std::vector<double> o2 = ToDoubles(out2.ToTensor());
    EXPECT_TRUE(AllClose(o2, ref.out, 2 * Eps(dt), (2 * Eps(dt) + 1e-5) * MaxAbs(ref.out) + Eps(dt) / 2 * MaxAbs(vd)))
        << "out (tensor cores)";
    EXPECT_TRUE(AllClose(ToDoubles(lse2.ToTensor()), ref.lse, 1e-6, 1e-5)) << "lse (tensor cores)";
  }

  // The CPU op on the same inputs (its own rounding, hence twice the tolerance).
  StatusOr<std::vector<Tensor>> cpu = RunOp("neighborhood_attention", {q, k, v}, AttrsOf(c));
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_TRUE(AllClose(outd, ToDoubles((*cpu)[0]), 4 * Eps(dt), (4 * Eps(dt) + 2e-5) * MaxAbs(ref.out)))
      << "out vs CPU op";
  EXPECT_TRUE(AllClose(lsed, ToDoubles((*cpu)[1]), 2e-6, 2e-5)) << "lse vs CPU op";

  // Backward from the kernel's own (rounded) out and lse.
  const std::vector<double> dlsed = ToDoubles(dlse);
  RefBackward(p, qd, kd_, vd, outd, lsed, dod, c.dlse ? &dlsed : nullptr, &ref);
  DevTensor dout_(dout, "dout", c.offset), dlse_(dlse, "dlse");
  DevTensor gq(shape, dt, "dq", c.offset), gk(shape, dt, "dk", c.offset), gv(shape, dt, "dv", c.offset);
  NaBwdPlan bp;
  const Status bst = DispatchKd(dt, [&](auto tag) {
    using T = decltype(tag);
    return WithCpt(p.head_dim, [&](auto cpt) {
      return InterpBackward<T, decltype(cpt)::value>(p, c.chunk_rows, dq_, dk_, dv_, out, lse, dout_,
                                                     c.dlse ? &dlse_ : nullptr, gq, gk, gv, &bp);
    });
  });
  ASSERT_TRUE(bst.ok()) << bst;
  const std::vector<double> gqd = ToDoubles(gq.ToTensor()), gkd = ToDoubles(gk.ToTensor()),
                            gvd = ToDoubles(gv.ToTensor());
  // dS = P (dP - D) cancels: f32 errors relative to the gradient's magnitude
  // grow with the window (K_h K_w terms of f32 products).
  const double rel = 2e-5 * std::sqrt(double(p.kh * p.kw));
  EXPECT_EQ(bp.mma, mma);
  // On tensor cores dS is rounded to the storage type before dS K.
  EXPECT_TRUE(AllClose(gqd, ref.dq, 2 * Eps(dt),
                       (2 * Eps(dt) + rel) * MaxAbs(ref.dq) + (mma ? Eps(dt) / 2 * MaxAbs(ref.dq_abs) : 0.0)))
      << "dq";
  auto mma_tol = [&](const std::vector<double>& abs_sum) { return mma ? Eps(dt) / 2 * MaxAbs(abs_sum) : 0.0; };
  EXPECT_TRUE(AllClose(gkd, ref.dk, 2 * Eps(dt), (2 * Eps(dt) + rel) * MaxAbs(ref.dk) + mma_tol(ref.dk_abs))) << "dk";
  EXPECT_TRUE(AllClose(gvd, ref.dv, 2 * Eps(dt), (2 * Eps(dt) + rel) * MaxAbs(ref.dv) + mma_tol(ref.dv_abs))) << "dv";

  std::vector<Tensor> bin{q, k, v, out_t, lse_t, dout};
  if (c.dlse) bin.push_back(dlse);
  StatusOr<std::vector<Tensor>> cpub = RunOp("neighborhood_attention_backward", bin, AttrsOf(c));
  ASSERT_TRUE(cpub.ok()) << cpub.status();
  EXPECT_TRUE(AllClose(gqd, ToDoubles((*cpub)[0]), 4 * Eps(dt),
                       (4 * Eps(dt) + 2 * rel) * MaxAbs(ref.dq) + (mma ? Eps(dt) / 2 * MaxAbs(ref.dq_abs) : 0.0)))
      << "dq vs CPU op";
  EXPECT_TRUE(AllClose(gkd, ToDoubles((*cpub)[1]), 4 * Eps(dt),
                       (4 * Eps(dt) + 2 * rel) * MaxAbs(ref.dk) + mma_tol(ref.dk_abs)))
      << "dk vs CPU op";
  EXPECT_TRUE(AllClose(gvd, ToDoubles((*cpub)[2]), 4 * Eps(dt),
                       (4 * Eps(dt) + 2 * rel) * MaxAbs(ref.dv) + mma_tol(ref.dv_abs)))
      << "dv vs CPU op";
  if (c.chunk_rows > 0) {  // the forced chunking took effect (several chunks per halo)
    EXPECT_EQ(fl.dev.chunk_rows, c.chunk_rows);
    if (!bp.mma) {
      EXPECT_EQ(bp.kv.dev.chunk_rows, c.chunk_rows);
    }
  }
}

void RunAllDTypes(const Case& c, uint64_t seed) {
  for (DType dt : kInterpDTypes) RunCase(c, dt, seed);
}

TEST(NeighborhoodInterp, SmallMapCornersK3) {
  RunAllDTypes({.batch = 2, .h = 5, .w = 6, .heads = 2, .d = 8}, 11);
}

TEST(NeighborhoodInterp, KernelEqualsMapSize) {
  RunAllDTypes({.h = 7, .w = 11, .heads = 1, .d = 40, .kh = 7, .kw = 11}, 21);
}

TEST(NeighborhoodInterp, UnequalKernelHeadDim72) {
  RunAllDTypes({.h = 10, .w = 13, .heads = 2, .d = 72, .kh = 3, .kw = 7}, 31);
}

TEST(NeighborhoodInterp, Dilation2NotDivisible) {
  RunAllDTypes({.h = 11, .w = 9, .heads = 1, .d = 16, .kh = 3, .kw = 3, .dh = 2, .dw = 2}, 41);
}

TEST(NeighborhoodInterp, Dilation3AndMixed) {
  RunAllDTypes({.h = 13, .w = 10, .heads = 1, .d = 8, .kh = 3, .kw = 3, .dh = 3, .dw = 3}, 51);
  RunAllDTypes({.h = 11, .w = 16, .heads = 2, .d = 8, .kh = 5, .kw = 3, .dh = 2, .dw = 3, .dlse = true}, 52);
}

TEST(NeighborhoodInterp, SeveralTilesPerAxis) {
  // 20 x 19 cells: 3 x 3 tiles with interior halos and clamped edge halos.
  RunAllDTypes({.batch = 2, .h = 20, .w = 19, .heads = 2, .d = 16, .kh = 7, .kw = 5, .dlse = true}, 61);
}

TEST(NeighborhoodInterp, HaloInChunks) {
  // Two halo rows per staged chunk: forward / dQ halos of 8 + 4 rows and the
  // dK / dV query halo stream through 6+ chunks, with a tail chunk.
  RunAllDTypes({.h = 17, .w = 12, .heads = 1, .d = 40, .kh = 5, .kw = 5, .chunk_rows = 2, .dlse = true}, 71);
  RunCase({.h = 12, .w = 9, .heads = 1, .d = 8, .kh = 3, .kw = 9, .dh = 1, .dw = 1, .chunk_rows = 3}, DType::f16,
          72);
}

TEST(NeighborhoodInterp, ScalarLoadsOddHeadDimAndMisalignedViews) {
  RunAllDTypes({.h = 9, .w = 8, .heads = 3, .d = 10, .kh = 5, .kw = 3}, 81);
  RunAllDTypes({.h = 8, .w = 9, .heads = 1, .d = 40, .kh = 3, .kw = 5, .offset = 1}, 82);
}

TEST(NeighborhoodInterp, Kernel31) {
  RunCase({.h = 31, .w = 6, .heads = 1, .d = 8, .kh = 31, .kw = 5}, DType::f16, 91);
  RunCase({.h = 7, .w = 33, .heads = 1, .d = 8, .kh = 3, .kw = 31, .dlse = true}, DType::bf16, 92);
}

TEST(NeighborhoodInterp, K13HeadDim72OptsInToLargeSharedMemory) {
  const Case c{.h = 14, .w = 13, .heads = 1, .d = 72, .kh = 13, .kw = 13};
  const TensorType tt{Shape({c.batch, c.h, c.w, c.heads * c.d}), DType::f16};
  const NaParams p = NaParamsOf("neighborhood_attention", AttrsOf(c), tt, tt, tt).value();
  const NaLaunch l = NaFwdPlanFor(p, 2, true).value();
  EXPECT_GT(l.smem, size_t{48 * 1024});   // KdConfig opts in, as the launcher does
  EXPECT_LT(l.dev.chunk_rows, kTH + 12);  // and the 20-row halo streams in chunks
  RunCase(c, DType::f16, 93);
  RunCase(c, DType::f32, 94);
}

// The device window rule is NaParams::WindowStart on the dilation group's
// grid, and InverseRange is exactly the set of queries whose window meets
// the key cells.
TEST(NeighborhoodInterp, GridStartAndInverseRangeMatchNaParams) {
  for (int len = 3; len <= 40; ++len)
    for (int k = 3; k <= 31; k += 2)
      for (int d = 1; d <= 4; ++d) {
        if (k * d > len) continue;
        for (int i = 0; i < len; ++i) {
          const int r = i % d, gl = GridLen(len, r, d);
          ASSERT_EQ(r + GridStart(i / d, gl, k) * d, NaParams::WindowStart(i, len, k, d))
              << "len " << len << " k " << k << " d " << d << " i " << i;
        }
      }
  for (int len = 3; len <= 40; ++len)
    for (int k = 3; k <= std::min(len, 31); k += 2)
      for (int a0 = 0; a0 < len; a0 += 3)
        for (int a1 = a0 + 1; a1 <= std::min(len, a0 + kTH); ++a1) {
          int lo = len, hi = -1;
          for (int i = 0; i < len; ++i) {
            const int s = GridStart(i, len, k);
            if (s < a1 && s + k > a0) lo = std::min(lo, i), hi = std::max(hi, i + 1);
          }
          const NaRange rg = InverseRange(a0, a1, len, k);
          ASSERT_EQ(rg.lo, lo) << len << " " << k << " " << a0 << " " << a1;
          ASSERT_EQ(rg.hi, hi) << len << " " << k << " " << a0 << " " << a1;
          ASSERT_LE(rg.hi - rg.lo, (a1 - a0) + 2 * (k - 1));  // fits the planned halo width
        }
}

TEST(NeighborhoodInterp, PlansCheckLimits) {
  auto params = [](int64_t batch, int64_t heads, int64_t d) {
    const TensorType tt{Shape({batch, 16, 16, heads * d}), DType::f16};
    return NaParamsOf("neighborhood_attention", Attrs{{"heads", heads}, {"kernel", std::vector<int64_t>{3}}}, tt, tt, tt).value();
  };
  EXPECT_TRUE(NaFwdPlanFor(params(1, 2, 40), 2, true).ok());
  ExpectError(NaFwdPlanFor(params(1, 70000, 1), 2, true).status(), {"65535", "neighborhood_attention"});
  ExpectError(NaBwdPlanFor(params(70000, 1, 1), 2, true).status(), {"65535", "neighborhood_attention_backward"});
  ExpectError(NaFwdPlanFor(params(1, 1, 264), 2, true).status(), {"head dims", "264"});
  const NaLaunch l = NaFwdPlanFor(params(2, 3, 40), 2, true).value();
  EXPECT_EQ(l.grid.x, 4u);  // 16 x 16 cells: 2 x 2 tiles
  EXPECT_EQ(l.grid.y, 3u);
  EXPECT_EQ(l.grid.z, 2u);
  EXPECT_EQ(l.dev.vec, 8);
  EXPECT_EQ(NaFwdPlanFor(params(2, 3, 40), 2, false).value().dev.vec, 1);
}

}  // namespace
}  // namespace cf::testing
