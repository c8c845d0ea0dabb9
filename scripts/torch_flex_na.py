#!/usr/bin/env python3
"""PyTorch's baseline for neighborhood attention on the GPU: flex_attention
(compiled) with a block mask that encodes NATTEN's windows (clamped at the
borders), SD1.5 top level at 1024x1024 (128x128 latent tokens, B=2, 8 heads x
40, K=13), f16 and bf16, plus the memory floor (q, k, v read once and the
output written once at the card's copy bandwidth is measured separately by
torch_baseline.py). Usage: torch_flex_na.py OUT.json"""
import json
import os
import sys

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


def bench(fn, iters=10, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iters


def natten_mask_mod(height, width, kernel):
    """flex_attention's mask_mod for NATTEN's K x K windows on a height x width
    map of row-major tokens, clamped at the borders (bench/torch/latency_gpu.py
    uses it too)."""
    def natten(b, h, q_idx, kv_idx):
        qi, qj = q_idx // width, q_idx % width
        ki, kj = kv_idx // width, kv_idx % width
        si = torch.clamp(qi - kernel // 2, 0, height - kernel)
        sj = torch.clamp(qj - kernel // 2, 0, width - kernel)
        return (ki >= si) & (ki < si + kernel) & (kj >= sj) & (kj < sj + kernel)
    return natten


def main():
    out_path = sys.argv[1]
    dev = torch.device("cuda")
    side, kernel, heads, d, batch = 128, 13, 8, 40, 2
    n = side * side

    mask = create_block_mask(natten_mask_mod(side, side, kernel), B=None, H=None, Q_LEN=n, KV_LEN=n, device=dev)
    compiled = torch.compile(flex_attention)
    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": {}}
    for dt, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        for pad in (d, 64):  # flex_attention may need a power-of-two head dim
            try:
                q, k, v = (torch.randn(batch, heads, n, pad, dtype=dt, device=dev) for _ in range(3))
                ms = bench(lambda: compiled(q, k, v, block_mask=mask))
            except Exception as e:  # noqa: BLE001 - report and try the padded size
                print(f"flex_attention d={pad} {tag}: {type(e).__name__}: {str(e)[:200]}")
                continue
            flops = 4 * batch * heads * n * kernel * kernel * d
            name = f"flex_na_k{kernel}_{side}x{side}_b2_{heads}x{d}_pad{pad}_{tag}"
            results["cases"][name] = {"ms": ms, "tflops": flops / ms / 1e9}
            print(f"{name:48s} {ms:9.4f} ms {flops / ms / 1e9:8.2f} TFLOP/s")
            break
    with open(out_path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
