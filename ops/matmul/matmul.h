// Matrix products. See docs/ops/matmul.md (shapes, cost) and docs/cpu-performance.md, GEMM
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

#include <optional>
#include <string>

#include "graph/builder.h"

namespace cf {

struct MatMulOptions {
  bool trans_a = false;
  bool trans_b = false;
  std::string activation = "none";  // "none", "gelu", "gelu_tanh", "silu"
  bool allow_tf32 = false;          // CUDA f32: TF32 tensor cores (the CPU ignores it)
};
// act(op(a) op(b) + bias):  MatMul(q, k, std::nullopt, {.trans_b = true})
Value MatMul(Value a, Value b, std::optional<Value> bias = std::nullopt, const MatMulOptions& options = {});

struct LinearOptions {
  std::string activation = "none";
  bool allow_tf32 = false;
};
// act(x weight^T + bias):  Linear(x, w, bias, {.activation = "gelu"})
Value Linear(Value x, Value weight, std::optional<Value> bias = std::nullopt, const LinearOptions& options = {});

}  // namespace cf
