// CUDA kernels of group_norm and group_norm_backward (definitions and the
// math in group_norm.cc). x is viewed as [N, P, C] (P spatial positions).
//
// Statistics are a two-stage reduction with a grid that fills the GPU even at
// batch 2: the spatial rows of each sample are split into chunks, one block
// per (chunk, n) reads whole rows of C channels (coalesced), each thread keeps
// shifted sums for the channels it owns, and the block writes per-group
// moments {count, mean, M2} of its chunk; a second kernel merges the chunks'
// moments per (n, g) with Chan's formula, which stays accurate for large
// groups (e.g. 128x128 positions x 10 channels) in f32.
//
// Forward:  GnStatsPartialKernel -> GnStatsFinalKernel -> GnNormalizeKernel.
// Backward: the same two statistics kernels (recomputed, see group_norm.cc),
//           GnBwdPartialKernel (per chunk, per channel: sum dy, sum dy*xhat)
//           -> norm_cuda::SumChunksKernel (sum over chunks) -> GnBwdGroupKernel
//           (per (n, g) coefficients, dgamma, dbeta) -> GnBwdDxKernel.
#include <algorithm>
#include <type_traits>

#include "ops/norm/moments.h"
#include "ops/norm/norm_cuda.cuh"
#include "ops/norm/norm_internal.h"

namespace cf {
namespace {

using norm_cuda::Load4;
using norm_cuda::Store4;
using norm_internal::GnDims;

constexpr int kBlockThreads = 512;
constexpr int64_t kSmemBytes = 48 * 1024;  // default dynamic shared memory limit

// Launch shape of the chunked kernels. A block is tx x ty threads: thread
// (tx_i, ty_i) owns channels tx_i + k * tx (k < cpt) and rows ty_i, ty_i + ty,
// ... of its chunk of `rows` spatial rows.
struct GnPlan {
  int cpt, tx, ty;
  int64_t rows, chunks;
};

StatusOr<GnPlan> PlanGn(const GnDims& d, int64_t min_rows_per_thread_row, const char* op) {
  CF_CHECK_ARG(d.C * 2 * int64_t{sizeof(float)} <= kSmemBytes, op, ": C = ", d.C,
               " channels exceed the CUDA kernel's limit of ", kSmemBytes / 8);
  CF_CHECK_ARG(d.N <= 65535, op, ": batch ", d.N, " exceeds the CUDA grid limit 65535");
  GnPlan p;
  p.cpt = 1;
  while (p.cpt < 16 && (d.C + p.cpt - 1) / p.cpt > 256) p.cpt *= 2;
  p.tx = static_cast<int>(((d.C + p.cpt - 1) / p.cpt + 31) / 32 * 32);
  p.ty = std::max(1, kBlockThreads / p.tx);
  p.ty = static_cast<int>(std::min<int64_t>(p.ty, kSmemBytes / (2 * d.C * int64_t{sizeof(float)})));
  // About four blocks per SM in all, but each thread-row gets at least
  // `min_rows_per_thread_row` rows.
  const int64_t want_chunks = std::max<int64_t>(1, 4 * NumSms() / d.N);
  p.rows = std::max<int64_t>((d.P + want_chunks - 1) / want_chunks, std::max<int64_t>(min_rows_per_thread_row, 1) * p.ty);
  p.chunks = (d.P + p.rows - 1) / p.rows;
  return p;
}

// Calls f(std::integral_constant<int, cpt>{}).
template <typename F>
void WithCpt(int cpt, F&& f) {
  switch (cpt) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: f(std::integral_constant<int, 16>{}); break;
  }
}

// Rows of a chunk of nr rows handled by thread-row j of ty.
__device__ __forceinline__ int64_t RowsOfThreadRow(int64_t nr, int j, int ty) {
  return nr > j ? (nr - j + ty - 1) / ty : 0;
}

// x: [N, P, C] of T. partial: [N, chunks, G] x {count, mean, M2}.
// Grid (chunks, N), block (tx, ty), dynamic shared memory 2 * ty * C floats.
template <typename T, int kCpt>
__global__ void __launch_bounds__(kBlockThreads) GnStatsPartialKernel(const T* __restrict__ x, int64_t P, int C, int G, int Cg, int64_t rows,
                                     float* __restrict__ partial) {
  extern __shared__ float smem[];
  const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
  const int64_t chunk = blockIdx.x, chunks = gridDim.x;
  const int64_t n = blockIdx.y;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < P ? r0 + rows : P, nr = r1 - r0;
  const T* xn = x + n * P * C;

  // Sums of (x - shift) and its square, shift = the chunk's first row, so the
  // sums stay small (no cancellation when |mean| >> std).
  float shift[kCpt], s1[kCpt], s2[kCpt];
#pragma unroll
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    shift[k] = c < C ? LoadF(xn, r0 * C + c) : 0.f;
    s1[k] = s2[k] = 0.f;
  }
#pragma unroll 4
  for (int64_t r = r0 + ty; r < r1; r += TY) {
#pragma unroll
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c < C) {
        const float v = LoadF(xn, r * C + c) - shift[k];
        s1[k] += v;
        s2[k] = fmaf(v, v, s2[k]);
      }
    }
  }
  float* sm_mean = smem;
  float* sm_m2 = smem + TY * C;
  const int64_t cnt = RowsOfThreadRow(nr, ty, TY);
  const float inv = cnt > 0 ? 1.f / static_cast<float>(cnt) : 0.f;
