#!/usr/bin/env python3
"""Writes the single-file checkpoints under tests/data/ldm/ that
tests/nn/ldm_checkpoint_test.cc reads.

Each file is the original LDM / SGM layout of tiny diffusers models: the UNets
of tests/data/unet (tiny_sd15 f32, tiny_sdxl f16), the VAE of tests/data/vae
(tiny_vae; f32 in the SD1.5 file, bf16 in the SDXL one) and tiny random text
encoders made here with transformers (seeded): a CLIPTextModel as
cond_stage_model.transformer.* (SD1.5) or conditioner.embedders.0.transformer.*
(SDXL), and a CLIPTextModelWithProjection written in OpenCLIP's names as
conditioner.embedders.1.model.* (q/k/v packed into in_proj_weight, the
projection stored transposed, plus logit_scale). Like the released files they
also hold tensors outside every component (alphas_cumprod, model_ema.decay)
and text_model.embeddings.position_ids.

The LDM names are written by this script's own inverse of diffusers'
mapping; the file is then CHECKED with diffusers' converters
(convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
convert_ldm_clip_checkpoint, convert_open_clip_checkpoint): every tensor they
produce must equal the original one, and the result must load strictly into
the diffusers / transformers model, so the files are a layout diffusers
accepts. The text encoders' diffusers-named weights (the hub's
text_encoder/model.safetensors layout, keys text_model.*) are written beside
them as the reference: <case>_text_encoder.safetensors,
tiny_sdxl_text_encoder_2.safetensors. sd15_keys.txt / sdxl_keys.txt: the
released UNet's and VAE's LDM key sets, for a full-size name check. Run from the repository root:

    pip install torch diffusers transformers safetensors    # PyPI
    python3 tools/make_unet_golden.py && python3 tools/make_vae_golden.py   # the sources
    python3 tools/make_ldm_golden.py
"""
import json
import os

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (convert_ldm_clip_checkpoint, convert_ldm_unet_checkpoint,
                                                 convert_ldm_vae_checkpoint, convert_open_clip_checkpoint)
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
OUT = os.path.join(ROOT, "ldm")

UNET_RESNET = [("norm1.", "in_layers.0."), ("conv1.", "in_layers.2."), ("norm2.", "out_layers.0."),
               ("conv2.", "out_layers.3."), ("time_emb_proj.", "emb_layers.1."), ("conv_shortcut.", "skip_connection.")]
VAE_ATTENTION = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def rename(rest, pairs, what):
    for new, old in pairs:
        if rest.startswith(new):
            return old + rest[len(new):]
    raise KeyError(f"{what}: no rename for '{rest}'")


def load_folder(folder):
    """All tensors of a diffusers component folder (one file or shards)."""
    sd = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            sd.update(load_file(os.path.join(folder, f)))
    return sd


def unet_to_ldm(sd, config):
    """diffusers UNet2DConditionModel names -> openaimodel's UNetModel names."""
    L = config["layers_per_block"]
    n = len(config["block_out_channels"])
    up_attention = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    plain = {"conv_in.": "input_blocks.0.0.", "time_embedding.linear_1.": "time_embed.0.",
             "time_embedding.linear_2.": "time_embed.2.", "add_embedding.linear_1.": "label_emb.0.0.",
             "add_embedding.linear_2.": "label_emb.0.2.", "conv_norm_out.": "out.0.", "conv_out.": "out.2."}
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        new = None
        for d, ldm in plain.items():
            if k.startswith(d):
                new = ldm + k[len(d):]
        if p[0] == "down_blocks":
            b, kind = int(p[1]), p[2]
            rest = ".".join(p[4:])
            if kind == "downsamplers":
                new = f"input_blocks.{1 + b * (L + 1) + L}.0.op." + ".".join(p[5:])
            else:
                i = 1 + b * (L + 1) + int(p[3])
                new = (f"input_blocks.{i}.0." + rename(rest, UNET_RESNET, k) if kind == "resnets"
                       else f"input_blocks.{i}.1." + rest)
        elif p[0] == "mid_block":
            rest = ".".join(p[3:])
            new = ("middle_block.1." + rest if p[1] == "attentions"
                   else f"middle_block.{2 * int(p[2])}." + rename(rest, UNET_RESNET, k))
        elif p[0] == "up_blocks":
            b, kind = int(p[1]), p[2]
            rest = ".".join(p[4:])
            if kind == "upsamplers":
                new = f"output_blocks.{b * (L + 1) + L}.{2 if up_attention[b] else 1}.conv." + ".".join(p[5:])
            else:
                i = b * (L + 1) + int(p[3])
                new = (f"output_blocks.{i}.0." + rename(rest, UNET_RESNET, k) if kind == "resnets"
                       else f"output_blocks.{i}.1." + rest)
        assert new is not None, k
        assert n > 0
        out["model.diffusion_model." + new] = v
    return out


