"""PyTorch CPU baseline for bench/ops/elementwise_bench.cc's BM_CpuVsTorch set:
the same ops and shapes (f32 and bf16, values in [-1, 1)), best of N, ms and
GB/s (bytes read + written once); the
backward ops through torch.autograd. Run: python3 bench/torch/elementwise_cpu.py [name substring]
"""
import sys
import time

import torch
import torch.nn.functional as F


def backward(f, *inputs):
    """A call of torch.autograd.grad of f(*inputs) with respect to every input
    for a random dy (the forward is run once, outside the timing)."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    y = f(*leaves)
    dy = torch.rand_like(y) * 2 - 1
    return lambda: torch.autograd.grad(y, leaves, dy, retain_graph=True)


def cases():
    big, lat, tok = (4096, 4096), (2, 64, 64, 320), (2, 4096, 320)
    g = torch.Generator().manual_seed(0)

    def r(*s, dt):
        return (torch.rand(*s, generator=g) * 2 - 1).to(dt)

    def gn(x, w, b, silu):  # NHWC -> NCHW view for F.group_norm
        y = F.group_norm(x.permute(0, 3, 1, 2), 32, w, b).permute(0, 2, 3, 1)
        return F.silu(y) if silu else y

    for dt in (torch.float32, torch.bfloat16):
        x = r(*big, dt=dt)
        yield "silu [4096,4096]", dt, lambda x=x: F.silu(x), 2 * x.numel()
        yield "gelu erf [4096,4096]", dt, lambda x=x: F.gelu(x), 2 * x.numel()
        yield "gelu tanh [4096,4096]", dt, lambda x=x: F.gelu(x, approximate="tanh"), 2 * x.numel()
        yield "exp [4096,4096]", dt, lambda x=x: torch.exp(x), 2 * x.numel()
        yield "softmax rows [4096,4096]", dt, lambda x=x: torch.softmax(x, -1), 2 * x.numel()
        h = r(2, 4096, 2560, dt=dt)
        yield "geglu [2,4096,2560]", dt, lambda h=h: (lambda a, b: a * F.gelu(b))(*h.chunk(2, -1)), 1.5 * h.numel()
        xl, w, b = r(*lat, dt=dt).contiguous(memory_format=torch.contiguous_format), r(320, dt=dt), r(320, dt=dt)
        # channels-last storage, as ours
        xcl = xl.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        yield "group_norm [2,64,64,320] g32", dt, lambda: gn(xcl, w, b, False), 2 * xl.numel()
        yield "group_norm+silu [2,64,64,320] g32", dt, lambda: gn(xcl, w, b, True), 2 * xl.numel()
        xn = r(8192, 320, dt=dt)
        yield "layer_norm [8192,320]", dt, lambda: F.layer_norm(xn, (320,), w, b), 2 * xn.numel()
        xm, sh, sc = r(2, 4096, 1152, dt=dt), r(2, 1, 1152, dt=dt), r(2, 1, 1152, dt=dt)
        yield "adaln_modulate [2,4096,1152]", dt, lambda: xm * (1 + sc) + sh, 2 * xm.numel()
        a, bb, c = r(*tok, dt=dt), r(2, 1, 320, dt=dt), r(*tok, dt=dt)
        yield "add [2,4096,320] + [2,1,320]", dt, lambda: a + bb, 2 * a.numel()
        yield "add [2,4096,320] + same", dt, lambda: a + c, 3 * a.numel()
        yield "mean over H,W [2,64,64,320]", dt, lambda: xl.mean(dim=(1, 2)), xl.numel()
        yield "sum all [2,64,64,320]", dt, lambda: xl.sum(), xl.numel()
        # Backward ops: torch.autograd.grad of the forward (graph kept), bytes as ours (3 tensors).
        yield "group_norm_backward [2,64,64,320] g32", dt, backward(
            lambda x, w, b: gn(x, w, b, False), xcl, w, b), 3 * xl.numel()
        yield "layer_norm_backward [8192,320]", dt, backward(
            lambda x, w, b: F.layer_norm(x, (320,), w, b), xn, w, b), 3 * xn.numel()
        xs = r(8 * 4096, 4096, dt=dt)
        yield "softmax_backward [8*4096,4096]", dt, backward(lambda x: torch.softmax(x, -1), xs), 3 * xs.numel()
        del xs
        xc = r(8 * 4096, 77, dt=dt)
        yield "softmax_backward [8*4096,77]", dt, backward(lambda x: torch.softmax(x, -1), xc), 3 * xc.numel()
        yield "adaln_modulate_backward [2,4096,1152]", dt, backward(
            lambda x, s, h: x * (1 + s) + h, xm, sc, sh), 3 * xm.numel()
        yield "fused silu_backward(x+b, dy) [2,64,64,320]", dt, backward(
            lambda x: F.silu(x + b), xl), 3 * xl.numel()


def main():
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    only = sys.argv[1] if len(sys.argv) > 1 else ""  # a substring of the case names to run
    for name, dt, fn, elems in cases():
        if only not in name:
            continue
        fn()
        best = float("inf")
        reps = 0
        t_end = time.perf_counter() + 0.5
        while time.perf_counter() < t_end or reps < 5:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
            reps += 1
        nbytes = elems * (4 if dt == torch.float32 else 2)
        print(f"{name:36s} {str(dt)[6:]:9s} {best * 1e3:9.3f} ms {nbytes / best / 1e9:7.2f} GB/s")


if __name__ == "__main__":
    main()
