#!/usr/bin/python3
"""One TokenFormer training step in PyTorch next to tokenformer's bench_train_step.

Usage:  /usr/bin/python3 bench/train_step_torch.py BUILD_DIR [--steps N] [--torch-only] [--torch-threads 2,1]

Times the same two models and the same step as bench/bench_train_step.cpp in float32 PyTorch
(Debian's python3-torch 1.13, 2 threads):

  small   4 layers, hidden 256, 8 heads, qkv = proj = 256, ffn = 1024 tokens; B=16, T=128
  medium  6 layers, hidden 512, 8 heads, qkv = proj = 512, ffn = 2048 tokens; B=8,  T=256

both byte-level (vocab 257), rotary_pct 0.5, l2_norm_gelu, the embedding tied as the output head.
A step is: zero_grad, forward, cross entropy (mean over all B*T positions), backward,
clip_grad_norm_(1.0), AdamW(lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 except on the
final norm, as tokenformer does). 2 warm-up steps, then the median of at least N timed steps.

Then it measures the CPU's float32 peak (BUILD_DIR/bench/bench_fma_peak, an FMA loop on 2 threads),
runs BUILD_DIR/bench/bench_train_step (OMP_NUM_THREADS=2, 3 repetitions, medians) once per GEMM
backend it links (TOKENFORMER_GEMM=eigen|openblas|onednn) in fp32, and with the default backend (the
fastest linked) also in bf16 mixed precision, and prints a Markdown table with tokens/s of both, the
fraction of the peak, and their ratio. GFLOP/s use the estimate
FLOPs/token = 6*N_params + 6*L*T*C (see bench_train_step.cpp).

Threads: Debian's torch calls the generic libblas.so.3, which is OpenBLAS's pthread build with
libopenblas0-pthread (checked and printed below). Its 2 GEMM threads and torch's own 2 OpenMP threads
are separate pools that spin and contend for the 2 cores: with torch.set_num_threads(2) the small
model's step took 2-3x as long (and varied from 1.3 to 8 s) as with torch.set_num_threads(1), where the
GEMMs still run on 2 OpenBLAS threads. So PyTorch is timed at both (--torch-threads, default 2,1) and
the ratio is taken against the faster. (OMP_WAIT_POLICY=PASSIVE recovers most of it at 2 threads.
The openblas-openmp build, LD_LIBRARY_PATH=.../openblas-openmp, ran the step about 15x slower.)
"""

import os

# Before torch (and its OpenMP and OpenBLAS) load: the comparison is defined at 2 threads.
THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(THREADS)

VOCAB = 257
CONFIGS = {
    # name: (layers, hidden, heads, qkv tokens, proj tokens, ffn tokens, B, T)
    "small": (4, 256, 8, 256, 256, 1024, 16, 128),
    "medium": (6, 512, 8, 512, 512, 2048, 8, 256),
}
ROTARY_PCT = 0.5
LN_EPS = 1e-5


# ---------------------------------------------------------------------------------------------
# The model (same architecture as tests/reference/tokenformer_reference.py, as nn.Modules)
# ---------------------------------------------------------------------------------------------

