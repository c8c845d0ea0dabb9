// The blocked CPU GEMM (see cpu_gemm.h and docs/cpu-performance.md, "GEMM").
//
// Loop structure for one MC x NC tile of C (one task of ParallelFor):
//   for pc in K by KC:              pack A[ic:ic+MC, pc:pc+KC] into MR-row panels (L2)
//     for jr in NC by NR:           B panel KC x NR, packed once up front (stays in L1)
//       for ir in MC by MR:         micro-kernel: MR x NR accumulators in registers,
//                                   summed into a float tile of C (cbuf, L2)
//   epilogue: cbuf -> C with bias, activation, dtype conversion.
// Packing converts f16/bf16 storage to f32 once, so the micro-kernel only
// ever sees f32 (or f64) and zero padding removes every edge case from it;
// bf16 x bf16 is packed as bf16 k-pairs for the VDPBF16PS kernel instead
// (cpu_gemm_bf16.cc). A and B are strided views or indirect rows
// (internal::Src, cpu_gemm_pack.h); the packers copy contiguous runs of them.
#include "ops/matmul/cpu_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/activation/activation_math.h"
#include "ops/cpu_util.h"
#include "ops/matmul/cpu_gemm_pack.h"
#include "ops/vec_math_avx512.h"
#include "runtime/env.h"
#include "runtime/thread_pool.h"

