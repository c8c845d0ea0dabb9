// The CPU GEMM of the runtime (docs/cpu-gemm.md): C = act(A·B + bias), with
// A [M, K] and B [K, N] given as strided views (so transposes cost nothing),
// storage f32/f16/bf16 converted to f32 while packing (f64 stays f64), and
// f32 (f64) accumulation. Goto/BLIS structure: B is packed once into
// NR-column panels per KC block, each thread packs MC x KC blocks of A into
// MR-row panels, and a register-blocked MR x NR micro-kernel (AVX-512F or
// AVX2+FMA when the CPU has it, chosen at run time, otherwise a portable one
// GCC vectorises for SSE2) runs over them. Used by "matmul"/"linear" and by conv2d's im2col path.
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
  // The panel of columns [jp * NR, (jp + 1) * NR) of rows [pc, pc + kc) (pc a
  // multiple of kc()): kc x NR values, row by row, zero-padded past N.
  const Acc* panel(int64_t pc, int64_t kc, int64_t jp) const { return data_.as<Acc>() + pc * n_pad_ + jp * kc * nr_; }

 private:
  template <typename TB, typename A> friend PackedB<A> PackB(int64_t, int64_t, MatRef<TB>);
  int64_t k_ = 0, n_ = 0, n_pad_ = 0, kc_ = 1;
  int nr_ = 0, kernel_ = 0;
  ScratchBuffer data_;  // reused across calls (runtime/scratch.h)
};

// Packs B [K, N] (in parallel). Acc = GemmAcc of the output type.
template <typename TB, typename Acc> PackedB<Acc> PackB(int64_t k, int64_t n, MatRef<TB> b);

// C [M, N] from A [M, K] and a packed B; multithreaded over MC x NC tiles of C
// (runs single-threaded when called from inside another ParallelFor).
template <typename TA, typename TC>
void GemmPacked(int64_t m, MatRef<TA> a, const PackedB<GemmAcc<TC>>& b, TC* c, int64_t ldc,
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
// ForceKernel("generic_4x8") when force, ForceKernel("auto") otherwise;
// returns whether the generic kernel was forced before.
bool ForceGenericKernel(bool force);

}  // namespace cf::gemm