#pragma unroll
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    if (c < C) {
      sm_mean[ty * C + c] = shift[k] + s1[k] * inv;
      sm_m2[ty * C + c] = fmaxf(s2[k] - s1[k] * s1[k] * inv, 0.f);
    }
  }
  __syncthreads();
  // Merge the thread-rows per channel into slot 0.
  if (ty == 0 && TY > 1) {
#pragma unroll
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c >= C) continue;
      Moments<float> acc{static_cast<float>(cnt), sm_mean[c], sm_m2[c]};
      for (int j = 1; j < TY; ++j)
        acc = CombineMoments(acc, Moments<float>{static_cast<float>(RowsOfThreadRow(nr, j, TY)), sm_mean[j * C + c],
                                                 sm_m2[j * C + c]});
      sm_mean[c] = acc.mean;
      sm_m2[c] = acc.m2;
    }
  }
  __syncthreads();
  // Channels of a group have equal counts (nr): mean of means, and M2 is the
  // channels' M2 plus nr * the squared deviations of their means.
  for (int g = ty * TX + tx; g < G; g += TX * TY) {
    float gm = 0.f;
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) gm += sm_mean[c];
    gm /= static_cast<float>(Cg);
    float m2 = 0.f, dev = 0.f;
    for (int c = g * Cg; c < (g + 1) * Cg; ++c) {
      m2 += sm_m2[c];
      const float dm = sm_mean[c] - gm;
      dev = fmaf(dm, dm, dev);
    }
    float* out = partial + ((n * chunks + chunk) * G + g) * 3;
    out[0] = static_cast<float>(nr * Cg);
    out[1] = gm;
    out[2] = m2 + static_cast<float>(nr) * dev;
  }
}

