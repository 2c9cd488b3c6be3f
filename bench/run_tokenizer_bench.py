#!/usr/bin/env python3
"""The GPT-NeoX-20B tokenizer: this library's BPE tokenizer against Hugging Face's, on the same text.

Encodes every Debian fortunes file (each as one text, 2.6 MB in all) with
  - bench_tokenizer (C++, Google Benchmark; the word cache warm, and emptied before each pass),
  - @huggingface/tokenizers (Hugging Face's pure-JS tokenizer, the one that runs in browsers),
  - tokenizers (npm; Hugging Face's Rust tokenizer through its Node binding), when installed,
in one run, whole files and one call per line, and prints MB/s and the ratios. The Node runs make
--passes passes (default 2) after one pass of warm-up; their id counts are checked against C++'s.

Usage:
  python3 bench/run_tokenizer_bench.py <build dir> [--node-modules DIR] [--tokenizer FILE]
DIR holds node_modules/ with the packages (default: $TOKENFORMER_NODE_REF, else /tmp/tokref):
  mkdir -p /tmp/tokref && cd /tmp/tokref && npm install @huggingface/tokenizers@0.2.0 tokenizers@0.23.2
"""
import argparse
import json
import os
import platform
import subprocess
import sys

JS = r"""
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
const [tokenizerPath, fortunesDir, passesText] = process.argv.slice(1);  // node -e: no script path
const require = createRequire(path.join(process.cwd(), 'noop.js'));
const files = fs.readdirSync(fortunesDir).filter((f) => !f.includes('.')).sort()
  .map((f) => fs.readFileSync(path.join(fortunesDir, f), 'utf8'));
const lines = files.flatMap((t) => t.split('\n').map((line) => line + '\n'));  // as the C++ benchmark
const bytes = files.reduce((n, t) => n + Buffer.byteLength(t), 0);
const tokenizerText = fs.readFileSync(tokenizerPath, 'utf8');
const results = {};
async function measure(name, texts, encode) {
  let ids = 0;
  for (const t of texts) ids += (await encode(t)).length;  // warm-up: fills the caches
  const passes = Number(passesText);
  const start = process.hrtime.bigint();
  for (let p = 0; p < passes; ++p) for (const t of texts) await encode(t);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  results[name] = { mb_per_s: (bytes * passes) / seconds / 1e6, ids, passes, seconds };
}
try {
  const { Tokenizer } = require('@huggingface/tokenizers');
  const tokenizer = new Tokenizer(JSON.parse(tokenizerText), {});
  const encode = (t) => tokenizer.encode(t, { add_special_tokens: false }).ids;
  await measure('js', files, encode);
  await measure('js_lines', lines, encode);
} catch (e) { results.js_error = String(e); }
try {
  const { Tokenizer } = require('tokenizers');
  const tokenizer = Tokenizer.fromString(tokenizerText);
  const encode = async (t) => (await tokenizer.encode(t, null, { addSpecialTokens: false })).getIds();
  await measure('rust', files, encode);
  await measure('rust_lines', lines, encode);
} catch (e) { results.rust_error = String(e); }
results.bytes = bytes;
console.log(JSON.stringify(results));
"""


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build_dir")
    parser.add_argument("--node-modules", default=os.environ.get("TOKENFORMER_NODE_REF", "/tmp/tokref"))
    parser.add_argument("--tokenizer", default=os.environ.get(
        "TOKENFORMER_NEOX_TOKENIZER", os.path.join(here, "..", "..", "shared", "data", "gpt-neox-20b-tokenizer.json")))
    parser.add_argument("--passes", type=int, default=2, help="timed passes of each Node measurement")
    parser.add_argument("--fortunes", default=os.environ.get("TOKENFORMER_FORTUNES_DIR", "/usr/share/games/fortunes"))
    args = parser.parse_args()

    bench = os.path.join(args.build_dir, "bench", "bench_tokenizer")
    if not os.path.exists(bench):
        sys.exit(f"{bench} is not built (cmake --build {args.build_dir} --target bench_tokenizer)")
    env = dict(os.environ, TOKENFORMER_NEOX_TOKENIZER=os.path.abspath(args.tokenizer),
               TOKENFORMER_FORTUNES_DIR=args.fortunes)
    out = subprocess.run([bench, "--benchmark_format=json", "--benchmark_filter=Encode|Decode"],
                         capture_output=True, text=True, env=env, check=True).stdout
    cpp = {b["name"]: b for b in json.loads(out)["benchmarks"]}
    warm = cpp["BM_EncodeFortunes"]

    js = {}
    if os.path.isdir(os.path.join(args.node_modules, "node_modules")):
        run = subprocess.run(["node", "--input-type=module", "-e", JS, os.path.abspath(args.tokenizer), args.fortunes,
                              str(args.passes)], capture_output=True, text=True, cwd=args.node_modules)
        if run.returncode != 0:
            sys.exit("node failed:\n" + run.stderr)
        js = json.loads(run.stdout)
    else:
        print(f"no node_modules in {args.node_modules}: the JS rows are skipped (see --help)")

    mb = lambda b: b["bytes_per_second"] / 1e6
    files = [f for f in os.listdir(args.fortunes) if "." not in f]
    size = sum(os.path.getsize(os.path.join(args.fortunes, f)) for f in files)
    print(f"GPT-NeoX-20B tokenizer: {len(files)} fortunes files, {size} bytes, each encoded as one text; "
          f"one thread; CPU: {cpu_name()}")
    rows = [("C++ BpeTokenizer, warm cache", mb(warm)),
            ("C++ BpeTokenizer, cache emptied each pass", mb(cpp["BM_EncodeFortunesColdCache"])),
            ("C++ BpeTokenizer, one call per line", mb(cpp["BM_EncodeFortunesByLine"]))]
    for key, name in (("js", "@huggingface/tokenizers (pure JS)"), ("rust", "tokenizers (Rust, Node binding)")):
        if key in js:
            rows.append((name, js[key]["mb_per_s"]))
            rows.append((name + ", one call per line", js[key + "_lines"]["mb_per_s"]))
        elif key + "_error" in js:
            print(f"{name}: {js[key + '_error']}")
    for name, value in rows:
        print(f"  {name:55s} {value:8.2f} MB/s")
    by_line = mb(cpp["BM_EncodeFortunesByLine"])
    for key, name in (("js", "pure JS"), ("rust", "Rust")):
        if key in js:
            print(f"  C++ / {name}: {mb(warm) / js[key]['mb_per_s']:.1f}x whole files, "
                  f"{by_line / js[key + '_lines']['mb_per_s']:.1f}x one call per line")
    print(f"  C++ decode: {mb(cpp['BM_DecodeFortunes']):.1f} MB/s of text")
    ids = warm["ids_per_pass"]
    for key in ("js", "rust"):
        if key in js and js[key]["ids"] != ids:
            print(f"  WARNING: {key} made {js[key]['ids']} ids, C++ {ids:.0f}: not the same text or tokenizer?")


if __name__ == "__main__":
    main()