namespace cf::gemm {
namespace {

using internal::Src;
using internal::SrcOf;


// Cache blocking lives with each kernel (KernelInfo below): for AVX2 and the
// generic kernel a KC x NR panel of B is 16 KiB (L1), the MC x KC block of A
// and the MC x NC f32 tile of C 96 KiB each (L2). MC is a multiple of the
// kernel's MR and NC of its NR.

// The forced float micro-kernel (index into FloatKernels()), -1: automatic.
std::atomic<int> g_forced{-1};
// Whether bf16 x bf16 may use the VDPBF16PS kernel (EnableBf16Kernel).
// EnableUnpackedA's setting. Reading A in place skips the packer's copy:
// 7-16% on f32 GEMMs with K = 320 / 640 (BM_CpuLinearPacked, 2026-12-03:
// 4096 x 320 -> 320 4.99 -> 4.24 ms, 77 x 320 -> 320 0.125 -> 0.105), and
// 8-15% on the Winograd conv's GEMMs.
std::atomic<bool> g_unpacked_a{EnvSwitch("CF_GEMM_UNPACKED_A")};
std::atomic<bool> g_bf16{true};

// ---- micro-kernels ------------------------------------------------------------
// Shapes: a: kc x MR packed (a[k * MR + i]), b: kc x NR packed (b[k * NR + j]),
// c: MR x NR tile with row stride ldc. first: c = a·b, otherwise c += a·b.

template <typename Acc> using MicroKernel = void (*)(int64_t kc, const Acc* a, const Acc* b, Acc* c, int64_t ldc,
                                                     bool first);

// Portable version: fixed MR x NR loops that GCC unrolls and vectorises at
// -O3 (the j loop becomes SSE2 vectors; the accumulators stay in registers).
template <typename Acc, int MR, int NR>
void MicroGeneric(int64_t kc, const Acc* __restrict a, const Acc* __restrict b, Acc* __restrict c, int64_t ldc,
                  bool first) {
  Acc acc[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[i][j] = 0;
  for (int64_t k = 0; k < kc; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Acc ai = a[i];
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < MR; ++i) {
    Acc* ci = c + i * ldc;
    if (first) {
      for (int j = 0; j < NR; ++j) ci[j] = acc[i][j];
    } else {
      for (int j = 0; j < NR; ++j) ci[j] += acc[i][j];
    }
  }
}

// AVX2 + FMA version, 6 x 16: 12 ymm accumulators, 2 ymm of B and one
// broadcast of A per row (15 of the 16 ymm registers). Compiled for AVX2 by
// the target attribute only; called after __builtin_cpu_supports says yes.
__attribute__((target("avx2,fma"))) void MicroAvx2_6x16(int64_t kc, const float* __restrict a,
                                                        const float* __restrict b, float* __restrict c,
                                                        int64_t ldc, bool first) {
  // acc[i] = row i of the tile as two 8-wide halves; the fully unrolled
  // loops keep all 12 in registers.
  __m256 acc[6][2];
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += 6;
    b += 16;
  }
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    float* ci = c + i * ldc;
    __m256 lo = acc[i][0], hi = acc[i][1];
    if (!first) {
      lo = _mm256_add_ps(lo, _mm256_loadu_ps(ci));
      hi = _mm256_add_ps(hi, _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, lo);
    _mm256_storeu_ps(ci + 8, hi);
  }
}

// AVX-512F version, MR x 32: 2·MR zmm accumulators, 2 zmm of B per k step and
// A broadcast straight from memory into the FMA ({1to16} operand), so 14 rows
// use 30 of the 32 zmm registers. Same target-attribute rule as AVX2.
// kInPlace: A is read where it lies (row-major, element (i, k) at
// a[i·lda + k]) instead of from a packed panel (a[k·MR + i]); the driver
// uses it for f32 A views whose 14 rows do not crowd the L1 sets
// (UnpackedARowsOk), so the A packer's copy is skipped.
template <int MR, bool kInPlace>
__attribute__((target("avx512f"))) inline void MicroAvx512Body(int64_t kc, const float* __restrict a, int64_t lda,
                                                               const float* __restrict b, float* __restrict c,
                                                               int64_t ldc, bool first) {
  __m512 acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    const float* ak = kInPlace ? a + k : a + k * MR;
    if constexpr (kInPlace) {
      // 14 rows' lines, two ahead, once per line: the L1 prefetcher does not
      // follow 14 streams at once.
      if ((k & 15) == 0)
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(ak + i * lda + 32), _MM_HINT_T0);
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(ak[kInPlace ? i * lda : i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    b += 32;
  }
  internal::StoreAccumulators<MR>(acc, c, ldc, first);
}
template <int MR>
__attribute__((target("avx512f"))) void MicroAvx512(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                    float* __restrict c, int64_t ldc, bool first) {
  MicroAvx512Body<MR, false>(kc, a, 0, b, c, ldc, first);
}
__attribute__((target("avx512f"))) void MicroAvx512Rows14(int64_t kc, const float* __restrict a, int64_t lda,
                                                          const float* __restrict b, float* __restrict c,
                                                          int64_t ldc, bool first) {
  MicroAvx512Body<14, true>(kc, a, lda, b, c, ldc, first);
}

// Whether 14 rows lda floats apart fall in enough distinct L1 sets (64-byte
// lines, 64 sets) that reading A unpacked does not thrash: at most 2 rows per set.
bool UnpackedARowsOk(int64_t lda) {
  int per_set[64] = {};
  for (int64_t i = 0; i < 14; ++i)
    if (++per_set[(i * lda * 4 / 64) % 64] > 2) return false;
  return true;
}

template <typename Acc> struct KernelInfo {
  int mr, nr;
  int64_t mc, kc, nc;  // cache blocking for this kernel
  MicroKernel<Acc> fn;
  const char* name;
  bool (*supported)();
  bool pairs = false;  // the bf16 k-pair kernel (fn unused): bf16 x bf16 only
};

bool Always() { return true; }
bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
bool HasAvx512() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

// The float kernels, best first; the automatic choice is the first one the
// CPU supports. PackedB records the index of the kernel it was packed for.
const std::vector<KernelInfo<float>>& FloatKernels() {
  static const std::vector<KernelInfo<float>> k = {
      // KC up to 384 so K = 320 (SD1.5's attention width) is one block; the
      // 14 x 384 A micro-panel stays in L1 (48 KiB), the B panel streams from
      // L2 at 2 zmm loads per 28 FMAs. MC x KC of A: 252 KiB, C tile 672 KiB
      // (L2 2 MiB). Picked by measurement over MC 112-224, KC 256/384, NC 512/1024.
      {14, 32, 168, 384, 1024, &MicroAvx512<14>, "avx512_14x32", &HasAvx512},
      {6, 16, 96, 256, 256, &MicroAvx2_6x16, "avx2_fma_6x16", &HasAvx2Fma},
      {4, 8, 96, 256, 256, &MicroGeneric<float, 4, 8>, "generic_4x8", &Always},
      // bf16 x bf16 only, never a float choice; kept last-but-not-generic
      // lookups below skip it. KC counts k (2 per pair).
      {14, 32, 168, 384, 1024, nullptr, "avx512bf16_14x32", &internal::HasAvx512Bf16, true},
  };
  return k;
}
constexpr int kGenericKernel = 2;  // FloatKernels()'s portable kernel
constexpr int kBf16Kernel = 3;     // FloatKernels()'s k-pair kernel
const KernelInfo<double>& DoubleKernel() {
  static const KernelInfo<double> k{4, 4, 96, 256, 256, &MicroGeneric<double, 4, 4>, "generic_4x4_f64", &Always};
  return k;
}

// The kernel index used for new packings of B (b_bf16: B is bf16 storage).
template <typename Acc> int ChooseKernel(bool b_bf16 = false) {
  if constexpr (std::is_same_v<Acc, double>) {
    return 0;
  } else {
    const int forced = g_forced.load();
    if (forced >= 0) return forced;
    const auto& ks = FloatKernels();
    if (b_bf16 && g_bf16.load() && ks[kBf16Kernel].supported()) return kBf16Kernel;
    for (size_t i = 0; i < ks.size(); ++i)
      if (!ks[i].pairs && ks[i].supported()) return static_cast<int>(i);
    return kGenericKernel;
  }
}
template <typename Acc> const KernelInfo<Acc>& KernelAt(int index) {
  if constexpr (std::is_same_v<Acc, double>) {
    (void)index;
    return DoubleKernel();
  } else {
    return FloatKernels()[index];
  }
}

// ---- packing -------------------------------------------------------------------

template <typename Acc, typename T> inline Acc LoadAs(const T* p, int64_t i) { return static_cast<Acc>(Load(p, i)); }

// A[i0 : i0+mc, p0 : p0+kc] into ceil(mc / MR) panels of kc x MR, zero-padded
// rows. Writes are contiguous (k outer): one value per 56-byte stride (i
// outer) cannot be merged by the store buffer (~2x slower at MR = 14).
// The AVX-512 kernel's f32 panel: one masked gather per k collects the 14
// rows' values (a contiguous 56-byte write), about 3x fewer instructions than
// the scalar loop. Only with mr == 14, i.e. after the AVX-512 kernel was
// chosen, and row strides whose 13 * rs fits the gather's int32 offsets.
__attribute__((target("avx512f"))) void PackAPanel14Avx512(const float* src, int64_t rs, int64_t kc, float* d) {
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 0),
                                         _mm512_set1_epi32(static_cast<int>(rs)));
  constexpr __mmask16 kRows = 0x3FFF;
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), kRows, idx, src + k, 4);
    _mm512_mask_storeu_ps(d + k * 14, kRows, v);
  }
}

