// permute: out.dim(i) = x.dim(perm[i]), any rank <= 8. Attribute: perm (ints,
// negative entries count from the end). The copy engine (strided_copy.h) has
// the fast paths: contiguous inner runs ([B,N,H,D] -> [B,H,N,D]) and tiled
// transposes (last-two-dims transposes, NHWC <-> NCHW).
#include "ops/shape/shape.h"
#include "ops/shape/shape_util.h"
#include "ops/shape/strided_copy.h"

namespace cf {
namespace {

StatusOr<std::vector<int>> NormalizedPerm(const Attrs& attrs, int rank) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> perm, attrs.RequireInts("perm"));
  CF_CHECK_ARG(static_cast<int>(perm.size()) == rank, "perm has ", perm.size(), " entries for rank ", rank);
  std::vector<int> out(rank);
  std::vector<bool> seen(rank, false);
  for (int i = 0; i < rank; ++i) {
    const int64_t p = perm[i] < 0 ? perm[i] + rank : perm[i];
    CF_CHECK_ARG(p >= 0 && p < rank, "perm entry ", perm[i], " is out of range for rank ", rank);
    CF_CHECK_ARG(!seen[p], "perm [", absl::StrJoin(perm, ", "), "] repeats axis ", p);
    seen[p] = true;
    out[i] = static_cast<int>(p);
  }
  return out;
}

StatusOr<std::vector<TensorType>> InferPermute(const OpCall& c) {
  const Shape& in = c.inputs[0].shape;
  CF_ASSIGN_OR_RETURN(std::vector<int> perm, NormalizedPerm(c.attrs, in.rank()));
  Shape out;
  for (int p : perm) out.push_back(in[p]);
  return std::vector<TensorType>{{out, c.inputs[0].dtype}};
}

Status PermuteKernel(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& y = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(std::vector<int> perm, NormalizedPerm(ctx.attrs, x.shape().rank()));
  const auto xs = RowMajorStrides(x.shape()), ys = RowMajorStrides(y.shape());
  CopyLayout l;
  for (int i = 0; i < y.shape().rank(); ++i) l.Add(y.shape()[i], xs[perm[i]], ys[i]);
  return StridedCopy(ctx, y.raw(), x.raw(), l, DTypeSize(x.dtype()));
}

StatusOr<std::vector<Value>> PermuteVjp(VjpContext& ctx) {
  if (!ctx.grad_outputs[0].valid()) return std::vector<Value>{Value{}};
  CF_ASSIGN_OR_RETURN(std::vector<int> perm, NormalizedPerm(ctx.attrs, ctx.inputs[0].rank()));
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);
  return std::vector<Value>{Permute(ctx.grad_outputs[0], inverse)};
}

OpDef PermuteDef() {
  // Cost: the default IoBytes (data movement: every element read and written once).
  return {.name = "permute", .min_inputs = 1, .max_inputs = 1, .infer = InferPermute, .vjp = PermuteVjp,
          .doc = "axes reordered: out.dim(i) = x.dim(perm[i])"};
}

}  // namespace

Value Permute(Value x, std::vector<int64_t> perm) {
  if (!x.valid()) return Value{};
  return x.b->Op1("permute", {x}, Attrs{{"perm", std::move(perm)}});
}

Value Transpose(Value x, int a, int b) {
  if (!x.valid()) return Value{};
  const int r = x.rank();
  const int na = NormalizeAxis(a, r), nb = NormalizeAxis(b, r);
  if (na < 0 || nb < 0) {
    x.b->Fail(absl::InvalidArgumentError(
        absl::StrCat("Transpose: axes (", a, ", ", b, ") are out of range for ", x.type().ToString())));
    return Value{};
  }
  std::vector<int64_t> perm(r);
  for (int i = 0; i < r; ++i) perm[i] = i;
  std::swap(perm[na], perm[nb]);
  return Permute(x, perm);
}

CF_REGISTER_OP(PermuteDef());
CF_REGISTER_COPY_KERNEL("permute", PermuteKernel);

}  // namespace cf
