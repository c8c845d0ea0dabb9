// convblock_pyramid: definition, cost, VJP and CPU kernel (the CUDA kernel is
// in convblock_pyramid.cu). The contract is in convblock.h.
//
// CPU: per stage, the tiled depthwise core (ops/conv/conv_depthwise_tiled_cpu.h)
// with the gate as its epilogue writes the gated map straight into the
// stage's channel slice of the output (full-size stage), or into a small f32
// map that the bilinear resize writes into the slice (pooled stage; the
// pooled input is kept in f32 too). f64 (tests) takes the direct depthwise
// loops of ops/conv and gates in a second pass.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "graph/autodiff.h"
#include "ops/activation/activation.h"
#include "ops/conv/conv.h"
#include "ops/conv/conv_cpu.h"
#include "ops/conv/conv_depthwise_tiled_cpu.h"
#include "ops/convblock/convblock.h"
#include "ops/cpu_util.h"
#include "ops/elementwise/elementwise.h"
#include "ops/pool/pool.h"
#include "ops/pool/pool_cpu.h"
#include "ops/shape/shape.h"

namespace cf {
namespace {

const char* GateName(PyramidGate g) { return g == PyramidGate::kSigmoid ? "sigmoid" : "product"; }

Attrs ToAttrs(const ConvBlockPyramidOptions& o, bool has_bias) {
  std::vector<int64_t> sizes;
  for (const auto& [h, w] : o.sizes) {
    sizes.push_back(h);
    sizes.push_back(w);
  }
  return Attrs{{"sizes", sizes},
               {"kernel", o.kernel},
               {"gate", std::string(GateName(o.gate))},
               {"factor", o.factor},
               {"has_bias", has_bias}};
}

StatusOr<ConvBlockPyramidOptions> FromAttrs(const Attrs& a) {
  ConvBlockPyramidOptions o;
  CF_ASSIGN_OR_RETURN(const std::vector<int64_t> sizes, a.RequireInts("sizes"));
  CF_CHECK_ARG(!sizes.empty() && sizes.size() % 2 == 0, "sizes must hold [h, w] per stage, got ", sizes.size(),
               " values");
  for (size_t i = 0; i < sizes.size(); i += 2) o.sizes.push_back({sizes[i], sizes[i + 1]});
  CF_ASSIGN_OR_RETURN(o.kernel, a.RequireInt("kernel"));
  const std::string gate = a.Str("gate", "");
  CF_CHECK_ARG(gate == "product" || gate == "sigmoid", "gate must be 'product' or 'sigmoid', got '", gate, "'");
  o.gate = gate == "sigmoid" ? PyramidGate::kSigmoid : PyramidGate::kProduct;
  o.factor = a.Float("factor", 1.0);
  return o;
}

StatusOr<std::vector<TensorType>> InferPyramid(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(const ConvBlockPyramidOptions o, FromAttrs(c.attrs));
  const int64_t S = static_cast<int64_t>(o.sizes.size());
  const bool has_bias = c.attrs.Bool("has_bias", false);
  CF_CHECK_ARG(static_cast<int64_t>(c.inputs.size()) == 1 + S * (has_bias ? 2 : 1), "expects u, ", S, " weights",
               has_bias ? absl::StrCat(" and ", S, " biases") : std::string(), " for ", S, " stages, got ",
               c.inputs.size(), " inputs");
  const TensorType& u = c.inputs[0];
  CF_CHECK_ARG(u.shape.rank() == 4 && IsFloating(u.dtype), "u must be floating [B, H, W, C'], got ", u.ToString());
  const int64_t B = u.shape[0], H = u.shape[1], W = u.shape[2], C = u.shape[3], K = o.kernel;
  CF_CHECK_ARG(C >= 2 && C % 2 == 0, "C' = ", C, " must be even and >= 2 (the gate halves), u ", u.ToString());
  CF_CHECK_ARG(K >= 3 && K <= 31 && K % 2 == 1, "kernel ", K, " is not an odd integer in [3, 31]");
  for (int64_t n = 0; n < S; ++n) {
    const TensorType& w = c.inputs[1 + n];
    CF_CHECK_ARG(w.dtype == u.dtype && w.shape == Shape({K, K, C}), "weight of stage ", n, " must be ",
                 TensorType{Shape{K, K, C}, u.dtype}.ToString(), ", got ", w.ToString());
    if (has_bias) {
      const TensorType& bias = c.inputs[1 + S + n];
      CF_CHECK_ARG(bias.dtype == u.dtype && bias.shape == Shape({C}), "bias of stage ", n, " must be ",
                   TensorType{Shape{C}, u.dtype}.ToString(), ", got ", bias.ToString());
    }
    const auto [h, w_] = o.sizes[n];
    CF_CHECK_ARG(h >= 1 && h <= H && w_ >= 1 && w_ <= W, "stage ", n, " pools the ", H, "x", W, " map to ", h, "x",
                 w_, " (each side must be in [1, the map's])");
  }
  return std::vector<TensorType>{{Shape{B, H, W, S * (C / 2)}, u.dtype}};
}

// The composition on its own graph, from inputs of the call's types: its
// arithmetic is the fused node's (the same pool bins, taps, gate and resize
// taps); the bytes are the fused node's own.
Cost PyramidCost(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto o = FromAttrs(c.attrs);
  if (!o.ok()) return cost;
  const int64_t S = static_cast<int64_t>(o->sizes.size());
  Graph g;
  Builder b(&g);
  std::vector<Value> in;
  for (size_t i = 0; i < c.inputs.size(); ++i)
    in.push_back(b.Input(absl::StrCat("in", i), c.inputs[i].shape, c.inputs[i].dtype));
  const std::vector<Value> weights(in.begin() + 1, in.begin() + 1 + S);
  const std::vector<Value> biases(in.begin() + 1 + S, in.end());
  ConvBlockPyramidComposed(in[0], weights, biases, *o);
  if (!b.ok()) return cost;
  for (const Node& n : g.nodes()) {
    cost.mac_flops += n.cost.mac_flops;
    cost.bias_flops += n.cost.bias_flops;
    cost.elementwise_flops += n.cost.elementwise_flops;
    cost.transcendentals += n.cost.transcendentals;
  }
  return cost;
}

// The two halves of stage n's depthwise output, from the op library:
// pool (unless the stage is full size), permute of the [K, K, C'] weight to
// conv2d's [C', K, K, 1], conv2d with groups = C', split.
std::vector<Value> StageHalves(Value u, Value weight, std::optional<Value> bias, const ConvBlockPyramidOptions& o,
                               size_t n) {
  const Shape us = u.shape();
  const int64_t H = us[1], W = us[2], C = us[3], K = o.kernel;
  const auto [h, w] = o.sizes[n];
  Value p = h != H || w != W ? AdaptiveAvgPool2d(u, h, w) : u;         // [B, h, w, C']
  Value wr = Reshape(Permute(weight, {2, 0, 1}), {C, K, K, 1});         // [C', K, K, 1]
  Value d = Conv2d(p, wr, bias, {.padding = K / 2, .groups = C});       // [B, h, w, C']
  return Split(d, {C / 2, C / 2}, 3);                                   // 2 x [B, h, w, C'/2]
}

// Recomputes each stage's depthwise output from u (pool, conv2d, split:
// only what the gradient needs), applies the gate's and the resize's
// backward to the output gradient's slice by hand, and differentiates the
// rest with the op library's VJPs (split, conv2d, permute, pool). Only u is
// kept from the forward pass.
StatusOr<std::vector<Value>> PyramidVjp(VjpContext& ctx) {
  std::vector<Value> grads(ctx.inputs.size());
  if (!ctx.grad_outputs[0].valid()) return grads;
  CF_ASSIGN_OR_RETURN(const ConvBlockPyramidOptions o, FromAttrs(ctx.attrs));
  const size_t S = o.sizes.size();
  const Value u = ctx.inputs[0];
  const int64_t H = u.shape()[1], W = u.shape()[2], half = u.shape()[3] / 2;
  const bool has_bias = ctx.inputs.size() == 1 + 2 * S;
  const std::vector<Value> dy =
      S == 1 ? std::vector<Value>{ctx.grad_outputs[0]}
             : Split(ctx.grad_outputs[0], std::vector<int64_t>(S, half), 3);  // S x [B, H, W, C'/2]
  std::vector<Value> ys, dys;
  for (size_t n = 0; n < S; ++n) {
    std::optional<Value> bias;
    if (has_bias) bias = ctx.inputs[1 + S + n];
    const std::vector<Value> x12 = StageHalves(u, ctx.inputs[1 + n], bias, o, n);
    const auto [h, w] = o.sizes[n];
    Value dg = dy[n];
    if (h != H || w != W)
      dg = ctx.b.Op1("resize_bilinear_backward", {dg}, Attrs{{"input_hw", std::vector<int64_t>{h, w}}});
    Value dx1, dx2;
    if (o.gate == PyramidGate::kSigmoid) {  // g = x1 s, s = sigmoid(x2): dx1 = dg s, dx2 = dg x1 s (1 - s)
      const Value sg = Sigmoid(x12[1]);
      dx1 = dg * sg;
      dx2 = dg * x12[0] * (sg * Scale(sg, -1.0, 1.0));
    } else {  // g = x1 x2 f
      const Value dgf = o.factor == 1.0 ? dg : Scale(dg, o.factor);
      dx1 = dgf * x12[1];
      dx2 = dgf * x12[0];
    }
    ys.insert(ys.end(), x12.begin(), x12.end());
    dys.insert(dys.end(), {dx1, dx2});
  }
  CF_RETURN_IF_ERROR(ctx.b.status());
  std::vector<Value> wrt;
  std::vector<size_t> which;
  for (size_t i = 0; i < ctx.inputs.size(); ++i)
    if (ctx.needs_grad[i]) {
      wrt.push_back(ctx.inputs[i]);
      which.push_back(i);
    }
  CF_ASSIGN_OR_RETURN(const std::vector<Value> g, Gradients(ctx.b, ys, dys, wrt));
  for (size_t j = 0; j < which.size(); ++j) grads[which[j]] = g[j];
  return grads;
}

// ---- CPU kernel --------------------------------------------------------------------

// d [P, C] -> g [P, C/2] (pixels `stride` apart), the gate on the halves.
template <typename A>
void GateRows(const A* d, int64_t pixels, int64_t c, PyramidGate gate, A factor, A* g) {
  const int64_t half = c / 2;
  ParallelFor(0, pixels, 256, [&](int64_t lo, int64_t hi) {
    for (int64_t p = lo; p < hi; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const A x1 = d[p * c + i], x2 = d[p * c + half + i];
        g[p * half + i] = gate == PyramidGate::kSigmoid ? x1 / (A(1) + std::exp(-x2)) : x1 * x2 * factor;
      }
  });
}

// f64: the direct depthwise loops into d, then the gate.
void StageF64(const double* p, const Shape& ps, const double* w_kkc, const double* bias, const ConvBlockPyramidOptions& o,
              std::vector<double>* g) {
  const int64_t C = ps[3], K = o.kernel, taps = K * K;
  std::vector<double> w_ckk(taps * C);  // conv2d's [C, K, K, 1]
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < taps; ++k) w_ckk[c * taps + k] = w_kkc[k * C + c];
  ConvParams cp;
  cp.n = ps[0], cp.h = ps[1], cp.w = ps[2], cp.cin = cp.cout = cp.groups = C;
  cp.kh = cp.kw = K, cp.ph = cp.pw = K / 2, cp.ho = ps[1], cp.wo = ps[2];
  std::vector<double> d(ps.numel());
  DepthwiseForwardCpu<double>(cp, p, w_ckk.data(), bias, d.data());
  g->resize(ps.numel() / 2);
  GateRows<double>(d.data(), ps.numel() / C, C, o.gate, o.factor, g->data());
}

template <typename T>
Status PyramidCpuT(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(const ConvBlockPyramidOptions o, FromAttrs(ctx.attrs));
  const bool has_bias = ctx.attrs.Bool("has_bias", false);
  const Shape& us = ctx.inputs[0].shape();
  const int64_t B = us[0], H = us[1], W = us[2], C = us[3], half = C / 2, K = o.kernel;
  const int64_t S = static_cast<int64_t>(o.sizes.size()), stride = S * half;
  const T* u = ctx.inputs[0].data<T>();
  T* out = ctx.outputs[0].data<T>();
  for (int64_t n = 0; n < S; ++n) {
    const T* w = ctx.inputs[1 + n].data<T>();
    const T* bias = has_bias ? ctx.inputs[1 + S + n].data<T>() : nullptr;
    const auto [h, w_] = o.sizes[n];
    const bool pooled = h != H || w_ != W;
    const Shape ps{B, h, w_, C}, gs{B, h, w_, half};
    if constexpr (std::is_same_v<T, double>) {
      std::vector<double> p, g;
      if (pooled) {
        p.resize(ps.numel());
        pool_internal::AdaptiveAvgPoolCpu(u, us, p.data(), ps);
      }
      StageF64(pooled ? p.data() : u, ps, w, bias, o, &g);
      pool_internal::ResizeBilinearCpu(g.data(), gs, out + n * half, H, W, stride);
    } else {
      std::vector<float> wt(K * K * C), bf(has_bias ? C : 0);
      for (int64_t i = 0; i < K * K * C; ++i) wt[i] = Load(w, i);  // [K, K, C'] is tap-major already
      for (int64_t i = 0; i < static_cast<int64_t>(bf.size()); ++i) bf[i] = Load(bias, i);
      DwForwardArgs a;
      a.n = B, a.h = h, a.w = w_, a.c = C, a.kh = a.kw = K, a.ph = a.pw = K / 2;
      a.wt = wt.data();
      a.bias = has_bias ? bf.data() : nullptr;
      a.epilogue = o.gate == PyramidGate::kSigmoid ? DwEpilogue::kSigmoid : DwEpilogue::kProduct;
      a.factor = static_cast<float>(o.factor);
      if (!pooled) {
        a.y_pixel_stride = stride;
        DepthwiseForwardTiledCpu<T>(a, u, out + n * half);
      } else {
        // Uninitialised scratch: every element is written before it is read
        // (zero-filling these maps cost ~0.15 ms of the ~1.2 ms pooled stage at SD1.5 512).
        const std::unique_ptr<float[]> p(new float[ps.numel()]), g(new float[gs.numel()]);
        pool_internal::AdaptiveAvgPoolCpu(u, us, p.get(), ps);
        a.y_pixel_stride = half;
        DepthwiseForwardTiledCpu<float>(a, p.get(), g.get());
        pool_internal::ResizeBilinearCpu(g.get(), gs, out + n * half, H, W, stride);
      }
    }
  }
  return absl::OkStatus();
}

Status PyramidCpu(KernelContext& ctx) {
  return DispatchFloat(ctx.inputs[0].dtype(), ctx.op, [&](auto tag) { return PyramidCpuT<decltype(tag)>(ctx); });
}

OpDef PyramidDef() {
  return {.name = "convblock_pyramid", .min_inputs = 2, .max_inputs = -1, .infer = InferPyramid,
          .cost = PyramidCost, .vjp = PyramidVjp,
          .doc = "the ConvBlock's pyramid stages (pool, depthwise KxK, gate, bilinear up), concatenated on channels"};
}

// Builder errors name the op's inputs when a Value is invalid.
bool AllValid(const Value& u, const std::vector<Value>& a, const std::vector<Value>& b) {
  if (!u.valid()) return false;
  for (const Value& v : a)
    if (!v.valid()) return false;
  for (const Value& v : b)
    if (!v.valid()) return false;
  return true;
}

}  // namespace

