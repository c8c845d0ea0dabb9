#!/usr/bin/env python3
"""Writes the ConvBlock golden files tests/data/convblock/*.safetensors that
tests/nn/convblock_test.cc (ConvBlock.MatchesTheAuthorsPyTorchBlock) reads.

The blocks are written here in PyTorch from the released definition
(docs/paper-facts.md "The ConvBlock as released"; docs/convblock.md): the
channels-last block whose depthwise weight is stored [K, K, C'] and whose 1x1
projections are nn.Linear ([out, in]), and the NCHW block built from
nn.Conv2d ([out, in, 1, 1], depthwise [C', 1, K, K]). Weights are seeded
random, rounded to f32 and stored as F32 under the authors' keys with the
prefix "conv1."; `input` [B, H, W, C] is F32; `output` [B, H, W, C] is the
block evaluated in float64 (F64). The options are in the metadata (kernel,
gate, scales, depthwise_bias). Run from the repository root:

    python3 tools/make_convblock_golden.py            # PyTorch and safetensors from PyPI

The same file also serves `convfusion-module convblock` (tests/apps/module_test.cc).
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


class ChannelsLastConvBlock(torch.nn.Module):
    """The released block on x [B, H, W, C]; gate in {"released", "paper", "sigmoid"}."""

    def __init__(self, dim, kernel, scales=(1.0, 0.5), inter_ratio=0.5, gate="released", dw_bias=False):
        super().__init__()
        inter = int(dim * inter_ratio)
        self.kernel, self.scales, self.gate, self.inter = kernel, scales, gate, inter
        self.conv_up = torch.nn.Linear(dim, inter)
        self.gates = torch.nn.ModuleList()
        for _ in scales:
            m = torch.nn.Module()
            m.conv_spatial = torch.nn.Module()
            m.conv_spatial.weight = torch.nn.Parameter(torch.empty(kernel, kernel, inter))  # released [K, K, C']
            if dw_bias:
                m.conv_spatial.bias = torch.nn.Parameter(torch.empty(inter))
            self.gates.append(m)
        self.conv_out = torch.nn.Linear(inter // 2 * len(scales), dim)
        self.conv_pool = torch.nn.Linear(dim, dim)

    def stage(self, u, s, m):
        B, H, W, Ci = u.shape
        z = u.permute(0, 3, 1, 2)  # NCHW for the functional ops
        if s != 1.0:
            z = F.adaptive_avg_pool2d(z, (int(H * s), int(W * s)))
        w = m.conv_spatial.weight.permute(2, 0, 1).unsqueeze(1)  # [C', 1, K, K]
        z = F.conv2d(z, w, getattr(m.conv_spatial, "bias", None), padding=self.kernel // 2, groups=Ci)
        x1, x2 = z.chunk(2, dim=1)
        half = Ci // 2
        if self.gate == "released":
            z = x1 * (x2 / half ** -0.5)
        elif self.gate == "paper":
            z = x1 * x2 / math.sqrt(half)
        else:
            z = x1 * torch.sigmoid(x2)
        if s != 1.0:
            z = F.interpolate(z, size=(H, W), mode="bilinear", align_corners=False)
        return z.permute(0, 2, 3, 1)

    def forward(self, x):
        u = self.conv_up(x)
        y = self.conv_out(torch.cat([self.stage(u, s, m) for s, m in zip(self.scales, self.gates)], dim=-1))
        return y + self.conv_pool(x.mean(dim=(1, 2), keepdim=True))


class NchwConvBlock(torch.nn.Module):
    """The same block on NCHW tensors from nn.Conv2d (the authors' non-Triton class layout)."""

    def __init__(self, dim, kernel, scales=(1.0, 0.5), inter_ratio=0.5, gate="sigmoid", dw_bias=True):
        super().__init__()
        inter = int(dim * inter_ratio)
        self.scales, self.gate = scales, gate
        self.conv_up = torch.nn.Conv2d(dim, inter, 1)
        self.gates = torch.nn.ModuleList()
        for _ in scales:
            m = torch.nn.Module()
            m.conv_spatial = torch.nn.Conv2d(inter, inter, kernel, padding=kernel // 2, groups=inter, bias=dw_bias)
            self.gates.append(m)
        self.conv_out = torch.nn.Conv2d(inter // 2 * len(scales), dim, 1)
        self.conv_pool = torch.nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        u = self.conv_up(x)
        H, W = u.shape[2:]
        outs = []
        for s, m in zip(self.scales, self.gates):
            z = F.adaptive_avg_pool2d(u, (int(H * s), int(W * s))) if s != 1.0 else u
            x1, x2 = m.conv_spatial(z).chunk(2, dim=1)
            half = x1.shape[1]
            if self.gate == "released":
                z = x1 * (x2 / half ** -0.5)
            elif self.gate == "paper":
                z = x1 * x2 / math.sqrt(half)
            else:
                z = x1 * torch.sigmoid(x2)
            outs.append(F.interpolate(z, size=(H, W), mode="bilinear", align_corners=False) if s != 1.0 else z)
        return self.conv_out(torch.cat(outs, dim=1)) + self.conv_pool(F.adaptive_avg_pool2d(x, 1))


def make(path, block, shape, nchw, kernel, gate, scales, dw_bias, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in block.named_parameters():
            fan_in = kernel * kernel if "conv_spatial" in name else (p.shape[1] if p.dim() >= 2 else p.shape[0])
            a = 1.0 / math.sqrt(fan_in)
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * a)
        x = (torch.rand(shape, generator=g) * 4 - 2).float()
        block = block.double()
        xin = x.double().permute(0, 3, 1, 2) if nchw else x.double()
        y = block(xin)  # f32 values, evaluated in float64
        if nchw:
            y = y.permute(0, 2, 3, 1)
    tensors = {"input": x.contiguous(), "output": y.contiguous()}
    for name, p in block.named_parameters():
        tensors["conv1." + name] = p.detach().float().contiguous()
    meta = {"kernel": str(kernel), "gate": gate, "scales": ",".join(repr(float(s)) for s in scales),
            "depthwise_bias": "1" if dw_bias else "0", "layout": "nchw" if nchw else "channels_last",
            "made_by": "tools/make_convblock_golden.py"}
    save_file(tensors, path, metadata=meta)
    print(f"{path}: {os.path.getsize(path)} bytes")


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/convblock"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    # The released SD1.5 block (released gate, scales 1 and 1/2), odd sizes, K = 13.
    make(os.path.join(out, "released_k13.safetensors"), ChannelsLastConvBlock(32, 13), (2, 11, 9, 32), False, 13,
         "released", (1.0, 0.5), False, 1)
    # The NCHW nn.Conv2d layout with a depthwise bias and the sigmoid (PixArt) gate, K = 5.
    make(os.path.join(out, "nchw_sigmoid_k5.safetensors"), NchwConvBlock(16, 5), (1, 9, 7, 16), True, 5,
         "sigmoid", (1.0, 0.5), True, 2)
    # The paper's gate with three scales; K = 31 is larger than every (pooled) map.
    make(os.path.join(out, "paper_k31.safetensors"),
         ChannelsLastConvBlock(8, 31, scales=(1.0, 0.5, 0.25), gate="paper"), (1, 13, 9, 8), False, 31, "paper",
         (1.0, 0.5, 0.25), False, 3)


if __name__ == "__main__":
    main()
