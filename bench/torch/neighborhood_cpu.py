#!/usr/bin/env python3
"""The SD1.5 top-level neighborhood-attention layer (B=2, 64x64 tokens, 8 heads
x 40, K=13, f32) in PyTorch on the CPU, beside dense attention on the same
q, k, v: the reference points for bench/ops/neighborhood_bench.cc.

Paths timed (median of repeats, torch's intra-op threads = the cores):
  gather   NATTEN windows as index tensors (border-shifted, with dilation);
           keys and values gathered per head into [B, H, W, K*K, d], then
           einsum / softmax / einsum (what a researcher writes without NATTEN)
  masked   scaled_dot_product_attention with the NATTEN window as a boolean
           [N, N] mask (the dense cost, the NA result)
  flex     flex_attention with the equivalent block mask, if it runs on this
           CPU build (torch.compile'd)
  dense    scaled_dot_product_attention without a mask (the self-attention
           the NA layer replaces)
The gather path is checked against the masked one. Usage:
  neighborhood_cpu.py [--side 64] [--kernel 13] [--dilation 1] [--repeats 5]
"""
import argparse

from timing import median_ms
import torch
import torch.nn.functional as F


def window_start(i, length, k, d):
    """NATTEN's rule: on the grid of positions congruent to i mod d, the window
    starts at clamp(i // d - k // 2, 0, grid_len - k) (grid coordinates)."""
    r = i % d
    grid_len = (length - r + d - 1) // d
    s = min(max(i // d - k // 2, 0), grid_len - k)
    return r + s * d


def window_index(length, k, d):
    """[length, k]: the key coordinates of every query coordinate."""
    return torch.tensor([[window_start(i, length, k, d) + a * d for a in range(k)] for i in range(length)])


def na_gather(q, k, v, heads, kernel, dilation):
    B, H, W, C = q.shape
    d = C // heads
    ri, ci = window_index(H, kernel, dilation), window_index(W, kernel, dilation)
    # token index of every (query, window position): [H, W, K*K]
    tok = (ri[:, None, :, None] * W + ci[None, :, None, :]).reshape(H * W, kernel * kernel)
    out = torch.empty_like(q)
    scale = d ** -0.5
    qf, kf, vf = (t.reshape(B, H * W, heads, d) for t in (q, k, v))
    for h in range(heads):
        kh = kf[:, :, h][:, tok]  # [B, N, K*K, d]
        vh = vf[:, :, h][:, tok]
        s = torch.einsum("bnd,bnkd->bnk", qf[:, :, h], kh) * scale
        p = torch.softmax(s, dim=-1)
        out.view(B, H * W, heads, d)[:, :, h] = torch.einsum("bnk,bnkd->bnd", p, vh)
    return out


def window_mask(H, W, kernel, dilation):
    ri, ci = window_index(H, kernel, dilation), window_index(W, kernel, dilation)
    rows = torch.zeros(H, H, dtype=torch.bool)
    rows[torch.arange(H)[:, None], ri] = True
    cols = torch.zeros(W, W, dtype=torch.bool)
    cols[torch.arange(W)[:, None], ci] = True
    return (rows[:, None, :, None] & cols[None, :, None, :]).reshape(H * W, H * W)


def to_heads(t, heads):  # [B, H, W, C] -> [B, heads, N, d]
    B, H, W, C = t.shape
    return t.reshape(B, H * W, heads, C // heads).transpose(1, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--kernel", type=int, default=13)
    ap.add_argument("--dilation", type=int, default=1)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    B, H, W, heads, d, K = 2, args.side, args.side, args.heads, args.head_dim, args.kernel
    q, k, v = (torch.randn(B, H, W, heads * d) for _ in range(3))
    N = H * W
    na_flops = 4 * B * N * heads * K * K * d
    dense_flops = 4 * B * N * N * heads * d
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; B={B}, {H}x{W}, {heads}x{d}, "
          f"K={K}, dilation {args.dilation}, f32")

    mask = window_mask(H, W, K, args.dilation)
    with torch.no_grad():
        ref = F.scaled_dot_product_attention(to_heads(q, heads), to_heads(k, heads), to_heads(v, heads),
                                             attn_mask=mask)
        got = to_heads(na_gather(q, k, v, heads, K, args.dilation), heads)
        err = (got - ref).abs().max().item()
        print(f"gather vs masked SDPA: max |diff| = {err:.2e}")
        rows = []
        ms = median_ms(lambda: na_gather(q, k, v, heads, K, args.dilation), args.repeats)
        rows.append(("NA gather+einsum", ms, na_flops))
        qh, kh, vh = to_heads(q, heads), to_heads(k, heads), to_heads(v, heads)
        ms = median_ms(lambda: F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask), args.repeats)
        rows.append(("NA as masked SDPA", ms, na_flops))
        try:
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            ri, ci = window_index(H, K, args.dilation), window_index(W, K, args.dilation)
            r0, c0 = ri[:, 0].clone(), ci[:, 0].clone()
            dil = args.dilation

            def mask_mod(b, h, qi, ki):
                qr, qc, kr, kc = qi // W, qi % W, ki // W, ki % W
                dr, dc = kr - r0[qr], kc - c0[qc]
                return ((dr >= 0) & (dr < K * dil) & (dr % dil == 0) & (dc >= 0) & (dc < K * dil) &
                        (dc % dil == 0))

            bm = create_block_mask(mask_mod, None, None, N, N, device="cpu")
            flex = torch.compile(flex_attention)
            out = flex(qh, kh, vh, block_mask=bm)
            print(f"flex vs masked SDPA: max |diff| = {(out - ref).abs().max().item():.2e}")
            ms = median_ms(lambda: flex(qh, kh, vh, block_mask=bm), args.repeats)
            rows.append(("NA flex_attention", ms, na_flops))
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"flex_attention on the CPU: not available ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
        ms = median_ms(lambda: F.scaled_dot_product_attention(qh, kh, vh), args.repeats)
        rows.append(("dense SDPA (no mask)", ms, dense_flops))
    print(f"{'path':24s} {'ms':>9s} {'GFLOP/s':>9s}  (useful mac FLOPs)")
    for name, ms, flops in rows:
        print(f"{name:24s} {ms:9.1f} {flops / ms / 1e6:9.1f}")


if __name__ == "__main__":
    main()
