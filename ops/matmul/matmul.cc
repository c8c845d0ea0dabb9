// "matmul" and "linear": definitions, shape and cost rules, VJPs and the CPU
// kernel (the blocked GEMM of cpu_gemm.cc). The CUDA kernel (cuBLASLt) is in
// matmul_cublaslt.cu. See docs/ops/matmul.md.
#include "ops/matmul/matmul.h"

#include "ops/cpu_util.h"
#include "ops/kernel_state.h"
#include "ops/elementwise/elementwise.h"
#include "ops/matmul/matmul_dims.h"
#include "ops/elementwise/value_util.h"
#include "ops/matmul/matmul_vjp_util.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

std::vector<TensorType> TypesOf(absl::Span<const Tensor> ts) {
  std::vector<TensorType> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back({t.shape(), t.dtype()});
  return out;
}

StatusOr<std::vector<TensorType>> InferMatmul(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(MatmulDims d, MatmulDimsOf(c.op, c.attrs, c.inputs));
  return std::vector<TensorType>{{d.out_shape, d.dtype}};
}

Cost CostMatmul(const OpCall& c, absl::Span<const TensorType> outs) {
  auto d = MatmulDimsOf(c.op, c.attrs, c.inputs);
  return d.ok() ? MatmulCost(*d, c.inputs, outs) : IoBytes(c.inputs, outs);
}

// Multiplications below this many multiply-adds run one per thread over the
// batch; larger ones run one at a time with the GEMM's own threads.
constexpr int64_t kSmallGemmMacs = int64_t{1} << 18;

// What a packed weight depends on besides its values (ops/kernel_state.h).
struct PackKey {
  const void* b = nullptr;
  int64_t k = 0, n = 0;
  bool trans_b = false;
  bool operator==(const PackKey&) const = default;
};

// b_packed: op(b) packed once for the node (its weight is a parameter), or null.
// image_bias / residual: the fused forms (MatmulDims), or null.
template <typename T>
void MatmulCpuTyped(const MatmulDims& d, const T* a, const T* b, const T* bias, T* c,
                    const gemm::PackedB<gemm::GemmAcc<T>>* b_packed, const T* image_bias = nullptr,
                    const T* residual = nullptr) {
  const int64_t m = d.m, n = d.n, k = d.k;
  gemm::Epilogue<T> ep;
  ep.bias = bias;
  ep.act = d.act;
  std::vector<T> both;  // bias + image_bias, one row per image
  if (image_bias != nullptr) {
    ep.bias_rows = d.image_rows;
    ep.bias = image_bias;
    if (bias != nullptr) {
      const int64_t images = d.batch_count * m / d.image_rows;
      both.resize(images * n);
      for (int64_t i = 0; i < images; ++i)
        for (int64_t j = 0; j < n; ++j)
          Store(both.data(), i * n + j, Load(image_bias, i * n + j) + Load(bias, j));
      ep.bias = both.data();
    }
  }
  ep.residual = residual;
  ep.ldr = n;
  // The epilogue of output matrix t (its own rows of the residual).
  auto ep_at = [&](int64_t t) {
    gemm::Epilogue<T> e = ep;
    if (residual != nullptr) e.residual = residual + t * m * n;
    return e;
  };
  auto a_at = [&](int64_t i) {  // op(a) of matrix i of a: [M, K]
    const T* p = a + i * m * k;
    return d.trans_a ? gemm::Transposed(p, m) : gemm::RowMajor(p, k);
  };
  auto b_at = [&](int64_t i) {  // op(b) of matrix i of b: [K, N]
    const T* p = b + i * k * n;
    return d.trans_b ? gemm::Transposed(p, k) : gemm::RowMajor(p, n);
  };
  if (d.batch_count == 0) return;
  if (d.b_batch_count() == 1 && !d.trans_a) {
    // One GEMM: the batches of a are consecutive [M, K] blocks, i.e. one
    // [batch·M, K] matrix (the usual linear layer over tokens).
    if (b_packed != nullptr) {
      gemm::GemmPacked(d.batch_count * m, a_at(0), *b_packed, c, n, ep);
    } else {
      gemm::Gemm(d.batch_count * m, n, k, a_at(0), b_at(0), c, n, ep);
    }
    return;
  }
  const std::vector<int64_t> ai = d.AIndices(), bi = d.BIndices();
  if (d.b_batch_count() == 1) {
    // One B for every batch: pack it once.
    gemm::PackedB<gemm::GemmAcc<T>> local;
    if (b_packed == nullptr) local = gemm::PackB<T, gemm::GemmAcc<T>>(k, n, b_at(0));
    const auto& pb = b_packed != nullptr ? *b_packed : local;
    auto one = [&](int64_t t) { gemm::GemmPacked(m, a_at(ai[t]), pb, c + t * m * n, n, ep_at(t)); };
    if (m * n * k <= kSmallGemmMacs) {
      ParallelFor(0, d.batch_count, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t t = lo; t < hi; ++t) one(t);
      });
    } else {
      for (int64_t t = 0; t < d.batch_count; ++t) one(t);
    }
    return;
  }
  auto one = [&](int64_t t) { gemm::Gemm(m, n, k, a_at(ai[t]), b_at(bi[t]), c + t * m * n, n, ep_at(t)); };
  if (m * n * k <= kSmallGemmMacs) {
    ParallelFor(0, d.batch_count, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) one(t);
    });
  } else {
    for (int64_t t = 0; t < d.batch_count; ++t) one(t);
  }
}

