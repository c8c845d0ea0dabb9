#!/usr/bin/env python3
"""PyTorch timings of the shapes our CUDA microbenchmarks use (same card, same
run), plus the card's device-to-device copy bandwidth and the best bf16 GEMM:
the baselines and floors that docs/gpu-results.md compares against.
With --convblock, only the authors' eager ConvBlock (issue 10) at the shapes
of bench/ops/convblock_gpu_bench.cc (gpu_check.sh runs it separately, with its
own time limit, and merges the cases).
Usage: torch_baseline.py [--convblock] OUT.json"""
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


class ConvBlock(torch.nn.Module):
    """The authors' eager ConvBlock (docs/convblock.md's definition; their
    PyramidConvBlock): 1x1 nn.Conv2d projections, a depthwise nn.Conv2d per
    scale, the released gate x1 * x2 * sqrt(C'/2) (SD) or x1 * sigmoid(x2)
    (PixArt), bilinear upsample (align_corners=False), concat, conv_out, plus
    conv_pool of the spatial mean. NCHW, or channels-last memory through
    .to(memory_format=torch.channels_last)."""

    def __init__(self, dim, kernel, gate, scales=(1.0, 0.5)):
        super().__init__()
        inter = dim // 2
        self.scales, self.half, self.gate = scales, inter // 2, gate
        self.conv_up = torch.nn.Conv2d(dim, inter, 1)
        self.spatial = torch.nn.ModuleList(
            torch.nn.Conv2d(inter, inter, kernel, padding=kernel // 2, groups=inter, bias=False) for _ in scales)
        self.conv_out = torch.nn.Conv2d(self.half * len(scales), dim, 1)
        self.conv_pool = torch.nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        u = self.conv_up(x)
        H, W = u.shape[2:]
        outs = []
        for s, conv in zip(self.scales, self.spatial):
            z = F.adaptive_avg_pool2d(u, (int(H * s), int(W * s))) if s != 1.0 else u
            x1, x2 = conv(z).chunk(2, dim=1)
            z = x1 * torch.sigmoid(x2) if self.gate == "sigmoid" else x1 * (x2 / self.half ** -0.5)
            outs.append(F.interpolate(z, size=(H, W), mode="bilinear", align_corners=False) if s != 1.0 else z)
        return self.conv_out(torch.cat(outs, dim=1)) + self.conv_pool(F.adaptive_avg_pool2d(x, 1))


# bench/ops/convblock_gpu_bench.cc's shapes: (name, C, latent h, w, kernels, gate), batch 2, scales (1, 0.5).
CONVBLOCK_SHAPES = (("sd15_512", 320, 64, 64, (13, 25), "released"), ("sd15_1024", 320, 128, 128, (13, 25), "released"),
                    ("sd15_2k", 320, 180, 320, (13, 25), "released"), ("sd15_4k", 320, 270, 512, (13, 25), "released"),
                    ("pixart_512", 1152, 64, 64, (13,), "sigmoid"), ("pixart_1024", 1152, 128, 128, (13,), "sigmoid"))


def convblock_cases(dev, record, done=lambda: None):
    """convblock_<shape>_k<K>_<nchw|cl>_f16_<fwd|fwdbwd>; FLOPs: the block's
    multiply-adds (2 each); bytes: input + output once. done() after each
    shape and K (the caller writes what it has, in case the time limit hits)."""
    torch.manual_seed(0)
    for name, C, H, W, kernels, gate in CONVBLOCK_SHAPES:
        for K in kernels:
            px = H * W + (H // 2) * (W // 2)
            macs = 2 * (H * W * C * C // 2 + px * (C // 2) * K * K + H * W * (C // 2) * C + C * C)
            nbytes = 2 * (2 * 2 * H * W * C)
            big = H * W > 20000
            iters, warm = (5, 2) if big else (20, 3)
            for layout in ("nchw", "cl"):
                fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
                blk = ConvBlock(C, K, gate).to(dev, torch.float16).to(memory_format=fmt)
                x = torch.randn(2, C, H, W, dtype=torch.float16, device=dev).contiguous(memory_format=fmt)
                tag = f"convblock_{name}_k{K}_{layout}_f16"
                with torch.no_grad():
                    fwd = bench(lambda: blk(x), iters=iters, warmup=warm)
                record(tag + "_fwd", fwd, flops=2 * macs, nbytes=nbytes)
                xg = x.detach().requires_grad_()
                params = list(blk.parameters())
                dy = torch.randn_like(blk(xg))
                both = bench(lambda: torch.autograd.grad(blk(xg), [xg] + params, dy), iters=iters, warmup=warm)
                record(tag + "_fwdbwd", both, flops=3 * 2 * macs)
                del blk, x, xg, dy, params
            torch.cuda.empty_cache()
            done()


def main():
    convblock_only = "--convblock" in sys.argv[1:]
    out_path = [a for a in sys.argv[1:] if a != "--convblock"][0]
    dev = torch.device("cuda")
    results = {}

    def record(name, ms, flops=0.0, nbytes=0.0):
        results[name] = {"ms": ms, "tflops": flops / ms / 1e9 if flops else 0.0,
                         "gbps": nbytes / ms / 1e6 if nbytes else 0.0}
        print(f"{name:48s} {ms:9.4f} ms {results[name]['tflops']:8.2f} TFLOP/s {results[name]['gbps']:8.1f} GB/s")

    if convblock_only:
        torch.backends.cudnn.benchmark = True  # PyTorch at its best: cuDNN picks the fastest depthwise algorithm
        convblock_cases(dev, record, lambda: write(out_path, results))
        return

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

    write(out_path, results)


def write(out_path, results):
    with open(out_path + ".tmp", "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": results}, f, indent=1)
    import os
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main()
