#!/usr/bin/env python3
"""PyTorch's depthwise conv2d on the CPU (F.conv2d with groups=C, stride 1,
padding K//2, no bias, f32) at the ConvBlock's shapes: the reference points
for BM_CpuDepthwise in bench/ops/conv_bench.cc (docs/ops/conv.md, Depthwise).

For each shape, forward, backward input and backward weight, each through
aten.convolution_backward with one output selected (what autograd calls),
in two memory formats: channels_last (NHWC, the runtime's layout) and
contiguous NCHW. Prints the min and the median over --repeats timed calls
(after warm-up) and GFLOP/s at both (2 per multiply-add, padding taps
included, as the runtime counts). Threads: --threads (default 2).

    python3 bench/torch/depthwise_cpu.py [--threads 2] [--repeats 20] [--shapes 2x64x160x13,...]
"""
import argparse

from timing import timed
import torch
import torch.nn.functional as F

DEFAULT_SHAPES = ("2x64x160x13,2x32x160x13,2x64x160x25,2x32x160x25,2x64x320x13,2x64x160x3")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated NxHWxCxK")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"{'shape':>18s} {'layout':>13s} {'pass':>9s} {'min ms':>8s} {'med ms':>8s} {'GFLOP/s min':>11s} "
          f"{'GFLOP/s med':>11s}")
    for spec in args.shapes.split(","):
        n, hw, c, k = (int(v) for v in spec.split("x"))
        flops = 2 * n * hw * hw * c * k * k
        for layout in ("channels_last", "nchw"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.randn(n, c, hw, hw).to(memory_format=fmt)
            w = torch.randn(c, 1, k, k).to(memory_format=fmt)
            g = torch.randn(n, c, hw, hw).to(memory_format=fmt)
            pad = [k // 2, k // 2]

            def backward(mask):
                return torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], pad, [1, 1], False, [0, 0], c, mask)

            passes = {
                "forward": lambda: F.conv2d(x, w, None, 1, k // 2, 1, c),
                "bwd_input": lambda: backward([True, False, False]),
                "bwd_weight": lambda: backward([False, True, False]),
            }
            with torch.no_grad():
                for name, fn in passes.items():
                    lo, med = timed(fn, args.repeats)
                    print(f"{spec:>18s} {layout:>13s} {name:>9s} {lo * 1e3:8.3f} {med * 1e3:8.3f} "
                          f"{flops / lo / 1e9:11.1f} {flops / med / 1e9:11.1f}", flush=True)


if __name__ == "__main__":
    main()
