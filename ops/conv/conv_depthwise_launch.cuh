// Host launchers of the depthwise conv2d CUDA kernels (declared in
// conv_depthwise_cuda.h; kernels and launch geometry in
// conv_depthwise_kernels.cuh), included by one .cu per dtype so the three
// instantiations compile in parallel.
#pragma once

#include <algorithm>
#include <bitset>
#include <mutex>

#include "ops/conv/conv_depthwise_cuda.h"
#include "ops/conv/conv_depthwise_kernels.cuh"
#include "ops/cuda_util.cuh"

namespace cf {
namespace dwconv {

// Calls f(std::integral_constant<int, KW>) for the tiled kw.
template <typename F> Status WithKw(int kw, F&& f) {
  switch (kw) {
#define CF_DW_CASE(K) \
  case K: return f(std::integral_constant<int, K>{});
    CF_DW_CASE(3) CF_DW_CASE(5) CF_DW_CASE(7) CF_DW_CASE(9) CF_DW_CASE(11) CF_DW_CASE(13) CF_DW_CASE(15)
    CF_DW_CASE(17) CF_DW_CASE(19) CF_DW_CASE(21) CF_DW_CASE(23) CF_DW_CASE(25) CF_DW_CASE(27) CF_DW_CASE(29)
    CF_DW_CASE(31)
#undef CF_DW_CASE
    default: return absl::InternalError(absl::StrCat("depthwise conv: no tiled kernel for kw = ", kw));
  }
}

// Raises kKernel's dynamic shared memory limit once per device to `bytes` (the
// most any launch of it needs), capped at the device's opt-in maximum. Setting
// it before every launch raced between host threads launching the same
// kernel with different sizes.
template <auto kKernel>
Status RaiseSmemLimitOnce(size_t bytes) {
  static std::mutex mu;
  static std::bitset<64> done;
  int dev = 0;
  CF_CUDA_CHECK(cudaGetDevice(&dev));
  std::lock_guard<std::mutex> lock(mu);
  if (dev >= 0 && dev < 64 && done[dev]) return absl::OkStatus();
  int optin = 0;
  CF_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  CF_CUDA_CHECK(cudaFuncSetAttribute(kKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     int(std::min<size_t>(bytes, size_t(std::max(optin, 0))))));
  if (dev >= 0 && dev < 64) done[dev] = true;
  return absl::OkStatus();
}

template <typename T, bool kGated = false, typename TOut = T>
Status LaunchTiled(const T* in, const T* w, const T* bias, TOut* out, const TiledShape& s, const TiledEpilogue& e,
                   cudaStream_t stream) {
  const LaunchShape ls = TiledLaunch(s, kGated);
  if (ls.empty()) return absl::OkStatus();
  return WithKw(s.kw, [&](auto kw_tag) -> Status {
    constexpr int KW = decltype(kw_tag)::value;
    CF_RETURN_IF_ERROR((RaiseSmemLimitOnce<DwTiled<T, KW, kGated, TOut>>(TiledSmemMost(KW))));
    auto kernel = DwTiled<T, KW, kGated, TOut>;
    kernel<<<ls.grid, ls.block, ls.smem, stream>>>(in, w, bias, out, s, e);
    CF_CUDA_CHECK_LAUNCH();
    return absl::OkStatus();
  });
}

static_assert(kGateProduct == kDwGateProduct && kGateSigmoid == kDwGateSigmoid);

}  // namespace dwconv

template <typename T>
Status DepthwiseForwardCuda(const ConvParams& p, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream) {
  using namespace dwconv;
  if (p.n * p.ho * p.wo * p.cin == 0) return absl::OkStatus();
  if (TiledOk(p)) {
    const TiledShape s = TiledForwardShape(p);
    return LaunchTiled(x, w, bias, y, s, ConvEpilogue(s, 0), stream);
  }
  const LaunchShape ls = GenericLaunch(p.n * p.ho * p.wo * p.cin);
  DwForwardGeneric<T><<<ls.grid, ls.block, 0, stream>>>(x, w, bias, y, GeoOf(p));
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T, typename TOut>
Status DepthwiseGateForwardCuda(const DwGateShape& g, const T* x, const T* w_kkc, const T* bias, float factor,
                                int gate, TOut* y, int64_t y_pixel_stride, cudaStream_t stream) {
  using namespace dwconv;
  const TiledShape s = GateShape(int(g.n), int(g.h), int(g.w), int(g.c), int(g.k));
  if (!GateOk(s, gate, y_pixel_stride)) {
    return absl::InvalidArgumentError(absl::StrCat("depthwise gate (CUDA): unsupported k = ", g.k, ", C = ", g.c,
                                                   ", gate = ", gate, ", output pixel stride = ", y_pixel_stride,
                                                   " (odd k in 3..31, even C >= 2, gate 1 or 2, stride >= C/2)"));
  }
  if (g.n * g.h * g.w == 0) return absl::OkStatus();
  return LaunchTiled<T, true, TOut>(x, w_kkc, bias, y, s, GateEpilogue(gate, factor, y_pixel_stride), stream);
}

template <typename T>
Status DepthwiseBackwardInputCuda(const ConvParams& p, const T* dy, const T* w, T* dx, cudaStream_t stream) {
  using namespace dwconv;
  if (p.n * p.h * p.w * p.cin == 0) return absl::OkStatus();
  if (TiledBackwardInputOk(p)) {
    const TiledShape s = TiledBackwardInputShape(p);
    return LaunchTiled(dy, w, static_cast<const T*>(nullptr), dx, s, ConvEpilogue(s, 1), stream);
  }
  const LaunchShape ls = GenericLaunch(p.n * p.h * p.w * p.cin);
  DwBackwardInputGeneric<T><<<ls.grid, ls.block, 0, stream>>>(dy, w, dx, GeoOf(p));
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

template <typename T>
Status DepthwiseBackwardWeightCuda(const ConvParams& p, const T* x, const T* dy, T* dw, cudaStream_t stream,
                                   const std::function<StatusOr<void*>(int64_t)>& workspace) {
  using namespace dwconv;
  const int kk = int(p.kh * p.kw), c = int(p.cin);
  if (int64_t(kk) * c == 0) return absl::OkStatus();
  int blocks = 0;
  float* part = nullptr;
  if (TiledOk(p)) {
    const TiledShape s = TiledForwardShape(p);
    const LaunchShape ls = BwdWeightTiledLaunch(s);
    blocks = int(ls.grid.x);
    CF_ASSIGN_OR_RETURN(void* ws, workspace(int64_t(blocks) * kk * c * sizeof(float)));
    part = static_cast<float*>(ws);
    CF_RETURN_IF_ERROR(WithKw(s.kw, [&](auto kw_tag) -> Status {
      constexpr int KW = decltype(kw_tag)::value;
      CF_RETURN_IF_ERROR((RaiseSmemLimitOnce<DwBwdWeightTiled<T, KW>>(BwdWeightSmemMost(KW))));
      auto kernel = DwBwdWeightTiled<T, KW>;
      kernel<<<ls.grid, ls.block, ls.smem, stream>>>(x, dy, part, s);
      CF_CUDA_CHECK_LAUNCH();
      return absl::OkStatus();
    }));
  } else {
    blocks = GenericBwdWeightSplits(p);
    CF_ASSIGN_OR_RETURN(void* ws, workspace(int64_t(blocks) * kk * c * sizeof(float)));
    part = static_cast<float*>(ws);
    const LaunchShape ls = GenericLaunch(int64_t(blocks) * kk * c);
    DwBackwardWeightGeneric<T><<<ls.grid, ls.block, 0, stream>>>(x, dy, part, GeoOf(p), blocks);
    CF_CUDA_CHECK_LAUNCH();
  }
  const LaunchShape ls = GenericLaunch(int64_t(kk) * c);
  DwReducePartials<T><<<ls.grid, ls.block, 0, stream>>>(part, dw, blocks, kk, c);
  CF_CUDA_CHECK_LAUNCH();
  return absl::OkStatus();
}

}  // namespace cf

// One dtype's instantiations (used by conv_depthwise_{f32,f16,bf16}.cu); the
// gated forward writes T, and with CF_DEPTHWISE_CUDA_INSTANTIATE_F32_OUT f32
// too (for T other than float).
#define CF_DEPTHWISE_CUDA_INSTANTIATE(T)                                                                       \
  template Status DepthwiseForwardCuda<T>(const ConvParams&, const T*, const T*, const T*, T*, cudaStream_t); \
  template Status DepthwiseBackwardInputCuda<T>(const ConvParams&, const T*, const T*, T*, cudaStream_t);     \
  template Status DepthwiseGateForwardCuda<T, T>(const DwGateShape&, const T*, const T*, const T*, float, int, \
                                                 T*, int64_t, cudaStream_t);                                  \
  template Status DepthwiseBackwardWeightCuda<T>(const ConvParams&, const T*, const T*, T*, cudaStream_t,     \
                                                 const std::function<StatusOr<void*>(int64_t)>&);
#define CF_DEPTHWISE_CUDA_INSTANTIATE_F32_OUT(T)                                                                  \
  template Status DepthwiseGateForwardCuda<T, float>(const DwGateShape&, const T*, const T*, const T*, float, int, \
                                                     float*, int64_t, cudaStream_t);
