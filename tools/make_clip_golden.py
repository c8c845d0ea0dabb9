#!/usr/bin/env python3
"""Writes the CLIP text encoder golden data under tests/data/clip/ that
tests/nn/clip_text_model_test.cc and tests/apps/text_encoder_test.cc read,
and prints the parameter counts of the released text encoders.

Tiny random configurations made with transformers' own CLIPTextModel and
CLIPTextModelWithProjection (seeded), saved in an SDXL-like diffusers folder
layout under tests/data/clip/tiny_sdxl/:

  text_encoder/    CLIPTextModel, ViT-L/14's rules (quick_gelu, the legacy
                   eos_token_id 2: pooled at argmax(input_ids)), the real
                   tokenizer's 49408-token vocabulary, 3 layers of width 16,
                   2 heads, f16 weights, saved the transformers 4 way
                   (text_model.* keys plus the int64 position_ids buffer the
                   released SD1.5 file has);
  text_encoder_2/  CLIPTextModelWithProjection, OpenCLIP bigG's rules (gelu,
                   projection without bias, 32 -> 24), a 600-token vocabulary,
                   eos_token_id 5 (the post-#24773 rule: the first position
                   equal to it, which is not the argmax), 2 layers of width
                   32, 4 heads, f32 weights in two shards with an index;
(transformers 5 saves a CLIPTextModel without the "text_model." prefix; the
C++ test writes that layout itself from text_encoder's tensors.)

io_text_encoder.safetensors holds input_ids [4, 77] from the real tokenizer
(tests/data/tokenizer/clip) on a few prompts, padded with <|endoftext|>
(SD1.5, SDXL's tokenizer) in rows 0-1 and with "!" = 0 (SDXL's tokenizer_2)
in rows 2-3, one prompt longer than 77 tokens (truncated); the tokenizer's
attention_mask; and the float64 reference outputs: last_hidden_state,
hidden_states.I for every I (transformers' tuple: 0 the embeddings, I the
output of layer I), hidden_states_penultimate (= hidden_states[-2], what
SDXL uses), pooled_output, and masked.last_hidden_state /
masked.pooled_output run with the attention_mask.
io_text_encoder_2.safetensors the same for text_encoder_2 on input_ids
[3, 20] (fewer tokens than the 77 positions) built from tokenizer ids mapped
into its vocabulary, with its eos placed after a larger id, plus
text_embeds. All floating tensors are F32 (weights rounded to their stored
dtype before the float64 run, results rounded after it). Run from the
repository root:

    pip install torch transformers safetensors    # PyPI
    python3 tools/make_clip_golden.py
"""
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "data", "clip")
TOKENIZER = os.path.join(ROOT, "tests", "data", "tokenizer", "clip")

PROMPTS = [
    "a photo of a cat",
    "An astronaut riding a horse on the moon, highly detailed, 8k, trending on artstation, " * 4,  # > 77 tokens
    "a photo of a cat",
    "",
]

# The released configs (their text_encoder/config.json values; the hub files
# also carry _name_or_path, torch_dtype and transformers_version).
RELEASED = {
    # runwayml/stable-diffusion-v1-5 text_encoder (openai/clip-vit-large-patch14's text tower);
    # SDXL's text_encoder is the same architecture.
    "clip_vit_l14_config.json": dict(
        architectures=["CLIPTextModel"], attention_dropout=0.0, bos_token_id=0, dropout=0.0, eos_token_id=2,
        hidden_act="quick_gelu", hidden_size=768, initializer_factor=1.0, initializer_range=0.02,
        intermediate_size=3072, layer_norm_eps=1e-05, max_position_embeddings=77, model_type="clip_text_model",
        num_attention_heads=12, num_hidden_layers=12, pad_token_id=1, projection_dim=768, torch_dtype="float32",
        vocab_size=49408),
    # stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2 (laion/CLIP-ViT-bigG-14-laion2B-39B-b160k).
    "openclip_bigg_config.json": dict(
        architectures=["CLIPTextModelWithProjection"], attention_dropout=0.0, bos_token_id=0, dropout=0.0,
        eos_token_id=2, hidden_act="gelu", hidden_size=1280, initializer_factor=1.0, initializer_range=0.02,
        intermediate_size=5120, layer_norm_eps=1e-05, max_position_embeddings=77, model_type="clip_text_model",
        num_attention_heads=20, num_hidden_layers=32, pad_token_id=1, projection_dim=1280, torch_dtype="float16",
        vocab_size=49408),
}


def released_counts():
    for name, cfg in RELEASED.items():
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        keys = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "torch_dtype")}
        cls = CLIPTextModelWithProjection if cfg["architectures"][0] == "CLIPTextModelWithProjection" else CLIPTextModel
        with torch.device("meta"):
            m = cls(CLIPTextConfig(**keys))
        print(f"{name}: {cls.__name__}, {sum(p.numel() for p in m.parameters()):,} parameters")


