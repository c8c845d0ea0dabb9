// The CPU interpreter of the CUDA execution model (runtime/kdev): thread
// indexing, barriers, warp collectives with their exact semantics, atomics,
// shared memory, and every check: deliberately broken kernels must fail with
// a clear report and their correct versions must pass.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "runtime/kdev/kdev.h"

namespace cf {
namespace {

namespace ki = kd::interp;
using ki::Buffer;
using ki::Launch;
using ki::LaunchConfig;

LaunchConfig Cfg(const char* name, kd::Dim3 grid, kd::Dim3 block, size_t smem = 0) {
  LaunchConfig c;
  c.name = name;
  c.grid = grid;
  c.block = block;
  c.dynamic_smem = smem;
  return c;
}

// The launch failed and its message names every piece.
void ExpectError(const Status& st, std::initializer_list<const char*> pieces) {
  ASSERT_FALSE(st.ok()) << "the broken kernel passed";
  for (const char* p : pieces) EXPECT_NE(st.message().find(p), std::string::npos) << "missing '" << p << "' in: " << st.message();
}

// ---------------------------------------------------------------------------
// Indexing.

KD_GLOBAL void WriteIndices(kd::Ptr<int> out) {
  const int rank = kd::threadIdx.x + kd::blockDim.x * (kd::threadIdx.y + kd::blockDim.y * kd::threadIdx.z);
  const int block = kd::blockIdx.x + kd::gridDim.x * (kd::blockIdx.y + kd::gridDim.y * kd::blockIdx.z);
  const int threads = kd::blockDim.x * kd::blockDim.y * kd::blockDim.z;
  const int64_t o = (int64_t(block) * threads + rank) * 3;
  out[o] = rank;
  out[o + 1] = static_cast<int>(kd::thread_rank());
  out[o + 2] = static_cast<int>(kd::lane_id());
}

TEST(KdevInterp, ThreadAndBlockIndices) {
  const kd::Dim3 grid(3, 2, 2), block(8, 5, 2);  // 80 threads: warps 0, 1 full, warp 2 has 16
  const int threads = 80, blocks = 12;
  Buffer<int> out(size_t(threads) * blocks * 3, "out");
  ASSERT_TRUE(Launch(Cfg("indices", grid, block), &WriteIndices, out).ok());
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < threads; ++t) {
      const int* o = out.host() + (b * threads + t) * 3;
      EXPECT_EQ(o[0], t);
      EXPECT_EQ(o[1], t);
      EXPECT_EQ(o[2], t % 32);
    }
  }
}

// ---------------------------------------------------------------------------
// Out of bounds (a tail off by one), null and freed pointers, misalignment.

KD_GLOBAL void Scale(kd::Ptr<const float> x, kd::Ptr<float> y, int n, int extra) {
  const int i = kd::blockIdx.x * kd::blockDim.x + kd::threadIdx.x;
  if (i < n + extra) y[i] = 2.f * x[i];
}

