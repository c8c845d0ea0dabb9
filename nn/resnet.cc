// nn/resnet.h.
#include "nn/resnet.h"

#include "absl/strings/str_cat.h"
#include "ops/activation/activation.h"
#include "ops/elementwise/elementwise.h"
#include "ops/pool/pool.h"
#include "ops/shape/shape.h"

namespace cf {

namespace {

// temb: nullopt for a block without a time embedding.
Value Resnet(Builder& b, Value x, const std::optional<Value>& temb, const ResnetOptions& o) {
  if (!x.valid() || (temb && !temb->valid())) return Value{};
  const Shape xs = x.shape();
  if (!Check(b, xs.rank() == 4 && (!temb || temb->rank() == 2),
             absl::InvalidArgumentError(absl::StrCat("ResnetBlock2D: x must be [B, H, W, C] and temb [B, T], got ",
                                                     x.type().ToString(), " and ",
                                                     temb ? temb->type().ToString() : "none"))))
    return Value{};
  const int64_t B = xs[0], Cin = xs[3], Cout = o.out_channels == 0 ? Cin : o.out_channels;
  Value h = Silu(GroupNormLayer(b, "norm1", x, o.groups, o.eps, true, o.params));  // [B, H, W, Cin]
  h = Conv2dLayer(b, "conv1", h, Cout, 3, 1, 1, true, o.params);                    // [B, H, W, Cout]
  if (temb) {
    Value t = LinearLayer(b, "time_emb_proj", Silu(*temb), Cout, true, o.params);    // [B, Cout]
    h = h + Reshape(t, {B, 1, 1, Cout});                                             // [B, H, W, Cout]
  }
  h = Silu(GroupNormLayer(b, "norm2", h, o.groups, o.eps, true, o.params));          // [B, H, W, Cout]
  h = Conv2dLayer(b, "conv2", h, Cout, 3, 1, 1, true, o.params);                    // [B, H, W, Cout]
  Value shortcut = Cin == Cout ? x : LinearLayer(b, "conv_shortcut", x, Cout, true, o.params);  // [B, H, W, Cout]
  Value out = shortcut + h;
  return o.output_scale_factor == 1.0 ? out : out / o.output_scale_factor;          // [B, H, W, Cout]
}

}  // namespace

Value ResnetBlock2D(Builder& b, Value x, Value temb, const ResnetOptions& o) {
  if (!temb.valid()) return Value{};
  return Resnet(b, x, temb, o);
}

Value ResnetBlock2D(Builder& b, Value x, const ResnetOptions& o) { return Resnet(b, x, std::nullopt, o); }

Value Downsample2D(Builder& b, Value x, int64_t out_channels, int64_t padding, const ParamOptions& p) {
  return Conv2dLayer(b, "conv", x, out_channels, 3, 2, padding, true, p);  // [B, H/2, W/2, Cout]
}

Value Upsample2D(Builder& b, Value x, int64_t out_channels, std::optional<Size2> size, const ParamOptions& p) {
  if (!x.valid()) return Value{};
  const int64_t H = x.dim(1), W = x.dim(2);
  Value u = UpsampleNearest2x(x);  // [B, 2H, 2W, C]
  if (size && (size->h != 2 * H || size->w != 2 * W)) {
    // F.interpolate(size=(H', W'), mode="nearest") reads source row
    // floor(i·H/H'); for H' = 2H - 1 (the size a stride-2 conv took to H)
    // that is floor(i/2), i.e. the first H' rows of the 2x upsample.
    if (!Check(b, (size->h == 2 * H || size->h == 2 * H - 1) && (size->w == 2 * W || size->w == 2 * W - 1),
               absl::InvalidArgumentError(absl::StrCat("Upsample2D: output size ", size->h, "x", size->w,
                                                       " is neither 2x nor 2x - 1 of the input ",
                                                       x.type().ToString()))))
      return Value{};
    u = Slice(Slice(u, 1, 0, size->h), 2, 0, size->w);  // [B, H', W', C]
  }
  return Conv2dLayer(b, "conv", u, out_channels, 3, 1, 1, true, p);  // [B, H', W', Cout]
}

}  // namespace cf
