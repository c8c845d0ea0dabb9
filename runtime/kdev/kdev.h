// The device abstraction hand-written kernels use instead of CUDA's
// built-ins (docs/kernel-interpreter.md). One kernel source, two builds:
//
//   nvcc (__CUDACC__)  every cf::kd name is the built-in, or inline PTX:
//                      kd::Ptr<T> is T*, kd::syncthreads() is __syncthreads(),
//                      kd::mma_m16n8k16_f32_f16 is mma.sync; zero overhead.
//   host compiler      the CPU interpreter (runtime/kdev/interp.h): threads are
//                      fibers, kd::Ptr<T> is a checked pointer, and a launch
//                      through kd::interp::Launch reports out-of-bounds
//                      accesses, shared-memory races, uninitialised shared
//                      reads, barrier and warp-collective misuse as a Status.
//
// A kernel:
//
//   template <class T>
//   KD_GLOBAL void Scale(kd::Ptr<const T> x, kd::Ptr<T> y, int64_t n, float a) {
//     KD_SHARED(float, tile, [256]);
//     const int64_t i = kd::blockIdx.x * int64_t(kd::blockDim.x) + kd::threadIdx.x;
//     ...
//     kd::syncthreads();
//   }
//
// Defining CF_KDEV_INTERP=1 forces the interpreter (a host-compiled TU never
// sees nvcc's built-ins, so without nvcc it is always the interpreter).
#pragma once

#include <cstdint>

#if defined(__CUDACC__) && !(defined(CF_KDEV_INTERP) && CF_KDEV_INTERP)
#include "runtime/kdev/kdev_native.h"
#else
#include "runtime/kdev/interp.h"
#endif

namespace cf::kd {

inline constexpr unsigned kFullMask = 0xffffffffu;

// f32 load / store of f32, f16 and bf16 storage (as ops/cuda_util.cuh's
// LoadF / StoreF, on kd pointers).
KD_DEVICE float LoadF(Ptr<const float> p, int64_t i) { return p[i]; }
KD_DEVICE float LoadF(Ptr<const half> p, int64_t i) { return half2float(p[i]); }
KD_DEVICE float LoadF(Ptr<const bfloat16> p, int64_t i) { return bfloat162float(p[i]); }
KD_DEVICE void StoreF(Ptr<float> p, int64_t i, float v) { p[i] = v; }
KD_DEVICE void StoreF(Ptr<half> p, int64_t i, float v) { p[i] = float2half_rn(v); }
KD_DEVICE void StoreF(Ptr<bfloat16> p, int64_t i, float v) { p[i] = float2bfloat16_rn(v); }

// Two 16-bit values in one 32-bit register, `lo` in bits 0-15: the element
// pairs of mma and ldmatrix fragments.
KD_DEVICE uint32_t pack_half2(half lo, half hi) {
  return static_cast<uint32_t>(half_as_ushort(lo)) | (static_cast<uint32_t>(half_as_ushort(hi)) << 16);
}
KD_DEVICE uint32_t pack_bfloat162(bfloat16 lo, bfloat16 hi) {
  return static_cast<uint32_t>(bfloat16_as_ushort(lo)) | (static_cast<uint32_t>(bfloat16_as_ushort(hi)) << 16);
}
KD_DEVICE uint32_t pack_f16x2(float lo, float hi) { return pack_half2(float2half_rn(lo), float2half_rn(hi)); }
KD_DEVICE uint32_t pack_bf16x2(float lo, float hi) { return pack_bfloat162(float2bfloat16_rn(lo), float2bfloat16_rn(hi)); }

// Fragment layouts of mma.sync.aligned.m16n8k16.row.col with f16 / bf16
// inputs and f32 accumulators (PTX ISA, "Matrix Fragments for mma.m16n8k16
// with floating point type"). lane = 0..31, g = lane / 4, t = lane % 4.
//   A (16 x 16, row-major), 4 registers a[0..3] of two elements (h = 0 in the
//     low half): a[r] half h = A[g + 8 * (r & 1)][2t + h + 8 * (r >> 1)]
//   B (16 x 8 = K x N), 2 registers b[0..1]:     b[r] half h = B[2t + h + 8r][g]
//   C, D (16 x 8, f32), 4 floats c[0..3]:        c[i] = C[g + 8 * (i >> 1)][2t + (i & 1)]
struct Mma16816 {
  static KD_HD int a_row(int lane, int reg) { return (lane >> 2) + 8 * (reg & 1); }
  static KD_HD int a_col(int lane, int reg, int h) { return 2 * (lane & 3) + h + 8 * (reg >> 1); }
  static KD_HD int b_row(int lane, int reg, int h) { return 2 * (lane & 3) + h + 8 * reg; }  // k
  static KD_HD int b_col(int lane) { return lane >> 2; }                                    // n
  static KD_HD int c_row(int lane, int i) { return (lane >> 2) + 8 * (i >> 1); }
  static KD_HD int c_col(int lane, int i) { return 2 * (lane & 3) + (i & 1); }
};

// ldmatrix.m8n8.b16: lane 8i + r gives the address of row r of matrix i;
// register i of lane l then holds matrix i's elements [l / 4][2 (l % 4) + h]
// (with .trans: [2 (l % 4) + h][l / 4]), h = 0 in the low half. So x4 on the
// four 8x8 quadrants of a 16x16 row-major tile (lanes 0-15 rows 0-15 of
// columns 0-7, lanes 16-31 rows 0-15 of columns 8-15) gives exactly an A
// fragment, and x2 (.trans for a row-major K x N tile) a B fragment.

}  // namespace cf::kd
