#!/usr/bin/env python3
"""FIT against full attention: training-step time and peak memory against sequence length.

Usage: python3 bench/run_fit_scaling.py BUILD_DIR [--svg OUT.svg] [--fit-lengths 1024,...]
                                                  [--tokenformer-lengths 1024,...] [--steps N]

Runs BUILD_DIR/bench/bench_fit_scaling once per (model, T), each in its own process so that its peak
RSS is that point's alone, interleaving the two models at each length, with OMP_NUM_THREADS=2.
Prints a Markdown table (seconds per step, tokens/s, peak RSS, and the FIT / TokenFormer time ratio
where both ran) and the least-squares slope of log(time) against log(T) of each model over the
lengths it ran, and writes an SVG log-log plot. Defaults: FIT at T = 1K, 4K, 16K, 64K, 160K; the
TokenFormer LM (quadratic attention) at 1K, 4K, 16K, 32K. Standard library only.
"""

import json
import math
import os
import subprocess
import sys


def parse_lengths(text):
    return [int(x) for x in text.split(",") if x]


def run_point(program, model, T, steps, env):
    out = subprocess.run([program, "--model", model, "--seq", str(T), "--steps", str(steps)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def slope(points):
    xs = [math.log(p["T"]) for p in points]
    ys = [math.log(p["seconds_per_step"]) for p in points]
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def svg_plot(series, path):
    """series: {name: (color, [(T, seconds)])} on log-log axes."""
    width, height, left, right, top, bottom = 640, 400, 70, 20, 30, 50
    all_t = [t for _, pts in series.values() for t, _ in pts]
    all_s = [s for _, pts in series.values() for _, s in pts]
    tx0, tx1 = math.log10(min(all_t)) - 0.1, math.log10(max(all_t)) + 0.1
    sy0, sy1 = math.floor(math.log10(min(all_s))), math.ceil(math.log10(max(all_s)))

    def px(t):
        return left + (math.log10(t) - tx0) / (tx1 - tx0) * (width - left - right)

    def py(s):
        return top + (sy1 - math.log10(s)) / (sy1 - sy0) * (height - top - bottom)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (width, height), '<rect width="100%" height="100%" fill="white"/>']
    out.append('<text x="%d" y="18" font-size="14">Training step time against sequence length '
               '(log-log)</text>' % left)
    for e in range(sy0, sy1 + 1):
        y = py(10 ** e)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (left, y, width - right, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end">%g s</text>' % (left - 6, y + 4, 10 ** e))
    for t in sorted(set(all_t)):
        x = px(t)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (x, top, x, height - bottom))
        label = "%dK" % (t // 1024) if t % 1024 == 0 else str(t)
        out.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (x, height - bottom + 16, label))
    out.append('<text x="%d" y="%d" text-anchor="middle">sequence length T (tokens)</text>'
               % ((left + width - right) // 2, height - 12))
    for i, (name, (color, pts)) in enumerate(series.items()):
        pts = sorted(pts)
        path_d = " ".join("%s%.1f,%.1f" % ("M" if j == 0 else "L", px(t), py(s)) for j, (t, s) in enumerate(pts))
        out.append('<path d="%s" fill="none" stroke="%s" stroke-width="2"/>' % (path_d, color))
        for t, s in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (px(t), py(s), color))
        out.append('<text x="%d" y="%d" fill="%s">%s</text>' % (left + 10, top + 18 + 16 * i, color, name))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__)
        return 2
    build = args[0]
    options = dict(zip(args[1::2], args[2::2]))
    fit_lengths = parse_lengths(options.get("--fit-lengths", "1024,4096,16384,65536,163840"))
    tf_lengths = parse_lengths(options.get("--tokenformer-lengths", "1024,4096,16384,32768"))
    steps = int(options.get("--steps", "2"))
    program = os.path.join(build, "bench", "bench_fit_scaling")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    results = {"fit": [], "tokenformer": []}
    for T in sorted(set(fit_lengths) | set(tf_lengths)):
        for model, lengths in (("tokenformer", tf_lengths), ("fit", fit_lengths)):
            if T in lengths:
                point = run_point(program, model, T, steps, env)
                print(json.dumps(point), file=sys.stderr, flush=True)
                results[model].append(point)
    by_t = {m: {p["T"]: p for p in pts} for m, pts in results.items()}
    print("| T | FIT s/step | FIT tokens/s | FIT peak RSS | TokenFormer s/step | TokenFormer tokens/s | "
          "TokenFormer peak RSS | time FIT / TokenFormer |")
    print("|---|---|---|---|---|---|---|---|")
    for T in sorted(set(by_t["fit"]) | set(by_t["tokenformer"])):
        f, t = by_t["fit"].get(T), by_t["tokenformer"].get(T)

        def cols(p):
            if p is None:
                return ["-", "-", "-"]
            return ["%.3f" % p["seconds_per_step"], "%.0f" % p["tokens_per_second"],
                    "%.2f GB" % (p["peak_rss_bytes"] / 1e9)]

        ratio = "%.3f" % (f["seconds_per_step"] / t["seconds_per_step"]) if f and t else "-"
        print("| %d | %s | %s | %s |" % (T, " | ".join(cols(f)), " | ".join(cols(t)), ratio))
    for model in ("fit", "tokenformer"):
        pts = results[model]
        if pts:
            print("\nlog-log slope of step time against T, %s (T = %s): %.3f" % (
                model, ",".join(str(p["T"]) for p in pts), slope(pts)))
            if len(pts) >= 3:
                print("  over its last three lengths: %.3f" % slope(pts[-3:]))
    if "--svg" in options:
        svg_plot({"FIT (groups of 256, 8 latents each)": ("#1f77b4",
                                                           [(p["T"], p["seconds_per_step"]) for p in results["fit"]]),
                  "TokenFormer LM (full causal attention)": (
                      "#d62728", [(p["T"], p["seconds_per_step"]) for p in results["tokenformer"]])},
                 options["--svg"])
        print("\nwrote %s" % options["--svg"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