Status MatmulCpu(KernelContext& ctx) {
  const std::vector<TensorType> types = TypesOf(ctx.inputs);
  CF_ASSIGN_OR_RETURN(MatmulDims d, MatmulDimsOf(ctx.op, ctx.attrs, types));
  return DispatchFloat(d.dtype, ctx.op, [&](auto tag) -> Status {
    using T = decltype(tag);
    using Acc = gemm::GemmAcc<T>;
    const T* bias = d.has_bias ? ctx.inputs[2].data<T>() : nullptr;
    const T* b = ctx.inputs[1].data<T>();
    // A weight shared by every batch that no node writes: packed once, kept
    // for later runs (the SD1.5 UNet repacked ~3.4 GB of weights per step).
    const gemm::PackedB<Acc>* b_packed = nullptr;
    if (d.b_batch_count() == 1) {
      b_packed = StableInputState<gemm::PackedB<Acc>>(ctx, 1, PackKey{b, d.k, d.n, d.trans_b}, [&] {
        return gemm::PackB<T, Acc>(d.k, d.n, d.trans_b ? gemm::Transposed(b, d.k) : gemm::RowMajor(b, d.n));
      });
    }
    const T* image_bias = d.has_image_bias ? ctx.inputs[d.image_bias_input()].data<T>() : nullptr;
    const T* residual = d.has_residual ? ctx.inputs[d.residual_input()].data<T>() : nullptr;
    MatmulCpuTyped<T>(d, ctx.inputs[0].data<T>(), b, bias, ctx.outputs[0].data<T>(), b_packed, image_bias, residual);
    return absl::OkStatus();
  });
}

// ---- VJPs ----------------------------------------------------------------------

std::vector<int64_t> Dims(const Shape& s) { return std::vector<int64_t>(s.dims().begin(), s.dims().end()); }

// y = act(op(a)·op(b) + bias). With G = dL/d(pre-activation), A = op(a), B = op(b):
//   dA = G·Bᵀ, dB = Aᵀ·G, dbias = column sums of G; stored operands that are
//   transposed get the transposed products, broadcast batches are summed away.
// The fused forms are made by graph passes, which run after autodiff.
Status RefuseFused(const char* op, const Attrs& attrs) {
  if (attrs.Bool("residual", false) || attrs.Bool("image_bias", false))
    return absl::UnimplementedError(absl::StrCat(
        op, " with a fused residual / image_bias has no VJP: graph passes (graph/passes/) make these forms after "
            "autodiff, on the final graph; differentiate the unfused graph"));
  return absl::OkStatus();
}

StatusOr<std::vector<Value>> MatmulVjp(VjpContext& ctx) {
  CF_RETURN_IF_ERROR(RefuseFused("matmul", ctx.attrs));
  const size_t n_in = ctx.inputs.size();
  std::vector<Value> grads(n_in);
  Value g = ctx.grad_outputs[0];
  if (!g.valid()) return grads;
  Value a = ctx.inputs[0], b = ctx.inputs[1];
  const std::optional<Value> bias = n_in == 3 ? std::optional<Value>(ctx.inputs[2]) : std::nullopt;
  const bool ta = ctx.attrs.Bool("trans_a", false), tb = ctx.attrs.Bool("trans_b", false);
  const std::string act = ctx.attrs.Str("activation", "none");
  const bool tf32 = ctx.attrs.Bool("allow_tf32", false);
  auto mm = [&](Value x, Value y, bool tx, bool ty) {
    return MatMul(x, y, std::nullopt, {.trans_a = tx, .trans_b = ty, .allow_tf32 = tf32});
  };
  if (act != "none") {
    // Recompute the pre-activation and go through the activation's own VJP.
    Value z = MatMul(a, b, bias, {.trans_a = ta, .trans_b = tb, .allow_tf32 = tf32});
    CF_ASSIGN_OR_RETURN(g, ActivationVjp(ctx.b, act, z, ctx.outputs[0], g));
  }
  const bool b_unbatched = b.rank() == 2 || b.shape().prod(0, b.rank() - 2) == 1;
  if (ctx.needs_grad[0]) {
    Value da = ta ? mm(b, g, tb, true)     // a stored [K, M]: (G·Bᵀ)ᵀ = B·Gᵀ
                  : mm(g, b, false, !tb);  // G·Bᵀ
    grads[0] = SumTo(da, a.shape());
  }
  if (ctx.needs_grad[1]) {
    const int64_t k = ta ? a.dim(-2) : a.dim(-1), n = g.dim(-1);
    Value db;
    if (b_unbatched && !ta && a.rank() > 2) {
      // Shared B: fold a's batch into rows, one [K, N] product instead of a
      // product per batch that SumTo would add up.
      Value a2 = Reshape(a, {-1, k}), g2 = Reshape(g, {-1, n});
      db = tb ? mm(g2, a2, true, false) : mm(a2, g2, true, false);
      db = Reshape(db, Dims(b.shape()));
    } else {
      db = tb ? mm(g, a, true, ta)     // b stored [N, K]: (Aᵀ·G)ᵀ = Gᵀ·A
              : mm(a, g, !ta, false);  // Aᵀ·G
      db = SumTo(db, b.shape());
    }
    grads[1] = db;
  }
  if (bias && ctx.needs_grad[2]) grads[2] = SumTo(g, bias->shape());
  return grads;
}