// partial: [N, chunks, G] x {count, mean, M2} -> stats: [N * G] x {mean, rstd}.
// One warp per (n, g): lanes merge strided chunks, then merge across lanes.
__global__ void GnStatsFinalKernel(const float* __restrict__ partial, int64_t chunks, int NG, int G, float eps,
                                   float* __restrict__ stats) {
  const int w = static_cast<int>((blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32);
  const int lane = threadIdx.x % 32;
  if (w >= NG) return;  // whole warps leave together
  const int64_t n = w / G, g = w % G;
  Moments<float> acc{0.f, 0.f, 0.f};
  for (int64_t k = lane; k < chunks; k += 32) {
    const float* p = partial + ((n * chunks + k) * G + g) * 3;
    acc = CombineMoments(acc, Moments<float>{p[0], p[1], p[2]});
  }
  for (int o = 16; o > 0; o >>= 1) {
    const Moments<float> other{__shfl_xor_sync(0xffffffffu, acc.count, o), __shfl_xor_sync(0xffffffffu, acc.mean, o),
                               __shfl_xor_sync(0xffffffffu, acc.m2, o)};
    acc = CombineMoments(acc, other);
  }
  if (lane == 0) {
    stats[2 * w] = acc.mean;
    stats[2 * w + 1] = rsqrtf(acc.m2 / acc.count + eps);
  }
}

// x, y: [N, P, C]; stats: [N, G] x {mean, rstd}; gamma, beta: [C] or null.
// kVec channels per thread (4 needs C % 4 == 0 and aligned pointers);
// total = N * P * C / kVec, PC = P * C.
template <typename T, int kVec>
__global__ void GnNormalizeKernel(const T* __restrict__ x, const float* __restrict__ stats,
                                  const T* __restrict__ gamma, const T* __restrict__ beta, T* __restrict__ y,
                                  int64_t total, int64_t PC, int C, int G, int Cg) {
  const float2* st2 = reinterpret_cast<const float2*>(stats);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * kVec;
    const int64_t n = e / PC;
    const int c0 = static_cast<int>(e % C);
    float v[kVec];
    if constexpr (kVec == 4) Load4(x + e, v);
    else v[0] = LoadF(x, e);
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const int c = c0 + j;
      const float2 st = st2[n * G + c / Cg];
      float o = (v[j] - st.x) * st.y;
      if (gamma != nullptr) o = fmaf(o, LoadF(gamma, c), LoadF(beta, c));
      v[j] = o;
    }
    if constexpr (kVec == 4) Store4(y + e, v);
    else StoreF(y, e, v[0]);
  }
}

// x, dy: [N, P, C]; stats: [N, G] x {mean, rstd}. Per (chunk, n) and channel:
// part_dy = sum dy, part_dyxh = sum dy * xhat over the chunk's rows, [N, chunks, C].
// Grid (chunks, N), block (tx, ty), dynamic shared memory 2 * ty * C floats.
template <typename T, int kCpt>
__global__ void __launch_bounds__(kBlockThreads) GnBwdPartialKernel(const T* __restrict__ x, const T* __restrict__ dy, const float* __restrict__ stats,
                                   int64_t P, int C, int G, int Cg, int64_t rows, float* __restrict__ part_dy,
                                   float* __restrict__ part_dyxh) {
  extern __shared__ float smem[];
  const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
  const int64_t chunk = blockIdx.x, chunks = gridDim.x;
  const int64_t n = blockIdx.y;
  const int64_t r0 = chunk * rows, r1 = r0 + rows < P ? r0 + rows : P;
  const T* xn = x + n * P * C;
  const T* dyn = dy + n * P * C;
  float mean[kCpt], rstd[kCpt], a[kCpt], b[kCpt];
#pragma unroll
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    const int g = c < C ? c / Cg : 0;
    mean[k] = stats[2 * (n * G + g)];
    rstd[k] = stats[2 * (n * G + g) + 1];
    a[k] = b[k] = 0.f;
  }
#pragma unroll 4
  for (int64_t r = r0 + ty; r < r1; r += TY) {
#pragma unroll
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c < C) {
        const float gv = LoadF(dyn, r * C + c);
        const float xh = (LoadF(xn, r * C + c) - mean[k]) * rstd[k];
        a[k] += gv;
        b[k] = fmaf(gv, xh, b[k]);
      }
    }
  }
  float* sa = smem;
  float* sb = smem + TY * C;
