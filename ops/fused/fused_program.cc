// FusedProgram: the instruction table (which op and attributes each code
// stands for), building, encoding and checking programs, and the collapsed
// broadcast plan shared by the CPU and CUDA kernels.
#include <algorithm>

#include "absl/strings/str_join.h"
#include "ops/fused/fused_elementwise.h"

namespace cf {

namespace {

using fused::Code;

// What each computing code stands for: the op, its operand count, and its
// parameters (attribute names and defaults, as the op's own rules read them).
struct CodeInfo {
  Code code;
  const char* op;
  int arity;
  const char* approximate;  // gelu's form; null for other ops
  int params;
  const char* param_names[2];
  double param_defaults[2];
};

constexpr CodeInfo kCodes[] = {
    {Code::kScale, "scale", 1, nullptr, 2, {"mul", "add"}, {1.0, 0.0}},
    {Code::kExp, "exp", 1, nullptr, 0, {}, {}},
    {Code::kSqrt, "sqrt", 1, nullptr, 0, {}, {}},
    {Code::kRsqrt, "rsqrt", 1, nullptr, 0, {}, {}},
    {Code::kNeg, "neg", 1, nullptr, 0, {}, {}},
    {Code::kSquare, "square", 1, nullptr, 0, {}, {}},
    {Code::kSilu, "silu", 1, nullptr, 0, {}, {}},
    {Code::kGelu, "gelu", 1, "none", 0, {}, {}},
    {Code::kGeluTanh, "gelu", 1, "tanh", 0, {}, {}},
    {Code::kQuickGelu, "quick_gelu", 1, nullptr, 0, {}, {}},
    {Code::kLeakyRelu, "leaky_relu", 1, nullptr, 1, {"negative_slope"}, {0.01}},
    {Code::kElu, "elu", 1, nullptr, 1, {"alpha"}, {1.0}},
    {Code::kSigmoid, "sigmoid", 1, nullptr, 0, {}, {}},
    {Code::kAdd, "add", 2, nullptr, 0, {}, {}},
    {Code::kSub, "sub", 2, nullptr, 0, {}, {}},
    {Code::kMul, "mul", 2, nullptr, 0, {}, {}},
    {Code::kDiv, "div", 2, nullptr, 0, {}, {}},
    {Code::kSiluBackward, "silu_backward", 2, nullptr, 0, {}, {}},
    {Code::kGeluBackward, "gelu_backward", 2, "none", 0, {}, {}},
    {Code::kGeluTanhBackward, "gelu_backward", 2, "tanh", 0, {}, {}},
    {Code::kQuickGeluBackward, "quick_gelu_backward", 2, nullptr, 0, {}, {}},
    {Code::kLeakyReluBackward, "leaky_relu_backward", 2, nullptr, 1, {"negative_slope"}, {0.01}},
    {Code::kEluBackward, "elu_backward", 2, nullptr, 1, {"alpha"}, {1.0}},
    {Code::kSigmoidBackward, "sigmoid_backward", 2, nullptr, 0, {}, {}},
};

const CodeInfo* InfoOf(Code c) {
  for (const CodeInfo& i : kCodes)
    if (i.code == c) return &i;
  return nullptr;
}

const CodeInfo* Lookup(const std::string& op, const Attrs& attrs) {
  for (const CodeInfo& i : kCodes) {
    if (op != i.op) continue;
    if (i.approximate == nullptr || attrs.Str("approximate", "none") == i.approximate) return &i;
  }
  return nullptr;
}

}  // namespace

bool IsFusableElementwise(const std::string& op, const Attrs& attrs) { return Lookup(op, attrs) != nullptr; }

int FusedProgram::Input(int i) {
  code_.push_back({Code::kInput, static_cast<int8_t>(i), 0, 0});
  return static_cast<int>(code_.size()) - 1;
}

int FusedProgram::Const(double v) {
  code_.push_back({Code::kConst, 0, 0, static_cast<int8_t>(consts_.size())});
  consts_.push_back(v);
  return static_cast<int>(code_.size()) - 1;
}

StatusOr<int> FusedProgram::AddOp(const std::string& op, const Attrs& attrs, const std::vector<int>& operands) {
  const CodeInfo* info = Lookup(op, attrs);
  CF_CHECK_ARG(info != nullptr, "fused_elementwise: op '", op, "' {", attrs.ToString(), "} has no instruction");
  CF_CHECK_ARG(static_cast<int>(operands.size()) == info->arity, "fused_elementwise: ", op, " takes ", info->arity,
               " operands, got ", operands.size());
  CF_CHECK_ARG(static_cast<int>(code_.size()) < fused::kMaxInstrs, "fused_elementwise: more than ",
               fused::kMaxInstrs, " instructions");
  CF_CHECK_ARG(static_cast<int>(consts_.size()) + info->params <= fused::kMaxConsts, "fused_elementwise: more than ",
               fused::kMaxConsts, " constants");
  for (int r : operands)
    CF_CHECK_ARG(r >= 0 && r < static_cast<int>(code_.size()), "fused_elementwise: register ", r, " is not defined");
  fused::Instr in{info->code, static_cast<int8_t>(operands[0]), static_cast<int8_t>(info->arity == 2 ? operands[1] : 0),
                  static_cast<int8_t>(consts_.size())};
  for (int k = 0; k < info->params; ++k) consts_.push_back(attrs.Float(info->param_names[k], info->param_defaults[k]));
  code_.push_back(in);
  return static_cast<int>(code_.size()) - 1;
}

int FusedProgram::num_inputs() const {
  int n = 0;
  for (const fused::Instr& in : code_)
    if (in.code == Code::kInput) n = std::max(n, in.a + 1);
  return n;
}

Attrs FusedProgram::ToAttrs() const {
  std::vector<int64_t> prog;
  for (const fused::Instr& in : code_) {
    prog.push_back(static_cast<int64_t>(in.code));
    prog.push_back(in.a);
    prog.push_back(in.b);
    prog.push_back(in.p);
  }
  return Attrs{{"program", prog}, {"consts", consts_}};
}

StatusOr<FusedProgram> FusedProgram::FromAttrs(const Attrs& attrs) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> prog, attrs.RequireInts("program"));
  FusedProgram p;
  p.consts_ = attrs.Floats("consts");
  const int64_t nc = static_cast<int64_t>(p.consts_.size());
  CF_CHECK_ARG(!prog.empty() && prog.size() % 4 == 0, "program must hold 4 integers per instruction, got ",
               prog.size());
  const int64_t n = static_cast<int64_t>(prog.size()) / 4;
  CF_CHECK_ARG(n <= fused::kMaxInstrs, "program has ", n, " instructions; at most ", fused::kMaxInstrs);
  CF_CHECK_ARG(nc <= fused::kMaxConsts, "program has ", nc, " constants; at most ", fused::kMaxConsts);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = prog[4 * i], a = prog[4 * i + 1], b = prog[4 * i + 2], k = prog[4 * i + 3];
    CF_CHECK_ARG(c >= 0 && c < static_cast<int64_t>(Code::kCount), "instruction ", i, ": unknown code ", c);
    const Code code = static_cast<Code>(c);
    if (code == Code::kInput) {
      CF_CHECK_ARG(a >= 0 && a < fused::kMaxInputs, "instruction ", i, ": input ", a, " out of range");
    } else if (code == Code::kConst) {
      CF_CHECK_ARG(k >= 0 && k < nc, "instruction ", i, ": constant ", k, " out of range");
    } else {
      const CodeInfo* info = InfoOf(code);
      CF_CHECK_ARG(a >= 0 && a < i && (info->arity == 1 || (b >= 0 && b < i)), "instruction ", i,
                   ": operands must be earlier registers");
      CF_CHECK_ARG(k >= 0 && k + info->params <= nc, "instruction ", i, ": parameters out of range");
    }
    p.code_.push_back({code, static_cast<int8_t>(a), static_cast<int8_t>(b), static_cast<int8_t>(k)});
  }
  return p;
}