// y = act(x·Wᵀ + bias) over rows R = prod(x.shape[:-1]): dx = G·W,
// dW = Gᵀ·x (over all rows at once), dbias = column sums of G.
StatusOr<std::vector<Value>> LinearVjp(VjpContext& ctx) {
  CF_RETURN_IF_ERROR(RefuseFused("linear", ctx.attrs));
  const size_t n_in = ctx.inputs.size();
  std::vector<Value> grads(n_in);
  Value g = ctx.grad_outputs[0];
  if (!g.valid()) return grads;
  Value x = ctx.inputs[0], w = ctx.inputs[1];
  const std::optional<Value> bias = n_in == 3 ? std::optional<Value>(ctx.inputs[2]) : std::nullopt;
  const std::string act = ctx.attrs.Str("activation", "none");
  const bool tf32 = ctx.attrs.Bool("allow_tf32", false);
  auto mm = [&](Value x, Value y, bool tx) {
    return MatMul(x, y, std::nullopt, {.trans_a = tx, .allow_tf32 = tf32});
  };
  if (act != "none") {
    Value z = Linear(x, w, bias, {.allow_tf32 = tf32});
    CF_ASSIGN_OR_RETURN(g, ActivationVjp(ctx.b, act, z, ctx.outputs[0], g));
  }
  const int64_t in = w.dim(1), out = w.dim(0);
  Value g2 = Reshape(g, {-1, out});
  if (ctx.needs_grad[0]) grads[0] = Reshape(mm(g2, w, false), Dims(x.shape()));
  if (ctx.needs_grad[1]) grads[1] = mm(g2, Reshape(x, {-1, in}), true);
  if (bias && ctx.needs_grad[2]) grads[2] = SumTo(g, bias->shape());
  return grads;
}

OpDef MatmulDef(const std::string& name) {
  const bool matmul = name == "matmul";  // else linear
  return {.name = name, .min_inputs = 2, .max_inputs = 5, .infer = InferMatmul, .cost = CostMatmul,
          .vjp = matmul ? VjpFn(MatmulVjp) : VjpFn(LinearVjp),
          .doc = matmul ? "act(op(a)·op(b) + bias) with numpy-broadcast batch dims (op: optional transpose)"
                        : "act(x·weightᵀ + bias), weight [out, in]"};
}

}  // namespace

Value MatMul(Value a, Value b, std::optional<Value> bias, const MatMulOptions& o) {
  Builder* bld = detail::AnyBuilder({a, b});
  if (bld == nullptr) return {};
  Attrs attrs{{"trans_a", o.trans_a}, {"trans_b", o.trans_b}, {"activation", o.activation}};
  if (o.allow_tf32) attrs.Set("allow_tf32", true);
  std::vector<Value> ins{a, b};
  if (bias) ins.push_back(*bias);
  return bld->Op1("matmul", ins, attrs);
}

Value Linear(Value x, Value weight, std::optional<Value> bias, const LinearOptions& o) {
  Builder* bld = detail::AnyBuilder({x, weight});
  if (bld == nullptr) return {};
  Attrs attrs{{"activation", o.activation}};
  if (o.allow_tf32) attrs.Set("allow_tf32", true);
  std::vector<Value> ins{x, weight};
  if (bias) ins.push_back(*bias);
  return bld->Op1("linear", ins, attrs);
}

CF_REGISTER_OP(MatmulDef("matmul"));
CF_REGISTER_OP(MatmulDef("linear"));
CF_REGISTER_KERNEL("matmul", kCPU, MatmulCpu);
CF_REGISTER_KERNEL("linear", kCPU, MatmulCpu);

}  // namespace cf
