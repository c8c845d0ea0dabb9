#!/usr/bin/env python3
"""Writes the AutoencoderKL golden data under tests/data/vae/ that
tests/nn/vae_test.cc and tests/apps/module_models_test.cc read.

A tiny random AutoencoderKL (diffusers' own class, seeded) is saved in the
diffusers folder layout (tiny_vae/vae/config.json +
diffusion_pytorch_model.safetensors, f32) and run in float64:
  <case>/io.safetensors: image [B, 3, H, W] -> latent_mean, latent_logvar
  [B, 4, h, w] (DiagonalGaussianDistribution: logvar clamped to [-30, 20]);
  latents [B, 4, h', w'] -> output [B, 3, 8h', 8w'] (decode, no scaling
  factor); and intermediate activations tap.<module> [B, C, H, W]
  (encoder.conv_in, encoder.down_blocks.i, encoder.mid_block,
  decoder.conv_in, decoder.mid_block, decoder.up_blocks.i), all F32 (inputs
  rounded to f32 before the float64 run, results after it).
tiny_vae_odd runs the same weights at an odd image size (17x13: the
asymmetric (0, 1, 0, 1) padding of Downsample2D) and odd latents (3x5).
The quant_conv bias of two logvar channels is pushed to +-40 so the clamp
shows in latent_logvar.

sd15_vae_config.json is the released SD1.5 VAE configuration as diffusers
writes it; its parameter count (83,653,863) is checked here against
diffusers' model and in the C++ test. Run from the repository root:

    pip install torch diffusers safetensors    # PyPI
    python3 tools/make_vae_golden.py
"""
import json
import os
import shutil

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "vae")

TINY = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 3,
    up_block_types=["UpDecoderBlock2D"] * 3,
    block_out_channels=[8, 16, 16],  # a shortcut (8 -> 16) and a plain block in each half
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=4,
    sample_size=16,
)

# runwayml/stable-diffusion-v1-5 vae/config.json (docs/paper-facts.md).
SD15 = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[128, 256, 512, 512],
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
SD15_PARAMS = 83653863

# name -> (B, image H, W, latent h, w)
CASES = {"tiny_vae": (2, 16, 16, 4, 4), "tiny_vae_odd": (1, 17, 13, 3, 5)}


def randomize(model, seed):
    """Every parameter from N(0, 0.2^2), norm scales around 1, so that every
    path shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            v = torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.2
            if ("norm" in name) and name.endswith(".weight"):
                v = 1.0 + v
            p.copy_(v.to(p.dtype))
        L = model.config.latent_channels
        model.quant_conv.bias[L + 0] += 40.0  # logvar channel 0 above 20
        model.quant_conv.bias[L + 1] -= 40.0  # logvar channel 1 below -30


def main():
    os.makedirs(OUT, exist_ok=True)
    sd = AutoencoderKL(**SD15)
    n = sum(p.numel() for p in sd.parameters())
    assert n == SD15_PARAMS, n
    sd.save_config(OUT)
    os.replace(os.path.join(OUT, "config.json"), os.path.join(OUT, "sd15_vae_config.json"))
    print(f"SD1.5 VAE: {n} parameters (encoder {sum(p.numel() for p in sd.encoder.parameters())}, "
          f"decoder {sum(p.numel() for p in sd.decoder.parameters())})")
    del sd

    torch.manual_seed(0)
    model = AutoencoderKL(**TINY)
    randomize(model, 1000)
    folder = os.path.join(OUT, "tiny_vae")
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(os.path.join(folder, "vae"), safe_serialization=True)
    ref = AutoencoderKL.from_config(model.config).double()
    ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref.eval()

    for seed, (name, (B, H, W, h, w)) in enumerate(CASES.items()):
        g = torch.Generator().manual_seed(2000 + seed)
        io = {
            "image": torch.randn(B, 3, H, W, generator=g, dtype=torch.float64),
            "latents": torch.randn(B, TINY["latent_channels"], h, w, generator=g, dtype=torch.float64),
        }
        io = {k: v.float().double() for k, v in io.items()}  # what an f32 run is given
        taps = {}

        def hook(tap):
            def f(_module, _inputs, output):
                taps[tap] = (output[0] if isinstance(output, tuple) else output).detach().clone()
            return f
        mods = {"encoder.conv_in": ref.encoder.conv_in, "encoder.mid_block": ref.encoder.mid_block,
                "decoder.conv_in": ref.decoder.conv_in, "decoder.mid_block": ref.decoder.mid_block}
        for i, blk in enumerate(ref.encoder.down_blocks):
            mods[f"encoder.down_blocks.{i}"] = blk
        for i, blk in enumerate(ref.decoder.up_blocks):
            mods[f"decoder.up_blocks.{i}"] = blk
        handles = [m.register_forward_hook(hook(t)) for t, m in mods.items()]
        with torch.no_grad():
            dist = ref.encode(io["image"]).latent_dist
            out = ref.decode(io["latents"]).sample
        for hd in handles:
            hd.remove()
        io["latent_mean"] = dist.mean
        io["latent_logvar"] = dist.logvar
        io["output"] = out
        for t, v in taps.items():
            io["tap." + t] = v
        os.makedirs(os.path.join(OUT, name), exist_ok=True)
        save_file({k: v.float().contiguous() for k, v in io.items()}, os.path.join(OUT, name, "io.safetensors"),
                  metadata={"case": name, "weights": "tiny_vae"})
        lv = dist.logvar
        print(f"{name}: image {tuple(io['image'].shape)} -> latents {tuple(dist.mean.shape)} "
              f"(logvar clamped: {(lv == 20).sum().item()} at 20, {(lv == -30).sum().item()} at -30), "
              f"latents {tuple(io['latents'].shape)} -> {tuple(out.shape)}, |output| max {out.abs().max().item():.3g}")
    print(f"tiny_vae: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
