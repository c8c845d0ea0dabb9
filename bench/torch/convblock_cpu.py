#!/usr/bin/env python3
"""CPU time of one ConvBlock forward (f32), the authors' eager PyTorch block
beside the runtime's block (nn/convblock.h, fused pyramid, through
`convfusion-module convblock --repeat`), in the same run, at SD1.5's top level
at 512x512: B=2, 64x64, C=320 (C' = 160), scales (1, 1/2), released gate.

PyTorch is timed in both layouts: the NCHW block (nn.Conv2d 1x1 projections
and a depthwise nn.Conv2d, as the authors' PyramidConvBlock) and the same
block on channels-last memory (the NCHW module with
memory_format=torch.channels_last); the faster counts. The blocks are written
here from the released definition (docs/convblock.md).

    python3 bench/torch/convblock_cpu.py [--exe build-cpu/apps/convfusion-module] [--kernels 13,25] [--iters 20]

Prints one line per (K, implementation) with the median and minimum ms and,
at the minimum (the 2-core machine is shared, so medians are noisy), GFLOP/s
(the block's multiply-add FLOPs, 2 per MAC) and GB/s (input + output +
weights, read or written once: the floor of a fully fused block).
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


class Block(torch.nn.Module):
    """The ConvBlock on NCHW tensors (the released gate x1 * x2 * sqrt(C'/2))."""

    def __init__(self, dim, kernel, scales=(1.0, 0.5), inter_ratio=0.5):
        super().__init__()
        inter = int(dim * inter_ratio)
        self.scales, self.half = scales, inter // 2
        self.conv_up = torch.nn.Conv2d(dim, inter, 1)
        self.gates = torch.nn.ModuleList()
        for _ in scales:
            m = torch.nn.Module()
            m.conv_spatial = torch.nn.Conv2d(inter, inter, kernel, padding=kernel // 2, groups=inter, bias=False)
            self.gates.append(m)
        self.conv_out = torch.nn.Conv2d(self.half * len(scales), dim, 1)
        self.conv_pool = torch.nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        u = self.conv_up(x)
        H, W = u.shape[2:]
        outs = []
        for s, m in zip(self.scales, self.gates):
            z = F.adaptive_avg_pool2d(u, (int(H * s), int(W * s))) if s != 1.0 else u
            x1, x2 = m.conv_spatial(z).chunk(2, dim=1)
            z = x1 * (x2 / self.half ** -0.5)
            outs.append(F.interpolate(z, size=(H, W), mode="bilinear", align_corners=False) if s != 1.0 else z)
        return self.conv_out(torch.cat(outs, dim=1)) + self.conv_pool(F.adaptive_avg_pool2d(x, 1))


def cost(B, H, W, C, K, scales):
    """(FLOPs, bytes): 2 per multiply-add; input, output and weights once in f32."""
    Ci, half = C // 2, C // 4
    px = [int(H * s) * int(W * s) for s in scales]
    macs = B * H * W * C * Ci + sum(B * p * Ci * K * K for p in px) + B * H * W * half * len(scales) * C + B * C * C
    params = C * Ci + Ci + len(scales) * K * K * Ci + half * len(scales) * C + C + C * C + C
    return 2 * macs, 4 * (2 * B * H * W * C + params)


def time_torch(fn, x, iters):
    with torch.no_grad():
        for _ in range(3):
            fn(x)
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exe", default="build-cpu/apps/convfusion-module")
    ap.add_argument("--kernels", default="13,25")
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    B, H, W, C, scales = 2, 64, 64, 320, (1.0, 0.5)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B} {H}x{W} C={C} f32 "
          f"scales={scales} released gate")
    torch.manual_seed(0)
    for K in [int(k) for k in a.kernels.split(",")]:
        flops, nbytes = cost(B, H, W, C, K, scales)
        blk = Block(C, K, scales).eval()
        x = torch.randn(B, C, H, W)
        res = {}
        res["torch NCHW"] = time_torch(blk, x, a.iters)
        blk_cl = Block(C, K, scales).eval()
        blk_cl.load_state_dict(blk.state_dict())
        blk_cl = blk_cl.to(memory_format=torch.channels_last)
        res["torch channels-last"] = time_torch(blk_cl, x.contiguous(memory_format=torch.channels_last), a.iters)
        if os.path.exists(a.exe):
            with tempfile.TemporaryDirectory() as d:
                t = {"input": x.permute(0, 2, 3, 1).contiguous()}
                for name, p in blk.state_dict().items():
                    if "conv_spatial" in name:  # [C', 1, K, K] -> the released [K, K, C']
                        p = p[:, 0].permute(1, 2, 0)
                    t["conv1." + name] = p.contiguous()
                save_file(t, os.path.join(d, "in.safetensors"))
                out = subprocess.run([a.exe, "convblock", f"--kernel={K}", "--gate=released",
                                      f"--input={d}/in.safetensors", f"--output={d}/out.safetensors",
                                      f"--repeat={a.iters}"], check=True, capture_output=True, text=True).stdout
                res["convfusion fused"] = (float(out.split("median ")[1].split(" ms")[0]),
                                              float(out.split("min ")[1].split(" ms")[0]))
                from safetensors.torch import load_file
                y = load_file(os.path.join(d, "out.safetensors"))["output"]
                with torch.no_grad():
                    ref = blk(x).permute(0, 2, 3, 1)
                err = (y - ref).abs().max().item() / ref.abs().max().item()
                print(f"  K={K}: convfusion output vs torch: max |diff| / max |ref| = {err:.2e}")
        else:
            print(f"  ({a.exe} not found: the runtime's block is not timed)")
        for name, (med, best) in res.items():
            print(f"  K={K:2d} {name:22s} median {med:8.2f} ms  min {best:8.2f} ms  "
                  f"{flops / best / 1e6:7.1f} GFLOP/s  {nbytes / best / 1e6:6.2f} GB/s (at the min)")


if __name__ == "__main__":
    sys.exit(main())