// A full MR-row panel of row pointers (null replaced by zeros), run
// elements each: d[k * MR + i] = ptr[i][k]. f32 with MR = 14 gathers
// (internal::GatherWords14), the rest converts element by element.
template <int MR, typename TA, typename Acc> void PackAPanelPtrs(const TA* const* ptr, int64_t run, Acc* d) {
  if constexpr (MR == 14 && std::is_same_v<TA, float> && std::is_same_v<Acc, float>) {
    if (HasAvx512()) {
      const void* vp[MR];
      for (int i = 0; i < MR; ++i) vp[i] = ptr[i];
      internal::GatherWords14(vp, run, reinterpret_cast<uint32_t*>(d));
      return;
    }
  }
  for (int64_t k = 0; k < run; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) d[k * MR + i] = LoadAs<Acc>(ptr[i], k);
  }
}

template <typename TA, typename Acc>
void PackA(const Src<TA>& src, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int mr, Acc* dst) {
  const MatRef<TA>& a = src.m;
  for (int64_t ir = 0; ir < mc; ir += mr) {
    const int rows = static_cast<int>(std::min<int64_t>(mr, mc - ir));
    Acc* d = dst + ir * kc;
    if (!src.row_contiguous()) {  // columns contiguous (transposed A): read along i
      const TA* s = a.p + (i0 + ir) * a.rs + p0 * a.cs;
      if constexpr (std::is_same_v<TA, Acc>) {
        if (a.rs == 1) {  // dyᵀ of a conv's weight gradient: a run of rows per k
          for (int64_t k = 0; k < kc; ++k) {
            std::memcpy(d + k * mr, s + k * a.cs, static_cast<size_t>(rows) * sizeof(Acc));
            std::fill(d + k * mr + rows, d + (k + 1) * mr, Acc(0));
          }
          continue;
        }
      }
      for (int64_t k = 0; k < kc; ++k) {
        const TA* sk = s + k * a.cs;
        for (int i = 0; i < rows; ++i) d[k * mr + i] = LoadAs<Acc>(sk, i * a.rs);
        for (int i = rows; i < mr; ++i) d[k * mr + i] = 0;
      }
      continue;
    }
    if constexpr (std::is_same_v<TA, float>) {
      if (!src.indirect() && rows == 14 && mr == 14 && a.rs <= (int64_t{1} << 31) / 16) {
        PackAPanel14Avx512(a.p + (i0 + ir) * a.rs + p0, a.rs, kc, d);
        continue;
      }
    }
    // Runs of contiguous elements (the whole block for a view; up to a
    // segment's end for indirect rows), MR row pointers each.
    for (int64_t k = 0; k < kc;) {
      const TA* ptr[16];
      int64_t run = 0;
      ptr[0] = internal::RowRun(src, i0 + ir, p0 + k, kc - k, &run);
      for (int i = 1; i < rows; ++i) {
        int64_t r = 0;
        ptr[i] = internal::RowRun(src, i0 + ir + i, p0 + k, kc - k, &r);
      }
      const TA* z = internal::Zeros<TA>(run);
      for (int i = 0; i < mr; ++i)
        if (i >= rows || ptr[i] == nullptr) ptr[i] = z;
      Acc* dk = d + k * mr;
      switch (mr) {
        case 14: PackAPanelPtrs<14>(ptr, run, dk); break;
        case 6: PackAPanelPtrs<6>(ptr, run, dk); break;
        case 4: PackAPanelPtrs<4>(ptr, run, dk); break;
        default:
          for (int64_t kk = 0; kk < run; ++kk)
            for (int i = 0; i < mr; ++i) dk[kk * mr + i] = LoadAs<Acc>(ptr[i], kk);
      }
      k += run;
    }
  }
}

