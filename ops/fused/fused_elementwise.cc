// fused_elementwise: definition (shape rule and cost from the ops it stands
// for) and the CPU kernel (CUDA kernel in fused_elementwise.cu).
//
// CPU: the output is walked in rows of its innermost collapsed dimension,
// split across threads; each row in blocks of up to kBlock elements. Per
// block every instruction runs as one loop over the block (so dispatch costs
// one switch per instruction per kBlock elements, and the loops vectorise:
// an AVX-512 build of them is chosen at run time, with exp and the forward
// activations from ops/vec_math_avx512.h). Registers are kBlock-wide
// rows in Acc<T> (f32, f64 for f64 storage); an f32 input that is contiguous
// along the row is read in place, others are converted or broadcast into a
// row; rows are reused once their register is dead.
#include "ops/fused/fused_elementwise.h"

#include <algorithm>

#include "ops/activation/activation_avx512.h"
#include "ops/cpu_util.h"
#include "ops/elementwise/broadcast.h"
#include "ops/elementwise/value_util.h"
#include "ops/vec_math_avx512.h"

namespace cf {
namespace {

using fused::Code;

// The type of every register of `p` over `inputs`, each from the shape rule of
// the op its instruction stands for.
StatusOr<std::vector<TensorType>> RegisterTypes(const FusedProgram& p, absl::Span<const TensorType> inputs) {
  CF_RETURN_IF_ERROR(detail::CheckSameFloat(inputs));
  CF_CHECK_ARG(static_cast<int>(inputs.size()) == p.num_inputs(), "the program reads ", p.num_inputs(),
               " inputs, got ", inputs.size());
  std::vector<TensorType> regs;
  for (size_t i = 0; i < p.code().size(); ++i) {
    const fused::Instr& in = p.code()[i];
    if (in.code == Code::kInput) {
      regs.push_back(inputs[in.a]);
    } else if (in.code == Code::kConst) {
      TensorType scalar;  // a rank-0 value
      scalar.dtype = inputs[0].dtype;
      regs.push_back(scalar);
    } else {
      const std::string op = p.OpName(static_cast<int>(i));
      CF_ASSIGN_OR_RETURN(const OpDef* def, OpRegistry::Global().Get(op));
      std::vector<TensorType> ins = {regs[in.a]};
      if (fused::IsBinary(in.code)) ins.push_back(regs[in.b]);
      auto out = InferOp(*def, p.OpAttrs(static_cast<int>(i)), ins);
      if (!out.ok()) return Status(out.status().code(), absl::StrCat("instruction ", i, ": ", out.status().message()));
      regs.push_back((*out)[0]);
    }
  }
  // Every register is evaluated at the output's resolution.
  for (size_t i = 0; i < regs.size(); ++i)
    CF_CHECK_ARG(BroadcastsTo(regs[i].shape, regs.back().shape), "register ", i, " ", regs[i].ToString(),
                 " does not broadcast to the output ", regs.back().ToString());
  return regs;
}

StatusOr<std::vector<TensorType>> InferFused(const OpCall& c) {
  CF_ASSIGN_OR_RETURN(FusedProgram p, FusedProgram::FromAttrs(c.attrs));
  CF_ASSIGN_OR_RETURN(std::vector<TensorType> regs, RegisterTypes(p, c.inputs));
  return std::vector<TensorType>{regs.back()};
}

// The FLOPs of every op the program stands for at its own operand shapes
// (from that op's cost rule); the bytes of this node's inputs and output.
Cost CostFused(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost = IoBytes(c.inputs, outs);
  auto p = FusedProgram::FromAttrs(c.attrs);
  if (!p.ok()) return cost;
  auto regs = RegisterTypes(*p, c.inputs);
  if (!regs.ok()) return cost;
  for (size_t i = 0; i < p->code().size(); ++i) {
    const fused::Instr& in = p->code()[i];
    if (in.code == Code::kInput || in.code == Code::kConst) continue;
    const OpDef* def = OpRegistry::Global().Find(p->OpName(static_cast<int>(i)));
    std::vector<TensorType> ins = {(*regs)[in.a]};
    if (fused::IsBinary(in.code)) ins.push_back((*regs)[in.b]);
    const Cost k = CostOf(*def, p->OpAttrs(static_cast<int>(i)), ins, {(*regs)[i]});
    cost.mac_flops += k.mac_flops;
    cost.bias_flops += k.bias_flops;
    cost.elementwise_flops += k.elementwise_flops;
    cost.transcendentals += k.transcendentals;
  }
  return cost;
}

// ---- CPU kernel ---------------------------------------------------------------

constexpr int kBlock = 256;

// d[k] = f(x[k], y[k]) for k < n; y = x for unary codes. d may be x or y
// (each element is read before it is written), hence ivdep, not restrict.
#define CF_FUSED_APPLY(NAME, ATTR)                                                              \
  template <typename A>                                                                         \
  ATTR void NAME(Code c, A* d, const A* x, const A* y, int n, A p0, A p1) {                     \
    switch (c) {                                                                                \
      CF_FUSED_COMPUTE_CODES(CF_FUSED_APPLY_CASE)                                               \
      default: break;                                                                           \
    }                                                                                           \
  }
#define CF_FUSED_APPLY_CASE(k)                                                                  \
  case Code::k:                                                                                 \
    _Pragma("GCC ivdep") for (int i = 0; i < n; ++i) d[i] = fused::Eval<Code::k>(x[i], y[i], p0, p1); \
    break;

CF_FUSED_APPLY(ApplyPortable, )
CF_FUSED_APPLY(ApplyAvx512Loops, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,prefer-vector-width=512"))))
#undef CF_FUSED_APPLY
#undef CF_FUSED_APPLY_CASE

// d[k] = f(x[k]) on 16 f32 lanes at a time (the tail masked).
template <typename F>
CF_VM_TARGET void MapLanes(float* d, const float* x, int n, F f) {
  for (int i = 0; i < n; i += vm::kLanes) {
    const __mmask16 m = vm::FirstLanes(n - i);
    vm::Store(d + i, f(vm::Load(x + i, m)), m);
  }
}

// d[k] = y[k] * f'(x[k]) (an activation's backward: x, dy) on 16 f32 lanes.
template <act::Kind K>
CF_VM_TARGET void MapBackwardLanes(float* d, const float* x, const float* y, int n) {
  for (int i = 0; i < n; i += vm::kLanes) {
    const __mmask16 m = vm::FirstLanes(n - i);
    vm::Store(d + i, _mm512_mul_ps(vm::Load(y + i, m), act::VecDerivative<K>(vm::Load(x + i, m))), m);
  }
}

// A row of n f16 / bf16 values to f32 and back, 16 lanes at a time.
template <typename T>
CF_VM_TARGET void LoadRowAvx512(float* d, const T* x, int n) {
  for (int i = 0; i < n; i += vm::kLanes) {
    const __mmask16 m = vm::FirstLanes(n - i);
    vm::Store(d + i, vm::Load(x + i, m), m);
  }
}
template <typename T>
CF_VM_TARGET void StoreRowAvx512(T* d, const float* x, int n) {
  for (int i = 0; i < n; i += vm::kLanes) {
    const __mmask16 m = vm::FirstLanes(n - i);
    vm::Store(d + i, vm::Load(x + i, m), m);
  }
}

// The AVX-512 build: exp, the activations and their backward ops (dy f'(x))
// in f32 through ops/vec_math_avx512.h / activation_avx512.h (the functions
// the ops' own CPU kernels use), the rest (arithmetic, leaky_relu, elu) as
// auto-vectorised loops. (The lambdas capture n: a captureless
// lambda's function-pointer conversion would lack the target attribute.)
template <typename A>
CF_VM_TARGET void ApplyAvx512(Code c, A* d, const A* x, const A* y, int n, A p0, A p1) {
  if constexpr (std::is_same_v<A, float>) {
    switch (c) {
      case Code::kExp: return MapLanes(d, x, n, [n](__m512 v) CF_VM_TARGET { return vm::Exp(v); });
      case Code::kSilu: return MapLanes(d, x, n, [n](__m512 v) CF_VM_TARGET { return vm::Silu(v); });
      case Code::kGelu: return MapLanes(d, x, n, [n](__m512 v) CF_VM_TARGET { return vm::GeluErf(v); });
      case Code::kGeluTanh: return MapLanes(d, x, n, [n](__m512 v) CF_VM_TARGET { return vm::GeluTanh(v); });
      case Code::kSigmoid: return MapLanes(d, x, n, [n](__m512 v) CF_VM_TARGET { return vm::Sigmoid(v); });
      case Code::kQuickGelu:
        return MapLanes(d, x, n, [n](__m512 v) CF_VM_TARGET {
          return vm::TimesLogistic(v, _mm512_mul_ps(vm::Set(float(act::kQuickGelu)), v));
        });
      case Code::kSiluBackward: return MapBackwardLanes<act::Kind::kSilu>(d, x, y, n);
      case Code::kGeluBackward: return MapBackwardLanes<act::Kind::kGeluErf>(d, x, y, n);
      case Code::kGeluTanhBackward: return MapBackwardLanes<act::Kind::kGeluTanh>(d, x, y, n);
      case Code::kQuickGeluBackward: return MapBackwardLanes<act::Kind::kQuickGelu>(d, x, y, n);
      case Code::kSigmoidBackward: return MapBackwardLanes<act::Kind::kSigmoid>(d, x, y, n);
      default: break;
    }
  }
  ApplyAvx512Loops(c, d, x, y, n, p0, p1);
}

// One instruction prepared for the block loop.
template <typename A> struct Step {
  Code code;
  int a = 0, b = 0;   // operand registers; input index for kInput
  int row = -1;       // scratch row it writes (-1: none, it reads its input in place or writes the output)
  A p0 = 0, p1 = 0;   // parameters; kConst: the value
  int64_t stride = 0; // kInput: its stride along the innermost dimension
};

// Assigns scratch rows: an instruction's row is taken after its operands'
// rows are released (an in-place row update is safe elementwise). Constant
// rows are never released (filled once per task). Returns the row count.
template <typename A>
int AssignRows(std::vector<Step<A>>& steps, bool in_place_input_ok, bool direct_out) {
  const int n = static_cast<int>(steps.size());
  std::vector<int> last_use(n, -1);
  for (int i = 0; i < n; ++i) {
    const Step<A>& s = steps[i];
    if (s.code == Code::kInput || s.code == Code::kConst) continue;
    last_use[s.a] = i;
    if (fused::IsBinary(s.code)) last_use[s.b] = i;
  }
  std::vector<int> free_rows;
  int rows = 0;
  auto take = [&] {
    if (free_rows.empty()) return rows++;
    const int r = free_rows.back();
    free_rows.pop_back();
    return r;
  };
  for (int i = 0; i < n; ++i) {
    Step<A>& s = steps[i];
    const bool last = i == n - 1;
    if (s.code != Code::kInput && s.code != Code::kConst) {
      for (int o : {s.a, fused::IsBinary(s.code) ? s.b : -1}) {
        if (o < 0 || last_use[o] != i || steps[o].row < 0 || steps[o].code == Code::kConst) continue;
        if (std::count(free_rows.begin(), free_rows.end(), steps[o].row) == 0) free_rows.push_back(steps[o].row);
      }
    }
    const bool needs_row = s.code == Code::kConst || (s.code == Code::kInput ? !(in_place_input_ok && s.stride == 1)
                                                                              : !(last && direct_out));
    if (needs_row) s.row = take();
  }
  return rows;
}

template <typename T>
Status RunFusedCpu(const FusedProgram& prog, const fused::Plan& plan, absl::Span<const Tensor> inputs, Tensor& out) {
  using A = Acc<T>;
  constexpr bool kNative = std::is_same_v<T, A>;  // f32 / f64 storage: rows may be read and written in place
  const int last_dim = plan.rank - 1;
  std::vector<Step<A>> steps;
  for (const fused::Instr& in : prog.code()) {
    Step<A> s{in.code, in.a, in.b};
    if (in.code == Code::kInput) s.stride = plan.strides[in.a][last_dim];
    if (in.code == Code::kConst) s.p0 = static_cast<A>(prog.consts()[in.p]);
    if (in.code != Code::kInput && in.code != Code::kConst) {
      const int np = static_cast<int>(prog.consts().size());
      if (in.p < np) s.p0 = static_cast<A>(prog.consts()[in.p]);
      if (in.p + 1 < np) s.p1 = static_cast<A>(prog.consts()[in.p + 1]);
    }
    steps.push_back(s);
  }
  // The last register goes straight to the output when it is computed in Acc<T> = T.
  const bool direct_out = kNative && steps.back().code != Code::kInput && steps.back().code != Code::kConst;
  const int rows = AssignRows(steps, kNative, direct_out);
  const int nsteps = static_cast<int>(steps.size());
  const bool avx512 = vm::HasAvx512();
  const auto apply = avx512 ? &ApplyAvx512<A> : &ApplyPortable<A>;
  // f16 / bf16 rows converted with AVX-512.
  constexpr bool kVecConvert = std::is_same_v<T, f16_t> || std::is_same_v<T, bf16_t>;

  std::vector<const T*> in_ptr(inputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) in_ptr[k] = inputs[k].data<T>();
  T* po = out.data<T>();
  const int64_t n = plan.numel();
  const int64_t inner = plan.dims[last_dim];

  ParallelFor(0, n, kElementwiseGrain, [&](int64_t lo, int64_t hi) {
    std::vector<A> scratch(static_cast<size_t>(std::max(rows, 1)) * kBlock);
    auto row = [&](int r) { return scratch.data() + static_cast<size_t>(r) * kBlock; };
    for (const Step<A>& s : steps)
      if (s.code == Code::kConst) std::fill_n(row(s.row), kBlock, s.p0);
    const A* reg[fused::kMaxInstrs];
    int64_t off[fused::kMaxInputs];
    int64_t i = lo;
    while (i < hi) {
      // This row's start in every input.
      int64_t r = i / inner;
      const int64_t col = i % inner;
      const int64_t len_row = std::min(inner - col, hi - i);
      for (int k = 0; k < plan.num_inputs; ++k) off[k] = col * plan.strides[k][last_dim];
      for (int d = last_dim - 1; d >= 0; --d) {
        const int64_t idx = r % plan.dims[d];
        r /= plan.dims[d];
        for (int k = 0; k < plan.num_inputs; ++k) off[k] += idx * plan.strides[k][d];
      }
      for (int64_t b0 = 0; b0 < len_row; b0 += kBlock) {
        const int len = static_cast<int>(std::min<int64_t>(kBlock, len_row - b0));
        for (int j = 0; j < nsteps; ++j) {
          const Step<A>& s = steps[j];
          if (s.code == Code::kInput) {
            const T* src = in_ptr[s.a] + off[s.a] + b0 * s.stride;
            if (s.row < 0) {
              if constexpr (kNative) reg[j] = src;
            } else {
              A* dst = row(s.row);
              if (s.stride == 0) {
                std::fill_n(dst, len, Load(src, 0));
              } else if (kVecConvert && avx512) {
                if constexpr (kVecConvert) LoadRowAvx512(dst, src, len);
              } else {
                for (int k = 0; k < len; ++k) dst[k] = Load(src, k);
              }
              reg[j] = dst;
            }
          } else if (s.code == Code::kConst) {
            reg[j] = row(s.row);
          } else {
            A* dst;
            if (s.row >= 0) {
              dst = row(s.row);
            } else {
              if constexpr (kNative) dst = po + i + b0;
              else dst = nullptr;  // unreachable: direct_out needs kNative
            }
            apply(s.code, dst, reg[s.a], fused::IsBinary(s.code) ? reg[s.b] : reg[s.a], len, s.p0, s.p1);
            reg[j] = dst;
          }
        }
        if (!direct_out) {
          const A* res = reg[nsteps - 1];
          T* o = po + i + b0;
          if constexpr (kVecConvert) {
            if (avx512) {
              StoreRowAvx512(o, res, len);
              continue;
            }
          }
          for (int k = 0; k < len; ++k) Store(o, k, res[k]);
        }
      }
      i += len_row;
    }
  });
  return absl::OkStatus();
}

Status FusedCpu(KernelContext& ctx) {
  CF_ASSIGN_OR_RETURN(FusedProgram prog, FusedProgram::FromAttrs(ctx.attrs));
  Tensor& out = ctx.outputs[0];
  if (out.numel() == 0) return absl::OkStatus();
  std::vector<Shape> shapes;
  for (const Tensor& t : ctx.inputs) shapes.push_back(t.shape());
  const fused::Plan plan = fused::MakePlan(out.shape(), shapes);
  return DispatchFloat(out.dtype(), ctx.op,
                       [&](auto tag) { return RunFusedCpu<decltype(tag)>(prog, plan, ctx.inputs, out); });
}

}  // namespace

Value FusedElementwise(const std::vector<Value>& inputs, const FusedProgram& program) {
  for (const Value& v : inputs)
    if (v.b != nullptr) return v.b->Op1("fused_elementwise", inputs, program.ToAttrs());
  return Value{};
}

CF_REGISTER_OP((OpDef{.name = "fused_elementwise",
                      .min_inputs = 1,
                      .max_inputs = fused::kMaxInputs,
                      .infer = InferFused,
                      .cost = CostFused,
                      .inplace_ok = true,
                      .doc = "a chain of elementwise ops in one kernel (attrs: program, consts)"}));
CF_REGISTER_KERNEL("fused_elementwise", kCPU, FusedCpu);

}  // namespace cf
