// gather (token embedding lookup) and embedding_backward (its table gradient):
// definitions and CPU kernels. CUDA kernels are in embed_gather.cu.
#include <cstring>

#include "absl/strings/str_join.h"
#include "ops/cpu_util.h"
#include "ops/embed/embed.h"

namespace cf {
namespace {

bool IsIndexType(DType t) { return t == DType::i32 || t == DType::i64; }

template <typename F>
Status DispatchIndex(DType t, F&& fn) {
  if (t == DType::i32) return fn(int32_t{});
  if (t == DType::i64) return fn(int64_t{});
  return absl::InvalidArgumentError(absl::StrCat("indices must be i32 or i64, got ", DTypeName(t)));
}

// Checks every index against [0, V); the error names the first bad one.
template <typename IdxT>
Status CheckIndices(const char* op, const Tensor& indices, int64_t V) {
  const IdxT* idx = indices.data<IdxT>();
  for (int64_t n = 0; n < indices.numel(); ++n) {
    if (idx[n] < 0 || idx[n] >= V) {
      return absl::InvalidArgumentError(absl::StrCat(op, ": index ", idx[n], " at flat position ", n, " of indices ",
                                                     indices.shape().ToString(), " is out of range [0, ", V, ")"));
    }
  }
  return absl::OkStatus();
}

// ---- gather

StatusOr<std::vector<TensorType>> InferGather(const OpCall& c) {
  const TensorType& table = c.inputs[0];
  const TensorType& idx = c.inputs[1];
  CF_CHECK_ARG(table.shape.rank() == 2, "the table must be [V, D], got ", table.shape.ToString());
  CF_CHECK_ARG(IsFloating(table.dtype), "the table must be floating, got ", DTypeName(table.dtype));
  CF_CHECK_ARG(IsIndexType(idx.dtype), "indices must be i32 or i64, got ", DTypeName(idx.dtype));
  CF_CHECK_ARG(idx.shape.rank() < Shape::kMaxRank, "indices ", idx.shape.ToString(), " have too high a rank");
  Shape out = idx.shape;
  out.push_back(table.shape[1]);
  return std::vector<TensorType>{{out, table.dtype}};
}

Status GatherCpu(KernelContext& ctx) {
  const Tensor& table = ctx.inputs[0];
  const Tensor& indices = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  const int64_t V = table.shape()[0];
  const int64_t row_bytes = table.shape()[1] * DTypeSize(table.dtype());
  return DispatchIndex(indices.dtype(), [&](auto tag) -> Status {
    using IdxT = decltype(tag);
    CF_RETURN_IF_ERROR(CheckIndices<IdxT>("gather", indices, V));
    const IdxT* idx = indices.data<IdxT>();
    const char* src = static_cast<const char*>(table.raw());
    char* dst = static_cast<char*>(out.raw());
    ParallelFor(0, indices.numel(), std::max<int64_t>(1, kElementwiseGrain * 4 / std::max<int64_t>(row_bytes, 1)),
                [&](int64_t b, int64_t e) {
                  for (int64_t n = b; n < e; ++n)
                    std::memcpy(dst + n * row_bytes, src + static_cast<int64_t>(idx[n]) * row_bytes,
                                static_cast<size_t>(row_bytes));
                });
    return absl::OkStatus();
  });
}

StatusOr<std::vector<Value>> GatherVjp(VjpContext& ctx) {
  std::vector<Value> grads(2);  // indices: not differentiable
  if (ctx.needs_grad[0] && ctx.grad_outputs[0].valid())
    grads[0] = EmbeddingBackward(ctx.grad_outputs[0], ctx.inputs[1], ctx.inputs[0].dim(0));
  return grads;
}

// Reads the indices and only the N gathered rows (not the whole table):
// bytes_read = N * D * es + N * index_size; bytes_written = N * D * es.
Cost CostGather(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost;
  cost.bytes_read = outs[0].bytes() + c.inputs[1].bytes();
  cost.bytes_written = outs[0].bytes();
  return cost;
}

OpDef GatherDef() {
  return {.name = "gather", .min_inputs = 2, .max_inputs = 2, .infer = InferGather, .cost = CostGather,
          .vjp = GatherVjp, .doc = "rows of table [V, D] picked by integer indices [...] -> [..., D]"};
}

// ---- embedding_backward

StatusOr<std::vector<TensorType>> InferEmbeddingBackward(const OpCall& c) {
  const TensorType& g = c.inputs[0];
  const TensorType& idx = c.inputs[1];
  CF_ASSIGN_OR_RETURN(int64_t V, c.attrs.RequireInt("num_embeddings"));
  CF_CHECK_ARG(V >= 1, "num_embeddings must be >= 1, got ", V);
  CF_CHECK_ARG(IsFloating(g.dtype), "the gradient must be floating, got ", DTypeName(g.dtype));
  CF_CHECK_ARG(IsIndexType(idx.dtype), "indices must be i32 or i64, got ", DTypeName(idx.dtype));
  CF_CHECK_ARG(g.shape.rank() == idx.shape.rank() + 1 &&
                   Shape(g.shape.dims().subspan(0, idx.shape.rank())) == idx.shape,
               "the gradient ", g.shape.ToString(), " must be indices ", idx.shape.ToString(), " + [D]");
  return std::vector<TensorType>{{Shape{V, g.shape.dim(-1)}, g.dtype}};
}

Status EmbeddingBackwardCpu(KernelContext& ctx) {
  const Tensor& grad = ctx.inputs[0];
  const Tensor& indices = ctx.inputs[1];
  Tensor& out = ctx.outputs[0];
  const int64_t V = out.shape()[0], D = out.shape()[1], N = indices.numel();
  return DispatchIndex(indices.dtype(), [&](auto itag) -> Status {
    using IdxT = decltype(itag);
    CF_RETURN_IF_ERROR(CheckIndices<IdxT>("embedding_backward", indices, V));
    const IdxT* idx = indices.data<IdxT>();
    // Tokens grouped by row, in token order (a stable counting sort): every
    // row is then a sum in a fixed order, independent of threading.
    std::vector<int64_t> start(V + 1, 0), order(N);
    for (int64_t n = 0; n < N; ++n) ++start[idx[n] + 1];
    for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
    {
      std::vector<int64_t> cursor(start.begin(), start.end() - 1);
      for (int64_t n = 0; n < N; ++n) order[cursor[idx[n]]++] = n;
    }
    return DispatchFloat(grad.dtype(), "embedding_backward", [&](auto ftag) -> Status {
      using T = decltype(ftag);
      const T* g = grad.data<T>();
      T* y = out.data<T>();
      ParallelFor(0, V, RowGrain(D), [&](int64_t b, int64_t e) {
        std::vector<Acc<T>> acc(D);
        for (int64_t v = b; v < e; ++v) {
          std::fill(acc.begin(), acc.end(), Acc<T>(0));
          for (int64_t t = start[v]; t < start[v + 1]; ++t) {
            const T* row = g + order[t] * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += Load(row, d);
          }
          for (int64_t d = 0; d < D; ++d) Store(y, v * D + d, acc[d]);
        }
      });
      return absl::OkStatus();
    });
  });
}

// One add per gradient element (accumulated into zero rows): N * D
// elementwise FLOPs; reads grad and indices, writes [V, D].
Cost CostEmbeddingBackward(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  cost.elementwise_flops = c.inputs[0].shape.numel();
  return cost;
}

OpDef EmbeddingBackwardDef() {
  return {.name = "embedding_backward", .min_inputs = 2, .max_inputs = 2, .infer = InferEmbeddingBackward,
          .cost = CostEmbeddingBackward,
          .doc = "gradient of gather w.r.t. the table: grad rows summed into [V, D] by index"};
}

}  // namespace

Value Gather(Value table, Value indices) {
  if (!table.valid() || !indices.valid()) return Value{};
  return table.b->Op1("gather", {table, indices});
}

Value EmbeddingBackward(Value grad, Value indices, int64_t num_embeddings) {
  if (!grad.valid() || !indices.valid()) return Value{};
  return grad.b->Op1("embedding_backward", {grad, indices}, Attrs{{"num_embeddings", num_embeddings}});
}

CF_REGISTER_OP(GatherDef());
CF_REGISTER_OP(EmbeddingBackwardDef());
CF_REGISTER_KERNEL("gather", kCPU, GatherCpu);
CF_REGISTER_KERNEL("embedding_backward", kCPU, EmbeddingBackwardCpu);

}  // namespace cf
