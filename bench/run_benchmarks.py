#!/usr/bin/env python3
"""Runs the layer benchmarks with each GEMM backend and prints Markdown tables.

Usage: python3 bench/run_benchmarks.py BUILD_DIR [extra Google Benchmark flags...]

Runs BUILD_DIR/bench/bench_layers once per GEMM backend it links (bench_layers --list_gemm_backends;
TOKENFORMER_GEMM=eigen|openblas|onednn chooses) with 5 repetitions in random interleaved order, takes
the median of each benchmark, and prints per backend:
  * GFLOP/s of the Pattention FFN next to its bare GEMM pair, and of the TokenFormerLayer next to its
    bare GEMMs (ratio = layer / bare GEMMs: 1.0 means the non-GEMM work is free);
  * where the time goes: median wall time of each part, in ms.
The children run with OMP_NUM_THREADS=2 and OPENBLAS_NUM_THREADS=2 and otherwise this environment
(so OMP_WAIT_POLICY=passive python3 bench/run_benchmarks.py ... works). Extra flags (for example
--benchmark_filter=T:128) are passed to every run. Run it on an otherwise idle machine: with two
OpenMP threads on two cores, any other busy process stalls every parallel region by a scheduler
time slice (several ms). Standard library only.
"""

import json
import os
import re
import subprocess
import sys

LABELS = {"eigen": "Eigen", "openblas": "OpenBLAS", "onednn": "oneDNN"}
# Random interleaving runs the repetitions of all benchmarks in shuffled order, so that a slow stretch
# of the machine (seen on the 2-core VM: GEMMs 30% slower for seconds at a time) spreads over every
# benchmark instead of skewing one side of a ratio.
RUN_FLAGS = ["--benchmark_repetitions=5", "--benchmark_report_aggregates_only=true", "--benchmark_format=json",
             "--benchmark_enable_random_interleaving=true"]
NAME = re.compile(r"^(?P<family>.+?)/T:(?P<T>\d+)/C:(?P<C>\d+)(/|$)")
TIME_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def find_program(build_dir, name):
    for candidate in (os.path.join(build_dir, "bench", name), os.path.join(build_dir, name)):
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run(program, extra, backend):
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", TOKENFORMER_GEMM=backend)
    done = subprocess.run([program] + RUN_FLAGS + extra, env=env, stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout)


def medians(report):
    """{(family, T, C): {"gflops": float or None, "ms": float, "cv": float or None}} from the aggregates."""
    results, cvs = {}, {}
    for b in report["benchmarks"]:
        match = NAME.match(b.get("run_name", b["name"]))
        if not match:
            continue
        key = (match["family"], int(match["T"]), int(match["C"]))
        if b.get("aggregate_name") == "median":
            ms = b["real_time"] * TIME_UNIT_MS[b.get("time_unit", "ns")]
            results[key] = {"gflops": b.get("GFLOPs"), "ms": ms}
        elif b.get("aggregate_name") == "cv":
            cvs[key] = b["real_time"]
    for key, value in results.items():
        value["cv"] = cvs.get(key)
    return results


def fmt(x, digits=1):
    return "n/a" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def table(results):
    shapes = sorted({(t, c) for (_, t, c) in results}, key=lambda s: (s[1], s[0]))
    get = lambda family, t, c, field: results.get((family, t, c), {}).get(field)  # noqa: E731
    lines = [
        "| shape | Pattention FFN GFLOP/s | bare GEMM pair | ratio | layer GFLOP/s | layer GEMMs | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t, c in shapes:
        ffn, pair = get("BM_Pattention/ffn", t, c, "gflops"), get("BM_GemmPair/ffn", t, c, "gflops")
        layer, gemms = get("BM_TokenFormerLayer", t, c, "gflops"), get("BM_LayerGemms", t, c, "gflops")
        lines.append(f"| T={t} C={c} | {fmt(ffn)} | {fmt(pair)} | {fmt(ratio(ffn, pair), 2)} "
                     f"| {fmt(layer)} | {fmt(gemms)} | {fmt(ratio(layer, gemms), 2)} |")
    lines += [
        "",
        "Where the time goes (median wall time, ms; Θ = l2_norm_gelu on the FFN's [T, 4C] scores; "
        "rest = layer - layer GEMMs - attention):",
        "",
        "| shape | Pattention FFN | GEMM pair | Θ alone | FFN - pair | layer | layer GEMMs | attention | rest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t, c in shapes:
        ms = {f: get(f, t, c, "ms") for f in ("BM_Pattention/ffn", "BM_GemmPair/ffn", "BM_PattentionNorm/ffn",
                                               "BM_TokenFormerLayer", "BM_LayerGemms", "BM_Attention")}
        diff = lambda a, *bs: None if a is None or any(b is None for b in bs) else a - sum(bs)  # noqa: E731
        lines.append(
            f"| T={t} C={c} | {fmt(ms['BM_Pattention/ffn'], 2)} | {fmt(ms['BM_GemmPair/ffn'], 2)} "
            f"| {fmt(ms['BM_PattentionNorm/ffn'], 2)} | {fmt(diff(ms['BM_Pattention/ffn'], ms['BM_GemmPair/ffn']), 2)} "
            f"| {fmt(ms['BM_TokenFormerLayer'], 2)} | {fmt(ms['BM_LayerGemms'], 2)} | {fmt(ms['BM_Attention'], 2)} "
            f"| {fmt(diff(ms['BM_TokenFormerLayer'], ms['BM_LayerGemms'], ms['BM_Attention']), 2)} |")
    cvs = [v["cv"] for v in results.values() if v.get("cv") is not None]
    if cvs:
        lines += ["", f"Largest coefficient of variation of the wall time over the 5 repetitions: {max(cvs):.1%}"]
    return "\n".join(lines)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    build_dir, extra = argv[1], argv[2:]
    program = find_program(build_dir, "bench_layers")
    if program is None:
        print(f"bench_layers not found in {build_dir} (not built)", file=sys.stderr)
        return 1
    listed = subprocess.run([program, "--list_gemm_backends"], stdout=subprocess.PIPE, check=True, text=True)
    ran = 0
    for backend in listed.stdout.split():
        print(f"running {program} with TOKENFORMER_GEMM={backend} ...", file=sys.stderr, flush=True)
        report = run(program, extra, backend)
        context = report.get("context", {})
        print(f"## {LABELS.get(backend, backend)} (gemm: {context.get('gemm', '?')}, "
              f"OpenMP threads: {context.get('omp_max_threads', '?')}, "
              f"{context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz)\n")
        print(table(medians(report)))
        print()
        ran += 1
    return 0 if ran else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