// Per-thread scratch that grows and is kept (one per accumulation type and use).
template <typename Acc, int kTag> Acc* Scratch(int64_t n) {
  thread_local std::unique_ptr<Acc[]> buf;
  thread_local int64_t cap = 0;
  if (n > cap) {
    buf.reset(new Acc[n]);
    cap = n;
  }
  return buf.get();
}

template <typename TC, typename F, Activation kAct>
void WriteRow(const F* __restrict src, TC* dst, int64_t n, const TC* __restrict bias, const TC* res) {
  if constexpr (std::is_same_v<TC, F> && kAct == Activation::kNone) {
    // Same type, no activation: plain loops GCC vectorises (the generic
    // path below is per element through Load/Store). res may be dst.
    if (bias != nullptr && res != nullptr) {
      for (int64_t j = 0; j < n; ++j) dst[j] = (src[j] + bias[j]) + res[j];
    } else if (bias != nullptr) {
      for (int64_t j = 0; j < n; ++j) dst[j] = src[j] + bias[j];
    } else if (res != nullptr) {
      for (int64_t j = 0; j < n; ++j) dst[j] = src[j] + res[j];
    } else {
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(F));
    }
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    F v = src[j];
    if (bias != nullptr) v += static_cast<F>(Load(bias, j));
    if constexpr (kAct != Activation::kNone) v = ApplyActivation(kAct, v);
    if (res != nullptr) v += static_cast<F>(Load(res, j));
    Store(dst, j, v);
  }
}

// WriteRow for f32 accumulators on AVX-512, 16 columns at a time (masked
// tail): the same sums in the same order, the activation through the
// vectorised functions of ops/vec_math_avx512.h (docs/vec-math.md, those the
// elementwise ops use) and f16 / bf16 rounded as runtime/dtype.h does. At
// K = 320 the scalar loop was a visible share of a GEMM in f16 / bf16 or with
// an activation (one libm call and one rounding per element).
template <typename TC, Activation kAct>
CF_VM_TARGET void WriteRowAvx512(const float* __restrict src, TC* dst, int64_t n, const TC* __restrict bias,
                                 const TC* res) {
  for (int64_t j = 0; j < n; j += vm::kLanes) {
    const __mmask16 m = vm::FirstLanes(n - j);
    __m512 v = _mm512_maskz_loadu_ps(m, src + j);
    if (bias != nullptr) v = _mm512_add_ps(v, vm::Load(bias + j, m));
    if constexpr (kAct == Activation::kSilu) v = vm::Silu(v);
    if constexpr (kAct == Activation::kGelu) v = vm::GeluErf(v);
    if constexpr (kAct == Activation::kGeluTanh) v = vm::GeluTanh(v);
    if (res != nullptr) v = _mm512_add_ps(v, vm::Load(res + j, m));
    vm::Store(dst + j, v, m);
  }
}
template <typename TC> CF_VM_TARGET void AccumulateRowAvx512(const float* __restrict src, TC* dst, int64_t n) {
  for (int64_t j = 0; j < n; j += vm::kLanes) {
    const __mmask16 m = vm::FirstLanes(n - j);
    vm::Store(dst + j, _mm512_add_ps(vm::Load(dst + j, m), _mm512_maskz_loadu_ps(m, src + j)), m);
  }
}

