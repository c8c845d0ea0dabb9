// The CUDA kernel of fused_elementwise (launcher in fused_elementwise.cu),
// written against runtime/kdev/kdev.h so tests/ops/fused_elementwise_interp_test.cc
// runs the same source on the CPU interpreter.
//
// v1 (this): one thread per output element, grid-stride; the thread decodes
// its element's offset in every input from the collapsed plan, then
// interprets the program (kernel parameters: at most 32 instructions of 4
// bytes) over f32 registers, and stores the last one.
#pragma once

#include <cstdint>

#include "ops/fused/fused_program.h"
#include "ops/grid_for.h"
#include "runtime/kdev/kdev.h"

namespace cf::fused {

// Everything the kernel reads besides the data, by value (about 1 KiB).
template <typename T> struct Args {
  kd::Ptr<const T> in[kMaxInputs];  // in[k]: the input's elements, indexed through plan.strides[k]
  kd::Ptr<T> out;                   // [plan.numel()], contiguous
  Plan plan;
  Instr code[kMaxInstrs];
  float consts[kMaxConsts + 1];  // + 1: a unary op's unused second parameter may be read past the last
  int num_code = 0;
};

// I: the index type (uint32_t when the output has < 2^31 elements).
template <typename T, typename I>
KD_GLOBAL void FusedElementwiseKernel(Args<T> args, I n) {
  const Plan& p = args.plan;
  for (I i = kd::blockIdx.x * I(kd::blockDim.x) + kd::threadIdx.x; i < n; i += I(kd::gridDim.x) * kd::blockDim.x) {
    I off[kMaxInputs];
    if (p.rank == 1) {
      for (int k = 0; k < p.num_inputs; ++k) off[k] = i * I(p.strides[k][0]);
    } else {
      for (int k = 0; k < p.num_inputs; ++k) off[k] = 0;
      I rem = i;
      for (int d = p.rank - 1; d >= 0; --d) {
        const I dim = I(p.dims[d]);
        const I idx = rem % dim;
        rem /= dim;
        for (int k = 0; k < p.num_inputs; ++k) off[k] += idx * I(p.strides[k][d]);
      }
    }
    float r[kMaxInstrs];
    for (int j = 0; j < args.num_code; ++j) {
      const Instr in = args.code[j];
      float v;
      if (in.code == Code::kInput) v = kd::LoadF(args.in[in.a], off[in.a]);
      else if (in.code == Code::kConst) v = args.consts[in.p];
      else v = EvalCode(in.code, r[in.a], r[in.b], args.consts[in.p], args.consts[in.p + 1]);
      r[j] = v;
    }
    kd::StoreF(args.out, i, r[args.num_code - 1]);
  }
}

// One thread per element, block 256; 32-bit indices below 2^31 elements.
struct Launch {
  bool index64;
  GridStride g;
};
inline Launch Geometry(int64_t n) { return {n >= (int64_t{1} << 31), GridStrideFor(n)}; }

}  // namespace cf::fused
