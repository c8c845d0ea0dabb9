// The interpreter's tensor-core and async-copy emulation (runtime/kdev):
// mma.sync m16n8k16 (f16 / bf16 inputs, f32 accumulation) against a float64
// matrix product of the rounded inputs, with fragments laid out here from the
// PTX ISA's tables (independently of the interpreter); ldmatrix x1/x2/x4 and
// .trans; cp.async 4/8/16 bytes with commit/wait groups and zero fill.
#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "runtime/kdev/kdev.h"

namespace cf {
namespace {

namespace ki = kd::interp;
using ki::Buffer;
using ki::Launch;
using ki::LaunchConfig;

LaunchConfig Cfg(const char* name, kd::Dim3 grid, kd::Dim3 block) {
  LaunchConfig c;
  c.name = name;
  c.grid = grid;
  c.block = block;
  return c;
}

void ExpectError(const Status& st, std::initializer_list<const char*> pieces) {
  ASSERT_FALSE(st.ok()) << "the broken kernel passed";
  for (const char* p : pieces) EXPECT_NE(st.message().find(p), std::string::npos) << "missing '" << p << "' in: " << st.message();
}

// ---------------------------------------------------------------------------
// Fragments of mma.m16n8k16 with .f16/.bf16 A and B and .f32 C/D, as the PTX
// ISA tabulates them per element index i (groupID g = lane >> 2,
// threadID_in_group t = lane % 4). Register r holds elements 2r (bits 0-15)
// and 2r + 1 (bits 16-31).
int ARow(int lane, int i) { return (i < 2 || (i >= 4 && i < 6)) ? lane / 4 : lane / 4 + 8; }
int ACol(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 4 ? 8 : 0); }
int BRow(int lane, int i) { return (lane % 4) * 2 + (i & 1) + (i >= 2 ? 8 : 0); }
int BCol(int lane) { return lane / 4; }
int CRow(int lane, int i) { return i < 2 ? lane / 4 : lane / 4 + 8; }
int CCol(int lane, int i) { return (lane % 4) * 2 + (i & 1); }

uint16_t Round16(float v, bool bf16) { return bf16 ? F32ToBF16Bits(v) : F32ToF16Bits(v); }
float Value16(uint16_t b, bool bf16) { return bf16 ? BF16BitsToF32(b) : F16BitsToF32(b); }

template <bool kBf16, bool kSwap>
KD_GLOBAL void MmaOnce(kd::Ptr<const uint32_t> a, kd::Ptr<const uint32_t> b, kd::Ptr<const float> c, kd::Ptr<float> d) {
  const int lane = kd::lane_id();
  uint32_t af[4], bf[2];
  float cf[4], df[4];
  for (int r = 0; r < 4; ++r) af[r] = a[lane * 4 + r];
  for (int r = 0; r < 2; ++r) bf[r] = b[lane * 2 + r];
  for (int i = 0; i < 4; ++i) cf[i] = c[lane * 4 + i];
  if (kSwap) std::swap(af[1], af[2]);  // the bug: rows 8-15 and columns 8-15 of A confused
  if (kBf16) {
    kd::mma_m16n8k16_f32_bf16(df, af, bf, cf);
  } else {
    kd::mma_m16n8k16_f32_f16(df, af, bf, cf);
  }
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = df[i];
}

struct MmaCase {
  std::vector<uint16_t> A, B;  // [16][16] row-major, [16][8] (k, n) row-major, rounded bits
  std::vector<float> C;        // [16][8]
};

MmaCase RandomCase(std::mt19937& rng, bool bf16, int kind) {
  MmaCase m{std::vector<uint16_t>(256), std::vector<uint16_t>(128), std::vector<float>(128)};
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> e(-8, 8), iv(-8, 8);
  auto draw = [&]() -> float {
    if (kind == 0) return u(rng);
    if (kind == 1) return std::ldexp(u(rng), e(rng));  // wide exponent range: cancellation-prone sums
    return float(iv(rng));                              // small integers: every result exact
  };
  for (auto& v : m.A) v = Round16(draw(), bf16);
  for (auto& v : m.B) v = Round16(draw(), bf16);
  for (auto& v : m.C) v = kind == 2 ? float(iv(rng)) : draw();
  return m;
}

// Runs one mma on the case; D as [16][8].
std::vector<float> RunMma(const MmaCase& m, bool bf16, bool swap) {
  std::vector<uint32_t> a(32 * 4), b(32 * 2);
  std::vector<float> c(32 * 4);
  for (int lane = 0; lane < 32; ++lane) {
    for (int r = 0; r < 4; ++r) {
      const uint16_t lo = m.A[ARow(lane, 2 * r) * 16 + ACol(lane, 2 * r)];
      const uint16_t hi = m.A[ARow(lane, 2 * r + 1) * 16 + ACol(lane, 2 * r + 1)];
      a[lane * 4 + r] = lo | (uint32_t(hi) << 16);
    }
    for (int r = 0; r < 2; ++r) {
      const uint16_t lo = m.B[BRow(lane, 2 * r) * 8 + BCol(lane)];
      const uint16_t hi = m.B[BRow(lane, 2 * r + 1) * 8 + BCol(lane)];
      b[lane * 2 + r] = lo | (uint32_t(hi) << 16);
    }
    for (int i = 0; i < 4; ++i) c[lane * 4 + i] = m.C[CRow(lane, i) * 8 + CCol(lane, i)];
  }
  Buffer<uint32_t> ab(a, "a"), bb(b, "b");
  Buffer<float> cb(c, "c"), db(32 * 4, "d");
  Status st;
  if (bf16) {
    st = swap ? Launch(Cfg("mma", 1, 32), &MmaOnce<true, true>, ab, bb, cb, db)
              : Launch(Cfg("mma", 1, 32), &MmaOnce<true, false>, ab, bb, cb, db);
  } else {
    st = swap ? Launch(Cfg("mma", 1, 32), &MmaOnce<false, true>, ab, bb, cb, db)
              : Launch(Cfg("mma", 1, 32), &MmaOnce<false, false>, ab, bb, cb, db);
  }
  EXPECT_TRUE(st.ok()) << st;
  std::vector<float> D(128, NAN);
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) D[CRow(lane, i) * 8 + CCol(lane, i)] = db.host()[lane * 4 + i];
  return D;
}