#pragma unroll
  for (int k = 0; k < kCpt; ++k) {
    const int c = tx + k * TX;
    if (c < C) {
      sa[ty * C + c] = a[k];
      sb[ty * C + c] = b[k];
    }
  }
  __syncthreads();
  if (ty == 0) {
#pragma unroll
    for (int k = 0; k < kCpt; ++k) {
      const int c = tx + k * TX;
      if (c >= C) continue;
      float ta = 0.f, tb = 0.f;
      for (int j = 0; j < TY; ++j) {
        ta += sa[j * C + c];
        tb += sb[j * C + c];
      }
      part_dy[(n * chunks + chunk) * C + c] = ta;
      part_dyxh[(n * chunks + chunk) * C + c] = tb;
    }
  }
}

// s_dy, s_dyxh: [N, C]; gamma: [C] or null. Thread i < N*G writes
// coef[i] = {A, B} (group sums of gamma * S, divided by M = P * Cg); thread
// i < C writes dgamma[i] = sum_n s_dyxh, dbeta[i] = sum_n s_dy (with gamma).
template <typename T>
__global__ void GnBwdGroupKernel(const float* __restrict__ s_dy, const float* __restrict__ s_dyxh,
                                 const T* __restrict__ gamma, int N, int C, int G, int Cg, float inv_m,
                                 float* __restrict__ coef, T* __restrict__ dgamma, T* __restrict__ dbeta) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < int64_t(N) * G) {
    const int64_t n = i / G, g = i % G;
    float sa = 0.f, sb = 0.f;
    for (int64_t c = g * Cg; c < (g + 1) * Cg; ++c) {
      const float gm = gamma != nullptr ? LoadF(gamma, c) : 1.f;
      sa = fmaf(gm, s_dy[n * C + c], sa);
      sb = fmaf(gm, s_dyxh[n * C + c], sb);
    }
    coef[2 * i] = sa * inv_m;
    coef[2 * i + 1] = sb * inv_m;
  }
  if (gamma != nullptr && i < C) {
    float sg = 0.f, sbeta = 0.f;
    for (int n = 0; n < N; ++n) {
      sg += s_dyxh[int64_t(n) * C + i];
      sbeta += s_dy[int64_t(n) * C + i];
    }
    StoreF(dgamma, i, sg);
    StoreF(dbeta, i, sbeta);
  }
}

// dx = rstd * (gamma * dy - A - xhat * B), xhat = (x - mean) * rstd.
// x, dy, dx: [N, P, C]; stats, coef: [N, G] x 2; gamma: [C] or null.
template <typename T, int kVec>
__global__ void GnBwdDxKernel(const T* __restrict__ x, const T* __restrict__ dy, const float* __restrict__ stats,
                              const float* __restrict__ coef, const T* __restrict__ gamma, T* __restrict__ dx,
                              int64_t total, int64_t PC, int C, int G, int Cg) {
  const float2* st2 = reinterpret_cast<const float2*>(stats);
  const float2* cf2 = reinterpret_cast<const float2*>(coef);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = i * kVec;
    const int64_t n = e / PC;
    const int c0 = static_cast<int>(e % C);
    float xv[kVec], gv[kVec];
    if constexpr (kVec == 4) {
      Load4(x + e, xv);
      Load4(dy + e, gv);
    } else {
      xv[0] = LoadF(x, e);
      gv[0] = LoadF(dy, e);
    }
#pragma unroll
    for (int j = 0; j < kVec; ++j) {
      const int c = c0 + j;
      const int64_t ng = n * G + c / Cg;
      const float2 st = st2[ng], cf = cf2[ng];
      const float gm = gamma != nullptr ? LoadF(gamma, c) : 1.f;
      const float xh = (xv[j] - st.x) * st.y;
      xv[j] = st.y * (gm * gv[j] - cf.x - xh * cf.y);
    }
    if constexpr (kVec == 4) Store4(dx + e, xv);
    else StoreF(dx, e, xv[0]);
  }
}

