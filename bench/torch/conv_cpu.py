#!/usr/bin/env python3
"""PyTorch's dense conv2d on the CPU (F.conv2d, f32, padding 1, with bias in
the forward) at SD1.5's 3x3 shapes: the reference points for BM_CpuConvSd in
bench/ops/conv_bench.cc (docs/ops/conv.md, "Dense convs on the CPU").

For each shape: the forward, and the backward input and backward weight, each
through aten.convolution_backward with one output selected (what autograd
calls), in two memory formats: channels_last (NHWC, the runtime's layout) and
contiguous NCHW. Prints the min and the median over the timed calls (after
one warm-up; at least --repeats calls and at least --min-seconds of them) and
GFLOP/s at both (2 per multiply-add, padding taps included, as the runtime
counts). Threads: --threads (default 2).

    python3 bench/torch/conv_cpu.py [--threads 2] [--repeats 5] [--shapes 2x64x320x320x1,...] [--passes fwd,bwd_input]

A shape is NxHWxCINxCOUTxSTRIDE (3x3 kernel, padding 1; HW is the input side).
"""
import argparse

from timing import timed_calls

import torch
import torch.nn.functional as F

# SD1.5's 3x3 convs: 320/640/1280 channels at 64x64 and 32x32, batch 1 and 2,
# and the three stride-2 downsamplers (batch 2).
DEFAULT_SHAPES = ",".join(
    [f"{n}x{hw}x{c}x{c}x1" for c in (320, 640, 1280) for hw in (64, 32) for n in (1, 2)]
    + ["2x64x320x320x2", "2x32x640x640x2", "2x16x1280x1280x2"])
PASSES = ("fwd", "bwd_input", "bwd_weight")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="comma-separated NxHWxCINxCOUTxSTRIDE")
    ap.add_argument("--passes", default=",".join(PASSES))
    ap.add_argument("--layouts", default="channels_last,nchw")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"{'shape':>20s} {'layout':>13s} {'pass':>10s} {'min ms':>9s} {'med ms':>9s} {'GFLOP/s min':>11s} "
          f"{'GFLOP/s med':>11s} {'calls':>5s}")
    for spec in args.shapes.split(","):
        n, hw, cin, cout, s = (int(v) for v in spec.split("x"))
        ho = (hw + 2 - 3) // s + 1
        flops = 2 * n * ho * ho * cout * 9 * cin
        for layout in args.layouts.split(","):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            x = torch.rand(n, cin, hw, hw).sub_(0.5).to(memory_format=fmt)
            w = torch.rand(cout, cin, 3, 3).sub_(0.5).to(memory_format=fmt)
            b = torch.rand(cout).sub_(0.5)
            g = torch.rand(n, cout, ho, ho).sub_(0.5).to(memory_format=fmt)

            def backward(mask):
                return torch.ops.aten.convolution_backward(g, x, w, None, [s, s], [1, 1], [1, 1], False, [0, 0], 1,
                                                           mask)

            passes = {
                "fwd": lambda: F.conv2d(x, w, b, s, 1),
                "bwd_input": lambda: backward([True, False, False]),
                "bwd_weight": lambda: backward([False, True, False]),
            }
            with torch.no_grad():
                for name in args.passes.split(","):
                    lo, med, calls = timed_calls(passes[name], args.repeats, warmup=1, min_seconds=args.min_seconds)
                    print(f"{spec:>20s} {layout:>13s} {name:>10s} {lo * 1e3:9.2f} {med * 1e3:9.2f} "
                          f"{flops / lo / 1e9:11.1f} {flops / med / 1e9:11.1f} {calls:5d}", flush=True)


if __name__ == "__main__":
    main()
