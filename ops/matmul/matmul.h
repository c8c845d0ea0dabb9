// Matrix products. See docs/ops/matmul.md (shapes, cost) and docs/cpu-gemm.md
// (the CPU kernel).
//
//   "matmul": a [..., M, K] (trans_a: [..., K, M]), b [..., K, N] (trans_b:
//             [..., N, K]), optional bias [N]; batch dimensions broadcast
//             (numpy). Output [..., M, N] = act(op(a) · op(b) + bias).
//             Attributes: trans_a, trans_b (bool), activation ("none",
//             "gelu", "gelu_tanh", "silu"), allow_tf32 (bool, CUDA f32 only:
//             TF32 tensor cores instead of exact f32; default false).
//   "linear": x [..., in], weight [out, in], optional bias [out] ->
//             [..., out] = x · weightᵀ + bias (with the same activation and
//             allow_tf32 attributes).
#pragma once

#include <string>

#include "graph/builder.h"

namespace cf {

// act(op(a) · op(b) + bias). `bias` may be an invalid Value (no bias).
Value MatMul(Value a, Value b, bool trans_a = false, bool trans_b = false, Value bias = {},
             const std::string& activation = "none");

// MatMul with every attribute, including allow_tf32 (CUDA f32 inputs may use
// TF32 tensor cores; the CPU ignores it).
Value MatMulEx(Value a, Value b, bool trans_a, bool trans_b, Value bias, const std::string& activation,
               bool allow_tf32);

// x · weightᵀ + bias; `bias` may be invalid.
Value Linear(Value x, Value weight, Value bias = {}, const std::string& activation = "none");

}  // namespace cf