// Mean and rstd of every (n, g) into stats [N * G] x 2, using partial
// [N, plan.chunks, G] x 3 as scratch.
template <typename T>
Status GnStats(const T* x, const GnDims& d, float eps, const GnPlan& p, float* partial, float* stats,
               cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.chunks), static_cast<unsigned>(d.N)), block(p.tx, p.ty);
  const size_t smem = 2 * size_t(p.ty) * d.C * sizeof(float);
  WithCpt(p.cpt, [&](auto k) {
    GnStatsPartialKernel<T, decltype(k)::value><<<grid, block, smem, stream>>>(
        x, d.P, static_cast<int>(d.C), static_cast<int>(d.G), static_cast<int>(d.Cg), p.rows, partial);
  });
  CF_CUDA_CHECK_LAUNCH();
  const int ng = static_cast<int>(d.N * d.G);
  GnStatsFinalKernel<<<(ng * 32 + 255) / 256, 256, 0, stream>>>(partial, p.chunks, ng, static_cast<int>(d.G), eps,
                                                                 stats);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

bool UseVec4(const GnDims& d) { return d.C % 4 == 0; }

template <typename T>
Status GroupNormCudaT(KernelContext& ctx) {
  const Tensor& xt = ctx.inputs[0];
  const GnDims d = norm_internal::GnDimsOf(xt.shape(), ctx.attrs);
  if (xt.numel() == 0) return absl::OkStatus();
  const float eps = static_cast<float>(norm_internal::EpsOf(ctx.attrs));
  const bool affine = ctx.inputs.size() == 3;
  CF_ASSIGN_OR_RETURN(const GnPlan p, PlanGn(d, 2, "group_norm"));
  CF_ASSIGN_OR_RETURN(void* ws, norm_cuda::Workspace(ctx, "group_norm",
                                                      norm_cuda::Carver::Bytes({d.N * p.chunks * d.G * 3, d.N * d.G * 2})));
  norm_cuda::Carver carve(ws);
  float* partial = carve.Take(d.N * p.chunks * d.G * 3);
  float* stats = carve.Take(d.N * d.G * 2);
  cudaStream_t stream = CudaStreamOf(ctx);
  const T* x = xt.data<T>();
  CF_RETURN_IF_ERROR(GnStats(x, d, eps, p, partial, stats, stream));

  const T* gamma = affine ? ctx.inputs[1].data<T>() : nullptr;
  const T* beta = affine ? ctx.inputs[2].data<T>() : nullptr;
  T* y = ctx.outputs[0].data<T>();
  const int64_t numel = xt.numel(), pc = d.P * d.C;
  const int c = static_cast<int>(d.C), g = static_cast<int>(d.G), cg = static_cast<int>(d.Cg);
  if (UseVec4(d) && norm_cuda::Aligned4<T>({x, y})) {
    GnNormalizeKernel<T, 4><<<GridFor(numel / 4), 256, 0, stream>>>(x, stats, gamma, beta, y, numel / 4, pc, c, g, cg);
  } else {
    GnNormalizeKernel<T, 1><<<GridFor(numel), 256, 0, stream>>>(x, stats, gamma, beta, y, numel, pc, c, g, cg);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status GroupNormBackwardCudaT(KernelContext& ctx) {
  const Tensor& xt = ctx.inputs[0];
  const GnDims d = norm_internal::GnDimsOf(xt.shape(), ctx.attrs);
  const bool affine = ctx.inputs.size() == 3;
  cudaStream_t stream = CudaStreamOf(ctx);
  if (xt.numel() == 0) return norm_cuda::ZeroOutputs(ctx, 1);  // no positions: dgamma = dbeta = 0
  const float eps = static_cast<float>(norm_internal::EpsOf(ctx.attrs));
  CF_ASSIGN_OR_RETURN(const GnPlan ps, PlanGn(d, 2, "group_norm_backward"));
  // Fewer, larger chunks for the per-channel partial sums: each chunk writes
  // 2 C floats, so >= 8 rows per thread-row keep that traffic small.
  CF_ASSIGN_OR_RETURN(const GnPlan pb, PlanGn(d, 8, "group_norm_backward"));
  const int64_t n_ps = d.N * ps.chunks * d.G * 3, n_st = d.N * d.G * 2, n_pb = d.N * pb.chunks * d.C,
                n_s = d.N * d.C;
  CF_ASSIGN_OR_RETURN(void* ws, norm_cuda::Workspace(ctx, "group_norm_backward",
                                                      norm_cuda::Carver::Bytes({n_ps, n_st, n_pb, n_pb, n_s, n_s, n_st})));
  norm_cuda::Carver carve(ws);
  float* partial = carve.Take(n_ps);
  float* stats = carve.Take(n_st);
  float* part_dy = carve.Take(n_pb);
  float* part_dyxh = carve.Take(n_pb);
  float* s_dy = carve.Take(n_s);
  float* s_dyxh = carve.Take(n_s);
  float* coef = carve.Take(n_st);

  const T* x = xt.data<T>();
  const T* dy = ctx.inputs[1].data<T>();
  const T* gamma = affine ? ctx.inputs[2].data<T>() : nullptr;
  T* dx = ctx.outputs[0].data<T>();
  T* dgamma = affine ? ctx.outputs[1].data<T>() : nullptr;
  T* dbeta = affine ? ctx.outputs[2].data<T>() : nullptr;
  const int c = static_cast<int>(d.C), g = static_cast<int>(d.G), cg = static_cast<int>(d.Cg);
  CF_RETURN_IF_ERROR(GnStats(x, d, eps, ps, partial, stats, stream));

  {
    const dim3 grid(static_cast<unsigned>(pb.chunks), static_cast<unsigned>(d.N)), block(pb.tx, pb.ty);
    const size_t smem = 2 * size_t(pb.ty) * d.C * sizeof(float);
    WithCpt(pb.cpt, [&](auto k) {
      GnBwdPartialKernel<T, decltype(k)::value><<<grid, block, smem, stream>>>(x, dy, stats, d.P, c, g, cg, pb.rows,
                                                                                part_dy, part_dyxh);
    });
    CF_CUDA_CHECK_LAUNCH();
  }
  CF_RETURN_IF_ERROR(norm_cuda::LaunchSumChunks(part_dy, part_dyxh, d.N, pb.chunks, c, s_dy, s_dyxh, stream));
  const int64_t threads = std::max(d.N * d.G, d.C);
  GnBwdGroupKernel<T><<<static_cast<unsigned>((threads + 255) / 256), 256, 0, stream>>>(
      s_dy, s_dyxh, gamma, static_cast<int>(d.N), c, g, cg, 1.f / static_cast<float>(d.P * d.Cg), coef, dgamma, dbeta);
  CF_CUDA_CHECK_LAUNCH();
  const int64_t numel = xt.numel(), pc = d.P * d.C;
  if (UseVec4(d) && norm_cuda::Aligned4<T>({x, dy, dx})) {
    GnBwdDxKernel<T, 4><<<GridFor(numel / 4), 256, 0, stream>>>(x, dy, stats, coef, gamma, dx, numel / 4, pc, c, g, cg);
  } else {
    GnBwdDxKernel<T, 1><<<GridFor(numel), 256, 0, stream>>>(x, dy, stats, coef, gamma, dx, numel, pc, c, g, cg);
  }
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

Status GroupNormCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "group_norm",
                           [&](auto tag) { return GroupNormCudaT<decltype(tag)>(ctx); });
}
Status GroupNormBackwardCuda(KernelContext& ctx) {
  return DispatchCudaFloat(ctx.inputs[0].dtype(), "group_norm_backward",
                           [&](auto tag) { return GroupNormBackwardCudaT<decltype(tag)>(ctx); });
}

}  // namespace

CF_REGISTER_KERNEL("group_norm", kCUDA, GroupNormCuda);
CF_REGISTER_KERNEL("group_norm_backward", kCUDA, GroupNormBackwardCuda);

}  // namespace cf