class Pattention(nn.Module):
    """out = Θ(x · Kᵀ) · V with Θ = l2_norm_gelu: gelu(s / ||s||₂ · √n) on each row of scores."""

    def __init__(self, d_in, d_out, tokens, value_std):
        super().__init__()
        self.key_param_tokens = nn.Parameter(torch.randn(tokens, d_in) * 0.02)
        self.value_param_tokens = nn.Parameter(torch.randn(tokens, d_out) * value_std)

    def forward(self, x):
        scores = F.linear(x, self.key_param_tokens)  # x · Kᵀ
        n = scores.shape[-1]
        norm = torch.linalg.vector_norm(scores, dim=-1, keepdim=True)
        weights = F.gelu(scores * (math.sqrt(n) / norm))  # exact (erf) GELU
        return torch.matmul(weights, self.value_param_tokens)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Layer(nn.Module):
    """Pre-norm block with non-parametric LayerNorms: h = x + attn(LN(x)); out = h + ffn(LN(h))."""

    def __init__(self, hidden, heads, qkv, proj, ffn, seq_len, value_std):
        super().__init__()
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.query = Pattention(hidden, hidden, qkv, value_std)
        self.key = Pattention(hidden, hidden, qkv, value_std)
        self.value = Pattention(hidden, hidden, qkv, value_std)
        self.proj = Pattention(hidden, hidden, proj, value_std)
        self.mlp = Pattention(hidden, hidden, ffn, value_std)
        # GPT-NeoX partial rotary (rotate-half) on the first rotary_ndims dims of each head.
        self.rotary_ndims = int(self.head_dim * ROTARY_PCT)
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, self.rotary_ndims, 2, dtype=torch.float32) / self.rotary_ndims))
        freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # [T, r]
        self.register_buffer("cos", emb.cos()[None, None], persistent=False)  # [1, 1, T, r]
        self.register_buffer("sin", emb.sin()[None, None], persistent=False)
        self.register_buffer("future", torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), 1),
                             persistent=False)

    def rotary(self, x):  # x [B, H, T, D]
        r = self.rotary_ndims
        x_rot, x_pass = x[..., :r], x[..., r:]
        return torch.cat((x_rot * self.cos + rotate_half(x_rot) * self.sin, x_pass), dim=-1)

    def attention(self, x):
        B, T, C = x.shape
        split = lambda t: t.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731 [B, H, T, D]
        q = self.rotary(split(self.query(x)))
        k = self.rotary(split(self.key(x)))
        v = split(self.value(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        probs = torch.softmax(scores.masked_fill(self.future, float("-inf")), dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, C)
        return self.proj(ctx)

    def forward(self, x):
        h = x + self.attention(F.layer_norm(x, (self.hidden,), eps=LN_EPS))
        return h + self.mlp(F.layer_norm(h, (self.hidden,), eps=LN_EPS))


class LanguageModel(nn.Module):
    def __init__(self, layers, hidden, heads, qkv, proj, ffn, seq_len):
        super().__init__()
        value_std = 2.0 / layers / math.sqrt(hidden)  # the official "wang" init of value tokens
        self.word_embeddings = nn.Parameter(torch.randn(VOCAB, hidden) * 0.02)
        self.layers = nn.ModuleList(Layer(hidden, heads, qkv, proj, ffn, seq_len, value_std) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)  # final affine LayerNorm

    def forward(self, tokens):
        x = F.embedding(tokens, self.word_embeddings)
        for layer in self.layers:
            x = layer(x)
        return F.linear(self.norm(x), self.word_embeddings)  # tied output head


# ---------------------------------------------------------------------------------------------
# BLAS check
# ---------------------------------------------------------------------------------------------

def loud(message):
    bar = "!" * 100
    print("\n".join((bar, "!!! " + message, bar)), flush=True)


def check_blas():
    """Prints which BLAS torch uses; returns a short description for the report."""
    dpkg = subprocess.run(["dpkg", "-s", "libopenblas0-pthread"], capture_output=True, text=True)
    installed = dpkg.returncode == 0 and "Status: install ok installed" in dpkg.stdout
    print("libopenblas0-pthread: %s" % ("installed" if installed else "NOT installed"))
    if not installed:
        loud("libopenblas0-pthread is not installed: torch may run on the reference BLAS "
             "(sudo apt-get install libopenblas0-pthread)")

    show = torch.__config__.show()
    info = [part.strip() for part in show.replace("\n", ",").split(",") if "BLAS_INFO" in part or "MKL" in part]
    print("torch %s, threads %d; torch.__config__.show(): %s" % (torch.__version__, torch.get_num_threads(),
                                                                 "; ".join(info)))

    # Debian builds torch against the generic libblas.so.3 (BLAS_INFO=generic): the library that
    # runs is whichever the libblas.so.3 alternative points at. Read it from this process's maps.
    a = torch.randn(64, 64)
    (a @ a).sum().item()
    mapped = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if name.startswith(("libblas", "libopenblas", "libmkl", "libblis")):
                mapped.add(os.path.realpath(path))
    mapped = sorted(mapped)
    print("BLAS libraries mapped into this process: %s" % (", ".join(mapped) or "none"))

    description = "unknown"
    openblas_config = None
    for path in mapped:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_config.restype = ctypes.c_char_p
            openblas_config = lib.openblas_get_config().decode()
            threads = lib.openblas_get_num_threads()
            openblas_config += ", %d threads" % threads
            break
        except (OSError, AttributeError):
            continue
    reference = [p for p in mapped if "/blas/" in p or os.path.basename(p).startswith("libblas") and "openblas" not in p]
    if openblas_config:
        variant = "pthread" if any("openblas-pthread" in p for p in mapped) else (
            "openmp" if any("openblas-openmp" in p for p in mapped) else "?")
        description = "OpenBLAS (%s): %s" % (variant, openblas_config)
        print("torch's BLAS: " + description)
    if reference or not openblas_config:
        description = "REFERENCE BLAS (netlib): %s" % ", ".join(reference or mapped)
        loud("torch is using the REFERENCE BLAS (%s): its GEMMs are unoptimized and the comparison is "
             "meaningless. Fix: sudo apt-get install libopenblas0-pthread; sudo update-alternatives --config "
             "libblas.so.3-x86_64-linux-gnu" % ", ".join(reference or mapped))
    return description


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

def time_torch(name, min_steps, warmup=2, min_seconds=3.0, max_steps=20):
    L, C, H, qkv, proj, ffn, B, T = CONFIGS[name]
    torch.manual_seed(20241031)
    model = LanguageModel(L, C, H, qkv, proj, ffn, T)
    params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if not n.startswith("norm.")]
    no_decay = [p for n, p in model.named_parameters() if n.startswith("norm.")]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    stream = torch.randint(0, VOCAB, (B * T + 1,))
    tokens, targets = stream[:-1].view(B, T), stream[1:].view(B, T)

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits.view(-1, VOCAB), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss.item()

    for _ in range(warmup):
        step()
    times = []
    while len(times) < min_steps or (sum(times) < min_seconds and len(times) < max_steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    tokens_per_s = B * T / seconds
    flops_per_token = 6.0 * params + 6.0 * L * T * C
    print("torch %-6s params %d, %d steps, median %.1f ms/step (min %.1f, max %.1f), %.0f tokens/s, "
          "%.1f GFLOP/s, loss %.3f" % (name, params, len(times), seconds * 1e3, min(times) * 1e3, max(times) * 1e3,
                                       tokens_per_s, tokens_per_s * flops_per_token / 1e9, loss), flush=True)
    return {"params": params, "tokens_per_s": tokens_per_s}


def program(build_dir, name):
    binary = os.path.join(build_dir, "bench", name)
    if not os.path.exists(binary):
        sys.exit("%s not found: cmake --build %s --target %s" % (binary, build_dir, name))
    return binary


def gemm_backends(build_dir):
    """The GEMM backends bench_train_step links (eigen, openblas, onednn)."""
    listed = subprocess.run([program(build_dir, "bench_train_step"), "--list_gemm_backends"], capture_output=True,
                            text=True, check=True)
    return listed.stdout.split()


def fp32_peak(build_dir):
    """The CPU's float32 peak at THREADS threads in GFLOP/s, from bench_fma_peak's FMA loop."""
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    done = subprocess.run([program(build_dir, "bench_fma_peak")], env=env, capture_output=True, text=True, check=True)
    print(done.stdout, end="", flush=True)
    return float(done.stdout.strip().splitlines()[-1].split(":")[1].split()[0])


def run_tokenformer(build_dir, backend, bf16):
    """Medians of bench_train_step with this backend: {"small": ..., "medium": ...} in fp32, plus
    "small/bf16" and "medium/bf16" when `bf16`."""
    binary = program(build_dir, "bench_train_step")
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), TOKENFORMER_GEMM=backend)
    command = [binary, "--benchmark_format=json", "--benchmark_repetitions=3",
               "--benchmark_report_aggregates_only=true"]
    if not bf16:
        command.append("--benchmark_filter=BM_TrainStep/[a-z]+/min_time")
    print("running: OMP_NUM_THREADS=%d TOKENFORMER_GEMM=%s %s" % (THREADS, backend, " ".join(command)), flush=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        sys.exit("bench_train_step failed with exit status %d" % result.returncode)
    report = json.loads(result.stdout)
    context = report.get("context", {})
    print("tokenformer: gemm %s, omp_max_threads %s (Google Benchmark itself built as %s; the timed code is ours)"
          % (context.get("gemm", "?"), context.get("omp_max_threads", "?"), context.get("library_build_type", "?")))
    if bf16:
        print("tokenformer: bf16 %s" % context.get("bf16", "?"))
    out = {}
    for bench in report["benchmarks"]:
        if bench.get("aggregate_name") != "median":
            continue
        # BM_TrainStep/<name>[/bf16]/min_time:.../real_time
        name = "/".join(part for part in bench["run_name"].split("/")[1:] if part in ("small", "medium", "bf16"))
        out[name] = {"params": int(bench["params"]), "tokens_per_s": bench["tokens/s"], "gflops": bench["GFLOP/s"],
                     "ms": bench["real_time"]}
        print("tokenformer %-6s params %d, median %.1f ms/step, %.0f tokens/s, %.1f GFLOP/s, loss %.3f"
              % (name, out[name]["params"], bench["real_time"], bench["tokens/s"], bench["GFLOP/s"], bench["loss"]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build_dir", help="the CMake build directory holding bench/bench_train_step")
    parser.add_argument("--steps", type=int, default=5, help="timed PyTorch steps per model, at least (default 5)")
    parser.add_argument("--torch-only", action="store_true", help="time PyTorch only")
    parser.add_argument("--torch-threads", default="%d,1" % THREADS,
                        help="comma-separated torch.set_num_threads values to time; OpenBLAS keeps %d threads. "
                        "The ratio is taken against the fastest (default %d,1)" % (THREADS, THREADS))
    args = parser.parse_args()
    thread_counts = [int(n) for n in args.torch_threads.split(",")]

    blas = check_blas()
    torch_results = {}  # name -> {intra-op threads -> result}
    for name in CONFIGS:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            print("[torch intra-op threads %d] " % torch.get_num_threads(), end="")
            torch_results.setdefault(name, {})[threads] = time_torch(name, max(5, args.steps))
    torch.set_num_threads(THREADS)
    if args.torch_only:
        return
    peak = fp32_peak(args.build_dir)
    backends = gemm_backends(args.build_dir)
    default = "onednn" if "onednn" in backends else "openblas" if "openblas" in backends else "eigen"
    ours = {backend: run_tokenformer(args.build_dir, backend, backend == default) for backend in backends}

    print()
    print("Training step (forward + backward + clip + AdamW), float32, %d cores; tokenformer with OMP_NUM_THREADS=%d "
          "and each GEMM backend; PyTorch %s on %s, the faster of torch.set_num_threads(%s); FP32 peak %.1f GFLOP/s "
          "(bench_fma_peak, %d threads)"
          % (THREADS, THREADS, torch.__version__, blas, " / ".join(str(n) for n in thread_counts), peak, THREADS))
    print()
    print("| model | params | GEMM backend | tokenformer tokens/s | GFLOP/s | of peak | PyTorch tokens/s | "
          "ratio (tokenformer / PyTorch) | PyTorch tokens/s at %s intra-op threads |"
          % " / ".join(str(n) for n in thread_counts))
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, (L, C, H, qkv, proj, ffn, B, T) in CONFIGS.items():
        runs = torch_results[name]
        best = max(runs.values(), key=lambda r: r["tokens_per_s"])
        each = " / ".join("%.0f" % runs[n]["tokens_per_s"] for n in thread_counts)
        label = "%s (L=%d C=%d B=%d T=%d)" % (name, L, C, B, T)
        rows = [(backend, name) for backend in ours] + [(default, name + "/bf16")]
        for backend, key in rows:
            mine = ours[backend].get(key)
            shown = backend + (" bf16" if key.endswith("/bf16") else "")
            if mine is None:
                print("| %s | %.2fM | %s | (missing) | | | %.0f | | %s |"
                      % (label, best["params"] / 1e6, shown, best["tokens_per_s"], each))
                continue
            if mine["params"] != best["params"]:
                loud("parameter counts differ for %s: tokenformer %d, PyTorch %d" % (name, mine["params"],
                                                                                     best["params"]))
            print("| %s | %.2fM | %s | %.0f | %.1f | %.0f%% | %.0f | %.2f | %s |"
                  % (label, mine["params"] / 1e6, shown, mine["tokens_per_s"], mine["gflops"],
                     100.0 * mine["gflops"] / peak, best["tokens_per_s"], mine["tokens_per_s"] / best["tokens_per_s"],
                     each))

if __name__ == "__main__":
    main()
