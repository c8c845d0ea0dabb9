#!/usr/bin/env python3
"""PyTorch at the shapes of `convfusion-bench latency --device=cuda` (the
paper's Table 2 at SD1.5's highest-resolution layer, batch 2, 320 channels,
8 heads x 40; latents 64x64, 128x128, 180x320, 270x512 for 512, 1024, 2K, 4K)
and of its --denoiser step at 512, on the same card in the same run:

  latency_self_attention_<res>_<dtype>     to_q/to_k/to_v (no bias), SDPA, to_out
  latency_neighborhood_k13_<res>_<dtype>   the same projections, flex_attention
                                           (compiled) with NATTEN's K=13 window mask
  latency_denoiser_self_attention_512_f16  diffusers' UNet2DConditionModel, SD1.5
                                           config, random weights (nothing downloaded),
                                           SDPA processors, batch 2, 77 text tokens
                                           (NCHW and channels-last: the faster is kept)

The ConvBlock's baseline is the authors' eager block of scripts/torch_baseline.py
--convblock (same shapes, run by gpu_check.sh); scripts/gpu_summary.py pairs
both with our cells. PyTorch runs eagerly here (flex_attention compiled), ours
replays a CUDA Graph: launch overhead counts against PyTorch for small modules.

Each case: median and min of --reps runs after --warmup, CUDA events per run.
The output is rewritten after every case, and cases past --budget seconds are
skipped with a note, so a run cut short keeps what it measured.
Usage: latency_gpu.py OUT.json [--device=cuda|cpu] [--sizes=512,1024,2K,4K]
       [--dtypes=f16,bf16] [--flex-dtypes=f16] [--reps=10] [--warmup=3] [--budget=240]
       [--no-unet] [--no-flex]
flex_attention compiles once per shape and dtype (tens of seconds each), so by
default it runs in f16 only (--flex-dtypes); SDPA runs in every --dtypes.
On the CPU (a dry run of the script, not a baseline): --device=cpu --dtypes=f32."""
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from torch_flex_na import natten_mask_mod  # noqa: E402  (one place for the NATTEN mask)

# apps/bench/models.cc's resolutions (width x height in pixels), latent = pixels / 8.
RESOLUTIONS = {"512": (512, 512), "1024": (1024, 1024), "2K": (2560, 1440), "4K": (4096, 2160)}
DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}
CHANNELS, HEADS, BATCH, KERNEL = 320, 8, 2, 13


def parse_args(argv):
    opts = {"device": "cuda", "sizes": "512,1024,2K,4K", "dtypes": "f16,bf16", "flex-dtypes": "f16", "reps": "10", "warmup": "3",
            "budget": "240", "unet": True, "flex": True, "out": None}
    for a in argv:
        if a in ("--no-unet", "--no-flex"):
            opts[a[5:]] = False
        elif a.startswith("--") and "=" in a:
            key, value = a[2:].split("=", 1)
            if key not in opts:
                sys.exit(f"latency_gpu.py: unknown flag {a}")
            opts[key] = value
        elif opts["out"] is None:
            opts["out"] = a
        else:
            sys.exit(f"latency_gpu.py: unexpected argument {a}")
    if opts["out"] is None:
        sys.exit(__doc__)
    for s in opts["sizes"].split(","):
        if s not in RESOLUTIONS:
            sys.exit(f"latency_gpu.py: --sizes: '{s}' is not one of {', '.join(RESOLUTIONS)}")
    for flag in ("dtypes", "flex-dtypes"):
        for d in opts[flag].split(","):
            if d not in DTYPES:
                sys.exit(f"latency_gpu.py: --{flag}: '{d}' is not one of {', '.join(DTYPES)}")
    return opts


def timed(fn, dev, reps, warmup):
    """(median ms, min ms) of `reps` runs of fn after `warmup`."""
    for _ in range(warmup):
        fn()
    times = []
    if dev.type == "cuda":
        torch.cuda.synchronize()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for start, stop in events:
            start.record()
            fn()
            stop.record()
        torch.cuda.synchronize()
        times = [start.elapsed_time(stop) for start, stop in events]
    else:
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


