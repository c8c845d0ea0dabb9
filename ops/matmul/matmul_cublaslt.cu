// CUDA kernels of "matmul" and "linear" (definitions in matmul.cc): one
// cublasLtMatmul per call (strided-batched), with the bias and tanh-GELU
// epilogues fused by cuBLASLt and erf-GELU / SiLU applied by a small kernel
// afterwards (cuBLASLt has no epilogue for them). The fused forms of graph
// passes: a residual without an activation is cuBLASLt's beta = 1 with
// C = residual; an image bias, or a residual after an activation, is one pass
// after the product (FusedEpilogueInPlace); K = 0 is a fill and that pass.
//
// Row-major vs cuBLAS's column-major: a row-major [R, C] matrix is the
// column-major [C, R] matrix, its transpose. So the row-major product
// C = A·B is computed as the column-major Cᵀ = Bᵀ·Aᵀ: cuBLASLt's first
// operand is our b, its second our a, and its D is Cᵀ ([N, M], ld N), whose
// rows are our columns, which is also where cuBLASLt's bias vector goes.
//
// f16/bf16/f32 storage, f32 accumulation (CUBLAS_COMPUTE_32F); f32 inputs use
// TF32 tensor cores only with allow_tf32. One cuBLASLt handle per device
// (created lazily, never destroyed), workspace from ctx.workspace, and the
// heuristic's choice cached per (shapes, types, epilogue, alignment).
#include <cublasLt.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "ops/cuda_util.cuh"
#include "ops/matmul/matmul_dims.h"
#include "ops/matmul/matmul_epilogue_kernels.cuh"
#include "runtime/device_guard.h"

namespace cf {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;  // cuBLAS's recommendation for Hopper

// cuBLASLt computes GELU with the tanh approximation (as PyTorch's
// _addmm_activation assumes), so only "gelu_tanh" maps to its epilogue.
constexpr bool kLtGeluIsTanh = true;

// Smallest bias alignment (bytes) handed to cuBLASLt's bias epilogue.
constexpr uint32_t kLtBiasAlign = 16;

StatusOr<cublasLtHandle_t> LtHandle(int device) {
  static std::mutex mu;
  static std::map<int, cublasLtHandle_t>* handles = new std::map<int, cublasLtHandle_t>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = handles->find(device);
  if (it != handles->end()) return it->second;
  cublasLtHandle_t h = nullptr;
  CF_CUBLAS_CHECK(cublasLtCreate(&h));
  (*handles)[device] = h;
  return h;
}

// Destroys a cuBLASLt descriptor at scope exit.
template <typename H, cublasStatus_t (*kDestroy)(H)> struct LtOwned {
  H h = nullptr;
  LtOwned() = default;
  LtOwned(const LtOwned&) = delete;
  LtOwned& operator=(const LtOwned&) = delete;
  ~LtOwned() {
    if (h) (void)kDestroy(h);
  }
};
using MatmulDesc = LtOwned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
using Layout = LtOwned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
using Preference = LtOwned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

// One (strided-batched) column-major product D [rows_d, cols_d] = op(X)·op(Y).
struct LtProblem {
  cudaDataType_t type;
  cublasComputeType_t compute;
  cublasOperation_t op_x, op_y;
  uint64_t x_rows, x_cols, y_rows, y_cols, d_rows, d_cols;  // as stored; ld = rows
  int batch = 1;
  int64_t stride_x = 0, stride_y = 0, stride_d = 0;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  const void* x = nullptr;
  const void* y = nullptr;
  void* d = nullptr;
  // D = op(X)·op(Y) + beta·C (+ bias); C has D's layout. beta is 0 or 1 (a
  // fused residual, graph/passes/epilogue.h).
  const void* c = nullptr;
  float beta = 0.0f;
};

uint32_t Alignment(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v % a) != 0) a /= 2;
  return a;
}

Status SetLayout(Layout& l, cudaDataType_t type, uint64_t rows, uint64_t cols, int batch, int64_t stride) {
  CF_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l.h, type, rows, cols, static_cast<int64_t>(rows)));
  if (batch > 1) {
    CF_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l.h, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof(batch)));
    CF_CUBLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l.h, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return absl::OkStatus();
}