def randomize(model, seed):
    """N(0, 0.2^2) everywhere (LayerNorm scales around 1), embeddings N(0, 1)
    so that tokens and positions show in every output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            v = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if "embedding" not in name:
                v = v * 0.2
            if "norm" in name and name.endswith(".weight"):
                v = 1.0 + v
            p.copy_(v.to(p.dtype))


def run(model, ids, mask=None):
    ref = model.__class__(model.config).double()
    ref.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ref.eval()
    with torch.no_grad():
        out = ref(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    res = {"last_hidden_state": out.last_hidden_state}
    hs = out.hidden_states
    for i, h in enumerate(hs):
        res[f"hidden_states.{i}"] = h
    res["hidden_states_penultimate"] = hs[-2]
    if isinstance(ref, CLIPTextModelWithProjection):
        res["text_embeds"] = out.text_embeds
        res["pooled_output"] = ref.text_model(input_ids=ids, attention_mask=mask).pooler_output
    else:
        res["pooled_output"] = out.pooler_output
    return res


def tokenize(pad_token):
    tok = CLIPTokenizer.from_pretrained(TOKENIZER, pad_token=pad_token)
    return tok(PROMPTS[:2] if pad_token != "!" else PROMPTS[2:], padding="max_length", max_length=77,
               truncation=True, return_tensors="pt")


def main():
    os.makedirs(OUT, exist_ok=True)
    released_counts()
    case = os.path.join(OUT, "tiny_sdxl")
    shutil.rmtree(case, ignore_errors=True)

    eos_padded, zero_padded = tokenize("<|endoftext|>"), tokenize("!")
    ids = torch.cat([eos_padded["input_ids"], zero_padded["input_ids"]])
    mask = torch.cat([eos_padded["attention_mask"], zero_padded["attention_mask"]])
    assert ids.max().item() == 49407 and (ids[2:, -1] == 0).all() and (ids[:2, -1] == 49407).all()

    # ---- text_encoder: ViT-L/14's rules
    torch.manual_seed(0)
    cfg1 = CLIPTextConfig(vocab_size=49408, hidden_size=16, intermediate_size=36, num_hidden_layers=3,
                          num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                          layer_norm_eps=1e-5, projection_dim=768, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    m1 = CLIPTextModel(cfg1)
    randomize(m1, 100)
    m1 = m1.half()
    folder = os.path.join(case, "text_encoder")
    m1.save_pretrained(folder)
    sd = load_file(os.path.join(folder, "model.safetensors"))  # transformers 5: no text_model. prefix
    legacy = {"text_model." + k: v for k, v in sd.items()}
    legacy["text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64).expand(1, -1).contiguous()
    save_file(legacy, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    io = {"input_ids": ids, "attention_mask": mask}
    io.update(run(m1, ids))
    io.update({"masked." + k: v for k, v in run(m1, ids, mask).items()
               if k in ("last_hidden_state", "pooled_output")})
    save_file({k: v.float().contiguous() if v.is_floating_point() else v.contiguous() for k, v in io.items()},
              os.path.join(case, "io_text_encoder.safetensors"), metadata={"case": "tiny_sdxl/text_encoder"})
    print(f"text_encoder: {sum(p.numel() for p in m1.parameters())} parameters, input_ids {tuple(ids.shape)}, "
          f"pooled at {ids.argmax(-1).tolist()}")

    # ---- text_encoder_2: OpenCLIP bigG's rules, a small vocabulary, eos 5
    V, eos = 600, 5
    cfg2 = CLIPTextConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
                          projection_dim=24, bos_token_id=4, eos_token_id=eos, pad_token_id=0)
    m2 = CLIPTextModelWithProjection(cfg2)
    randomize(m2, 200)
    m2.save_pretrained(os.path.join(case, "text_encoder_2"), max_shard_size="40KB")
    T = 20
    ids2 = torch.zeros(3, T, dtype=torch.int64)
    for r, p in enumerate(["a photo of a cat", "An astronaut riding a horse on the moon, highly detailed", ""]):
        words = CLIPTokenizer.from_pretrained(TOKENIZER)(p)["input_ids"][1:-1][: T - 2]
        row = [4] + [10 + w % (V - 10) for w in words] + [eos]
        ids2[r, : len(row)] = torch.tensor(row)
        ids2[r, len(row):] = 0 if r != 1 else 599  # row 1: padded with the largest id (argmax would pick it)
    mask2 = (torch.arange(T)[None, :] <= (ids2 == eos).int().argmax(-1)[:, None]).long()
    io = {"input_ids": ids2, "attention_mask": mask2}
    io.update(run(m2, ids2))
    io.update({"masked." + k: v for k, v in run(m2, ids2, mask2).items()
               if k in ("last_hidden_state", "pooled_output", "text_embeds")})
    save_file({k: v.float().contiguous() if v.is_floating_point() else v.contiguous() for k, v in io.items()},
              os.path.join(case, "io_text_encoder_2.safetensors"), metadata={"case": "tiny_sdxl/text_encoder_2"})
    print(f"text_encoder_2: {sum(p.numel() for p in m2.parameters())} parameters, input_ids {tuple(ids2.shape)}, "
          f"eos at {(ids2 == eos).int().argmax(-1).tolist()}, argmax at {ids2.argmax(-1).tolist()}, files "
          f"{sorted(os.listdir(os.path.join(case, 'text_encoder_2')))}")


if __name__ == "__main__":
    main()