// cbuf (mc x nc, row stride ldcb) -> rows [i0, i0 + mc) x columns [j0, j0 +
// nc) of C [M, n] through the epilogue.
template <typename TC, typename F>
void WriteTile(const F* cbuf, int64_t ldcb, int64_t mc, int64_t nc, TC* c, int64_t ldc, int64_t i0, int64_t j0,
               int64_t n, const Epilogue<TC>& ep) {
  constexpr bool kVec = std::is_same_v<F, float>;
  const bool vec = kVec && vm::HasAvx512();
  for (int64_t i = 0; i < mc; ++i) {
    const F* src = cbuf + i * ldcb;
    TC* dst = c + (i0 + i) * ldc + j0;
    if (ep.accumulate) {
      if constexpr (kVec) {
        if (vec) {
          AccumulateRowAvx512<TC>(src, dst, nc);
          continue;
        }
      }
      for (int64_t j = 0; j < nc; ++j) Store(dst, j, Load(dst, j) + src[j]);
      continue;
    }
    const int64_t bias_row = ep.bias_rows > 0 ? (i0 + i) / ep.bias_rows : 0;
    const TC* bias = ep.bias ? ep.bias + bias_row * n + j0 : nullptr;
    const TC* res = ep.residual ? ep.residual + (i0 + i) * ep.ldr + j0 : nullptr;
    if constexpr (kVec) {
      if (vec) {
        switch (ep.act) {
          case Activation::kNone: WriteRowAvx512<TC, Activation::kNone>(src, dst, nc, bias, res); break;
          case Activation::kGelu: WriteRowAvx512<TC, Activation::kGelu>(src, dst, nc, bias, res); break;
          case Activation::kGeluTanh: WriteRowAvx512<TC, Activation::kGeluTanh>(src, dst, nc, bias, res); break;
          case Activation::kSilu: WriteRowAvx512<TC, Activation::kSilu>(src, dst, nc, bias, res); break;
        }
        continue;
      }
    }
    switch (ep.act) {
      case Activation::kNone: WriteRow<TC, F, Activation::kNone>(src, dst, nc, bias, res); break;
      case Activation::kGelu: WriteRow<TC, F, Activation::kGelu>(src, dst, nc, bias, res); break;
      case Activation::kGeluTanh: WriteRow<TC, F, Activation::kGeluTanh>(src, dst, nc, bias, res); break;
      case Activation::kSilu: WriteRow<TC, F, Activation::kSilu>(src, dst, nc, bias, res); break;
    }
  }
}

}  // namespace

// ---- public API ------------------------------------------------------------------

StatusOr<Activation> ParseActivation(const std::string& name) {
  if (name == "none" || name.empty()) return Activation::kNone;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_tanh") return Activation::kGeluTanh;
  if (name == "silu") return Activation::kSilu;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown activation '", name, "' (expected none, gelu, gelu_tanh or silu)"));
}

const char* ActivationName(Activation a) {
  switch (a) {
    case Activation::kNone: return "none";
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kSilu: return "silu";
  }
  return "?";
}

// The activation family's own formulas (ops/activation/activation_math.h),
// so the fused epilogue computes exactly what "gelu" / "silu" compute.
template <typename F> static F ApplyActivationT(Activation act, F x) {
  switch (act) {
    case Activation::kNone: return x;
    case Activation::kGelu: return act::Forward<act::Kind::kGeluErf>(x, F(0));
    case Activation::kGeluTanh: return act::Forward<act::Kind::kGeluTanh>(x, F(0));
    case Activation::kSilu: return act::Forward<act::Kind::kSilu>(x, F(0));
  }
  return x;
}
float ApplyActivation(Activation act, float x) { return ApplyActivationT(act, x); }
double ApplyActivation(Activation act, double x) { return ApplyActivationT(act, x); }

const char* FloatKernelName() { return KernelAt<float>(ChooseKernel<float>()).name; }
const char* Bf16KernelName() { return KernelAt<float>(ChooseKernel<float>(true)).name; }

std::vector<std::string> FloatKernelNames() {
  std::vector<std::string> names;
  for (const auto& k : FloatKernels())
    if (!k.pairs && k.supported()) names.push_back(k.name);
  return names;
}