// The heuristic's first choice per problem signature, per process.
std::mutex g_algo_mu;
std::unordered_map<std::string, cublasLtMatmulAlgo_t>& AlgoCache() {
  static auto* cache = new std::unordered_map<std::string, cublasLtMatmulAlgo_t>();
  return *cache;
}

Status RunLt(int device, const LtProblem& p, cudaStream_t stream, void* workspace) {
  CF_ASSIGN_OR_RETURN(cublasLtHandle_t handle, LtHandle(device));
  MatmulDesc desc;
  CF_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.h, p.compute, CUDA_R_32F));
  CF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.h, CUBLASLT_MATMUL_DESC_TRANSA, &p.op_x, sizeof(p.op_x)));
  CF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.h, CUBLASLT_MATMUL_DESC_TRANSB, &p.op_y, sizeof(p.op_y)));
  CF_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(desc.h, CUBLASLT_MATMUL_DESC_EPILOGUE, &p.epilogue, sizeof(p.epilogue)));
  if (p.bias)
    CF_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.h, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof(p.bias)));
  Layout lx, ly, ld;
  CF_RETURN_IF_ERROR(SetLayout(lx, p.type, p.x_rows, p.x_cols, p.batch, p.stride_x));
  CF_RETURN_IF_ERROR(SetLayout(ly, p.type, p.y_rows, p.y_cols, p.batch, p.stride_y));
  CF_RETURN_IF_ERROR(SetLayout(ld, p.type, p.d_rows, p.d_cols, p.batch, p.stride_d));

  const uint32_t ax = Alignment(p.x), ay = Alignment(p.y), ad = Alignment(p.d), ab = p.bias ? Alignment(p.bias) : 0;
  const void* c_ptr = p.beta != 0.0f && p.c != nullptr ? p.c : p.d;
  const uint32_t ac = std::min(ad, Alignment(c_ptr));
  const std::string key =
      absl::StrCat(device, "|", p.type, "|", p.compute, "|", p.op_x, p.op_y, "|", p.x_rows, "x", p.x_cols, "|",
                   p.y_rows, "x", p.y_cols, "|", p.d_rows, "x", p.d_cols, "|", p.batch, ":", p.stride_x, ",",
                   p.stride_y, ",", p.stride_d, "|", p.epilogue, "|", ax, ",", ay, ",", ad, ",", ab, ",", ac, "|", p.beta);
  cublasLtMatmulAlgo_t algo;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(g_algo_mu);
    auto it = AlgoCache().find(key);
    if (it != AlgoCache().end()) {
      algo = it->second;
      found = true;
    }
  }
  if (!found) {
    Preference pref;
    CF_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.h));
    const uint64_t ws = kWorkspaceBytes;
    CF_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                         sizeof(ws)));
    CF_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ax, sizeof(ax)));
    CF_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ay, sizeof(ay)));
    CF_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac)));
    CF_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref.h, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ad, sizeof(ad)));
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    CF_CUBLAS_CHECK(
        cublasLtMatmulAlgoGetHeuristic(handle, desc.h, lx.h, ly.h, ld.h, ld.h, pref.h, 1, &result, &returned));
    if (returned == 0 || result.state != CUBLAS_STATUS_SUCCESS)
      return absl::UnimplementedError(absl::StrCat("cuBLASLt has no algorithm for the product ", key));
    algo = result.algo;
    std::lock_guard<std::mutex> lock(g_algo_mu);
    AlgoCache().emplace(key, algo);
  }
  const float alpha = 1.0f, beta = p.beta;
  CF_CUBLAS_CHECK(cublasLtMatmul(handle, desc.h, &alpha, p.x, lx.h, p.y, ly.h, &beta, c_ptr, ld.h, p.d, ld.h, &algo,
                                 workspace, kWorkspaceBytes, stream));
  return absl::OkStatus();
}

// ---- the epilogues cuBLASLt does not have -------------------------------------------------

