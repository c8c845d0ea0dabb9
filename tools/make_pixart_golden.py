#!/usr/bin/env python3
"""Writes the PixArtTransformer2DModel test data under tests/data/pixart/ that
tests/nn/pixart_test.cc reads.

1. The released transformer/config.json files of PixArt-alpha XL-2-512x512,
   PixArt-alpha XL-2-1024-MS and PixArt-Sigma XL-2-1024-MS (as the hub holds
   them: diffusers' conversion scripts saved them through Transformer2DModel,
   hence the class name and its extra keys), and each one's parameter count,
   from diffusers' own PixArtTransformer2DModel built on the meta device
   (printed; the C++ test holds the numbers).
2. Tiny random configurations built with diffusers' PixArtTransformer2DModel
   (seeded), saved in the diffusers folder layout (<case>/transformer/
   config.json + diffusion_pytorch_model.safetensors, f32), and run in float64
   on seeded inputs. <case>/io.safetensors holds the inputs in diffusers'
   names and layouts (hidden_states [B, 4, H, W], timestep [B],
   encoder_hidden_states [B, T, caption_channels], encoder_attention_mask
   [B, T] U8 (1 = keep), and resolution [B, 2] / aspect_ratio [B, 1] where
   the config uses additional conditions), the output `output` [B, 8, H, W]
   and intermediate activations `tap.<module>`: pos_embed [B, N, D],
   adaln_single.emb (the embedded timestep) [B, D], adaln_single [B, 6D],
   caption_projection [B, T, D], transformer_blocks.i [B, N, D]. Float tensors
   are F32 (the inputs are rounded to f32 before the float64 run, the results
   after it). The metadata names the weight folders ("a,b": b's tensors on
   top of a's).

Cases:
  tiny_sigma           Sigma's layout (no additional conditions), 2 blocks of
                       2 heads x 8, patch 2, caption 16 -> 16, 8x8 latent (the
                       sample size: the stored grid), a padded caption.
  tiny_sigma_odd       the same architecture with interpolation_scale 2 at a
                       10x14 latent: a 5x7 token grid, positions recomputed.
  tiny_alpha_ms        PixArt-alpha 1024-MS's rules: sample_size 128, so the
                       defaults give interpolation_scale 2 and the resolution /
                       aspect-ratio embeddings; 3 heads x 8 (D divisible by
                       3), latent 12x8.
  tiny_sigma_convblock tiny_sigma with every attn1 replaced by the authors'
                       ConvBlock as their PixArt model holds it (conv1, K = 13,
                       sigmoid gate; tools/make_convblock_golden.py's
                       definition); its safetensors has only the
                       transformer_blocks.N.conv1.* tensors, loaded on top of
                       tiny_sigma's; latent 12x16 (a 6x8 grid).

Run from the repository root:

    pip install torch diffusers safetensors    # PyPI
    python3 tools/make_pixart_golden.py
"""
import json
import os
import shutil
import sys

import torch
from diffusers import PixArtTransformer2DModel
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_convblock_golden import ChannelsLastConvBlock  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "pixart")

# The keys every released file has (Transformer2DModel's, as saved by
# diffusers' scripts/convert_pixart_{alpha,sigma}_to_diffusers.py).
_COMMON = {
    "_class_name": "Transformer2DModel",
    "activation_fn": "gelu-approximate",
    "attention_bias": True,
    "attention_head_dim": 72,
    "attention_type": "default",
    "caption_channels": 4096,
    "cross_attention_dim": 1152,
    "double_self_attention": False,
    "dropout": 0.0,
    "in_channels": 4,
    "norm_elementwise_affine": False,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "norm_type": "ada_norm_single",
    "num_attention_heads": 16,
    "num_embeds_ada_norm": 1000,
    "num_layers": 28,
    "num_vector_embeds": None,
    "only_cross_attention": False,
    "out_channels": 8,
    "patch_size": 2,
    "upcast_attention": False,
    "use_linear_projection": False,
}
RELEASED = {
    # PixArt-alpha/PixArt-XL-2-512x512: sample 64 -> interpolation_scale 1, no
    # additional conditions (both by diffusers' defaults; absent from the file).
    "pixart_alpha_512_config.json": dict(_COMMON, _diffusers_version="0.22.0.dev0", sample_size=64),
    # PixArt-alpha/PixArt-XL-2-1024-MS: sample 128 -> interpolation_scale 2 and
    # the resolution / aspect-ratio embeddings (defaults again).
    "pixart_alpha_1024_ms_config.json": dict(_COMMON, _diffusers_version="0.22.0.dev0", sample_size=128),
    # PixArt-alpha/PixArt-Sigma-XL-2-1024-MS: both written out.
    "pixart_sigma_1024_ms_config.json": dict(_COMMON, _diffusers_version="0.28.0.dev0", sample_size=128,
                                             interpolation_scale=2, use_additional_conditions=False),
}