bool ForceKernel(const std::string& name) {
  if (name.empty() || name == "auto") {
    g_forced.store(-1);
    return true;
  }
  const auto& ks = FloatKernels();
  for (size_t i = 0; i < ks.size(); ++i) {
    if (name == ks[i].name && !ks[i].pairs && ks[i].supported()) {
      g_forced.store(static_cast<int>(i));
      return true;
    }
  }
  return false;
}

bool ForceGenericKernel(bool force) {
  const int prev = g_forced.exchange(force ? kGenericKernel : -1);
  return prev == kGenericKernel;
}

bool EnableUnpackedA(bool enable) { return g_unpacked_a.exchange(enable); }
bool EnableBf16Kernel(bool enable) { return g_bf16.exchange(enable); }

// PackB for any source (a view or indirect rows); b_bf16: B is bf16 storage
// (the k-pair kernel may be chosen).
template <typename Acc, typename S> PackedB<Acc> PackBFrom(int64_t k, int64_t n, const S& b, bool b_bf16) {
  using TB = std::remove_cv_t<std::remove_pointer_t<decltype(b.m.p)>>;
  const int kernel = ChooseKernel<Acc>(b_bf16);
  const KernelInfo<Acc>& ki = KernelAt<Acc>(kernel);
  const int nr = ki.nr;
  // K split evenly into ceil(K / KC) blocks (K = 320 is one block, not 256 +
  // 64, which would write the C tile twice); a multiple of 8 below K (so
  // every block but the last holds whole k-pairs).
  const int64_t nblocks = std::max<int64_t>(1, (k + ki.kc - 1) / ki.kc);
  const int64_t kKC = std::max<int64_t>(1, std::min(k, ((k + nblocks - 1) / nblocks + 7) / 8 * 8));
  const int64_t kblocks = (k + kKC - 1) / kKC;
  PackedB<Acc> p;
  p.k_ = k;
  p.n_ = n;
  p.nr_ = nr;
  p.kernel_ = kernel;
  p.kc_ = kKC;
  p.pairs_ = ki.pairs;
  p.n_pad_ = (n + nr - 1) / nr * nr;
  const int64_t panels = p.n_pad_ / nr;
  // Pairs: ceil(K / 2) rows of 32-bit words (4 bytes, as Acc = float).
  const int64_t rows = ki.pairs ? (k + 1) / 2 : k;
  p.data_ = ScratchBuffer(std::max<int64_t>(1, rows * p.n_pad_) * static_cast<int64_t>(sizeof(Acc)));
  const PackedB<Acc>& view = p;  // its panel offsets; the data is p's own, written here
  // One task per (K block, panel); each writes its own kc x NR slab.
  ParallelFor(0, kblocks * panels, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, std::min(k, kKC))),
              [&](int64_t lo, int64_t hi) {
                for (int64_t t = lo; t < hi; ++t) {
                  const int64_t pc = (t / panels) * kKC, jp = t % panels;
                  const int64_t kc = std::min(kKC, k - pc);
                  const int64_t j0 = jp * nr;
                  const int cols = static_cast<int>(std::min<int64_t>(nr, n - j0));
                  if constexpr (std::is_same_v<TB, bf16_t>) {
                    if (ki.pairs) {
                      internal::PackBPairs(b, pc, kc, j0, cols, nr, const_cast<uint32_t*>(view.pair_panel(pc, kc, jp)));
                      continue;
                    }
                  }
                  Acc* d = const_cast<Acc*>(view.panel(pc, kc, jp));
                  if (b.row_contiguous()) {
                    for (int64_t kk = 0; kk < kc; ++kk) {
                      Acc* dk = d + kk * nr;
                      for (int j = 0; j < cols;) {
                        int64_t run = 0;
                        const TB* s = internal::RowRun(b, pc + kk, j0 + j, cols - j, &run);
                        if (s != nullptr) {
                          for (int64_t jj = 0; jj < run; ++jj) dk[j + jj] = LoadAs<Acc>(s, jj);
                        } else {
                          for (int64_t jj = 0; jj < run; ++jj) dk[j + jj] = 0;
                        }
                        j += static_cast<int>(run);
                      }
                      for (int j = cols; j < nr; ++j) dk[j] = 0;
                    }
                  } else {  // B transposed in memory (a weight [N, K]): NR streams along k
                    // k outer so the writes are contiguous (j outer wrote one
                    // value per NR-float stride: 3x slower, and it dominates
                    // linear at small M such as 77 tokens).
                    const TB* s = b.m.p + pc * b.m.rs + j0 * b.m.cs;
                    for (int64_t kk = 0; kk < kc; ++kk) {
                      Acc* dk = d + kk * nr;
                      for (int j = 0; j < cols; ++j) dk[j] = LoadAs<Acc>(s, kk * b.m.rs + j * b.m.cs);
                      for (int j = cols; j < nr; ++j) dk[j] = 0;
                    }
                  }
                }
              });
  return p;
}

