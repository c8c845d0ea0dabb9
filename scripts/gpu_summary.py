#!/usr/bin/env python3
"""Summarises a gpu_check run: test counts, our CUDA microbenchmarks (time,
TFLOP/s, GB/s), the PyTorch baseline of the same run, and the efficiency
harness (`convfusion-bench latency --device=cuda`, WORK_DIR/latency_*.json)
beside PyTorch at the same shapes (bench/torch/latency_gpu.py and the authors'
eager ConvBlock): ours/theirs per shape and the ConvBlock / self-attention
ratios on the card. Writes bench.json, latency.json (our latency cells, all
runs merged) and summary.json into the results folder and prints the tables,
a short speed-up table last.
Usage: gpu_summary.py RESULTS_DIR WORK_DIR"""
import glob
import json
import os
import re
import sys


def main():
    results, work = sys.argv[1], sys.argv[2]
    summary = {"tests": {}, "bench": [], "torch": {}}
    log = os.path.join(results, "gpu_tests.log")
    if os.path.exists(log):
        text = open(log).read()
        m = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", text)
        if m:
            total, failed = int(m.group(3)), int(m.group(2))
            skipped = len(re.findall(r"\*\*\*Skipped|Not Run", text))
            summary["tests"] = {"total": total, "failed": failed, "skipped": skipped}
        summary["tests"]["failures"] = re.findall(r"\d+ - (\S+) \(Failed\)", text)
    merged = []
    for path in sorted(glob.glob(os.path.join(work, "*.json"))):
        try:
            data = json.load(open(path))
        except (OSError, json.JSONDecodeError):
            continue
        for b in data.get("benchmarks", []):
            if b.get("error_occurred"):
                continue
            unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}.get(b.get("time_unit", "ns"), 1e-6)
            merged.append({"name": b["name"], "ms": b["real_time"] * unit,
                           "tflops": b.get("FLOP/s", b.get("flops", 0.0)) / 1e12,
                           "gbps": b.get("bytes/s", b.get("bytes_per_second", 0.0)) / 1e9})
    summary["bench"] = merged
    with open(os.path.join(results, "bench.json") + ".tmp", "w") as f:
        json.dump(merged, f, indent=1)
    os.replace(os.path.join(results, "bench.json") + ".tmp", os.path.join(results, "bench.json"))
    tb = os.path.join(results, "torch_baseline.json")
    if os.path.exists(tb):
        summary["torch"] = json.load(open(tb))

    t = summary["tests"]
    print(f"gpu tests: {t.get('total', '?')} run, {t.get('failed', '?')} failed, {t.get('skipped', 0)} skipped")
    for name in t.get("failures", []):
        print(f"  FAILED {name}")
    # Floors measured in the same run: the card's copy bandwidth (for
    # memory-bound kernels) and cuBLAS's best GEMM through PyTorch (for matmuls).
    cases = summary["torch"].get("cases", {})
    copy_gbps = cases.get("copy_d2d_256MiB", {}).get("gbps", 0.0)
    gemm_tflops = max((c["tflops"] for n, c in cases.items() if n.startswith("gemm_")), default=0.0)
    print(f"floors (same run): copy {copy_gbps:.0f} GB/s, best GEMM {gemm_tflops:.0f} TFLOP/s")
    print(f"\n{'our CUDA benchmark':60s} {'ms':>9s} {'TFLOP/s':>8s} {'%GEMM':>6s} {'GB/s':>8s} {'%copy':>6s}")
    for b in merged:
        pg = 100 * b["tflops"] / gemm_tflops if gemm_tflops else 0.0
        pc = 100 * b["gbps"] / copy_gbps if copy_gbps else 0.0
        b["pct_best_gemm"], b["pct_copy_bw"] = pg, pc
        print(f"{b['name'][:60]:60s} {b['ms']:9.4f} {b['tflops']:8.2f} {pg:6.1f} {b['gbps']:8.1f} {pc:6.1f}")
    if cases:
        print(f"\n{'PyTorch ' + summary['torch'].get('torch', ''):60s} {'ms':>9s} {'TFLOP/s':>8s} {'GB/s':>8s}")
        for name, c in cases.items():
            print(f"{name[:60]:60s} {c['ms']:9.4f} {c['tflops']:8.2f} {c['gbps']:8.1f}")
    summary["convblock"] = convblock_rows(work, cases)
    summary["latency"] = latency_rows(results, work, cases)
    with open(os.path.join(results, "summary.json") + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(os.path.join(results, "summary.json") + ".tmp", os.path.join(results, "summary.json"))


CONVBLOCK_SHAPES = ("sd15_512", "sd15_1024", "sd15_2k", "sd15_4k", "pixart_512", "pixart_1024")


def convblock_rows(work, cases):
    """The ConvBlock (issue 10): our fused op against its floor (floor_us,
    an H200's datasheet rates, from the bench), and our whole block (forward,
    forward + backward) against the authors' eager PyTorch block of the same
    run (the faster of NCHW and channels-last, f16). Returns the rows."""
    rows = []
    path = os.path.join(work, "convblock_gpu_bench.json")
    if not os.path.exists(path):
        return rows
    try:
        benches = json.load(open(path)).get("benchmarks", [])
    except (OSError, json.JSONDecodeError):
        return rows
    for b in benches:
        if b.get("error_occurred"):
            continue
        args = dict(re.findall(r"(\w+):(\d+)", b["name"]))
        if "shape" not in args:
            continue
        unit = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(b.get("time_unit", "ns"), 1e-3)
        shape, k = CONVBLOCK_SHAPES[int(args["shape"])], int(args["kernel"])
        dtype = "f16" if args["dtype"] == "0" else "bf16"
        row = {"shape": shape, "kernel": k, "dtype": dtype, "us": b["real_time"] * unit}
        if b["name"].startswith("BM_CudaConvBlockPyramid"):
            row["what"] = "convblock_pyramid op"
            row["floor_us"] = b.get("floor_us", 0.0)
        else:
            bwd = args.get("backward") == "1"
            row["what"] = "block fwd+bwd" if bwd else "block fwd"
            for layout in ("nchw", "cl"):
                c = cases.get(f"convblock_{shape}_k{k}_{layout}_f16_{'fwdbwd' if bwd else 'fwd'}")
                if c:
                    row[f"torch_{layout}_us"] = c["ms"] * 1e3
        rows.append(row)
    print(f"\n{'ConvBlock (issue 10)':44s} {'ours us':>10s} {'floor us':>9s} {'x floor':>7s} "
          f"{'torch NCHW':>10s} {'torch CL':>10s} {'speedup':>7s}")
    for r in rows:
        fl = r.get("floor_us", 0.0)
        tn, tc = r.get("torch_nchw_us", 0.0), r.get("torch_cl_us", 0.0)
        best = min([t for t in (tn, tc) if t > 0], default=0.0)
        r["x_floor"] = r["us"] / fl if fl else 0.0
        r["speedup_vs_torch"] = best / r["us"] if best and r["us"] else 0.0
        label = f"{r['what']} {r['shape']} K={r['kernel']} {r['dtype']}"
        print(f"{label[:44]:44s} {r['us']:10.1f} {fl:9.1f} {r['x_floor']:7.2f} {tn:10.1f} {tc:10.1f} "
              f"{r['speedup_vs_torch']:7.2f}")
    return rows


# The harness's resolution labels and the ConvBlock baseline's shape names.
CONVBLOCK_SHAPE_OF = {"512": "sd15_512", "1024": "sd15_1024", "2K": "sd15_2k", "4K": "sd15_4k"}


def theirs_for(row, cases):
    """PyTorch's case for one of our latency cells, or None: latency_gpu.py's
    latency_<module>_<res>_<dtype>, or for a ConvBlock the authors' eager block
    (f16, the faster of NCHW and channels-last, forward)."""
    mod, res, dt = row["module"], row["resolution"], row["dtype"]
    if mod.startswith("convblock_k"):
        shape = CONVBLOCK_SHAPE_OF.get(res)
        found = [cases[n] for n in (f"convblock_{shape}_{mod[10:]}_{lay}_{dt}_fwd" for lay in ("nchw", "cl"))
                 if n in cases]
        return min(found, key=lambda c: c["ms"]) if found else None
    return cases.get(f"latency_{mod}_{res}_{dt}")


def latency_rows(results, work, cases):
    """Our latency cells (the first of each module, resolution and dtype over
    the runs) beside PyTorch's; writes results/latency.json. Returns the rows."""
    rows, seen = [], set()
    for path in sorted(glob.glob(os.path.join(work, "latency_*.json"))):
        try:
            data = json.load(open(path))
        except (OSError, json.JSONDecodeError):
            print(f"latency: {os.path.basename(path)} unreadable (the run was cut short?)")
            continue
        for t in data.get("tables", [data]):
            for r in t.get("rows", []):
                key = (r["module"], r["resolution"], r["dtype"])
                if key not in seen:
                    seen.add(key)
                    rows.append(r)
    if not rows:
        return rows
    with open(os.path.join(results, "latency.json") + ".tmp", "w") as f:
        json.dump({"rows": rows}, f, indent=1)
    os.replace(os.path.join(results, "latency.json") + ".tmp", os.path.join(results, "latency.json"))
    print(f"\n{'latency (Table 2), ours vs PyTorch':40s} {'ours med':>9s} {'ours min':>9s} {'torch med':>9s} "
          f"{'torch min':>9s} {'speedup':>7s}  (ms; speedup = torch med / ours med)")
    for r in rows:
        for k in ("median_ms", "min_ms"):  # null where a cell was skipped
            r[k] = r.get(k) or 0.0
        ours = r["median_ms"]
        c = theirs_for(r, cases)
        tm, tmin = (c["ms"], c.get("min_ms", c["ms"])) if c else (0.0, 0.0)
        r["torch_ms"], r["torch_min_ms"] = tm, tmin
        r["speedup_vs_torch"] = tm / ours if tm and ours else 0.0
        label = f"{r['module']} {r['resolution']} {r['dtype']}"
        print(f"{label[:40]:40s} {ours:9.3f} {r['min_ms']:9.3f} {tm:9.3f} {tmin:9.3f} "
              f"{r['speedup_vs_torch']:7.2f}" + (f"  {r['note']}" if r.get("note") else ""))
    # The paper's ratio: a module's time over self-attention's, each side on its own.
    print(f"\n{'time / self-attention, same card':40s} {'ours':>9s} {'torch':>9s}")
    by = {(r["module"], r["resolution"], r["dtype"]): r for r in rows}
    for r in rows:
        if r["module"] in ("self_attention", "denoiser_self_attention"):
            continue
        base = by.get(("denoiser_self_attention" if r["module"].startswith("denoiser_") else "self_attention",
                       r["resolution"], r["dtype"]))
        if not base:
            continue
        ours = r["median_ms"] / base["median_ms"] if base["median_ms"] else 0.0
        theirs = r["torch_ms"] / base["torch_ms"] if r.get("torch_ms") and base.get("torch_ms") else 0.0
        r["ratio_torch"] = theirs
        label = f"{r['module']} {r['resolution']} {r['dtype']}"
        print(f"{label[:40]:40s} {ours:9.3f} {theirs:9.3f}")
    # Last, short: our speed-up over PyTorch per module and resolution, f16.
    mods = [m for m in ("self_attention", "neighborhood_k13", "convblock_k13", "convblock_k25",
                        "denoiser_self_attention") if any(k[0] == m for k in by)]
    short = {"self_attention": "SA", "neighborhood_k13": "NA13", "convblock_k13": "CB13", "convblock_k25": "CB25",
             "denoiser_self_attention": "UNet"}
    for dt in [d for d in ("f16", "bf16", "f32") if any(k[2] == d for k in by)]:
        ress = [res for res in ("512", "1024", "2K", "4K") if any(k[1] == res and k[2] == dt for k in by)]
        print(f"\nspeed-up over PyTorch, {dt} (torch / ours; - = not measured)")
        print(f"{'res':6s}" + "".join(f"{short[m]:>7s}" for m in mods))
        for res in ress:
            cells = [by.get((m, res, dt), {}).get("speedup_vs_torch", 0.0) for m in mods]
            print(f"{res:6s}" + "".join(f"{c:7.2f}" if c else f"{'-':>7s}" for c in cells))
    return rows


if __name__ == "__main__":
    main()
