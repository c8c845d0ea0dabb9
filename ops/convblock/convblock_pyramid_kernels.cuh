// The CUDA plan of convblock_pyramid (contract in convblock.h): which kernels
// run for each stage, on which slices of the output and the workspace. Host
// code with no CUDA dependency, shared by the launcher (convblock_pyramid.cu,
// <<<>>>) and tests/ops/convblock_interp_test.cc (the same plan on the kernel
// interpreter), so the orchestration itself is tested where there is no GPU.
//
// u [B, H, W, C'] -> out [B, H, W, S·C'/2]; per stage n, slice = out + n·C'/2
// with a pixel stride of S·C'/2:
//   full-size stage ((h_n, w_n) == (H, W)):
//     DwTiled<T, K, gated, T>: gate(dw(u) + b) straight into the slice;
//   pooled stage:
//     AdaptiveKernel<T>: u -> pooled [B, h_n, w_n, C'] (T, workspace);
//     DwTiled<T, K, gated, float>: -> gated [B, h_n, w_n, C'/2] (f32, workspace);
//     ResizeIntoKernel<float, T>: bilinear up to (H, W) into the slice.
// So a pooled stage rounds its pooled map to T (as the composed graph does)
// and keeps the gated map in f32; the full-size stage rounds once, at the
// output. One workspace, reused by the stages in turn (they run in order on
// one stream): the largest pooled map, then (256-byte aligned) the largest
// gated map.
//
// Not yet run on a GPU.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "ops/conv/conv_depthwise_kernels.cuh"
#include "ops/pool/adaptive_avg_pool2d_kernels.cuh"
#include "ops/pool/resize_bilinear_kernels.cuh"

namespace cf::pyramid {

struct Plan {
  int64_t B = 0, H = 0, W = 0, C = 0;  // u's shape (C = C')
  int K = 0;
  int gate = dwconv::kGateProduct;  // dwconv::kGateProduct or kGateSigmoid
  float factor = 1.f;
  bool has_bias = false;
  std::vector<std::pair<int64_t, int64_t>> sizes;  // (h_n, w_n) per stage
  int64_t pooled_elems = 0;  // T elements of the largest pooled map (0: no pooled stage)
  int64_t gated_offset = 0;  // bytes from the workspace's start to the f32 gated map
  int64_t gated_elems = 0;   // f32 elements of the largest gated map

  int64_t stages() const { return int64_t(sizes.size()); }
  int64_t out_stride() const { return stages() * (C / 2); }
  bool full(int64_t n) const { return sizes[n].first == H && sizes[n].second == W; }
  int64_t workspace_bytes() const { return pooled_elems == 0 ? 0 : gated_offset + gated_elems * int64_t(sizeof(float)); }
};

// The plan for storage of elem_bytes per element (the caller has checked the
// op's contract: C' even, odd K in 3..31, 1 <= h_n <= H, 1 <= w_n <= W).
inline Plan PlanFor(int64_t B, int64_t H, int64_t W, int64_t C, int K, int gate, float factor, bool has_bias,
                    std::vector<std::pair<int64_t, int64_t>> sizes, int64_t elem_bytes) {
  Plan p;
  p.B = B, p.H = H, p.W = W, p.C = C, p.K = K, p.gate = gate, p.factor = factor, p.has_bias = has_bias;
  p.sizes = std::move(sizes);
  for (int64_t n = 0; n < p.stages(); ++n) {
    if (p.full(n)) continue;
    const int64_t px = B * p.sizes[n].first * p.sizes[n].second;
    p.pooled_elems = std::max(p.pooled_elems, px * C);
    p.gated_elems = std::max(p.gated_elems, px * (C / 2));
  }
  p.gated_offset = (p.pooled_elems * elem_bytes + 255) / 256 * 256;
  return p;
}

// Runs the plan through `ops` (the launcher's CUDA launches or the
// interpreter's), which provides
//   Pool(const T* u, T* pooled, total, H, W, C, h, w)                  AdaptiveKernel<T>
//   Gate<TO>(const T* x, const T* w, const T* b, TO* y, shape, epilogue)  DwTiled<T, K, true, TO>
//   Resize(const float* g, T* slice, total, h, w, C/2, H, W, sh, sw, stride)  ResizeIntoKernel<float, T>
// with the pointer types of Ops (CP = const T, P = T, FP = float;
// kd::Ptr in the interpreter). b holds the S biases when has_bias.
template <class Ops, class CP, class P, class FP>
Status RunPlan(const Plan& p, Ops& ops, CP u, const std::vector<CP>& w, const std::vector<CP>& b, P out, P pooled,
               FP gated) {
  const int64_t C2 = p.C / 2, stride = p.out_stride();
  for (int64_t n = 0; n < p.stages(); ++n) {
    const P slice = out + n * C2;
    const CP bias = p.has_bias ? b[n] : CP(nullptr);
    if (p.full(n)) {
      CF_RETURN_IF_ERROR(ops.Gate(u, w[n], bias, slice, dwconv::GateShape(int(p.B), int(p.H), int(p.W), int(p.C), p.K),
                                  dwconv::GateEpilogue(p.gate, p.factor, stride)));
      continue;
    }
    const auto [h, wd] = p.sizes[n];
    CF_RETURN_IF_ERROR(ops.Pool(u, pooled, p.B * h * wd * p.C, p.H, p.W, p.C, h, wd));
    CF_RETURN_IF_ERROR(ops.Gate(CP(pooled), w[n], bias, gated, dwconv::GateShape(int(p.B), int(h), int(wd), int(p.C), p.K),
                                dwconv::GateEpilogue(p.gate, p.factor, C2)));
    const resize_kernels::ResizeScales sc = resize_kernels::ResizeScalesFor(h, wd, p.H, p.W);
    CF_RETURN_IF_ERROR(ops.Resize(gated, slice, p.B * p.H * p.W * C2, h, wd, C2, p.H, p.W, sc.sh, sc.sw, stride));
  }
  return absl::OkStatus();
}

}  // namespace cf::pyramid