// Largest |D - ref| / bound over the tile, bound = f32 accumulation error of
// the 17-term sum: 17 * 2^-24 * (Σ|a b| + |c|) (plus the smallest normal).
double WorstError(const MmaCase& m, const std::vector<float>& D, bool bf16) {
  double worst = 0;
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 8; ++j) {
      double ref = m.C[i * 8 + j], mag = std::fabs(ref);
      for (int k = 0; k < 16; ++k) {
        const double p = double(Value16(m.A[i * 16 + k], bf16)) * double(Value16(m.B[k * 8 + j], bf16));
        ref += p;
        mag += std::fabs(p);
      }
      const double bound = 17 * std::ldexp(mag, -24) + 1e-38;
      worst = std::max(worst, std::fabs(double(D[i * 8 + j]) - ref) / bound);
    }
  }
  return worst;
}

TEST(KdevMmaInterp, MatchesFloat64MatmulOfRoundedInputs) {
  std::mt19937 rng(11);
  for (bool bf16 : {false, true}) {
    for (int kind = 0; kind < 3; ++kind) {
      for (int trial = 0; trial < 20; ++trial) {
        const MmaCase m = RandomCase(rng, bf16, kind);
        const std::vector<float> D = RunMma(m, bf16, false);
        EXPECT_LE(WorstError(m, D, bf16), 1.0) << (bf16 ? "bf16" : "f16") << " kind " << kind << " trial " << trial;
        if (kind == 2) {  // integers: exact
          for (int i = 0; i < 16; ++i) {
            for (int j = 0; j < 8; ++j) {
              double ref = m.C[i * 8 + j];
              for (int k = 0; k < 16; ++k) ref += Value16(m.A[i * 16 + k], bf16) * Value16(m.B[k * 8 + j], bf16);
              ASSERT_EQ(D[i * 8 + j], float(ref));
            }
          }
        }
      }
    }
  }
}

TEST(KdevMmaInterp, SwappedFragmentIndexGivesAWrongProduct) {
  std::mt19937 rng(5);
  for (bool bf16 : {false, true}) {
    const MmaCase m = RandomCase(rng, bf16, 0);
    EXPECT_LE(WorstError(m, RunMma(m, bf16, false), bf16), 1.0);
    EXPECT_GT(WorstError(m, RunMma(m, bf16, true), bf16), 1e4) << "a swapped A register must not go unnoticed";
  }
}

TEST(KdevMmaInterp, LayoutHelpersAgreeWithThePtxTables) {
  for (int lane = 0; lane < 32; ++lane) {
    for (int r = 0; r < 4; ++r) {
      for (int h = 0; h < 2; ++h) {
        EXPECT_EQ(kd::Mma16816::a_row(lane, r), ARow(lane, 2 * r + h));
        EXPECT_EQ(kd::Mma16816::a_col(lane, r, h), ACol(lane, 2 * r + h));
      }
    }
    for (int r = 0; r < 2; ++r)
      for (int h = 0; h < 2; ++h) EXPECT_EQ(kd::Mma16816::b_row(lane, r, h), BRow(lane, 2 * r + h));
    EXPECT_EQ(kd::Mma16816::b_col(lane), BCol(lane));
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(kd::Mma16816::c_row(lane, i), CRow(lane, i));
      EXPECT_EQ(kd::Mma16816::c_col(lane, i), CCol(lane, i));
    }
  }
}

