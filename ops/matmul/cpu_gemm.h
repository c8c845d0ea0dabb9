// The CPU GEMM of the runtime (docs/cpu-performance.md, "GEMM"): C = act(A·B
// + bias) (+ residual), with A [M, K] and B [K, N] given as strided views (so
// transposes cost nothing) or as indirect rows (implicit-GEMM convolution: no
// im2col buffer), storage f32/f16/bf16 and f32 accumulation (f64 stays f64).
// Goto/BLIS structure: B is packed once into NR-column panels per KC block,
// each thread packs MC x KC blocks of A into MR-row panels, and a
// register-blocked MR x NR micro-kernel runs over them. f32/f16 storage is
// converted to f32 while packing (AVX-512F, AVX2+FMA or a portable kernel,
// chosen at run time); bf16 x bf16 is packed as bf16 k-pairs for VDPBF16PS
// where the CPU has AVX512-BF16. Used by "matmul"/"linear" and conv2d.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/scratch.h"
#include "runtime/status.h"

namespace cf::gemm {

// The fused activation applied after the bias.
enum class Activation : uint8_t { kNone, kGelu, kGeluTanh, kSilu };
// "none", "gelu" (erf), "gelu_tanh", "silu"; an error naming the others.
StatusOr<Activation> ParseActivation(const std::string& name);
const char* ActivationName(Activation a);

// A read-only matrix view: element (i, j) is p[i * rs + j * cs].
template <typename T> struct MatRef {
  const T* p = nullptr;
  int64_t rs = 0, cs = 0;
};
// Row-major [rows, cols] (transposed: the view of its transpose).
template <typename T> MatRef<T> RowMajor(const T* p, int64_t cols) { return {p, cols, 1}; }
template <typename T> MatRef<T> Transposed(const T* p, int64_t cols) { return {p, 1, cols}; }

// A matrix of `count` rows made of `taps` segments of `seg` contiguous elements
// each: element (i, k) with k = t·seg + c is rows[i·taps + t][c], or 0 when that
// pointer is null (a padding tap). Row length K = taps·seg. As GemmPacked's A,
// its rows are A's M rows; as PackB's B [K, N], its rows are B's K rows (B(k,
// n) = rows[k·taps + n / seg][n % seg], N = taps·seg).
template <typename T> struct IndirectRef {
  const T* const* rows = nullptr;
  int64_t taps = 1, seg = 0;
};

// How C [M, N] (row stride ldc) receives the product P = A·B:
//   accumulate == false: C = act(P + bias[row group, n]) + residual[m, n]
//   accumulate == true:  C = C + P        (bias, act and residual must be unset)
// bias is [N] (bias_rows == 0), or [M / bias_rows, N] with one row of biases
// per group of bias_rows rows of C (bias_rows > 0: a per-image bias, such as
// the ConvBlock's pooled branch). residual is an [M, N] view with row stride
// ldr (it may be C itself: then C = act(P + bias) + C). All sums are done in
// the accumulation type and rounded once to TC.
template <typename TC> struct Epilogue {
  const TC* bias = nullptr;  // see above, or null
  int64_t bias_rows = 0;
  Activation act = Activation::kNone;
  bool accumulate = false;
  const TC* residual = nullptr;
  int64_t ldr = 0;
};

// Accumulation type: f64 for f64 outputs, f32 otherwise.
template <typename TC> using GemmAcc = std::conditional_t<std::is_same_v<TC, double>, double, float>;

// B [K, N] packed for the micro-kernel chosen at pack time; reuse it for many
// A's (conv2d packs its weight once per call). Movable, not copyable.
template <typename Acc> class PackedB {
 public:
  PackedB() = default;
  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int nr() const { return nr_; }
  int kernel() const { return kernel_; }  // the micro-kernel it was packed for
  int64_t kc() const { return kc_; }      // its K block (KC, balanced over K)
  // Packed as bf16 k-pairs for the VDPBF16PS kernel (B was bf16), not as Acc.
  bool bf16_pairs() const { return pairs_; }
  // The panel of columns [jp * NR, (jp + 1) * NR) of rows [pc, pc + kc) (pc a
  // multiple of kc()): kc x NR values, row by row, zero-padded past N.
  const Acc* panel(int64_t pc, int64_t kc, int64_t jp) const { return data_.as<Acc>() + pc * n_pad_ + jp * kc * nr_; }
  // The same panel in the bf16 k-pair layout (bf16_pairs()): ceil(kc / 2) rows
  // of NR 32-bit words, word j of row q = {B(pc + 2q, j) low, B(pc + 2q + 1, j)
  // high}, zero past K and N. pc is even (a multiple of kc(), itself even).
  const uint32_t* pair_panel(int64_t pc, int64_t kc, int64_t jp) const {
    return data_.as<uint32_t>() + pc / 2 * n_pad_ + jp * ((kc + 1) / 2) * nr_;
  }

 private:
  template <typename A, typename Src> friend PackedB<A> PackBFrom(int64_t, int64_t, const Src&, bool);
  int64_t k_ = 0, n_ = 0, n_pad_ = 0, kc_ = 1;
  int nr_ = 0, kernel_ = 0;
  bool pairs_ = false;
  ScratchBuffer data_;  // reused across calls (runtime/scratch.h)
};

// Packs B [K, N] (in parallel). Acc = GemmAcc of the output type. bf16 B is
// packed as k-pairs for the VDPBF16PS kernel when Bf16KernelName() says so;
// the A's multiplied with such a B should be bf16 too (others are rounded to
// bf16 while packing).
template <typename TB, typename Acc> PackedB<Acc> PackB(int64_t k, int64_t n, MatRef<TB> b);
// The same for a B [K, N] whose K rows are indirect (N = b.taps · b.seg).
template <typename TB, typename Acc> PackedB<Acc> PackB(int64_t k, int64_t n, IndirectRef<TB> b);

// C [M, N] from A [M, K] and a packed B; multithreaded over MC x NC tiles of C
// (runs single-threaded when called from inside another ParallelFor).
template <typename TA, typename TC>
void GemmPacked(int64_t m, MatRef<TA> a, const PackedB<GemmAcc<TC>>& b, TC* c, int64_t ldc,
                const Epilogue<TC>& ep = {});
// The same with A's M rows indirect (K = a.taps · a.seg = b.k()).
template <typename TA, typename TC>
void GemmPacked(int64_t m, IndirectRef<TA> a, const PackedB<GemmAcc<TC>>& b, TC* c, int64_t ldc,
                const Epilogue<TC>& ep = {});

// Packs B and multiplies: C [M, N] = epilogue(A [M, K] · B [K, N]).
template <typename TA, typename TB, typename TC>
void Gemm(int64_t m, int64_t n, int64_t k, MatRef<TA> a, MatRef<TB> b, TC* c, int64_t ldc,
          const Epilogue<TC>& ep = {});

// The activation functions of the epilogue, in the accumulation type.
float ApplyActivation(Activation act, float x);
double ApplyActivation(Activation act, double x);

// Which micro-kernel float GEMMs use (for new packings of B):
// "avx512_14x32", "avx2_fma_6x16" or "generic_4x8".
const char* FloatKernelName();
// The float micro-kernels this CPU can run, best (the automatic choice) first.
std::vector<std::string> FloatKernelNames();
// Forces a float micro-kernel by name for later packings of B ("" or "auto":
// the automatic choice again), so tests and benchmarks can compare kernels in
// one run; false (nothing changed) for an unknown name or one this CPU cannot
// run. Not thread-safe against running GEMMs.
bool ForceKernel(const std::string& name);
// The micro-kernel bf16 x bf16 GEMMs use for new packings of B:
// "avx512bf16_14x32" (VDPBF16PS on bf16 k-pairs, f32 accumulators) when the
// CPU has AVX512-BF16, no float kernel is forced and EnableBf16Kernel has not
// turned it off; otherwise FloatKernelName() (bf16 converted to f32 while
// packing).
const char* Bf16KernelName();
// Turns the VDPBF16PS kernel on (the default) or off for later packings of B,
// so tests and benchmarks compare both bf16 paths in one run; returns the
// previous setting. Not thread-safe against running GEMMs.
bool EnableBf16Kernel(bool enable);
// Lets the AVX-512 f32 kernel read an f32 A given as a row-major view where
// it lies, instead of packing it into panels first (on by default;
// CF_GEMM_UNPACKED_A=0 in the environment starts it off), so tests and
// benchmarks compare both; returns the previous setting. Rows whose stride
// would crowd the L1 sets (lda a multiple of 512 floats, ...) are packed
// anyway. Not thread-safe against running GEMMs.
bool EnableUnpackedA(bool enable);
// ForceKernel("generic_4x8") when force, ForceKernel("auto") otherwise;
// returns whether the generic kernel was forced before.
bool ForceGenericKernel(bool force);

}  // namespace cf::gemm