template <typename TB, typename Acc> PackedB<Acc> PackB(int64_t k, int64_t n, MatRef<TB> b) {
  return PackBFrom<Acc>(k, n, SrcOf(b), std::is_same_v<TB, bf16_t>);
}
template <typename TB, typename Acc> PackedB<Acc> PackB(int64_t k, int64_t n, IndirectRef<TB> b) {
  return PackBFrom<Acc>(k, n, SrcOf(b), std::is_same_v<TB, bf16_t>);
}

namespace {


// GemmPacked for any A source.
template <typename TA, typename TC>
void GemmPackedFrom(int64_t m, const Src<TA>& a, const PackedB<GemmAcc<TC>>& b, TC* c, int64_t ldc,
                    const Epilogue<TC>& ep) {
  using Acc = GemmAcc<TC>;
  const int64_t n = b.n(), k = b.k();
  if (m <= 0 || n <= 0) return;
  const KernelInfo<Acc>& ki = KernelAt<Acc>(b.kernel());
  const int mr = ki.mr, nr = ki.nr;
  const int64_t kMC = ki.mc, kKC = b.kc();
  const bool pairs = b.bf16_pairs();
  // Tile width: N split evenly into ceil(N / NC) NR-multiples (N = 320 is one
  // 320-wide tile, not 256 + 64, so each packed A block serves all of N),
  // and split further when there are too few tiles to keep every thread busy
  // (M = 77, or M <= MC with a large N).
  const int64_t mtiles = (m + kMC - 1) / kMC;
  int64_t nparts = (n + ki.nc - 1) / ki.nc;
  const int64_t want = 2 * int64_t{NumThreads()};
  if (mtiles * nparts < want) nparts = std::max(nparts, (want + mtiles - 1) / mtiles);
  const int64_t n_pad = (n + nr - 1) / nr * nr;
  const int64_t nc_tile = std::max<int64_t>(nr, ((n_pad + nparts - 1) / nparts + nr - 1) / nr * nr);
  const int64_t ntiles = (n + nc_tile - 1) / nc_tile;
  // The C tile's row stride, padded off a multiple of 4 KiB so the MR rows a
  // micro-kernel updates do not share L1 sets.
  const int64_t ldcb = nc_tile % 1024 == 0 ? nc_tile + 16 : nc_tile;
  // f32 A in a plain row-major view, on the AVX-512 kernel: read in place.
  bool unpacked_a = false;
  if constexpr (std::is_same_v<Acc, float> && std::is_same_v<TA, float>)
    unpacked_a = g_unpacked_a.load() && !pairs && !a.indirect() && a.m.cs == 1 && ki.fn == &MicroAvx512<14> &&
                 UnpackedARowsOk(a.m.rs);
  ParallelFor(0, mtiles * ntiles, 1, [&](int64_t lo, int64_t hi) {
    Acc* abuf = Scratch<Acc, 0>(kMC * kKC + kMC);  // + kMC: k-pair rounding
    Acc* cbuf = Scratch<Acc, 1>(kMC * ldcb);
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t i0 = (t / ntiles) * kMC, j0 = (t % ntiles) * nc_tile;
      const int64_t mc = std::min(kMC, m - i0), nc = std::min(nc_tile, n - j0);
      const int64_t mc_pad = (mc + mr - 1) / mr * mr;
      if (k == 0) std::fill_n(cbuf, kMC * ldcb, Acc(0));
      for (int64_t pc = 0; pc < k; pc += kKC) {
        const int64_t kc = std::min(kKC, k - pc);
        if constexpr (std::is_same_v<Acc, float>) {
          if (pairs) {
            uint32_t* apairs = reinterpret_cast<uint32_t*>(abuf);
            const int64_t kp = (kc + 1) / 2;
            internal::PackAPairs(a, i0, mc, pc, kc, apairs);
            for (int64_t jr = 0; jr < nc; jr += nr) {
              const uint32_t* bp = b.pair_panel(pc, kc, (j0 + jr) / nr);
              for (int64_t ir = 0; ir < mc_pad; ir += mr)
                internal::MicroBf16_14x32(kp, apairs + ir * kp, bp, cbuf + ir * ldcb + jr, ldcb, pc == 0);
            }
            continue;
          }
        }
        if constexpr (std::is_same_v<Acc, float> && std::is_same_v<TA, float>) {
          if (unpacked_a) {  // full 14-row panels read in place; a last partial panel packed
            const int64_t full = mc / 14 * 14;
            if (full < mc) PackA(a, i0 + full, mc - full, pc, kc, mr, abuf);
            for (int64_t jr = 0; jr < nc; jr += nr) {
              const Acc* bp = b.panel(pc, kc, (j0 + jr) / nr);
              for (int64_t ir = 0; ir < full; ir += mr)
                MicroAvx512Rows14(kc, a.m.p + (i0 + ir) * a.m.rs + pc, a.m.rs, bp, cbuf + ir * ldcb + jr, ldcb,
                                  pc == 0);
              if (full < mc) ki.fn(kc, abuf, bp, cbuf + full * ldcb + jr, ldcb, pc == 0);
            }
            continue;
          }
        }
        PackA(a, i0, mc, pc, kc, mr, abuf);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const Acc* bp = b.panel(pc, kc, (j0 + jr) / nr);
          for (int64_t ir = 0; ir < mc_pad; ir += mr) ki.fn(kc, abuf + ir * kc, bp, cbuf + ir * ldcb + jr, ldcb, pc == 0);
        }
      }
      WriteTile(cbuf, ldcb, mc, nc, c, ldc, i0, j0, n, ep);
    }
  });
}

}  // namespace

