#!/usr/bin/env python3
"""PyTorch timings of the shapes our CUDA microbenchmarks use (same card, same
run), plus the card's device-to-device copy bandwidth and the best bf16 GEMM:
the baselines and floors that docs/gpu-results.md compares against.
Usage: torch_baseline.py OUT.json"""
import json
import sys

import torch
import torch.nn.functional as F


def bench(fn, iters=20, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / iters  # ms


def main():
    out_path = sys.argv[1]
    dev = torch.device("cuda")
    results = {}

    def record(name, ms, flops=0.0, nbytes=0.0):
        results[name] = {"ms": ms, "tflops": flops / ms / 1e9 if flops else 0.0,
                         "gbps": nbytes / ms / 1e6 if nbytes else 0.0}
        print(f"{name:48s} {ms:9.4f} ms {results[name]['tflops']:8.2f} TFLOP/s {results[name]['gbps']:8.1f} GB/s")

    # Floors: copy bandwidth and the best GEMM.
    n = 1 << 28
    a = torch.empty(n, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    record("copy_d2d_256MiB", bench(lambda: b.copy_(a)), nbytes=2 * n)
    for dt, tag in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        x = torch.randn(8192, 8192, dtype=dt, device=dev)
        y = torch.randn(8192, 8192, dtype=dt, device=dev)
        record(f"gemm_8192^3_{tag}", bench(lambda: x @ y, iters=10), flops=2 * 8192**3)
    del a, b

    for dt, tag in ((torch.float16, "f16"), (torch.float32, "f32")):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        # SD1.5 conv 3x3 320->320, batch 2, channels-last.
        for hw in (64, 128):
            x = torch.randn(2, 320, hw, hw, dtype=dt, device=dev).to(memory_format=torch.channels_last)
            w = torch.randn(320, 320, 3, 3, dtype=dt, device=dev).to(memory_format=torch.channels_last)
            bias = torch.randn(320, dtype=dt, device=dev)
            flops = 2 * 2 * hw * hw * 320 * 320 * 9
            record(f"conv3x3_320_{hw}x{hw}_b2_{tag}", bench(lambda: F.conv2d(x, w, bias, padding=1)), flops=flops)
        # Depthwise 13x13 on the ConvBlock inner width (160 channels at 64x64).
        x = torch.randn(2, 160, 64, 64, dtype=dt, device=dev).to(memory_format=torch.channels_last)
        w = torch.randn(160, 1, 13, 13, dtype=dt, device=dev)
        record(f"dwconv13_160_64x64_b2_{tag}", bench(lambda: F.conv2d(x, w, padding=6, groups=160)),
               flops=2 * 2 * 64 * 64 * 160 * 169, nbytes=2 * x.numel() * x.element_size())
        # GEGLU feed-forward and attention projection matmuls (tokens 2*4096).
        for (m, k, nn_) in ((8192, 320, 2560), (8192, 1280, 320), (8192, 320, 320)):
            x = torch.randn(m, k, dtype=dt, device=dev)
            w = torch.randn(nn_, k, dtype=dt, device=dev)
            bias = torch.randn(nn_, dtype=dt, device=dev)
            record(f"linear_{m}x{k}x{nn_}_{tag}", bench(lambda: F.linear(x, w, bias)), flops=2 * m * k * nn_)
        # Normalisations and softmax.
        for hw in (64, 128):
            x = torch.randn(2, 320, hw, hw, dtype=dt, device=dev).to(memory_format=torch.channels_last)
            g = torch.randn(320, dtype=dt, device=dev)
            record(f"group_norm_320_{hw}x{hw}_b2_{tag}", bench(lambda: F.group_norm(x, 32, g, g)),
                   nbytes=2 * x.numel() * x.element_size())
        for c in (320, 1152):
            x = torch.randn(2, 4096, c, dtype=dt, device=dev)
            g = torch.randn(c, dtype=dt, device=dev)
            record(f"layer_norm_2x4096x{c}_{tag}", bench(lambda: F.layer_norm(x, (c,), g, g)),
                   nbytes=2 * x.numel() * x.element_size())
        x = torch.randn(2 * 8 * 4096, 77, dtype=dt, device=dev)
        record(f"softmax_65536x77_{tag}", bench(lambda: torch.softmax(x, -1)), nbytes=2 * x.numel() * x.element_size())
        x = torch.randn(2, 4096, 8, 40, dtype=dt, device=dev)
        record(f"permute_2x4096x8x40_{tag}", bench(lambda: x.permute(0, 2, 1, 3).contiguous()),
               nbytes=2 * x.numel() * x.element_size())

    # Attention (issue 9 shapes): SD1.5 top level at 512 / 1024 / 2K (B=2, 8
    # heads x 40; N = 4096, 16384, 57600) and PixArt at 1024 (16 x 72, N =
    # 4096), forward and forward+backward, in PyTorch's own [B, heads, N, d]
    # layout (whatever SDPA backend it picks). The exp floor: one exponential
    # per score at ~3.9e12/s (docs/paper-facts.md).
    for dt, tag in ((torch.float16, "f16"), (torch.bfloat16, "bf16")):
        for (heads, d, n) in ((8, 40, 4096), (8, 40, 16384), (8, 40, 57600), (16, 72, 4096)):
            q, k, v = (torch.randn(2, heads, n, d, dtype=dt, device=dev, requires_grad=True) for _ in range(3))
            flops = 4 * 2 * heads * n * n * d
            name = f"sdpa_b2_{heads}x{d}_n{n}_{tag}"
            iters = 3 if n > 20000 else 10
            fwd = bench(lambda: F.scaled_dot_product_attention(q, k, v), iters=iters, warmup=2)
            record(name + "_fwd", fwd, flops=flops)
            o = F.scaled_dot_product_attention(q, k, v)
            g = torch.randn_like(o)
            both = bench(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), g),
                         iters=iters, warmup=2)
            record(name + "_bwd", max(both - fwd, 1e-6), flops=2.5 * flops)
            results[name + "_exp_floor"] = {"ms": 2 * heads * n * n / 3.9e12 * 1e3, "tflops": 0.0, "gbps": 0.0}
            del q, k, v, o, g

    with open(out_path + ".tmp", "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": results}, f, indent=1)
    import os
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
