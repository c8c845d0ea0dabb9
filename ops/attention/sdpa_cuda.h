// The CUDA launchers of scaled dot-product attention, one explicit
// instantiation per (storage type, head dim) in sdpa_{fwd,bwd}_<dtype>_d<D>.cu
// (so the TUs compile in parallel and ccache keeps them apart); the kernels
// and their launch geometry are in sdpa_kernels.cuh, the dispatch and kernel
// registration in sdpa_cuda.cu. Include from .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/attention/attention_params.h"

namespace cf {

// Device pointers of one "attention" call (T storage; mask null when absent).
struct SdpaFwdArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const uint8_t* mask = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
};

// Device pointers of one "attention_backward" call; dvec is f32 scratch of
// B * heads * Nq floats (rowsum(dout * out)).
struct SdpaBwdArgs {
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  const void* out = nullptr;
  const float* lse = nullptr;
  const void* dout = nullptr;
  const uint8_t* mask = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  float* dvec = nullptr;
};

// T in {float, __half, __nv_bfloat16}; D in 40, 64, 72, 80, 128, 160.
template <class T, int D> Status SdpaForwardCuda(const SdpaParams& p, const SdpaFwdArgs& a, cudaStream_t stream);
template <class T, int D> Status SdpaBackwardCuda(const SdpaParams& p, const SdpaBwdArgs& a, cudaStream_t stream);

}  // namespace cf

#define CF_SDPA_FWD_INSTANTIATE(T, D) \
  template Status SdpaForwardCuda<T, D>(const SdpaParams&, const SdpaFwdArgs&, cudaStream_t);
#define CF_SDPA_BWD_INSTANTIATE(T, D) \
  template Status SdpaBackwardCuda<T, D>(const SdpaParams&, const SdpaBwdArgs&, cudaStream_t);
