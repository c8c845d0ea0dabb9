// 2^x on 16 floats for the attention CPU kernels (sdpa_cpu.cc,
// neighborhood_cpu.cc) and the depthwise conv's fused epilogue: the one
// implementation lives in ops/vec_math_avx512.h (vm::Exp2); this name is kept
// for its callers.
#pragma once

#include "ops/vec_math_avx512.h"

namespace cf::attention_simd {

CF_VM_TARGET inline __m512 Exp2Avx512(__m512 x) { return vm::Exp2(x); }

}  // namespace cf::attention_simd
