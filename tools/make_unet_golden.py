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
the case. tiny_sd15_convblock is tiny_sd15 with every attn1 replaced by the
authors' ConvBlock (tools/make_convblock_golden.py's definition, released
gate) as their checkpoints hold it: <case>/unet/config.json carries their
keys down_blocks_conv1_kernel_sizes / mid_block_conv1_kernel_size /
up_blocks_conv1_kernel_sizes, and its safetensors only the
...transformer_blocks.N.conv1.* tensors, to be loaded on top of tiny_sd15's
weights. Run from the repository root:

    pip install torch diffusers safetensors    # PyPI
    python3 tools/make_unet_golden.py
"""
import json
import os
import shutil

import sys

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_convblock_golden import ChannelsLastConvBlock  # noqa: E402

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
    # tiny_sd15 with the authors' ConvBlocks: K per block as their keys say.
    "tiny_sd15_convblock": ("convblock", (16, 16), 7, torch.float32, None),
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


CONV1_KERNELS = {"down_blocks_conv1_kernel_sizes": [5, 0], "mid_block_conv1_kernel_size": 3,
                 "up_blocks_conv1_kernel_sizes": [0, 7]}


class Attn1ConvBlock(torch.nn.Module):
    """Stands in for attn1: runs the block's conv1 on the tokens viewed as
    [B, H, W, C] (H, W recorded by the enclosing Transformer2DModel)."""

    def __init__(self, block, size):
        super().__init__()
        object.__setattr__(self, "_block", block)  # not a submodule: its weights stay under conv1
        object.__setattr__(self, "_size", size)

    def forward(self, x, encoder_hidden_states=None, attention_mask=None, **kwargs):
        B, N, C = x.shape
        H, W = self._size["hw"]
        return self._block(x.reshape(B, H, W, C)).reshape(B, N, C)


def add_convblocks(model, seed):
    """Replaces attn1 in every block whose level has a kernel in CONV1_KERNELS."""
    g = torch.Generator().manual_seed(seed)
    size = {}
    def record(_m, args, kwargs):
        size["hw"] = tuple((args[0] if args else kwargs["hidden_states"]).shape[-2:])
    levels = [("down_blocks", i, k) for i, k in enumerate(CONV1_KERNELS["down_blocks_conv1_kernel_sizes"])]
    levels += [("up_blocks", i, k) for i, k in enumerate(CONV1_KERNELS["up_blocks_conv1_kernel_sizes"])]
    blocks = [(getattr(model, part)[i], k) for part, i, k in levels if k > 0]
    blocks.append((model.mid_block, CONV1_KERNELS["mid_block_conv1_kernel_size"]))
    for parent, k in blocks:
        for t2d in parent.attentions:
            assert isinstance(t2d, Transformer2DModel)
            t2d.register_forward_pre_hook(record, with_kwargs=True)
            for tb in t2d.transformer_blocks:
                assert isinstance(tb, BasicTransformerBlock)
                C = tb.norm1.normalized_shape[0]
                tb.conv1 = ChannelsLastConvBlock(C, k, gate="released").double()
                with torch.no_grad():
                    for p in tb.conv1.parameters():
                        p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.2)
                del tb.attn1
                tb.attn1 = Attn1ConvBlock(tb.conv1, size)


def main():
    base = None
    for seed, (name, (config, (H, W), tokens, wdtype, shard)) in enumerate(CASES.items()):
        folder = os.path.join(OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        torch.manual_seed(seed)
        if config is None:  # reuse the previous case's model and weights
            model, config = base
        elif config == "convblock":
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
        if name == "tiny_sd15_convblock":
            add_convblocks(ref, 3000)
            os.makedirs(os.path.join(folder, "unet"))
            conv1 = {k: v.float().contiguous() for k, v in ref.state_dict().items() if ".conv1." in k and
                     "transformer_blocks" in k}
            save_file(conv1, os.path.join(folder, "unet", "diffusion_pytorch_model.safetensors"))
            with open(os.path.join(OUT, "tiny_sd15", "unet", "config.json")) as f:
                cfg = json.load(f)
            cfg.update(CONV1_KERNELS)
            with open(os.path.join(folder, "unet", "config.json"), "w") as f:
                json.dump(cfg, f, indent=2)
            ref.load_state_dict({k: v.double() for k, v in conv1.items()}, strict=False)  # f32-rounded

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
        # The odd case reads the weights of tiny_sd15; the ConvBlock case its
        # conv1 tensors on top of them (and its config).
        weights = {"tiny_sd15_odd": "tiny_sd15", "tiny_sd15_convblock": "tiny_sd15,tiny_sd15_convblock"}.get(name, name)
        save_file({k: v.float().contiguous() for k, v in io.items()}, os.path.join(folder, "io.safetensors"),
                  metadata={"case": name, "weights": weights})
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n} parameters, sample {tuple(io['sample'].shape)}, |output| max "
              f"{out.abs().max().item():.3g}, taps {sorted(taps)}")


if __name__ == "__main__":
    main()
