#!/usr/bin/env python3
"""Writes the UNet2DConditionModel golden data under tests/data/unet/ that
tests/nn/unet_test.cc (UNet2DCondition.MatchesDiffusers) reads.

Tiny random configurations of the SD1.5 and SDXL architectures are built with
diffusers' own UNet2DConditionModel (seeded), saved in the diffusers folder
layout (<case>/unet/config.json + diffusion_pytorch_model*.safetensors; the
SDXL-like case in f16 and sharded, with its .safetensors.index.json), and run
in float64 on seeded inputs. <case>/io.safetensors holds the inputs in
diffusers' names and layouts (sample [B, C, H, W], timestep [B],
encoder_hidden_states [B, T, D], and text_embeds / time_ids for SDXL), the
output `output` [B, C, H, W] and a few intermediate activations
`tap.<module>` (conv_in, time_embedding, add_embedding, down_blocks.i,
mid_block, up_blocks.i; 4-D ones [B, C, H, W]), all F32 (the inputs are
rounded to f32 before the float64 run, the results after it). The metadata names
the case. Run from the repository root:

    pip install torch diffusers safetensors    # PyPI
    python3 tools/make_unet_golden.py
"""
import json
import os
import shutil

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "unet")

# name -> (config, (H, W) of the sample, tokens, weight dtype, max shard size)
CASES = {
    # SD1.5's layout: CrossAttnDown + Down, mid with cross-attention, Up +
    # CrossAttnUp, 1x1-conv projections, attention_head_dim = heads.
    "tiny_sd15": (dict(
        block_out_channels=[16, 32],
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
        layers_per_block=1,
        cross_attention_dim=24,
        attention_head_dim=2,
        norm_num_groups=8,
        sample_size=16,
    ), (16, 16), 7, torch.float32, None),
    # The same at an odd size: the up block's upsample goes to 9x7 -> 17x13
    # (diffusers' forward_upsample_size).
    "tiny_sd15_odd": (None, (17, 13), 5, torch.float32, None),
    # SDXL's layout: Down + CrossAttnDown, transformer layers [1, 2], linear
    # projections, heads per block, text-time additional embeddings.
    "tiny_sdxl": (dict(
        block_out_channels=[16, 32],
        down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
        layers_per_block=2,
        transformer_layers_per_block=[1, 2],
        cross_attention_dim=24,
        attention_head_dim=[2, 4],
        use_linear_projection=True,
        norm_num_groups=8,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 12,  # 6 time ids and text_embeds of 12
        sample_size=16,
    ), (16, 16), 6, torch.float16, "120KB"),
}


def randomize(model, seed):
    """diffusers zero-initialises nothing important here, but the default init
    makes some layers tiny; draw every parameter from N(0, 0.2^2) (norm scales
    around 1) so that every path shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            v = torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.2
            if name.endswith("norm.weight") or ".norm" in name and name.endswith(".weight") or "norm_out.weight" in name:
                v = 1.0 + v
            p.copy_(v.to(p.dtype))


def main():
    base = None
    for seed, (name, (config, (H, W), tokens, wdtype, shard)) in enumerate(CASES.items()):
        folder = os.path.join(OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        torch.manual_seed(seed)
        if config is None:  # reuse the previous case's model and weights
            model, config = base
        else:
            model = UNet2DConditionModel(**config)
            randomize(model, 1000 + seed)
            model = model.to(wdtype)
            base = (model, config)
            kwargs = {"max_shard_size": shard} if shard else {}
            model.save_pretrained(os.path.join(folder, "unet"), safe_serialization=True, **kwargs)
        ref = UNet2DConditionModel.from_config(model.config).double()
        ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
        ref.eval()

        g = torch.Generator().manual_seed(2000 + seed)
        B = 2
        io = {
            "sample": torch.randn(B, ref.config.in_channels, H, W, generator=g, dtype=torch.float64),
            "timestep": torch.tensor([999.0, 17.0], dtype=torch.float64),
            "encoder_hidden_states": torch.randn(B, tokens, config["cross_attention_dim"], generator=g,
                                                 dtype=torch.float64),
        }
        io = {k: v.float().double() for k, v in io.items()}  # what an f32 run is given
        added = None
        if config.get("addition_embed_type") == "text_time":
            text = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
            io["text_embeds"] = torch.randn(B, text, generator=g, dtype=torch.float64)
            io["time_ids"] = torch.tensor([[1024, 1024, 0, 0, 1024, 1024], [768, 512, 32, 16, 768, 512]],
                                          dtype=torch.float64)
            io["text_embeds"] = io["text_embeds"].float().double()
            added = {"text_embeds": io["text_embeds"], "time_ids": io["time_ids"]}

        taps = {}
        def hook(tap):
            def f(_module, _inputs, output):
                taps[tap] = (output[0] if isinstance(output, tuple) else output).detach().clone()
            return f
        mods = {"conv_in": ref.conv_in, "time_embedding": ref.time_embedding, "mid_block": ref.mid_block}
        if added is not None:
            mods["add_embedding"] = ref.add_embedding
        for i, blk in enumerate(ref.down_blocks):
            mods[f"down_blocks.{i}"] = blk
        for i, blk in enumerate(ref.up_blocks):
            mods[f"up_blocks.{i}"] = blk
        handles = [m.register_forward_hook(hook(t)) for t, m in mods.items()]
        with torch.no_grad():
            out = ref(io["sample"], io["timestep"], io["encoder_hidden_states"], added_cond_kwargs=added).sample
        for h in handles:
            h.remove()
        io["output"] = out
        for t, v in taps.items():
            io["tap." + t] = v
        os.makedirs(folder, exist_ok=True)
        # The odd case reads the weights of tiny_sd15.
        save_file({k: v.float().contiguous() for k, v in io.items()}, os.path.join(folder, "io.safetensors"),
                  metadata={"case": name, "weights": "tiny_sd15" if name == "tiny_sd15_odd" else name})
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n} parameters, sample {tuple(io['sample'].shape)}, |output| max "
              f"{out.abs().max().item():.3g}, taps {sorted(taps)}")


if __name__ == "__main__":
    main()
