#!/usr/bin/env python3
"""Runs bench_cuda (or reads its JSON output) and prints a Markdown table of medians and ratios.

    python3 bench/run_cuda_benchmarks.py <build dir>          # runs <build dir>/bench/bench_cuda
    python3 bench/run_cuda_benchmarks.py --json results.json  # tabulates a saved run

Each layer benchmark is shown next to the cuBLAS GEMMs it contains: "ratio" is the layer's median
time over the GEMMs' median time (1.00 = the layer costs no more than its GEMMs).
"""
import json
import subprocess
import sys


def medians(results):
    out = {}
    for b in results["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        out[b["run_name"]] = b
    return out


def milliseconds(b):
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
    return b["real_time"] * scale


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--json":
        with open(sys.argv[2]) as f:
            results = json.load(f)
    elif len(sys.argv) == 2:
        path = sys.argv[1] + "/bench/bench_cuda"
        text = subprocess.run([path, "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
        results = json.loads(text)
    else:
        sys.exit(__doc__)
    m = medians(results)
    print(f"device: {results['context'].get('host_name', '?')}\n")
    print("| benchmark | rows M | median ms | TFLOP/s | GEMMs ms | ratio |")
    print("|---|---|---|---|---|---|")
    pairs = [("BM_Pattention/fwd", "BM_PattentionGemms/fwd"), ("BM_Pattention/fwd_bwd", "BM_PattentionGemms/fwd_bwd"),
             ("BM_Layer", "BM_LayerGemms")]
    for layer, gemms in pairs:
        depth = layer.count("/") + 1
        rows_of = {}
        for name in m:
            parts = name.split("/")
            if "/".join(parts[:depth]) == layer and parts[depth].isdigit():
                rows_of[name] = int(parts[depth])
        for name in sorted(rows_of, key=rows_of.get):
            parts = name.split("/")
            g = m.get("/".join([gemms] + parts[depth:]))
            ms = milliseconds(m[name])
            gms = None if g is None else milliseconds(g)
            ratio = "" if gms is None else f"{ms / gms:.2f}"
            print(f"| {layer} | {rows_of[name]} | {ms:.3f} | {m[name].get('TFLOPs', 0):.1f} | "
                  f"{'' if gms is None else f'{gms:.3f}'} | {ratio} |")
    print("\n| training step, 150M preset, B = 8 | T | median ms | tokens/s | model TFLOP/s |")
    print("|---|---|---|---|---|")
    for name, b in sorted(m.items()):
        if name.startswith("BM_TrainStep150M"):
            parts = name.split("/")
            print(f"| {parts[1]} | {parts[2]} | {milliseconds(b):.1f} | {b['tokens/s']:.0f} | {b.get('TFLOPs', 0):.1f} |")


if __name__ == "__main__":
    main()