int ActCode(gemm::Activation a) {
  switch (a) {
    case gemm::Activation::kNone: return 0;
    case gemm::Activation::kGelu: return 1;
    case gemm::Activation::kGeluTanh: return 2;
    case gemm::Activation::kSilu: return 3;
  }
  return 0;
}

std::vector<TensorType> TypesOf(absl::Span<const Tensor> ts) {
  std::vector<TensorType> out;
  for (const Tensor& t : ts) out.push_back({t.shape(), t.dtype()});
  return out;
}

template <typename T> cudaDataType_t CudaType();
template <> cudaDataType_t CudaType<float>() { return CUDA_R_32F; }
template <> cudaDataType_t CudaType<__half>() { return CUDA_R_16F; }
template <> cudaDataType_t CudaType<__nv_bfloat16>() { return CUDA_R_16BF; }

template <typename T> Status LtProduct(KernelContext& ctx, const MatmulDims& d, const T* residual);

template <typename T> Status MatmulCudaTyped(KernelContext& ctx, const MatmulDims& d) {
  const T* bias = d.has_bias ? ctx.inputs[2].data<T>() : nullptr;
  T* c = ctx.outputs[0].data<T>();
  cudaStream_t stream = CudaStreamOf(ctx);
  const int64_t m = d.m, n = d.n, k = d.k, count = d.batch_count * m * n;
  if (count == 0) return absl::OkStatus();
  const int act = ActCode(d.act);
  const T* image_bias = d.has_image_bias ? ctx.inputs[d.image_bias_input()].data<T>() : nullptr;
  const T* residual = d.has_residual ? ctx.inputs[d.residual_input()].data<T>() : nullptr;
  if (k == 0 || image_bias != nullptr || (residual != nullptr && act != 0)) {
    // The product alone (bias too when cuBLASLt can take it), then one pass:
    // the image bias goes before the activation, which goes before the
    // residual, so neither fits cuBLASLt's epilogues.
    if (k == 0) {
      CF_CUDA_CHECK(cudaMemsetAsync(c, 0, static_cast<size_t>(count) * sizeof(T), stream));
    } else {
      MatmulDims plain = d;
      plain.act = gemm::Activation::kNone;
      plain.has_image_bias = plain.has_residual = false;
      CF_RETURN_IF_ERROR(LtProduct<T>(ctx, plain, nullptr));  // adds the bias
    }
    epilogue::FusedEpilogueInPlace<T><<<GridFor(count), 256, 0, stream>>>(c, count, n, k == 0 ? bias : nullptr,
                                                                           image_bias, d.image_rows, residual, act);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  }
  return LtProduct<T>(ctx, d, residual);
}

