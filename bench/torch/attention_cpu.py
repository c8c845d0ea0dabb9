#!/usr/bin/env python3
"""PyTorch CPU baseline for bench/ops/attention_bench.cc (issue 9).

SD1.5's top-level self-attention module at 512x512: x [2, 4096, 320], q/k/v
linear 320 -> 320 without bias, 8 heads x 40, out linear with bias (49.7 GFLOP
of multiply-adds and bias adds), f32 on the CPU with torch.set_num_threads(2)
(override with --threads). Two attention paths: eager softmax(QK^T/sqrt(d))V
and F.scaled_dot_product_attention (on the CPU for f32 inputs PyTorch runs its
flash-attention CPU kernel, aten::_scaled_dot_product_flash_attention_for_cpu;
the script checks that from the profiler). Also the attention core alone at
the shapes of attention_bench.cc. Prints the median of --repeats runs in ms
and GFLOP/s.

  python3 bench/torch/attention_cpu.py [--threads 2] [--repeats 7] [--module-only]
"""
import argparse

from timing import median_ms
import torch
import torch.nn.functional as F


class SelfAttention(torch.nn.Module):
    def __init__(self, c, heads, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.to_q = torch.nn.Linear(c, c, bias=False)
        self.to_k = torch.nn.Linear(c, c, bias=False)
        self.to_v = torch.nn.Linear(c, c, bias=False)
        self.to_out = torch.nn.Linear(c, c)

    def forward(self, x):
        b, n, c = x.shape
        h, d = self.heads, c // self.heads
        q, k, v = (t(x).view(b, n, h, d).transpose(1, 2) for t in (self.to_q, self.to_k, self.to_v))
        if self.sdpa:
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            a = torch.softmax(q @ k.transpose(-1, -2) * d ** -0.5, dim=-1) @ v
        return self.to_out(a.transpose(1, 2).reshape(b, n, c))


def sdpa_kernel_name(q, k, v):
    """The aten kernel F.scaled_dot_product_attention dispatched to."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        F.scaled_dot_product_attention(q, k, v)
    names = [e.key for e in prof.key_averages() if "scaled_dot_product" in e.key or "flash" in e.key]
    return ", ".join(sorted(set(names))) or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--module-only", action="store_true", help="only the SDPA module (for interleaved runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")

    B, N, C, H = 2, 4096, 320, 8
    module_flops = 4 * 2 * B * N * C * C + B * N * C + 4 * B * N * N * C
    x = torch.randn(B, N, C)
    with torch.no_grad():
        for sdpa in (True,) if args.module_only else (True, False):
            m = SelfAttention(C, H, sdpa).eval()
            ms = median_ms(lambda: m(x), args.repeats)
            name = "F.scaled_dot_product_attention" if sdpa else "eager softmax(QK^T/sqrt(d))V"
            print(f"sd15 self-attention module 2x4096x320 8x40 [{name}]: {ms:.1f} ms, "
                  f"{module_flops / ms * 1e-6:.1f} GFLOP/s")
        if args.module_only:
            return

        # The attention core alone (q, k, v already [B, heads, N, d]).
        shapes = [(8, 40, 4096, 4096, "sd15 8x40 N4096"), (16, 72, 4096, 4096, "pixart 16x72 N4096"),
                  (8, 40, 4096, 77, "sd15 cross 8x40 Nkv77"), (8, 80, 1024, 1024, "sd15 8x80 N1024"),
                  (8, 160, 256, 256, "sd15 8x160 N256")]
        for h, d, nq, nkv, label in shapes:
            q = torch.randn(B, h, nq, d)
            k = torch.randn(B, h, nkv, d)
            v = torch.randn(B, h, nkv, d)
            flops = 4 * B * h * nq * nkv * d
            ms = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), args.repeats)
            print(f"attention core {label} [{sdpa_kernel_name(q, k, v)}]: {ms:.1f} ms, "
                  f"{flops / ms * 1e-6:.1f} GFLOP/s")

    # Backward of the core at the SD1.5 shape.
    q, k, v = (torch.randn(B, H, N, C // H, requires_grad=True) for _ in range(3))
    out = F.scaled_dot_product_attention(q, k, v)
    dout = torch.randn_like(out)

    def backward():
        q.grad = k.grad = v.grad = None
        torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

    ms = median_ms(backward, max(3, args.repeats // 2), warmup=1)
    # dQ, dK, dV with the recomputed QK^T: 5 products of 2 B H N^2 d each.
    flops = 5 * 2 * B * H * N * N * (C // H)
    print(f"attention core backward sd15 8x40 N4096: {ms:.1f} ms, {flops / ms * 1e-6:.1f} GFLOP/s (5-product count)")


if __name__ == "__main__":
    main()