Value ConvBlockPyramid(Value u, const std::vector<Value>& weights, const std::vector<Value>& biases,
                       const ConvBlockPyramidOptions& options) {
  if (!AllValid(u, weights, biases)) return {};
  std::vector<Value> in = {u};
  in.insert(in.end(), weights.begin(), weights.end());
  in.insert(in.end(), biases.begin(), biases.end());
  return u.b->Op1("convblock_pyramid", in, ToAttrs(options, !biases.empty()));
}

Value ConvBlockPyramidComposed(Value u, const std::vector<Value>& weights, const std::vector<Value>& biases,
                               const ConvBlockPyramidOptions& o) {
  if (!AllValid(u, weights, biases)) return {};
  Builder& b = *u.b;
  const Shape us = u.shape();
  if (us.rank() != 4 || weights.size() != o.sizes.size() || (!biases.empty() && biases.size() != weights.size())) {
    b.Fail(absl::InvalidArgumentError(absl::StrCat("convblock pyramid: u ", u.type().ToString(), ", ",
                                                   weights.size(), " weights, ", biases.size(), " biases for ",
                                                   o.sizes.size(), " stages")));
    return {};
  }
  const int64_t H = us[1], W = us[2];
  std::vector<Value> stages;
  for (size_t n = 0; n < o.sizes.size(); ++n) {
    std::optional<Value> bias;
    if (!biases.empty()) bias = biases[n];
    const std::vector<Value> x12 = StageHalves(u, weights[n], bias, o, n);  // 2 x [B, h, w, C'/2]
    Value g = o.gate == PyramidGate::kSigmoid ? x12[0] * Sigmoid(x12[1])
              : o.factor == 1.0              ? x12[0] * x12[1]
                                             : x12[0] * Scale(x12[1], o.factor);
    const auto [h, w] = o.sizes[n];
    if (h != H || w != W) g = ResizeBilinear(g, H, W);                      // [B, H, W, C'/2]
    stages.push_back(g);
  }
  return stages.size() == 1 ? stages[0] : Concat(stages, 3);               // [B, H, W, S·C'/2]
}

CF_REGISTER_OP(PyramidDef());
CF_REGISTER_KERNEL("convblock_pyramid", kCPU, PyramidCpu);

}  // namespace cf