def vae_to_ldm(sd, config):
    """diffusers AutoencoderKL names -> ldm/modules/diffusionmodules/model.py's."""
    n = len(config["block_out_channels"])
    out = {}
    for k, v in sd.items():
        p = k.split(".")
        part = p[0]
        if part in ("quant_conv", "post_quant_conv"):
            new = k
        elif p[1] in ("conv_in", "conv_out"):
            new = k
        elif p[1] == "conv_norm_out":
            new = f"{part}.norm_out." + ".".join(p[2:])
        elif p[1] == "mid_block":
            if p[2] == "resnets":
                new = f"{part}.mid.block_{int(p[3]) + 1}." + ".".join(p[4:]).replace("conv_shortcut", "nin_shortcut")
            else:
                rest = ".".join(p[4:])
                new = f"{part}.mid.attn_1." + rename(rest, VAE_ATTENTION, k)
                if v.ndim == 2:  # AttnBlock's q, k, v, proj_out are 1x1 convs
                    v = v[:, :, None, None]
        elif p[1] == "down_blocks":
            i = int(p[2])
            new = (f"encoder.down.{i}.downsample.conv." + ".".join(p[6:]) if p[3] == "downsamplers"
                   else f"encoder.down.{i}.block.{p[4]}." + ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut"))
        elif p[1] == "up_blocks":
            i = n - 1 - int(p[2])
            new = (f"decoder.up.{i}.upsample.conv." + ".".join(p[6:]) if p[3] == "upsamplers"
                   else f"decoder.up.{i}.block.{p[4]}." + ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut"))
        else:
            raise KeyError(k)
        out["first_stage_model." + new] = v.contiguous()
    return out


def hub_names(model):
    """transformers 5 flattened CLIPTextModel; the hub's files keep text_model.*."""
    sd = model.state_dict()
    if isinstance(model, CLIPTextModel) and not any(k.startswith("text_model.") for k in sd):
        sd = {"text_model." + k: v for k, v in sd.items()}
    return {k: v.contiguous() for k, v in sd.items() if not k.endswith("position_ids")}


def open_clip_names(sd, prefix):
    """CLIPTextModelWithProjection (hub names) -> OpenCLIP's TextTransformer."""
    out = {prefix + "logit_scale": torch.tensor(4.6052)}
    layers = {}
    for k, v in sd.items():
        if k == "text_projection.weight":
            out[prefix + "text_projection"] = v.T.contiguous()
            continue
        k = k[len("text_model."):]
        if k.startswith("embeddings.token_embedding."):
            out[prefix + "token_embedding." + k.split(".")[-1]] = v
        elif k == "embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = v
        elif k.startswith("final_layer_norm."):
            out[prefix + "ln_final." + k.split(".")[-1]] = v
        else:
            p = k.split(".")  # encoder.layers.i.<rest>
            i, rest = int(p[2]), ".".join(p[3:])
            base = f"{prefix}transformer.resblocks.{i}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                layers.setdefault((i, rest.split(".")[2]), {})[rest.split(".")[1]] = v
                continue
            out[base + rename(rest, [("layer_norm1.", "ln_1."), ("layer_norm2.", "ln_2."), ("mlp.fc1.", "mlp.c_fc."),
                                     ("mlp.fc2.", "mlp.c_proj."), ("self_attn.out_proj.", "attn.out_proj.")], k)] = v
    for (i, w), qkv in layers.items():
        out[f"{prefix}transformer.resblocks.{i}.attn.in_proj_{w}"] = torch.cat(
            [qkv["q_proj"], qkv["k_proj"], qkv["v_proj"]], 0).contiguous()
    return out


def text_encoder(seed, projection):
    torch.manual_seed(seed)
    c = CLIPTextConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=8, projection_dim=12,
                       bos_token_id=0, eos_token_id=2, pad_token_id=1,
                       hidden_act="gelu" if projection else "quick_gelu")
    m = (CLIPTextModelWithProjection if projection else CLIPTextModel)(c).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m


def same(a, b, what):
    assert set(a) == set(b), f"{what}: keys differ: {sorted(set(a) ^ set(b))[:8]}"
    for k in a:
        assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, f"{what} {k}: {a[k].shape} vs {b[k].shape}"
        assert torch.equal(a[k], b[k]), f"{what} {k}: values differ"


def check_unet(ckpt, sd, config):
    conv = convert_ldm_unet_checkpoint(ckpt, config)
    same(conv, sd, "unet")
    UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")}).load_state_dict(conv, strict=True)


def check_vae(ckpt, sd, config, dtype):
    conv = convert_ldm_vae_checkpoint(ckpt, config)
    same(conv, {k: v.to(dtype) for k, v in sd.items()}, "vae")
    AutoencoderKL(**{k: v for k, v in config.items() if not k.startswith("_")}).load_state_dict(conv, strict=True)


def write_full_size_keys():
    """The released SD1.5 / SDXL UNet and VAE key sets in the LDM layout (from
    diffusers' models on the meta device, this script's inverse, checked with
    diffusers' converters): <family>_keys.txt, one LDM key a line, for the
    full-size name check in ldm_checkpoint_test."""
    for family, unet_file in (("sd15", "sd15_config.json"), ("sdxl", "sdxl_config.json")):
        unet_config = json.load(open(os.path.join(ROOT, "unet", unet_file)))
        vae_config = json.load(open(os.path.join(ROOT, "vae", "sd15_vae_config.json")))
        with torch.device("meta"):
            unet = UNet2DConditionModel(**{k: v for k, v in unet_config.items() if not k.startswith("_")})
            vae = AutoencoderKL(**{k: v for k, v in vae_config.items() if not k.startswith("_")})
        unet_sd, vae_sd = unet.state_dict(), vae.state_dict()
        ckpt = unet_to_ldm(unet_sd, unet_config)
        ckpt.update(vae_to_ldm(vae_sd, vae_config))
        assert set(convert_ldm_unet_checkpoint(ckpt, unet_config)) == set(unet_sd)
        assert set(convert_ldm_vae_checkpoint(ckpt, vae_config)) == set(vae_sd)
        with open(os.path.join(OUT, f"{family}_keys.txt"), "w") as f:
            f.write("".join(k + "\n" for k in sorted(ckpt)))
        print(f"{family}: {len(unet_sd)} UNet and {len(vae_sd)} VAE keys")


def main():
    os.makedirs(OUT, exist_ok=True)
    vae_dir = os.path.join(ROOT, "vae", "tiny_vae", "vae")
    vae_sd = load_folder(vae_dir)
    vae_config = json.load(open(os.path.join(vae_dir, "config.json")))
    extras = {"alphas_cumprod": torch.linspace(0.999, 0.005, 10), "model_ema.decay": torch.tensor(0.9999)}
    for case, dtype_vae in (("tiny_sd15", torch.float32), ("tiny_sdxl", torch.bfloat16)):
        unet_dir = os.path.join(ROOT, "unet", case, "unet")
        unet_sd = load_folder(unet_dir)
        unet_config = json.load(open(os.path.join(unet_dir, "config.json")))
        ckpt = dict(extras)
        ckpt.update(unet_to_ldm(unet_sd, unet_config))
        ckpt.update({k: v.to(dtype_vae) for k, v in vae_to_ldm(vae_sd, vae_config).items()})
        te = text_encoder(11, projection=False)
        te_sd = hub_names(te)
        clip_prefix = "cond_stage_model.transformer." if case == "tiny_sd15" else "conditioner.embedders.0.transformer."
        ckpt.update({clip_prefix + k: v for k, v in te_sd.items()})
        ckpt[clip_prefix + "text_model.embeddings.position_ids"] = torch.arange(8, dtype=torch.int64)[None]
        refs = {f"{case}_text_encoder.safetensors": te_sd}
        if case == "tiny_sdxl":
            te2 = text_encoder(12, projection=True)
            te2_sd = hub_names(te2)
            ckpt.update(open_clip_names(te2_sd, "conditioner.embedders.1.model."))
            refs[f"{case}_text_encoder_2.safetensors"] = te2_sd

        # diffusers' own converters must give back every original tensor.
        check_unet(ckpt, unet_sd, unet_config)
        check_vae(ckpt, vae_sd, vae_config, dtype_vae)
        conv = convert_ldm_clip_checkpoint(ckpt)
        conv.pop("text_model.embeddings.position_ids")
        same(conv, te_sd, "text_encoder")
        te.load_state_dict({k[len("text_model."):]: v for k, v in conv.items()}, strict=True)
        if case == "tiny_sdxl":
            conv2 = convert_open_clip_checkpoint(te2, ckpt, prefix="conditioner.embedders.1.model.")
            same(conv2, te2_sd, "text_encoder_2")
            te2.load_state_dict(conv2, strict=False)
            missing = set(te2.state_dict()) - set(conv2) - {"text_model.embeddings.position_ids"}
            assert not missing, missing

        meta = {"case": case, "source": f"tests/data/unet/{case}, tests/data/vae/tiny_vae, text encoders seeded here",
                "made_by": "tools/make_ldm_golden.py"}
        save_file({k: v.contiguous() for k, v in ckpt.items()}, os.path.join(OUT, f"{case}.safetensors"), meta)
        for name, sd in refs.items():
            save_file(sd, os.path.join(OUT, name), {"case": case, "made_by": "tools/make_ldm_golden.py"})
        print(f"{case}: {len(ckpt)} tensors, checked against diffusers' converters")
    write_full_size_keys()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"tests/data/ldm: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
