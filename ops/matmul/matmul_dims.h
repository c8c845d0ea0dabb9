// The problem a "matmul" / "linear" call describes, derived once from the
// input types and attributes and shared by the shape rule, the cost rule and
// the CPU and CUDA kernels.
#pragma once

#include <string>
#include <vector>

#include "ops/matmul/cpu_gemm.h"
#include "ops/op.h"

namespace cf {

struct MatmulDims {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  // Output batch dims and the two operands' batch dims, both left-padded
  // with 1s to the output's batch rank ("linear" has no batch: its rows are
  // folded into m).
  std::vector<int64_t> batch, a_batch, b_batch;
  int64_t batch_count = 1;  // product of batch
  bool has_bias = false;
  // Fused by a graph pass (graph/passes/epilogue.h), attributes "image_bias"
  // and "residual" (bools): inputs are a, b, [bias], [image_bias], [residual].
  //   out = act(op(a)·op(b) + bias + image_bias) + residual
  // image_bias ("linear" only) is [B, 1, ..., 1, N] (the output's rank): one
  // row of biases per leading index (image), over image_rows rows of C;
  // residual has the output's shape.
  bool has_image_bias = false;
  bool has_residual = false;
  int64_t image_rows = 0;
  int bias_input() const { return has_bias ? 2 : -1; }
  int image_bias_input() const { return has_image_bias ? 2 + has_bias : -1; }
  int residual_input() const { return has_residual ? 2 + has_bias + has_image_bias : -1; }
  gemm::Activation act = gemm::Activation::kNone;
  bool allow_tf32 = false;
  DType dtype = DType::f32;
  Shape out_shape;

  // Matrix index of operand a / b used by output matrix `i` (row-major over
  // `batch`, broadcast dims repeat).
  std::vector<int64_t> AIndices() const { return Indices(a_batch); }
  std::vector<int64_t> BIndices() const { return Indices(b_batch); }
  int64_t a_batch_count() const;
  int64_t b_batch_count() const;

 private:
  std::vector<int64_t> Indices(const std::vector<int64_t>& operand) const;
};

// Checks the call and derives its dims; errors say what disagrees.
StatusOr<MatmulDims> MatmulDimsOf(const std::string& op, const Attrs& attrs, absl::Span<const TensorType> inputs);

// Cost of the call (docs/ops/matmul.md): mac 2·batch·M·N·K, bias batch·M·N,
// the activation's count per output element, 1 elementwise per output
// element for each of image_bias and residual, IoBytes.
Cost MatmulCost(const MatmulDims& d, absl::Span<const TensorType> inputs, absl::Span<const TensorType> outputs);

// Elementwise and transcendental counts of one activation evaluation.
struct ActivationCount {
  int64_t elementwise = 0, transcendental = 0;
};
ActivationCount CountOf(gemm::Activation act);

}  // namespace cf
