// pad: attributes pads = [before_0, after_0, before_1, after_1, ...] (one pair
// per dim, from the first; negative entries crop) and value (the fill, default
// 0). out[i] = x[i - before] where that index is inside x, else value. Its VJP
// is a pad by the negated pads (a crop).
#include <algorithm>
#include <cstring>

#include "ops/cpu_util.h"
#include "ops/shape/pad_layout.h"
#include "ops/shape/shape.h"
#include "ops/shape/shape_util.h"
#include "runtime/stream.h"

namespace cf {

namespace {

template <typename T>
void PadRows(T* dst, const T* src, const PadLayout& l, T fill) {
  const int last = l.rank - 1;
  const int64_t O = l.out[last], I = l.in[last], b = l.before[last];
  const int64_t lo = std::clamp<int64_t>(b, 0, O), hi = std::clamp<int64_t>(I + b, lo, O);
  std::array<int64_t, PadLayout::kMaxRank> in_strides{};
  int64_t acc = 1;
  for (int k = last; k >= 0; --k) {
    in_strides[k] = acc;
    acc *= l.in[k];
  }
  int64_t rows = 1;
  for (int k = 0; k < last; ++k) rows *= l.out[k];
  ParallelFor(0, rows, RowGrain(O), [&](int64_t rb, int64_t re) {
    for (int64_t row = rb; row < re; ++row) {
      T* d = dst + row * O;
      // Source row of this output row, or none when an outer coordinate is padding.
      int64_t rem = row, s = 0;
      bool inside = true;
      for (int k = last - 1; k >= 0; --k) {
        const int64_t i = rem % l.out[k] - l.before[k];
        rem /= l.out[k];
        inside = inside && i >= 0 && i < l.in[k];
        s += i * in_strides[k];
      }
      if (!inside || lo >= hi) {
        std::fill(d, d + O, fill);
        continue;
      }
      std::fill(d, d + lo, fill);
      std::memcpy(d + lo, src + s + (lo - b), static_cast<size_t>(hi - lo) * sizeof(T));
      std::fill(d + hi, d + O, fill);
    }
  });
}

// `value` as the bits of one element of `dtype` (low bytes of the result).
uint64_t FillBits(DType dtype, double value) {
  uint64_t bits = 0;
  switch (dtype) {
    case DType::f32: bits = FloatBits(static_cast<float>(value)); break;
    case DType::f16: bits = F32ToF16Bits(static_cast<float>(value)); break;
    case DType::bf16: bits = F32ToBF16Bits(static_cast<float>(value)); break;
    case DType::f64: std::memcpy(&bits, &value, 8); break;
    case DType::i32: bits = static_cast<uint32_t>(static_cast<int32_t>(value)); break;
    case DType::i64: bits = static_cast<uint64_t>(static_cast<int64_t>(value)); break;
    case DType::u8: bits = static_cast<uint8_t>(value); break;
    case DType::boolean: bits = value != 0 ? 1 : 0; break;
  }
  return bits;
}

StatusOr<std::vector<int64_t>> PadsAttr(const Attrs& attrs, const Shape& in) {
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> pads, attrs.RequireInts("pads"));
  CF_CHECK_ARG(static_cast<int>(pads.size()) == 2 * in.rank(), "pads [", absl::StrJoin(pads, ", "), "] must have 2 * rank = ",
               2 * in.rank(), " entries (before, after per dim) for ", in.ToString());
  return pads;
}

StatusOr<std::vector<TensorType>> InferPad(const OpCall& c) {
  const Shape& in = c.inputs[0].shape;
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> pads, PadsAttr(c.attrs, in));
  Shape out = in;
  for (int k = 0; k < in.rank(); ++k) {
    out[k] = in[k] + pads[2 * k] + pads[2 * k + 1];
    CF_CHECK_ARG(out[k] >= 1, "pads [", absl::StrJoin(pads, ", "), "] leave dim ", k, " of ", in.ToString(),
                 " with length ", out[k], " (must be >= 1)");
  }
  return std::vector<TensorType>{{out, c.inputs[0].dtype}};
}

Status PadKernel(KernelContext& ctx) {
  const Tensor& x = ctx.inputs[0];
  Tensor& y = ctx.outputs[0];
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> pads, PadsAttr(ctx.attrs, x.shape()));
  PadLayout l;
  for (int k = 0; k < x.shape().rank(); ++k) l.Add(y.shape()[k], x.shape()[k], pads[2 * k]);
  const int64_t es = DTypeSize(x.dtype());
  const uint64_t bits = FillBits(x.dtype(), ctx.attrs.Float("value", 0.0));
  if (ctx.device.is_cuda()) {
#if CF_HAS_CUDA
    return PadCuda(y.raw(), x.raw(), l.Canonical(), es, bits, ctx.stream ? ctx.stream->native() : nullptr);
#else
    return absl::FailedPreconditionError("pad: built without CUDA");
#endif
  }
  PadCpu(y.raw(), x.raw(), l.Canonical(), es, bits);
  return absl::OkStatus();
}

StatusOr<std::vector<Value>> PadVjp(VjpContext& ctx) {
  if (!ctx.grad_outputs[0].valid()) return std::vector<Value>{Value{}};
  CF_ASSIGN_OR_RETURN(std::vector<int64_t> pads, PadsAttr(ctx.attrs, ctx.inputs[0].shape()));
  for (int64_t& p : pads) p = -p;
  return std::vector<Value>{Pad(ctx.grad_outputs[0], pads, 0.0)};
}

// Reads the part of x that lands in the output (all of it unless cropping):
// bytes_read = es * prod_k (min(out_k, in_k + before_k) - max(0, before_k));
// writes the output.
Cost CostPad(const OpCall& c, absl::Span<const TensorType> outs) {
  Cost cost;
  const Shape& in = c.inputs[0].shape;
  const std::vector<int64_t> pads = c.attrs.Ints("pads");
  int64_t kept = DTypeSize(c.inputs[0].dtype);
  for (int k = 0; k < in.rank(); ++k) {
    const int64_t o = outs[0].shape[k], b = pads[2 * k];
    kept *= std::max<int64_t>(0, std::min(o, in[k] + b) - std::max<int64_t>(0, b));
  }
  cost.bytes_read = kept;
  cost.bytes_written = outs[0].bytes();
  return cost;
}

OpDef PadDef() {
  return {.name = "pad", .min_inputs = 1, .max_inputs = 1, .infer = InferPad, .cost = CostPad, .vjp = PadVjp,
          .doc = "x padded (or cropped, for negative pads) per dim with a constant value"};
}

}  // namespace

void PadCpu(void* dst, const void* src, const PadLayout& l, int64_t elem_size, uint64_t fill_bits) {
  switch (elem_size) {
    case 1: PadRows(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), l, static_cast<uint8_t>(fill_bits)); break;
    case 2: PadRows(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), l, static_cast<uint16_t>(fill_bits)); break;
    case 4: PadRows(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), l, static_cast<uint32_t>(fill_bits)); break;
    case 8: PadRows(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), l, fill_bits); break;
    default: break;
  }
}

Value Pad(Value x, std::vector<int64_t> pads, double value) {
  if (!x.valid()) return Value{};
  return x.b->Op1("pad", {x}, Attrs{{"pads", std::move(pads)}, {"value", value}});
}

CF_REGISTER_OP(PadDef());
CF_REGISTER_COPY_KERNEL("pad", PadKernel);

}  // namespace cf