TEST(KdevInterp, TailOffByOneIsOutOfBounds) {
  std::vector<float> xs(100);
  for (int i = 0; i < 100; ++i) xs[i] = float(i);
  Buffer<float> x(xs, "x"), y(100, "y");
  ASSERT_TRUE(Launch(Cfg("scale", 2, 64), &Scale, x, y, 100, 0).ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(y.host()[i], 2.f * i);
  // i <= n: thread 36 of block 1 reads x[100].
  ExpectError(Launch(Cfg("scale", 2, 64), &Scale, x, y, 100, 1),
              {"kernel 'scale'", "block (1,0,0)", "thread (36,0,0)", "out-of-bounds read", "index 100",
               "global buffer 'x' (400 bytes)", "100 elements"});
}

KD_GLOBAL void ReadAt(kd::Ptr<const float> x, kd::Ptr<float> y, int64_t i) { y[0] = x[i]; }

TEST(KdevInterp, NullFreedAndNegativeIndex) {
  Buffer<float> y(1, "y");
  ExpectError(Launch(Cfg("null", 1, 1), &ReadAt, kd::Ptr<const float>(nullptr), y, int64_t{0}), {"null pointer"});
  kd::Ptr<const float> stale;
  {
    Buffer<float> x(4, "gone");
    stale = x;
  }
  ExpectError(Launch(Cfg("stale", 1, 1), &ReadAt, stale, y, int64_t{1}), {"'gone'", "after it was freed"});
  Buffer<float> x(std::vector<float>{1, 2, 3, 4}, "x");
  ExpectError(Launch(Cfg("neg", 1, 1), &ReadAt, x, y, int64_t{-1}), {"index -1", "out-of-bounds read"});
}

KD_GLOBAL void Vec4Copy(kd::Ptr<const float> x, kd::Ptr<float> y, int offset) {
  const int t = kd::threadIdx.x;
  const kd::float4 v = kd::ptr_cast<const kd::float4>(x + offset)[t];
  kd::ptr_cast<kd::float4>(y)[t] = v;
}

TEST(KdevInterp, VectorAccessIsCheckedForAlignment) {
  std::vector<float> xs(36);
  for (int i = 0; i < 36; ++i) xs[i] = float(i);
  Buffer<float> x(xs, "x"), y(32, "y");
  ASSERT_TRUE(Launch(Cfg("vec4", 1, 8), &Vec4Copy, x, y, 0).ok());
  EXPECT_EQ(y.ToVector(), std::vector<float>(xs.begin(), xs.begin() + 32));
  ASSERT_TRUE(Launch(Cfg("vec4", 1, 8), &Vec4Copy, x, y, 4).ok());
  EXPECT_EQ(y.host()[0], 4.f);
  ExpectError(Launch(Cfg("vec4", 1, 8), &Vec4Copy, x, y, 1), {"misaligned read of 16 bytes", "16-byte alignment"});
  // Offset 8 with 8 threads reads floats 8..39 of 36.
  ExpectError(Launch(Cfg("vec4", 1, 8), &Vec4Copy, x, y, 8), {"out-of-bounds read of 16 bytes", "thread (7,0,0)"});
}

// ---------------------------------------------------------------------------
// Shared-memory reduction: a missing __syncthreads is a race.

template <bool kSync>
KD_GLOBAL void SharedReduce(kd::Ptr<const float> x, kd::Ptr<float> out) {
  KD_SHARED(float, s, [128]);
  const int t = kd::threadIdx.x;
  s[t] = x[kd::blockIdx.x * 128 + t];
  kd::syncthreads();
  for (int stride = 64; stride > 0; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
    if (kSync) kd::syncthreads();
  }
  if (t == 0) out[kd::blockIdx.x] = s[0];
}

TEST(KdevInterp, MissingSyncthreadsInReductionIsARace) {
  std::vector<float> xs(3 * 128);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = float(i % 7);
  Buffer<float> x(xs, "x"), out(3, "out");
  ASSERT_TRUE(Launch(Cfg("reduce", 3, 128), &SharedReduce<true>, x, out).ok());
  for (int b = 0; b < 3; ++b) {
    float want = 0;
    for (int i = 0; i < 128; ++i) want += xs[b * 128 + i];
    EXPECT_EQ(out.host()[b], want);
  }
  ExpectError(Launch(Cfg("reduce", 3, 128), &SharedReduce<false>, x, out),
              {"kernel 'reduce'", "block (0,0,0)", "shared-memory race", "shared array 's' (float[128], 512 bytes)",
               "write after read", "no barrier between them", "since the __syncthreads at kdev_interp_test.cc:"});
}

// Warp-synchronous exchange through shared memory: ordered by __syncwarp
// within a warp, not across warps.
// 0: syncwarp, 1: none, 2: syncwarp but the partner is in another warp,
// 3: a syncwarp only before the write.
template <int kMode>
KD_GLOBAL void WarpExchange(kd::Ptr<float> out) {
  KD_SHARED(float, s, [64]);
  const int t = kd::threadIdx.x;
  s[t] = 0.f;
  kd::syncthreads();
  if (kMode == 3) kd::syncwarp();
  s[t] = float(t);
  if (kMode == 0 || kMode == 2) kd::syncwarp();
  out[t] = s[kMode == 2 ? t ^ 32 : t ^ 1];
}

TEST(KdevInterp, SyncwarpOrdersSharedAccessesWithinAWarpOnly) {
  Buffer<float> out(64, "out");
  ASSERT_TRUE(Launch(Cfg("exchange", 1, 64), &WarpExchange<0>, out).ok());
  for (int t = 0; t < 64; ++t) EXPECT_EQ(out.host()[t], float(t ^ 1));
  ExpectError(Launch(Cfg("exchange", 1, 64), &WarpExchange<1>, out), {"shared-memory race", "write after read"});
  ExpectError(Launch(Cfg("exchange", 1, 64), &WarpExchange<2>, out), {"shared-memory race"});
  ExpectError(Launch(Cfg("exchange", 1, 64), &WarpExchange<3>, out), {"shared-memory race", "write after read"});
}

// Read after write by another thread in the same epoch.
KD_GLOBAL void ReadNeighbourAfterWrite(kd::Ptr<float> out) {
  KD_SHARED(float, s, [64]);
  const int t = kd::threadIdx.x;
  s[t] = 1.f;
  kd::syncthreads();
  if (t == 0) s[40] = 5.f;      // thread 0 writes after the barrier ...
  if (t == 63) out[t] = s[40];  // ... and thread 63 reads it: no barrier between
}

TEST(KdevInterp, ReadAfterWriteRace) {
  Buffer<float> out(64, "out");
  ExpectError(Launch(Cfg("raw", 1, 64), &ReadNeighbourAfterWrite, out),
              {"read after write", "this read follows a write by thread (0,0,0)", "thread (63,0,0) [warp 1 lane 31]"});
}

// ---------------------------------------------------------------------------
// Uninitialised shared memory.

KD_GLOBAL void HalfInitialised(kd::Ptr<float> out, int written) {
  KD_SHARED(float, s, [64]);
  const int t = kd::threadIdx.x;
  if (t < written) s[t] = float(t);
  kd::syncthreads();
  out[t] = s[t];
}

TEST(KdevInterp, UninitialisedSharedRead) {
  Buffer<float> out(64, "out");
  ASSERT_TRUE(Launch(Cfg("init", 1, 64), &HalfInitialised, out, 64).ok());
  ExpectError(Launch(Cfg("init", 1, 64), &HalfInitialised, out, 32),
              {"uninitialised read", "shared array 's'", "thread (32,0,0)", "index 32"});
  // Shared memory starts uninitialised in every block, also after a block that wrote it.
  LaunchConfig cfg = Cfg("init", 2, 64);
  ASSERT_TRUE(Launch(cfg, &HalfInitialised, out, 64).ok());
  cfg.initcheck = false;
  ASSERT_TRUE(Launch(cfg, &HalfInitialised, out, 32).ok());
  EXPECT_TRUE(std::isnan(out.host()[40]));  // poisoned
}

// ---------------------------------------------------------------------------
// Barriers.

KD_GLOBAL void BarrierInBranch(kd::Ptr<float> out, int mode) {
  KD_SHARED(float, s, [64]);
  const int t = kd::threadIdx.x;
  if (mode == 0) {  // correct
    s[t] = float(t);
    kd::syncthreads();
  } else if (mode == 1) {  // the barrier only in the branch of the first warp
    s[t] = float(t);
    if (t < 32) kd::syncthreads();
  } else if (mode == 2) {  // two different barriers
    s[t] = float(t);
    if (t < 32) {
      kd::syncthreads();
    } else {
      kd::syncthreads();
    }
  } else {  // early exit of the tail before a barrier
    if (t >= 48) return;
    s[t] = float(t);
    kd::syncthreads();
  }
  out[t] = mode == 0 ? s[63 - t] : s[t];
}

TEST(KdevInterp, BarrierNotReachedByAllThreadsIsAnError) {
  Buffer<float> out(64, "out");
  ASSERT_TRUE(Launch(Cfg("barrier", 1, 64), &BarrierInBranch, out, 0).ok());
  EXPECT_EQ(out.host()[0], 63.f);
  ExpectError(Launch(Cfg("barrier", 1, 64), &BarrierInBranch, out, 1),
              {"barrier not reached by all threads", "32 threads wait", "32 exited", "thread (32,0,0)"});
  ExpectError(Launch(Cfg("barrier", 1, 64), &BarrierInBranch, out, 2), {"divergent __syncthreads"});
  ExpectError(Launch(Cfg("barrier", 1, 64), &BarrierInBranch, out, 3),
              {"barrier not reached by all threads", "16 exited"});
}

KD_GLOBAL void ShuffleAgainstBarrier(kd::Ptr<float> out) {
  float v = float(kd::threadIdx.x);
  if (kd::threadIdx.x < 16) {
    v = kd::shfl_xor_sync(kd::kFullMask, v, 1);
  } else {
    kd::syncthreads();
  }
  out[kd::threadIdx.x] = v;
}

TEST(KdevInterp, DeadlockIsReported) {
  Buffer<float> out(32, "out");
  ExpectError(Launch(Cfg("deadlock", 1, 32), &ShuffleAgainstBarrier, out),
              {"deadlock", "threads 0-15 wait at shfl_xor_sync(mask 0xffffffff)", "threads 16-31 wait at __syncthreads"});
}

// ---------------------------------------------------------------------------
// Shuffles: the exact semantics for every mode, width and offset.

KD_GLOBAL void ShuffleAll(kd::Ptr<float> out, int mode, int b, int width) {
  const float v = float(kd::lane_id() * 10 + 1);
  float r = 0.f;
  switch (mode) {
    case 0: r = kd::shfl_sync(kd::kFullMask, v, b, width); break;
    case 1: r = kd::shfl_up_sync(kd::kFullMask, v, unsigned(b), width); break;
    case 2: r = kd::shfl_down_sync(kd::kFullMask, v, unsigned(b), width); break;
    default: r = kd::shfl_xor_sync(kd::kFullMask, v, b, width); break;
  }
  out[kd::threadIdx.x] = r;
}

// Source lane of a shuffle as the CUDA programming guide describes it.
int SourceLane(int mode, int lane, int b, int w) {
  const int seg = lane / w * w;
  switch (mode) {
    case 0: return seg + b % w;
    case 1: return lane - seg >= b ? lane - b : lane;
    case 2: return lane - seg + b < w ? lane + b : lane;
    default: {
      const int j = lane ^ b;
      return j / w > lane / w ? lane : j;  // later groups: own value; earlier groups are readable
    }
  }
}

TEST(KdevInterp, ShuffleSemantics) {
  Buffer<float> out(64, "out");
  for (int mode = 0; mode < 4; ++mode) {
    for (int width : {1, 2, 4, 8, 16, 32}) {
      for (int b = 0; b < 32; ++b) {
        ASSERT_TRUE(Launch(Cfg("shfl", 1, 64), &ShuffleAll, out, mode, b, width).ok());
        for (int t = 0; t < 64; ++t) {
          const int lane = t % 32;
          ASSERT_EQ(out.host()[t], float(SourceLane(mode, lane, b, width) * 10 + 1))
              << "mode " << mode << " width " << width << " b " << b << " lane " << lane;
        }
      }
    }
  }
}

KD_GLOBAL void ShuffleWide(kd::Ptr<double> d, kd::Ptr<int64_t> l, kd::Ptr<float> h) {
  const int lane = kd::lane_id();
  d[lane] = kd::shfl_xor_sync(kd::kFullMask, 1.0 / (lane + 1), 5);
  l[lane] = kd::shfl_down_sync(kd::kFullMask, (int64_t{lane} << 40) + lane, 3);
  h[lane] = float(kd::shfl_sync(kd::kFullMask, kd::half(float(lane) + 0.5f), 31 - lane));
}

TEST(KdevInterp, ShuffleOf64BitAndHalfValues) {
  Buffer<double> d(32, "d");
  Buffer<int64_t> l(32, "l");
  Buffer<float> h(32, "h");
  ASSERT_TRUE(Launch(Cfg("wide", 1, 32), &ShuffleWide, d, l, h).ok());
  for (int lane = 0; lane < 32; ++lane) {
    EXPECT_EQ(d.host()[lane], 1.0 / ((lane ^ 5) + 1));
    const int src = lane + 3 < 32 ? lane + 3 : lane;
    EXPECT_EQ(l.host()[lane], (int64_t{src} << 40) + src);
    EXPECT_EQ(h.host()[lane], float(31 - lane) + 0.5f);
  }
}

// Masks: the caller outside its mask, a lane of the mask that never joins,
// lanes that do not exist in a partial warp; and the correct partial-warp sum.
KD_GLOBAL void MaskedSum(kd::Ptr<float> out, int mode) {
  const int lane = kd::lane_id();
  float v = float(kd::threadIdx.x);
  if (mode == 0) {  // mask 0x0000ffff passed by all 32 lanes
    for (int o = 8; o > 0; o >>= 1) v += kd::shfl_xor_sync(0x0000ffffu, v, o);
  } else if (mode == 1) {  // full mask inside a branch of half the warp
    if (lane < 16) v += kd::shfl_xor_sync(kd::kFullMask, v, 1);
  } else if (mode == 2) {  // full mask in a partial last warp
    for (int o = 16; o > 0; o >>= 1) v += kd::shfl_xor_sync(kd::kFullMask, v, o);
  } else {  // correct for partial warps: the active lanes, guarded by the count
    const unsigned mask = kd::activemask();
    const int count = __builtin_popcount(mask);
    for (int o = 16; o > 0; o >>= 1) {
      const float other = kd::shfl_down_sync(mask, v, unsigned(o));
      if (lane + o < count) v += other;
    }
    v = kd::shfl_sync(mask, v, 0);
  }
  out[kd::threadIdx.x] = v;
}

TEST(KdevInterp, ShuffleWithAWrongMask) {
  Buffer<float> out(48, "out");
  ExpectError(Launch(Cfg("mask", 1, 32), &MaskedSum, out, 0),
              {"shfl_xor_sync(mask 0x0000ffff)", "the calling lane 16 is not in the mask", "thread (16,0,0)"});
  ExpectError(Launch(Cfg("mask", 1, 32), &MaskedSum, out, 1),
              {"shfl_xor_sync(mask 0xffffffff)", "lane 16, named in the mask, exited without joining it"});
  ExpectError(Launch(Cfg("mask", 1, 48), &MaskedSum, out, 2),
              {"names lanes 16-31, which do not exist", "this warp has 16 threads"});
  ASSERT_TRUE(Launch(Cfg("mask", 1, 48), &MaskedSum, out, 3).ok());
  float w0 = 0, w1 = 0;
  for (int t = 0; t < 32; ++t) w0 += float(t);
  for (int t = 32; t < 48; ++t) w1 += float(t);
  for (int t = 0; t < 48; ++t) EXPECT_EQ(out.host()[t], t < 32 ? w0 : w1) << t;
}

KD_GLOBAL void Votes(kd::Ptr<unsigned> out) {
  const int lane = kd::lane_id();
  const unsigned w = kd::threadIdx.x / 32;
  out[kd::threadIdx.x * 4 + 0] = kd::ballot_sync(kd::kFullMask, lane % 3 == 0);
  out[kd::threadIdx.x * 4 + 1] = unsigned(kd::any_sync(kd::kFullMask, lane == 7 && w == 1));
  out[kd::threadIdx.x * 4 + 2] = unsigned(kd::all_sync(kd::kFullMask, lane < 40));
  unsigned r = 0;
  if (lane & 1) r = kd::ballot_sync(0xaaaaaaaau, lane > 20);  // odd lanes only
  out[kd::threadIdx.x * 4 + 3] = r;
}

TEST(KdevInterp, Votes) {
  Buffer<unsigned> out(64 * 4, "out");
  ASSERT_TRUE(Launch(Cfg("votes", 1, 64), &Votes, out).ok());
  unsigned by3 = 0, odd_gt20 = 0;
  for (int l = 0; l < 32; ++l) {
    if (l % 3 == 0) by3 |= 1u << l;
    if ((l & 1) && l > 20) odd_gt20 |= 1u << l;
  }
  for (int t = 0; t < 64; ++t) {
    const unsigned* o = out.host() + t * 4;
    EXPECT_EQ(o[0], by3);
    EXPECT_EQ(o[1], t >= 32 ? 1u : 0u);
    EXPECT_EQ(o[2], 1u);
    EXPECT_EQ(o[3], (t & 1) ? odd_gt20 : 0u);
  }
}

// ---------------------------------------------------------------------------
// Atomics on shared and global memory.

KD_GLOBAL void Histogram(kd::Ptr<const int> x, int n, kd::Ptr<unsigned> hist, kd::Ptr<int> max_out,
                         kd::Ptr<float> fmax_out, kd::Ptr<float> fsum) {
  KD_SHARED(unsigned, h, [8]);
  const int t = kd::threadIdx.x;
  if (t < 8) h[t] = 0;
  kd::syncthreads();
  for (int i = kd::blockIdx.x * kd::blockDim.x + t; i < n; i += kd::gridDim.x * kd::blockDim.x) {
    kd::atomicAdd(&h[x[i] & 7], 1u);
    kd::atomicMax(max_out, x[i]);
    kd::atomicAdd(fsum, 0.5f);
    // Float max through compare-and-swap on the bits.
    kd::Ptr<unsigned> bits = kd::ptr_cast<unsigned>(fmax_out);
    unsigned old = bits[0];
    for (;;) {
      float cur;
      std::memcpy(&cur, &old, 4);
      const float want = std::fmax(cur, float(x[i]) * 0.25f);
      unsigned w;
      std::memcpy(&w, &want, 4);
      const unsigned seen = kd::atomicCAS(bits, old, w);
      if (seen == old) break;
      old = seen;
    }
  }
  kd::syncthreads();
  if (t < 8) kd::atomicAdd(hist + t, h[t]);
}

TEST(KdevInterp, Atomics) {
  std::vector<int> xs(1000);
  std::mt19937 rng(3);
  for (int& v : xs) v = int(rng() % 1000);
  Buffer<int> x(xs, "x"), mx(std::vector<int>{-1}, "max");
  Buffer<unsigned> hist(std::vector<unsigned>(8, 0u), "hist");
  Buffer<float> fmax(std::vector<float>{-1e30f}, "fmax"), fsum(std::vector<float>{0.f}, "fsum");
  ASSERT_TRUE(Launch(Cfg("hist", 3, 96), &Histogram, x, 1000, hist, mx, fmax, fsum).ok());
  std::vector<unsigned> want(8, 0);
  int want_max = -1;
  for (int v : xs) {
    ++want[v & 7];
    want_max = std::max(want_max, v);
  }
  EXPECT_EQ(hist.ToVector(), want);
  EXPECT_EQ(mx.host()[0], want_max);
  EXPECT_EQ(fmax.host()[0], float(want_max) * 0.25f);
  EXPECT_EQ(fsum.host()[0], 500.f);
}

KD_GLOBAL void AtomicThenPlainRead(kd::Ptr<float> out) {
  KD_SHARED(float, s, [1]);
  if (kd::threadIdx.x == 0) s[0] = 0.f;
  kd::syncthreads();
  kd::atomicAdd(&s[0], 1.f);
  out[kd::threadIdx.x] = s[0];  // no barrier after the atomics
}

TEST(KdevInterp, PlainReadAfterAtomicsNeedsABarrier) {
  Buffer<float> out(64, "out");
  ExpectError(Launch(Cfg("atomic", 1, 64), &AtomicThenPlainRead, out), {"shared-memory race", "this atomic update follows a read by thread (0,0,0)"});
}

// ---------------------------------------------------------------------------
// Dynamic shared memory, 2-D shared arrays.

KD_GLOBAL void ReverseDynamic(kd::Ptr<const float> x, kd::Ptr<float> y, int n) {
  KD_DYNAMIC_SHARED(float, buf);
  for (int i = kd::threadIdx.x; i < n; i += kd::blockDim.x) buf[i] = x[i];
  kd::syncthreads();
  for (int i = kd::threadIdx.x; i < n; i += kd::blockDim.x) y[i] = buf[n - 1 - i];
}

TEST(KdevInterp, DynamicSharedMemory) {
  std::vector<float> xs(300);
  for (int i = 0; i < 300; ++i) xs[i] = float(i);
  Buffer<float> x(xs, "x"), y(300, "y");
  ASSERT_TRUE(Launch(Cfg("reverse", 1, 64, 300 * 4), &ReverseDynamic, x, y, 300).ok());
  for (int i = 0; i < 300; ++i) EXPECT_EQ(y.host()[i], float(299 - i));
  ExpectError(Launch(Cfg("reverse", 1, 64, 299 * 4), &ReverseDynamic, x, y, 300),
              {"out-of-bounds write", "shared memory 'extern __shared__' (dynamic, 1196 bytes)", "index 299"});
  // Above 48 KiB only with the opt-in.
  std::vector<float> big(16384, 1.f);
  Buffer<float> bx(big, "bx"), by(16384, "by");
  LaunchConfig cfg = Cfg("reverse", 1, 256, 16384 * 4);
  ExpectError(Launch(cfg, &ReverseDynamic, bx, by, 16384), {"cudaFuncSetAttribute"});
  cfg.smem_opt_in = true;
  EXPECT_TRUE(Launch(cfg, &ReverseDynamic, bx, by, 16384).ok());
}

KD_GLOBAL void Tile2D(kd::Ptr<float> out, int col) {
  KD_SHARED(float, t, [4][8]);
  t[kd::threadIdx.y][kd::threadIdx.x] = float(kd::threadIdx.y * 8 + kd::threadIdx.x);
  kd::syncthreads();
  out[kd::threadIdx.y * 8 + kd::threadIdx.x] = t[kd::threadIdx.x % 4][col];
}

TEST(KdevInterp, SharedArrayIndicesAreCheckedPerDimension) {
  Buffer<float> out(32, "out");
  ASSERT_TRUE(Launch(Cfg("tile", 1, kd::Dim3(8, 4)), &Tile2D, out, 5).ok());
  EXPECT_EQ(out.host()[3], 3 * 8 + 5.f);
  ExpectError(Launch(Cfg("tile", 1, kd::Dim3(8, 4)), &Tile2D, out, 8),
              {"out-of-bounds index 8 into a dimension of extent 8", "shared array 't' (float[4][8], 128 bytes)"});
}

// ---------------------------------------------------------------------------
// half / bfloat16: the conversions are runtime/dtype.h's; arithmetic rounds.

KD_GLOBAL void HalfMath(kd::Ptr<const float> x, kd::Ptr<kd::half> h, kd::Ptr<kd::bfloat16> b, kd::Ptr<float> back) {
  const int i = kd::threadIdx.x;
  const float v = x[i];
  h[i] = kd::float2half_rn(v);
  b[i] = kd::float2bfloat16_rn(v);
  const kd::half hv = h[i];
  const kd::bfloat16 bv = b[i];
  back[4 * i + 0] = kd::half2float(hv * hv + hv);
  back[4 * i + 1] = kd::bfloat162float(bv * bv - bv);
  const kd::half2 h2 = kd::floats2half2_rn(v, -v);
  const kd::float2 f2 = kd::half22float2(h2);
  back[4 * i + 2] = f2.x + f2.y;
  back[4 * i + 3] = kd::LoadF(kd::Ptr<const kd::half>(h), i);
}

TEST(KdevInterp, HalfAndBfloat16) {
  std::vector<float> xs = {0.f, 1.f, -2.5f, 1e-8f, 65504.f, 70000.f, 3.14159f, 1.f / 3, -0.f, 1e-5f, 100.3f, 7.f};
  const int n = int(xs.size());
  Buffer<float> x(xs, "x"), back(4 * n, "back");
  Buffer<kd::half> h(n, "h");
  Buffer<kd::bfloat16> b(n, "b");
  ASSERT_TRUE(Launch(Cfg("half", 1, n), &HalfMath, x, h, b, back).ok());
  for (int i = 0; i < n; ++i) {
    const uint16_t hb = F32ToF16Bits(xs[i]), bb = F32ToBF16Bits(xs[i]);
    EXPECT_EQ(h.host()[i].bits_, hb);
    EXPECT_EQ(b.host()[i].bits_, bb);
    const float hf = F16BitsToF32(hb), bf = BF16BitsToF32(bb);
    const float hh = F16BitsToF32(F32ToF16Bits(F16BitsToF32(F32ToF16Bits(hf * hf)) + hf));
    const float bbv = BF16BitsToF32(F32ToBF16Bits(BF16BitsToF32(F32ToBF16Bits(bf * bf)) - bf));
    if (std::isnan(hh)) {
      EXPECT_TRUE(std::isnan(back.host()[4 * i]));
    } else {
      EXPECT_EQ(back.host()[4 * i], hh) << i;
    }
    EXPECT_EQ(back.host()[4 * i + 1], bbv) << i;
    if (!std::isinf(hf)) {
      EXPECT_EQ(back.host()[4 * i + 2], 0.f);
    }
    EXPECT_EQ(back.host()[4 * i + 3], hf);
  }
}

// ---------------------------------------------------------------------------
// Launch configuration and state across launches.

KD_GLOBAL void Nothing(int) {}

TEST(KdevInterp, LaunchConfigurationErrors) {
  EXPECT_EQ(Launch(Cfg("big", 1, 2048), &Nothing, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Launch(Cfg("zero", 0, 32), &Nothing, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Launch(Cfg("z", 1, kd::Dim3(1, 1, 65)), &Nothing, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Launch(Cfg("max", 2, 1024), &Nothing, 0).ok());
}

TEST(KdevInterp, AFailedLaunchLeavesNoState) {
  Buffer<float> out(64, "out");
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(Launch(Cfg("barrier", 1, 64), &BarrierInBranch, out, 1).ok());
    ASSERT_TRUE(Launch(Cfg("barrier", 1, 64), &BarrierInBranch, out, 0).ok());
    EXPECT_EQ(out.host()[10], 53.f);
  }
}

TEST(KdevInterp, HostDereferenceOutsideAKernel) {
  Buffer<float> x(std::vector<float>{1, 2}, "x");
  kd::Ptr<float> p = x;
  EXPECT_EQ(float(p[1]), 2.f);
  EXPECT_THROW((void)float(p[2]), std::runtime_error);
}

}  // namespace
}  // namespace cf