_TINY = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
             cross_attention_dim=16, caption_channels=16, patch_size=2, attention_bias=True,
             activation_fn="gelu-approximate", norm_type="ada_norm_single", norm_elementwise_affine=False,
             norm_eps=1e-6, num_embeds_ada_norm=1000)
# name -> (config, (H, W) of the latent, tokens, padded tokens of sample 0, weights)
CASES = {
    "tiny_sigma": (dict(_TINY, sample_size=8), (8, 8), 5, 2, "tiny_sigma"),
    "tiny_sigma_odd": (dict(_TINY, sample_size=8, interpolation_scale=2), (10, 14), 4, 0, "tiny_sigma_odd"),
    "tiny_alpha_ms": (dict(_TINY, num_attention_heads=3, attention_head_dim=8, cross_attention_dim=24,
                           sample_size=128), (12, 8), 6, 1, "tiny_alpha_ms"),
    "tiny_sigma_convblock": ("convblock", (12, 16), 5, 2, "tiny_sigma,tiny_sigma_convblock"),
}
CONVBLOCK_KERNEL = 13


def count_released():
    for file, cfg in RELEASED.items():
        with open(os.path.join(OUT, file), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        with torch.device("meta"):
            m = PixArtTransformer2DModel.from_config({k: v for k, v in cfg.items() if not k.startswith("_")})
        n = sum(p.numel() for p in m.parameters())
        print(f"{file}: {n} parameters (use_additional_conditions {m.use_additional_conditions}, "
              f"interpolation_scale {m.pos_embed.interpolation_scale}, base_size {m.pos_embed.base_size})")


def randomize(model, seed):
    """N(0, 0.2^2) for every parameter (diffusers' init leaves some paths tiny),
    the scale-shift tables included, so that every path shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_((torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.2).to(p.dtype))


class Attn1ConvBlock(torch.nn.Module):
    """Stands in for attn1: runs the block's conv1 on the tokens viewed as
    [B, h, w, C] (the token grid recorded by a hook on the model)."""

    def __init__(self, block, grid):
        super().__init__()
        object.__setattr__(self, "_block", block)  # not a submodule: its weights stay under conv1
        object.__setattr__(self, "_grid", grid)

    def forward(self, x, encoder_hidden_states=None, attention_mask=None, **kwargs):
        B, N, C = x.shape
        h, w = self._grid["hw"]
        return self._block(x.reshape(B, h, w, C)).reshape(B, N, C)


def add_convblocks(model, seed):
    g = torch.Generator().manual_seed(seed)
    grid = {}
    p = model.config.patch_size

    def record(_m, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        grid["hw"] = (x.shape[-2] // p, x.shape[-1] // p)
    model.register_forward_pre_hook(record, with_kwargs=True)
    for tb in model.transformer_blocks:
        C = tb.norm1.normalized_shape[0]
        tb.conv1 = ChannelsLastConvBlock(C, CONVBLOCK_KERNEL, gate="sigmoid").double()
        with torch.no_grad():
            for q in tb.conv1.parameters():
                q.copy_(torch.randn(q.shape, generator=g, dtype=torch.float64) * 0.2)
        del tb.attn1
        tb.attn1 = Attn1ConvBlock(tb.conv1, grid)


def main():
    os.makedirs(OUT, exist_ok=True)
    count_released()
    models = {}
    for seed, (name, (config, (H, W), tokens, padded, weights)) in enumerate(CASES.items()):
        folder = os.path.join(OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        torch.manual_seed(seed)
        if config == "convblock":
            model = models["tiny_sigma"]
            config = dict(model.config)
        else:
            model = PixArtTransformer2DModel(**config)
            randomize(model, 1000 + seed)
            model.save_pretrained(os.path.join(folder, "transformer"), safe_serialization=True)
            models[name] = model
        ref = PixArtTransformer2DModel.from_config(model.config).double()
        ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        ref.eval()
        if name == "tiny_sigma_convblock":
            add_convblocks(ref, 3000)
            os.makedirs(os.path.join(folder, "transformer"))
            conv1 = {k: v.float().contiguous() for k, v in ref.state_dict().items() if ".conv1." in k}
            save_file(conv1, os.path.join(folder, "transformer", "diffusion_pytorch_model.safetensors"))
            shutil.copy(os.path.join(OUT, "tiny_sigma", "transformer", "config.json"),
                        os.path.join(folder, "transformer", "config.json"))
            ref.load_state_dict({k: v.double() for k, v in conv1.items()}, strict=False)  # f32-rounded

        g = torch.Generator().manual_seed(2000 + seed)
        B = 2
        io = {
            "hidden_states": torch.randn(B, ref.config.in_channels, H, W, generator=g, dtype=torch.float64),
            "timestep": torch.tensor([999.0, 17.0], dtype=torch.float64),
            "encoder_hidden_states": torch.randn(B, tokens, ref.config.caption_channels, generator=g,
                                                 dtype=torch.float64),
        }
        io = {k: v.float().double() for k, v in io.items()}  # what an f32 run is given
        mask = torch.ones(B, tokens, dtype=torch.uint8)
        if padded:
            mask[0, tokens - padded:] = 0
        added = None
        if ref.use_additional_conditions:
            io["resolution"] = torch.tensor([[8.0 * H, 8.0 * W], [512.0, 768.0]], dtype=torch.float64)
            io["aspect_ratio"] = torch.tensor([[H / W], [512.0 / 768.0]], dtype=torch.float64).float().double()
            added = {"resolution": io["resolution"], "aspect_ratio": io["aspect_ratio"]}

        taps = {}
        def hook(tap):
            def f(_module, _inputs, output):
                taps[tap] = (output[0] if isinstance(output, tuple) else output).detach().clone()
            return f
        mods = {"pos_embed": ref.pos_embed, "adaln_single": ref.adaln_single, "adaln_single.emb": ref.adaln_single.emb,
                "caption_projection": ref.caption_projection}
        for i, blk in enumerate(ref.transformer_blocks):
            mods[f"transformer_blocks.{i}"] = blk
        handles = [m.register_forward_hook(hook(t)) for t, m in mods.items()]
        with torch.no_grad():
            out = ref(io["hidden_states"], encoder_hidden_states=io["encoder_hidden_states"], timestep=io["timestep"],
                      added_cond_kwargs=added, encoder_attention_mask=mask.double()).sample
        for h in handles:
            h.remove()
        io["output"] = out
        for t, v in taps.items():
            io["tap." + t] = v
        tensors = {k: v.float().contiguous() for k, v in io.items()}
        tensors["encoder_attention_mask"] = mask
        os.makedirs(folder, exist_ok=True)
        save_file(tensors, os.path.join(folder, "io.safetensors"), metadata={"case": name, "weights": weights})
        n = sum(p.numel() for p in ref.parameters())
        print(f"{name}: {n} parameters, hidden_states {tuple(io['hidden_states'].shape)}, |output| max "
              f"{out.abs().max().item():.3g}, taps {sorted(taps)}")


if __name__ == "__main__":
    main()
