#!/usr/bin/env python3
"""PyTorch's linear on the CPU (F.linear with bias: x [tokens, C] · Wᵀ + b) at
SD1.5's shapes, the reference points for BM_CpuLinear / BM_CpuLinearPacked in
bench/ops/matmul_bench.cc (docs/cpu-performance.md, "GEMM").

Shapes: tokens 4096 / 8192 / 1024 / 256 / 77 (one 512x512 image's 64x64
latent, batch 2, the 32x32 and 16x16 levels, the text encoder's 77 tokens) x
C = 320 / 640 / 1280, C -> C and C -> 4C; f32 and bf16. Prints the best and
the median of --repeats timed calls (after warm-up) and GFLOP/s at the best
(2 per multiply-add; the bias add is not counted). Threads: --threads
(default 2). PyPI's torch runs these through oneDNN / MKL.

    python3 bench/torch/linear_cpu.py [--threads 2] [--repeats 20] [--dtypes f32,bf16] [--tokens 4096,77]
"""
import argparse

from timing import timed
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--tokens", default="4096,8192,1024,256,77")
    ap.add_argument("--channels", default="320,640,1280")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"{'dtype':>5s} {'tokens':>6s} {'in':>5s} {'out':>5s} {'best ms':>9s} {'med ms':>9s} {'GFLOP/s':>8s}")
    dtypes = {"f32": torch.float32, "bf16": torch.bfloat16}
    for dname in args.dtypes.split(","):
        dt = dtypes[dname]
        for tokens in (int(v) for v in args.tokens.split(",")):
            for c in (int(v) for v in args.channels.split(",")):
                for out in (c, 4 * c):
                    x = torch.randn(tokens, c).to(dt)
                    w = torch.randn(out, c).to(dt)
                    b = torch.randn(out).to(dt)
                    with torch.no_grad():
                        best, med = timed(lambda: F.linear(x, w, b), args.repeats)
                    flops = 2 * tokens * c * out
                    print(f"{dname:>5s} {tokens:6d} {c:5d} {out:5d} {best * 1e3:9.3f} {med * 1e3:9.3f} "
                          f"{flops / best / 1e9:8.1f}", flush=True)


if __name__ == "__main__":
    main()