std::string FusedProgram::OpName(int i) const {
  const CodeInfo* info = InfoOf(code_[i].code);
  return info ? info->op : "";
}

Attrs FusedProgram::OpAttrs(int i) const {
  Attrs a;
  const CodeInfo* info = InfoOf(code_[i].code);
  if (info == nullptr) return a;
  if (info->approximate) a.Set("approximate", std::string(info->approximate));
  for (int k = 0; k < info->params; ++k) a.Set(info->param_names[k], consts_[code_[i].p + k]);
  return a;
}

std::string FusedProgram::ToString() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < code_.size(); ++i) {
    const fused::Instr& in = code_[i];
    std::string rhs;
    if (in.code == Code::kInput) {
      rhs = absl::StrCat("in", in.a);
    } else if (in.code == Code::kConst) {
      rhs = absl::StrCat(consts_[in.p]);
    } else {
      const Attrs a = OpAttrs(static_cast<int>(i));
      rhs = absl::StrCat(OpName(static_cast<int>(i)), "(r", in.a, fused::IsBinary(in.code) ? absl::StrCat(", r", in.b) : "",
                         ")", a.map().empty() ? "" : absl::StrCat(" {", a.ToString(), "}"));
    }
    parts.push_back(absl::StrCat("r", i, " = ", rhs));
  }
  return absl::StrJoin(parts, "; ");
}

namespace fused {

Plan MakePlan(const Shape& out, absl::Span<const Shape> inputs) {
  const int ni = static_cast<int>(inputs.size());
  // Per kept output dimension: its size and which operands are broadcast along it.
  struct Dim {
    int64_t size;
    bool bcast[kMaxInputs];
  };
  Dim dims[Shape::kMaxRank];
  int n = 0;
  for (int i = 0; i < out.rank(); ++i) {
    if (out[i] == 1) continue;  // size-1 dims index nothing
    Dim d{out[i], {}};
    for (int k = 0; k < ni; ++k) {
      const int ik = i - (out.rank() - inputs[k].rank());
      d.bcast[k] = ik < 0 || inputs[k][ik] == 1;
    }
    if (n > 0 && std::equal(d.bcast, d.bcast + ni, dims[n - 1].bcast)) {
      dims[n - 1].size *= out[i];  // same access pattern: merge with the previous dim
    } else {
      dims[n++] = d;
    }
  }
  Plan p;
  p.num_inputs = ni;
  if (n == 0) return p;  // one element: dims {1}, strides 0
  p.rank = n;
  for (int k = 0; k < ni; ++k) {
    int64_t s = 1;
    for (int i = n - 1; i >= 0; --i) {
      p.strides[k][i] = dims[i].bcast[k] ? 0 : s;
      if (!dims[i].bcast[k]) s *= dims[i].size;
    }
  }
  for (int i = 0; i < n; ++i) p.dims[i] = dims[i].size;
  return p;
}

}  // namespace fused

}  // namespace cf