class Projected(torch.nn.Module):
    """The harness's attention module: to_q/to_k/to_v without bias and to_out
    with bias around an attention core(q, k, v) on [B, heads, N, d]."""

    def __init__(self, dim, heads, core):
        super().__init__()
        self.heads, self.core = heads, core
        self.to_q, self.to_k, self.to_v = (torch.nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.to_out = torch.nn.Linear(dim, dim)

    def forward(self, x):  # x [B, N, C], as our [B, H, W, C]
        b, n, c = x.shape
        q, k, v = (p(x).view(b, n, self.heads, c // self.heads).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v))
        return self.to_out(self.core(q, k, v).transpose(1, 2).reshape(b, n, c))


def flex_core(height, width, dev):
    """flex_attention with NATTEN's mask on a height x width map. The block
    mask is built by a compiled create_block_mask above 16K tokens (eager
    materialises the N x N mask). Head dim 40 is padded to 64 if flex
    rejects it (zeros, the scale kept at 1/sqrt(40))."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    n = height * width
    make = torch.compile(create_block_mask) if n > 16384 and dev.type == "cuda" else create_block_mask
    mask = make(natten_mask_mod(height, width, KERNEL), None, None, n, n, device=dev)
    compiled = torch.compile(flex_attention)
    state = {"pad": None}

    def core(q, k, v):
        d = q.shape[-1]
        if state["pad"] is None:
            try:
                out = compiled(q, k, v, block_mask=mask)
                state["pad"] = 0
                return out
            except Exception as e:  # noqa: BLE001 - retry with a power-of-two head dim
                print(f"flex_attention d={d}: {type(e).__name__}: {str(e)[:160]}; padding to 64")
                state["pad"] = 64 - d
        if state["pad"] == 0:
            return compiled(q, k, v, block_mask=mask)
        pad = state["pad"]
        q, k, v = (F.pad(t, (0, pad)) for t in (q, k, v))
        return compiled(q, k, v, block_mask=mask, scale=1 / math.sqrt(d))[..., :d]

    return core


def sd15_unet(dev, dtype):
    """diffusers' UNet2DConditionModel with SD1.5's config (its published
    unet/config.json), random weights."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    with torch.device(dev):  # initialised where it runs: 860M parameters
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8, cross_attention_dim=768,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            norm_num_groups=32, norm_eps=1e-5, act_fn="silu", flip_sin_to_cos=True, freq_shift=0)
    return unet.to(dev, dtype).eval()


def main():
    o = parse_args(sys.argv[1:])
    dev = torch.device(o["device"])
    reps, warmup, budget = int(o["reps"]), int(o["warmup"]), float(o["budget"])
    t0 = time.time()
    out = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "torch": torch.__version__,
           "cases": {}, "skipped": {}}

    def write():
        with open(o["out"] + ".tmp", "w") as f:
            json.dump(out, f, indent=1)
        os.replace(o["out"] + ".tmp", o["out"])

    def case(name, run, flops=0.0, note=""):
        """Times run() (a thunk that builds and returns the timed callable)
        unless the budget is spent; records or notes why not."""
        if time.time() - t0 > budget:
            out["skipped"][name] = f"--budget={budget:g} s spent"
            print(f"{name:48s} skipped (budget)")
            write()
            return
        try:
            with torch.no_grad():
                fn = run()
                med, mn = timed(fn, dev, reps, warmup)
        except Exception as e:  # noqa: BLE001 - one failed case must not end the run
            out["skipped"][name] = f"{type(e).__name__}: {str(e)[:200]}"
            print(f"{name:48s} failed: {out['skipped'][name]}")
        else:
            out["cases"][name] = {"ms": med, "min_ms": mn, "tflops": flops / med / 1e9 if flops else 0.0,
                                  "gbps": 0.0, "note": note}
            print(f"{name:48s} median {med:9.4f} ms  min {mn:9.4f} ms {out['cases'][name]['tflops']:8.2f} TFLOP/s")
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        write()

    sizes, dtypes = o["sizes"].split(","), o["dtypes"].split(",")
    proj_flops = lambda n: 2 * BATCH * n * CHANNELS * CHANNELS * 4  # noqa: E731  four C x C projections

    def attention(core_for, h, w, dt):
        def build():
            torch.manual_seed(0)
            m = Projected(CHANNELS, HEADS, core_for(h, w)).to(dev, DTYPES[dt])
            x = torch.randn(BATCH, h * w, CHANNELS, device=dev, dtype=DTYPES[dt])
            return lambda: m(x)
        return build

    # SDPA first (fast), the UNet step, then flex_attention (it compiles per shape).
    for res in sizes:
        w, h = (p // 8 for p in RESOLUTIONS[res])
        n = h * w
        for dt in dtypes:
            case(f"latency_self_attention_{res}_{dt}",
                 attention(lambda hh, ww: F.scaled_dot_product_attention, h, w, dt),
                 flops=proj_flops(n) + 4 * BATCH * n * n * CHANNELS, note="SDPA, eager")

    if o["unet"] and "512" in sizes:
        dt = "f16" if "f16" in dtypes else dtypes[0]
        try:
            unet = sd15_unet(dev, DTYPES[dt])
        except Exception as e:  # noqa: BLE001 - diffusers missing: skip cleanly
            out["skipped"][f"latency_denoiser_self_attention_512_{dt}"] = f"no UNet: {type(e).__name__}: {e}"
            print(f"diffusers UNet skipped: {type(e).__name__}: {e}")
            write()
            unet = None
        if unet is not None:
            best = None
            for layout in ("nchw", "cl"):
                fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
                name = f"latency_denoiser_self_attention_512_{dt}_{layout}"

                def build(fmt=fmt):
                    unet.to(memory_format=fmt)
                    g = torch.Generator(device="cpu").manual_seed(0)
                    x = torch.randn(BATCH, 4, 64, 64, generator=g).to(dev, DTYPES[dt]).contiguous(memory_format=fmt)
                    ctx = torch.randn(BATCH, 77, 768, generator=g).to(dev, DTYPES[dt])
                    t = torch.full((BATCH,), 500.0, device=dev)
                    return lambda: unet(x, t, encoder_hidden_states=ctx).sample
                case(name, build, note=f"diffusers UNet2DConditionModel, SD1.5 config, {layout}, eager")
                c = out["cases"].get(name)
                if c and (best is None or c["ms"] < best["ms"]):
                    best = dict(c, note=c["note"] + " (the faster layout)")
            if best:
                out["cases"][f"latency_denoiser_self_attention_512_{dt}"] = best
                write()
            del unet

    if o["flex"]:
        for res in sizes:
            w, h = (p // 8 for p in RESOLUTIONS[res])
            n = h * w
            for dt in o["flex-dtypes"].split(","):
                case(f"latency_neighborhood_k{KERNEL}_{res}_{dt}",
                     attention(lambda hh, ww: flex_core(hh, ww, dev), h, w, dt),
                     flops=proj_flops(n) + 4 * BATCH * n * KERNEL * KERNEL * CHANNELS,
                     note="flex_attention (compiled), NATTEN mask")
    write()
    print(f"latency_gpu.py: {len(out['cases'])} cases, {len(out['skipped'])} skipped, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
