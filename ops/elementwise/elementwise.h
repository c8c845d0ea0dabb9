// Elementwise ops with numpy broadcasting. Floating dtypes only (f32, f16,
// bf16 storage; f64 on the CPU); both operands of a binary op share a dtype,
// and the output has that dtype. See docs/ops/elementwise.md.
#pragma once

#include "graph/builder.h"
#include "ops/elementwise/broadcast.h"

namespace cf {

// "add", "sub", "mul", "div": a (op) b, broadcast.
Value Add(Value a, Value b);
Value Sub(Value a, Value b);
Value Mul(Value a, Value b);
Value Div(Value a, Value b);

// "scale": x * mul + add (one fused op).
Value Scale(Value x, double mul, double add = 0.0);

// Unary: "exp", "sqrt", "rsqrt" (1/sqrt), "neg", "square".
Value Exp(Value x);
Value Sqrt(Value x);
Value Rsqrt(Value x);
Value Neg(Value x);
Value Square(Value x);

// "cast": converts between f32/f16/bf16/f64 and i32/i64 (float -> int
// truncates toward zero and saturates). Returns x itself when it already has
// `dtype`. Differentiable between floating types only.
Value Cast(Value x, DType dtype);

// "sum_to": sums x down to `shape`, which must broadcast to x's shape (the
// gradient of a broadcast). Returns x itself when it already has `shape`.
Value SumTo(Value x, Shape shape);

// "broadcast_to": x repeated along broadcast dimensions to `shape` (numpy
// rules). Returns x itself when it already has `shape`.
Value BroadcastTo(Value x, Shape shape);

// (Shapes are taken by value: Value::shape() refers into the graph, which
// building an op may reallocate.)

// Operators on values: the ops above; a double operand becomes one "scale".
Value operator+(Value a, Value b);
Value operator-(Value a, Value b);
Value operator*(Value a, Value b);
Value operator/(Value a, Value b);
Value operator-(Value x);
Value operator+(Value x, double c);
Value operator+(double c, Value x);
Value operator-(Value x, double c);
Value operator-(double c, Value x);
Value operator*(Value x, double c);
Value operator*(double c, Value x);
Value operator/(Value x, double c);

}  // namespace cf
