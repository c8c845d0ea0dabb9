#!/usr/bin/env python3
"""diffusers' SD1.5 UNet2DConditionModel, one denoiser step on the CPU: the
baseline of `convfusion-bench latency --device=cpu --denoiser` (docs/whole-model.md).

The model is built from SD1.5's published unet/config.json (a copy is
tests/data/unet/sd15_config.json) with diffusers' random initialisation:
nothing is downloaded. Inputs as the runtime's bench: batch 2 (classifier-free
guidance), a 4-channel latent of (resolution / 8)^2, 77 x 768 text states,
timestep 500.

Configurations (--configs, comma list; every one is timed in this process):
  eager        f32, NCHW, diffusers' default attention processor (SDPA)
  cl           f32, channels-last model and input
  compile      f32, torch.compile(unet) (default mode), NCHW
  compile_cl   f32, torch.compile, channels-last
  bf16         the model and inputs in bfloat16 (.to(torch.bfloat16)), channels-last
  autocast     f32 weights, torch.autocast("cpu", bfloat16), channels-last
Each: --warmup untimed steps (compile: the first one compiles), then
--reps timed ones; prints the min (best of N) and the median in ms, then the
fastest f32 and the fastest bf16 configuration. A configuration that fails
(e.g. torch.compile without a C++ compiler) is reported as failed and skipped.
--json=FILE writes the same figures.

    python3 bench/torch/unet_cpu.py [--resolution 512] [--batch 2] [--reps 3] [--warmup 1]
                                    [--threads N] [--configs eager,cl,compile,compile_cl,bf16,autocast]
"""
import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

import torch

CONFIG_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "unet",
                           "sd15_config.json")
CONFIGS = ("eager", "cl", "compile", "compile_cl", "bf16", "autocast")


def build_unet():
    from diffusers import UNet2DConditionModel
    with open(CONFIG_JSON) as f:
        config = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    torch.manual_seed(0)
    return UNet2DConditionModel(**config).eval()


def run_config(name, unet_f32, args):
    """A callable that runs one step of configuration `name`."""
    cl = name in ("cl", "compile_cl", "bf16", "autocast")
    fmt = torch.channels_last if cl else torch.contiguous_format
    dtype = torch.bfloat16 if name == "bf16" else torch.float32
    unet = unet_f32
    if name == "bf16":
        import copy
        unet = copy.deepcopy(unet_f32).to(dtype)
    unet = unet.to(memory_format=fmt)
    side = args.resolution // 8
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 4, side, side, generator=g).to(dtype).contiguous(memory_format=fmt)
    ctx = torch.randn(args.batch, 77, 768, generator=g).to(dtype)
    t = torch.full((args.batch,), 500.0)
    model = torch.compile(unet) if name.startswith("compile") else unet
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if name == "autocast" else contextlib.nullcontext

    def step():
        with torch.inference_mode(), amp():
            return model(x, t, encoder_hidden_states=ctx).sample

    return step


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--resolution", type=int, default=512, help="image side in pixels (latent = /8)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--reps", type=int, default=3, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (compile: compiles)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--json", default="", help="also write the results to this file")
    args = p.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"unet_cpu.py: --configs: '{c}' is not one of {', '.join(CONFIGS)}")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    import diffusers
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}; SD1.5 UNet, batch {args.batch}, "
          f"{args.resolution}x{args.resolution} ({args.resolution // 8}^2 latent), 77 text tokens")
    unet = build_unet()
    procs = {type(v).__name__ for v in unet.attn_processors.values()}
    print(f"attention processors: {', '.join(sorted(procs))}")
    results = {"torch": torch.__version__, "diffusers": diffusers.__version__, "threads": torch.get_num_threads(),
               "resolution": args.resolution, "batch": args.batch, "configs": {}, "failed": {}}
    for name in configs:
        try:
            step = run_config(name, unet, args)
            t0 = time.perf_counter()
            out = None
            for _ in range(args.warmup):
                out = step()
            warm_s = time.perf_counter() - t0
            times = []
            for _ in range(args.reps):
                t = time.perf_counter()
                out = step()
                times.append((time.perf_counter() - t) * 1e3)
        except Exception as e:  # noqa: BLE001 - one failed configuration must not end the run
            msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
            results["failed"][name] = msg
            print(f"{name:11s} failed: {msg}", flush=True)
            continue
        finite = bool(torch.isfinite(out.float()).all())
        r = {"min_ms": min(times), "median_ms": statistics.median(times), "warmup_s": warm_s, "finite": finite}
        results["configs"][name] = r
        print(f"{name:11s} min {r['min_ms']:9.1f} ms  median {r['median_ms']:9.1f} ms  (warm-up {warm_s:.1f} s"
              f"{'' if finite else ', NON-FINITE output'})", flush=True)
    for kind, names in (("f32", ("eager", "cl", "compile", "compile_cl")), ("bf16", ("bf16", "autocast"))):
        done = {n: results["configs"][n]["min_ms"] for n in names if n in results["configs"]}
        if done:
            best = min(done, key=done.get)
            results[f"fastest_{kind}"] = best
            print(f"fastest {kind}: {best} {done[best]:.1f} ms")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
