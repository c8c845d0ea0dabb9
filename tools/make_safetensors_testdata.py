#!/usr/bin/env python3
"""Writes tests/data/safetensors/python_reference.safetensors with the Python
`safetensors` package (PyTorch tensors), so that tests/nn/safetensors_test.cc
reads a file made by the reference implementation without calling Python.
Every value is exactly representable in its dtype; the test states the same
values. Run from the repository root:  python3 tools/make_safetensors_testdata.py
"""
import os
import sys

import torch
from safetensors.torch import save_file


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/safetensors/python_reference.safetensors"
    t = {
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,  # [[-1, -0.5, 0], [0.5, 1, 1.5]]
        "f16": torch.tensor([0.5, -2.0, 65504.0], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -3.0], [0.0078125, 256.0]], dtype=torch.bfloat16),
        "f64": torch.tensor([3.141592653589793, -1e300], dtype=torch.float64),
        "i64": torch.tensor([-(2**62), 3, 0], dtype=torch.int64),
        "i32": torch.tensor([-7, 2**31 - 1], dtype=torch.int32),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "i8": torch.tensor([-128, 127], dtype=torch.int8),
        "i16": torch.tensor([-32768, 5], dtype=torch.int16),
        "u16": torch.tensor([65535, 1], dtype=torch.uint16),
        "u32": torch.tensor([4294967295, 2], dtype=torch.uint32),
        "u64": torch.tensor([2**63 - 1, 9], dtype=torch.uint64),
        # smallest subnormal 2^-9, the largest finite 448
        "f8_e4m3": torch.tensor([0.5, -448.0, 2.0**-9], dtype=torch.float8_e4m3fn),
        "f8_e5m2": torch.tensor([-57344.0, 1.5], dtype=torch.float8_e5m2),
        "scalar": torch.tensor(3.25, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
    }
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    save_file(t, out, metadata={"format": "pt", "made_by": "tools/make_safetensors_testdata.py"})
    print(f"wrote {out} ({os.path.getsize(out)} bytes) with safetensors, torch {torch.__version__}")


if __name__ == "__main__":
    main()