KD_GLOBAL void MmaDivergent(kd::Ptr<float> d, int lanes) {
  uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  float c[4] = {0, 0, 0, 0}, r[4];
  if (int(kd::lane_id()) < lanes) {
    kd::mma_m16n8k16_f32_f16(r, a, b, c);
    d[kd::threadIdx.x] = r[0];
  }
}

TEST(KdevMmaInterp, MmaNeedsTheWholeWarp) {
  Buffer<float> d(48, "d");
  ASSERT_TRUE(Launch(Cfg("mma", 1, 32), &MmaDivergent, d, 32).ok());
  ExpectError(Launch(Cfg("mma", 1, 32), &MmaDivergent, d, 16),
              {"mma.sync.m16n8k16", "lane 16, named in the mask, exited without joining it"});
  ExpectError(Launch(Cfg("mma", 1, 48), &MmaDivergent, d, 32), {"mma.sync.m16n8k16", "do not exist"});
}

// ---------------------------------------------------------------------------
// ldmatrix.

// src: 32 rows of 8 16-bit values; lane l passes the address of row perm[l].
template <int N, bool kTrans, int kMode>  // mode 0: correct; 1: no barrier; 2: misaligned; 3: global pointer
KD_GLOBAL void Ldm(kd::Ptr<const uint16_t> src, kd::Ptr<const int> perm, kd::Ptr<uint32_t> out) {
  KD_SHARED(uint16_t, s, [33][8]);
  const int lane = kd::threadIdx.x;
  for (int j = 0; j < 8; ++j) s[lane][j] = src[lane * 8 + j];
  if (lane == 0)
    for (int j = 0; j < 8; ++j) s[32][j] = 0;
  if (kMode != 1) kd::syncthreads();
  uint32_t r[4] = {0, 0, 0, 0};
  if (kMode == 3) {
    kd::ldmatrix<N, kTrans>(r, src + perm[lane] * 8);
  } else {
    kd::ldmatrix<N, kTrans>(r, &s[perm[lane]][kMode == 2 ? 1 : 0]);
  }
  for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

template <int N, bool kTrans> void CheckLdmatrix() {
  std::vector<uint16_t> src(256);
  for (int i = 0; i < 256; ++i) src[i] = uint16_t(1000 + i);
  std::vector<int> perm(32);
  for (int l = 0; l < 32; ++l) perm[l] = (l * 7 + 3) % 32;
  Buffer<uint16_t> sb(src, "src");
  Buffer<int> pb(perm, "perm");
  Buffer<uint32_t> out(128, "out");
  ASSERT_TRUE(Launch(Cfg("ldmatrix", 1, 32), &Ldm<N, kTrans, 0>, sb, pb, out).ok());
  // Matrix i, row rr is the row whose address lane 8i + rr passed.
  auto M = [&](int i, int rr, int cc) { return uint32_t(src[perm[8 * i + rr] * 8 + cc]); };
  for (int l = 0; l < 32; ++l) {
    for (int i = 0; i < 4; ++i) {
      uint32_t want = 0;
      if (i < N) {
        const int g = l / 4, t = l % 4;
        want = kTrans ? M(i, 2 * t, g) | (M(i, 2 * t + 1, g) << 16) : M(i, g, 2 * t) | (M(i, g, 2 * t + 1) << 16);
      }
      EXPECT_EQ(out.host()[l * 4 + i], want) << "x" << N << (kTrans ? ".trans" : "") << " lane " << l << " reg " << i;
    }
  }
}

TEST(KdevMmaInterp, LdmatrixLayouts) {
  CheckLdmatrix<1, false>();
  CheckLdmatrix<2, false>();
  CheckLdmatrix<4, false>();
  CheckLdmatrix<1, true>();
  CheckLdmatrix<2, true>();
  CheckLdmatrix<4, true>();
}

TEST(KdevMmaInterp, LdmatrixChecks) {
  std::vector<int> perm(32);
  for (int l = 0; l < 32; ++l) perm[l] = (l + 1) % 32;
  Buffer<uint16_t> sb(std::vector<uint16_t>(256, 1), "src");
  Buffer<int> pb(perm, "perm");
  Buffer<uint32_t> out(128, "out");
  ExpectError(Launch(Cfg("ldmatrix", 1, 32), &Ldm<4, false, 1>, sb, pb, out),
              {"shared-memory race", "read after write", "shared array 's'"});
  ExpectError(Launch(Cfg("ldmatrix", 1, 32), &Ldm<4, false, 2>, sb, pb, out), {"misaligned", "16-byte alignment"});
  ExpectError(Launch(Cfg("ldmatrix", 1, 32), &Ldm<4, false, 3>, sb, pb, out), {"not shared memory", "'src'"});
}

// ---------------------------------------------------------------------------
// cp.async.

// 64 threads; two groups: x[0, 64F) -> s[0], x[64F, 128F) -> s[1], F floats per copy.
// mode 0: correct; 1: wait_group 1 leaves the second group in flight;
// 2: no wait at all; 3: wait but no barrier before reading another thread's data.
template <int Bytes>
KD_GLOBAL void CopyAsync(kd::Ptr<const float> x, kd::Ptr<float> y, int mode) {
  constexpr int F = Bytes / 4;
  KD_SHARED(float, s, [2][64 * 4]);
  const int t = kd::threadIdx.x;
  kd::cp_async<Bytes>(&s[0][t * F], x + t * F);
  kd::cp_async_commit();
  kd::cp_async<Bytes>(&s[1][t * F], x + (64 + t) * F);
  kd::cp_async_commit();
  if (mode == 0 || mode == 3) kd::cp_async_wait<0>();
  if (mode == 1) kd::cp_async_wait<1>();
  if (mode != 3) kd::syncthreads();
  const int u = t > 0 ? t - 1 : 0;
  for (int k = 0; k < F; ++k) {
    y[t * F + k] = s[0][u * F + k];
    y[(64 + t) * F + k] = s[1][u * F + k];
  }
}

template <int Bytes> void CheckCopy() {
  constexpr int F = Bytes / 4;
  std::vector<float> xs(128 * F);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = float(i) + 0.5f;
  Buffer<float> x(xs, "x"), y(128 * F, "y");
  ASSERT_TRUE(Launch(Cfg("cp.async", 1, 64), &CopyAsync<Bytes>, x, y, 0).ok()) << Bytes;
  for (int t = 0; t < 64; ++t) {
    const int u = t > 0 ? t - 1 : 0;
    for (int k = 0; k < F; ++k) {
      EXPECT_EQ(y.host()[t * F + k], xs[u * F + k]);
      EXPECT_EQ(y.host()[(64 + t) * F + k], xs[(64 + u) * F + k]);
    }
  }
  ExpectError(Launch(Cfg("cp.async", 1, 64), &CopyAsync<Bytes>, x, y, 1),
              {"while a cp.async into it is still in flight", "shared array 's'"});
  ExpectError(Launch(Cfg("cp.async", 1, 64), &CopyAsync<Bytes>, x, y, 2), {"still in flight"});
  ExpectError(Launch(Cfg("cp.async", 1, 64), &CopyAsync<Bytes>, x, y, 3),
              {"shared-memory race", "read after write", "thread (1,0,0)"});
}

TEST(KdevMmaInterp, CpAsyncGroups) {
  CheckCopy<4>();
  CheckCopy<8>();
  CheckCopy<16>();
}

// mode 0: zero fill past src_bytes; 1: destination in global memory; 2: misaligned source.
KD_GLOBAL void CopyZfill(kd::Ptr<const float> x, kd::Ptr<float> y, int src_bytes, int mode) {
  KD_SHARED(float, s, [4]);
  if (mode == 1) {
    kd::cp_async<16>(y, x);
  } else {
    kd::cp_async_zfill<16>(&s[0], x + (mode == 2 ? 1 : 0), src_bytes);
  }
  kd::cp_async_wait_all();
  for (int k = 0; k < 4; ++k) y[k] = s[k];
}

TEST(KdevMmaInterp, CpAsyncZeroFillAndChecks) {
  Buffer<float> x(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}, "x"), y(4, "y");
  for (int n : {0, 4, 8, 12, 16}) {
    ASSERT_TRUE(Launch(Cfg("zfill", 1, 1), &CopyZfill, x, y, n, 0).ok());
    for (int k = 0; k < 4; ++k) EXPECT_EQ(y.host()[k], k < n / 4 ? float(k + 1) : 0.f) << n << " " << k;
  }
  ExpectError(Launch(Cfg("zfill", 1, 1), &CopyZfill, x, y, 16, 1), {"destination is global buffer 'y'", "not shared"});
  ExpectError(Launch(Cfg("zfill", 1, 1), &CopyZfill, x, y, 16, 2), {"misaligned 16-byte source"});
}

}  // namespace
}  // namespace cf
