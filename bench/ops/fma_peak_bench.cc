// The machine's arithmetic peak, the number every GEMM / conv speed claim of
// issue #13 is a fraction of (docs/cpu-performance.md, "The machine's peak").
//
// Each benchmark runs a register-only loop of independent vector
// multiply-adds on every thread it uses (1 and all of NumThreads()), no
// loads or stores in the loop:
//   - f32 FMA, zmm (VFMADD231PS, 16 lanes x 2 FLOP) and ymm (8 lanes x 2 FLOP,
//     what the AVX2 micro-kernel can reach);
//   - bf16 dot products, zmm VDPBF16PS: 16 f32 lanes, each += two bf16
//     products, so 32 multiply-adds = 64 FLOP per instruction.
// 16 (ymm: 12) independent accumulators per thread cover latency x throughput
// (FMA: 4 cycles x 2 per cycle on Intel, 4 x 1 zmm (2 ymm) on Zen 4;
// VDPBF16PS: ~6 x 1-2), so the loop is throughput-bound. The FMA chains
// iterate acc = acc * x + y with x just below 1 (they converge, no overflow,
// no denormals); the dot-product chains add products of 2^-10 each (they grow
// slowly and stay normal). Threads are plain std::threads started per
// benchmark iteration behind a start flag; the time is the wall time from the
// start flag to the last thread's end (manual time), so "GFLOP/s" is the
// aggregate rate of all threads.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "runtime/thread_pool.h"

namespace cf::bench {
namespace {

constexpr int kChains = 16;
// Loop iterations per thread per benchmark iteration (kChains instructions
// each): ~20-40 ms at the peaks seen here.
constexpr int64_t kIters = int64_t{1} << 22;

// The sum of 16 lanes (_mm512_reduce_add_ps trips GCC 12's -Wuninitialized).
__attribute__((target("avx512f"))) float Sum16(__m512 v) {
  alignas(64) float e[16];
  _mm512_store_ps(e, v);
  float r = 0;
  for (float x : e) r += x;
  return r;
}

// Each loop returns the sum of its accumulators, so it cannot be dropped.
__attribute__((target("avx512f"))) float FmaZmm(int64_t iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], x, y);
  }
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return Sum16(s);
}

// 12 chains: 16 ymm registers hold them and the two constants (16 spilled).
constexpr int kYmmChains = 12;
__attribute__((target("avx2,fma"))) float FmaYmm(int64_t iters) {
  __m256 acc[kYmmChains];
  for (int c = 0; c < kYmmChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.001f);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kYmmChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], x, y);
  }
  __m256 s = acc[0];
  for (int c = 1; c < kYmmChains; ++c) s = _mm256_add_ps(s, acc[c]);
  alignas(32) float v[8];
  _mm256_store_ps(v, s);
  float r = 0;
  for (float e : v) r += e;
  return r;
}

__attribute__((target("avx512f,avx512bf16"))) float DpBf16Zmm(int64_t iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_setzero_ps();
  // bf16 0x3A80 = 2^-10 in every half of every lane: each product is 2^-20.
  const __m512bh a = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3A80));
  const __m512bh b = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3A80));
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return Sum16(s);
}

struct Loop {
  float (*fn)(int64_t);
  int chains;                // vector instructions per loop iteration
  double flops_per_instr;  // FLOP of one vector instruction (2 per multiply-add)
  bool (*supported)();
};
bool HasAvx512() { return __builtin_cpu_supports("avx512f"); }
bool HasAvx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
bool HasBf16() { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"); }

// args: threads (0: all of NumThreads()).
void RunPeak(benchmark::State& state, const Loop& loop) {
  if (!loop.supported()) {
    state.SkipWithError("this CPU lacks the instruction");
    return;
  }
  const int threads = state.range(0) > 0 ? static_cast<int>(state.range(0)) : NumThreads();
  std::vector<float> sink(threads);
  double total_s = 0;
  for (auto _ : state) {
    std::atomic<bool> go{false};
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) {
        }
        sink[t] = loop.fn(kIters);
      });
    }
    while (ready.load() < threads) {
    }
    const auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    total_s += s;
    benchmark::DoNotOptimize(sink.data());
  }
  const double flops = static_cast<double>(state.iterations()) * threads * kIters * loop.chains * loop.flops_per_instr;
  state.counters["GFLOP/s"] = flops / total_s * 1e-9;
  state.counters["GFLOP/s/thread"] = flops / total_s * 1e-9 / threads;
  state.counters["threads"] = threads;
}

void BM_CpuPeakFmaF32Zmm(benchmark::State& state) { RunPeak(state, {&FmaZmm, kChains, 32, &HasAvx512}); }
void BM_CpuPeakFmaF32Ymm(benchmark::State& state) { RunPeak(state, {&FmaYmm, kYmmChains, 16, &HasAvx2}); }
void BM_CpuPeakDpBf16Zmm(benchmark::State& state) { RunPeak(state, {&DpBf16Zmm, kChains, 64, &HasBf16}); }

// Best-of-N is what docs cite: --benchmark_repetitions=N and the max.
#define CF_PEAK(fn) BENCHMARK(fn)->Arg(1)->Arg(0)->ArgName("threads")->UseManualTime()->Unit(benchmark::kMillisecond)
CF_PEAK(BM_CpuPeakFmaF32Zmm);
CF_PEAK(BM_CpuPeakFmaF32Ymm);
CF_PEAK(BM_CpuPeakDpBf16Zmm);
#undef CF_PEAK

}  // namespace
}  // namespace cf::bench