// cuBLASLt's product with d's bias and activation (fused where cuBLASLt has
// the epilogue, else a pass after it) and, when `residual` is set (only
// without an activation), beta = 1 with C = residual.
template <typename T> Status LtProduct(KernelContext& ctx, const MatmulDims& d, const T* residual) {
  const T* a = ctx.inputs[0].data<T>();
  const T* b = ctx.inputs[1].data<T>();
  const T* bias = d.has_bias ? ctx.inputs[2].data<T>() : nullptr;
  T* c = ctx.outputs[0].data<T>();
  cudaStream_t stream = CudaStreamOf(ctx);
  const int64_t m = d.m, n = d.n, k = d.k, count = d.batch_count * m * n;
  const int act = ActCode(d.act);
  if (count == 0) return absl::OkStatus();
  CF_ASSIGN_OR_RETURN(void* workspace, ctx.workspace(kWorkspaceBytes));

  LtProblem p;
  p.type = CudaType<T>();
  p.compute = (std::is_same_v<T, float> && d.allow_tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  // X = our b: stored [K, N] row-major = column-major N x K (op N); trans_b: [N, K] = column-major K x N (op T).
  p.op_x = d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  p.x_rows = d.trans_b ? k : n;
  p.x_cols = d.trans_b ? n : k;
  // Y = our a: stored [M, K] = column-major K x M (op N); trans_a: [K, M] = column-major M x K (op T).
  p.op_y = d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  p.y_rows = d.trans_a ? m : k;
  p.y_cols = d.trans_a ? k : m;
  p.d_rows = n;
  p.d_cols = m;
  // Review fix: the heuristic has no alignment preference for the bias, and
  // cuBLASLt's bias epilogue kernels read it with vector loads, so a bias view
  // at an odd offset (e.g. a slice of a fused qkv bias) could fault. Such a
  // bias (and the activation after it) is applied by BiasActInPlace instead.
  const bool lt_bias = bias != nullptr && Alignment(bias) >= kLtBiasAlign;
  const T* post_bias = (bias != nullptr && !lt_bias) ? bias : nullptr;
  const bool fused_gelu = d.act == gemm::Activation::kGeluTanh && kLtGeluIsTanh && post_bias == nullptr;
  if (fused_gelu) {
    p.epilogue = lt_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  } else if (lt_bias) {
    p.epilogue = CUBLASLT_EPILOGUE_BIAS;
  }
  p.bias = lt_bias ? bias : nullptr;
  if (residual != nullptr) p.beta = 1.0f;

  const int device = ctx.device.ordinal;
  if (d.b_batch_count() == 1 && !d.trans_a) {
    // a's batches are consecutive [M, K] blocks: one [batch·M, K] product.
    p.y_cols = d.batch_count * m;
    p.d_cols = d.batch_count * m;
    p.x = b;
    p.y = a;
    p.d = c;
    p.c = residual;
    CF_RETURN_IF_ERROR(RunLt(device, p, stream, workspace));
  } else {
    const std::vector<int64_t> ai = d.AIndices(), bi = d.BIndices();
    // One strided-batched call when each operand's matrix index is t·stride
    // (stride 1, or 0 when broadcast); otherwise one call per run of the
    // innermost batch dimension.
    auto uniform = [&](const std::vector<int64_t>& idx) {
      const int64_t s = idx.size() > 1 ? idx[1] - idx[0] : 0;
      for (size_t t = 0; t < idx.size(); ++t)
        if (idx[t] != static_cast<int64_t>(t) * s) return false;
      return true;
    };
    const int64_t inner = (uniform(ai) && uniform(bi)) ? d.batch_count : d.batch.back();
    for (int64_t t0 = 0; t0 < d.batch_count; t0 += inner) {
      p.batch = static_cast<int>(inner);
      p.stride_y = inner > 1 ? (ai[t0 + 1] - ai[t0]) * m * k : 0;
      p.stride_x = inner > 1 ? (bi[t0 + 1] - bi[t0]) * k * n : 0;
      p.stride_d = m * n;
      p.x = b + bi[t0] * k * n;
      p.y = a + ai[t0] * m * k;
      p.d = c + t0 * m * n;
      p.c = residual != nullptr ? residual + t0 * m * n : nullptr;
      CF_RETURN_IF_ERROR(RunLt(device, p, stream, workspace));
    }
  }
  if (post_bias != nullptr) {
    epilogue::BiasActInPlace<T><<<GridFor(count), 256, 0, stream>>>(c, count, n, post_bias, act);
    CF_CUDA_CHECK_LAUNCH();
  } else if (act != 0 && !fused_gelu) {
    epilogue::ActivationInPlace<T><<<GridFor(count), 256, 0, stream>>>(c, count, act);
    CF_CUDA_CHECK_LAUNCH();
  }
  return absl::OkStatus();
}

Status MatmulCuda(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(MatmulDims d, MatmulDimsOf(ctx.op, ctx.attrs, TypesOf(ctx.inputs)));
  CudaDeviceGuard guard(ctx.device.ordinal);
  CF_RETURN_IF_ERROR(guard.status());
  return DispatchCudaFloat(d.dtype, ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    return MatmulCudaTyped<T>(ctx, d);
  });
}

}  // namespace

CF_REGISTER_KERNEL("matmul", kCUDA, MatmulCuda);
CF_REGISTER_KERNEL("linear", kCUDA, MatmulCuda);

}  // namespace cf