template <typename TA, typename TC>
void GemmPacked(int64_t m, MatRef<TA> a, const PackedB<GemmAcc<TC>>& b, TC* c, int64_t ldc, const Epilogue<TC>& ep) {
  GemmPackedFrom<TA, TC>(m, SrcOf(a), b, c, ldc, ep);
}
template <typename TA, typename TC>
void GemmPacked(int64_t m, IndirectRef<TA> a, const PackedB<GemmAcc<TC>>& b, TC* c, int64_t ldc,
                const Epilogue<TC>& ep) {
  GemmPackedFrom<TA, TC>(m, SrcOf(a), b, c, ldc, ep);
}

template <typename TA, typename TB, typename TC>
void Gemm(int64_t m, int64_t n, int64_t k, MatRef<TA> a, MatRef<TB> b, TC* c, int64_t ldc, const Epilogue<TC>& ep) {
  if (m <= 0 || n <= 0) return;
  PackedB<GemmAcc<TC>> pb = PackB<TB, GemmAcc<TC>>(k, n, b);
  GemmPacked<TA, TC>(m, a, pb, c, ldc, ep);
}

// Instantiations: same storage in and out (matmul, conv forward and backward
// input), and f32 accumulation outputs (conv backward weight sums over chunks).
#define CF_GEMM_PACK(T, Acc)                                                       \
  template PackedB<Acc> PackB<T, Acc>(int64_t, int64_t, MatRef<T>); \
  template PackedB<Acc> PackB<T, Acc>(int64_t, int64_t, IndirectRef<T>);
#define CF_GEMM_INSTANTIATE(T, TC)                                                                         \
  template void GemmPacked<T, TC>(int64_t, MatRef<T>, const PackedB<GemmAcc<TC>>&, TC*, int64_t,         \
                                  const Epilogue<TC>&);                                                    \
  template void GemmPacked<T, TC>(int64_t, IndirectRef<T>, const PackedB<GemmAcc<TC>>&, TC*, int64_t,    \
                                  const Epilogue<TC>&);                                                    \
  template void Gemm<T, T, TC>(int64_t, int64_t, int64_t, MatRef<T>, MatRef<T>, TC*, int64_t, const Epilogue<TC>&);
CF_GEMM_PACK(float, float)
CF_GEMM_PACK(double, double)
CF_GEMM_PACK(f16_t, float)
CF_GEMM_PACK(bf16_t, float)
CF_GEMM_INSTANTIATE(float, float)
CF_GEMM_INSTANTIATE(double, double)
CF_GEMM_INSTANTIATE(f16_t, f16_t)
CF_GEMM_INSTANTIATE(bf16_t, bf16_t)
CF_GEMM_INSTANTIATE(f16_t, float)
CF_GEMM_INSTANTIATE(bf16_t, float)
#undef CF_GEMM_PACK
#undef CF_GEMM_INSTANTIATE

}  // namespace cf::gemm
