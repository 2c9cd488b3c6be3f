#!/usr/bin/env python3
"""Generate golden plain-Transformer test cases under tests/reference/golden/<case>/.

The model is transformer_reference.py (float64): a pre-norm GPT-NeoX-style Transformer LM with
affine LayerNorms, linear q/k/v/proj with biases, partial rotate-half rotary, causal softmax
attention, an erf-GELU MLP, a final affine LayerNorm and the tied embedding as output head.
Each case directory holds (same file format as make_golden_fit.py):
  config.json              {"architecture": "transformer", num_layers, hidden_size, num_attention_heads,
                           intermediate_size, vocab_size, rotary_pct, layernorm_epsilon, rotary_emb_base}
  model.safetensors        F32 weights under the GPT-NeoX pipeline keys, in
                           transformer_reference.expected_shapes order
  tokens.txt               one sequence per line, comma-separated token ids
  logits.f32               little-endian float32 logits [B, T, V], row-major, computed in float64
                           from the weights as stored (F32-rounded) and only then rounded
  grads_batch.safetensors  F32 d loss / d param for every parameter (same keys, shapes and order as
                           model.safetensors), then "loss" [1]:
                             loss = 1/(B*(T-1)) * sum_b sum_{t=0}^{T-2} CE(logits[b, t, :], tokens[b, t+1])
                           (as make_golden_fit.py; the tied embedding gradient has both uses)

Cases (B=2, layernorm_epsilon 1e-5, rotary_emb_base 10000):
  transformer_f32         L=2, C=16, H=2 (D=8), I=24, V=37, rotary_pct 0.5 (rotary_ndims 4), T=9
  transformer_norope_f32  L=1, C=12, H=3 (D=4), I=20, V=29, rotary_pct 0.0 (no rotary), T=7

Weight init (i.i.d. normal, sampled in float32 from a seeded torch.Generator in expected_shapes()
order, tokens sampled after the weights from the same generator): word embeddings N(0, 0.3^2);
linear weights (attention.{query,key,value,proj}.weight, mlp.*.weight) N(0, 0.3^2); linear biases
N(0, 0.1^2); LayerNorm weights (both per-layer norms and the final norm) 1 + N(0, 0.2^2), LayerNorm
biases N(0, 0.2^2).

Checks run before anything is written (a failure writes nothing for the case): the logits against
the alternative formulation of transformer_reference's self-test (torch.nn modules, loop attention
with explicit pair rotations) and against loop attention (1e-12); changing token t changes no logit
< t exactly, and prefix logits == full logits; the loss against logsumexp - logit; autograd vs
float64 central differences on sampled entries (plus the largest-|grad| entry) of every parameter
tensor (relative 1e-6); the key-bias invariance below; after writing, the files read back to what
was computed.

Note for comparisons: q . (k + b) - q . k = q . b is the same for every key position, so the causal
softmax ignores attention.key.bias on the head dims that rotary leaves alone. Its gradient there is
exactly 0 in exact arithmetic (every dim of the rotary_pct 0.0 case; dims 4..7 of each head of
transformer_f32), and the stored values are float64 round-off (~1e-17): compare those entries with an
absolute tolerance, not a relative one.

Usage: OPENBLAS_NUM_THREADS=1 python3 make_golden_transformer.py [output_dir]
       (needs torch; default output_dir is golden/ next to this script)
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as tf  # noqa: E402
import transformer_reference as tr  # noqa: E402

BATCH = 2

EMBED_STD = 0.3
LINEAR_WEIGHT_STD = 0.3
LINEAR_BIAS_STD = 0.1
NORM_STD = 0.2

FD_SEED = 7
FD_SAMPLES_PER_TENSOR = 2
FD_TOL = 1e-6

CASES = [
    # name, seed, T, config
    ("transformer_f32", 4001, 9, dict(num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=24,
                                      vocab_size=37, rotary_pct=0.5)),
    ("transformer_norope_f32", 4002, 7, dict(num_layers=1, hidden_size=12, num_attention_heads=3,
                                             intermediate_size=20, vocab_size=29, rotary_pct=0.0)),
]


def make_config(spec):
    cfg = dict(spec)
    cfg["architecture"] = "transformer"
    cfg["layernorm_epsilon"] = 1e-5
    cfg["rotary_emb_base"] = 10000
    return {k: cfg[k] for k in tr.CONFIG_KEYS}


def is_norm_key(name):
    return ".input_layernorm." in name or ".post_attention_layernorm." in name or ".norm." in name


def sample_weights(config, gen):
    """float32 weights [(name, shape, numpy array)] in file order."""
    weights = []
    for name, shape in tr.expected_shapes(config):
        z = torch.randn(*shape, generator=gen, dtype=torch.float32)
        if name == tr.EMBEDDING_KEY:
            t = z * EMBED_STD
        elif is_norm_key(name) and name.endswith(".weight"):
            t = 1.0 + z * NORM_STD
        elif is_norm_key(name) and name.endswith(".bias"):
            t = z * NORM_STD
        elif name.endswith(".weight"):
            t = z * LINEAR_WEIGHT_STD
        elif name.endswith(".bias"):
            t = z * LINEAR_BIAS_STD
        else:
            raise AssertionError(name)
        weights.append((name, shape, t.numpy()))
    return weights


def f32_tensors(order, arrays):
    out = []
    for name in order:
        a = np.asarray(arrays[name])
        raw, _ = tf.to_storage(a, "F32")
        out.append((name, "F32", list(a.shape), raw))
    return out


def run_case(out_dir, name, seed, T, spec):
    config = make_config(spec)
    tr.check_config(config)
    gen = torch.Generator().manual_seed(seed)
    weights = sample_weights(config, gen)
    tokens = torch.randint(0, config["vocab_size"], (BATCH, T), generator=gen)
    order = [w[0] for w in weights]
    stored = {n: torch.from_numpy(tf.to_storage(a, "F32")[1]) for n, _, a in weights}
    V = config["vocab_size"]
    print("%s: L=%d C=%d H=%d I=%d V=%d rotary_pct=%g (rotary_ndims %d) T=%d, %d tensors"
          % (name, config["num_layers"], config["hidden_size"], config["num_attention_heads"],
             config["intermediate_size"], V, config["rotary_pct"], tr.rotary_ndims_for(config), T, len(order)))

    # Checks on this very model.
    logits = tr.check_causality(stored, config, tokens, sorted({1, T // 2, T - 2, T - 1}), name)
    assert tuple(logits.shape) == (BATCH, T, V) and torch.isfinite(logits).all()
    tr._report("%s: vs nn modules + loop attention (logits)" % name,
               tr.maxdiff(logits, tr._module_forward(stored, config, tokens)), 1e-12)
    tr._report("%s: matrix vs loop attention (logits)" % name,
               tr.maxdiff(logits, tr.transformer_forward(stored, config, tokens, attention_fn=tf._attention_loop)),
               1e-12)

    params = {k: v.clone() for k, v in stored.items()}
    loss, grads, fd_worst = tr.finite_difference_check(
        params, order, config, tokens, order, torch.Generator().manual_seed(FD_SEED),
        samples=FD_SAMPLES_PER_TENSOR, tol=FD_TOL)
    tr._report("%s: autograd vs central differences, all %d tensors (rel)" % (name, len(order)), fd_worst, FD_TOL)
    for k in order:
        assert torch.equal(params[k], stored[k]), k  # the check restored every entry
    # attention.key.bias on non-rotary dims is invisible to the softmax (see the docstring).
    rot, D = tr.rotary_ndims_for(config), config["hidden_size"] // config["num_attention_heads"]
    worst = 0.0
    for i in range(config["num_layers"]):
        g = grads[tr.layer_prefix(i) + "attention.key.bias"].view(config["num_attention_heads"], D)
        worst = max(worst, g[:, rot:].abs().max().item() if rot < D else 0.0)
    tr._report("%s: d loss / d key.bias on non-rotary dims == 0" % name, worst, 1e-14)
    manual = (torch.logsumexp(logits[:, :-1], dim=-1)
              - torch.gather(logits[:, :-1], -1, tokens[:, 1:, None])[..., 0]).mean().item()
    assert abs(manual - loss) < 1e-12, (manual, loss)

    # Write.
    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    tf.write_safetensors(os.path.join(case_dir, "model.safetensors"),
                         f32_tensors(order, {nm: a for nm, _, a in weights}))
    with open(os.path.join(case_dir, "tokens.txt"), "w") as f:
        for row in tokens.tolist():
            f.write(",".join(str(t) for t in row) + "\n")
    with open(os.path.join(case_dir, "logits.f32"), "wb") as f:
        f.write(logits.numpy().astype("<f4").tobytes())
    gt = f32_tensors(order, {k: g.numpy() for k, g in grads.items()})
    gt.append(("loss", "F32", [1], tf.to_storage(np.array([loss]), "F32")[0]))
    tf.write_safetensors(os.path.join(case_dir, "grads_batch.safetensors"), gt)

    # Read back.
    with open(os.path.join(case_dir, "config.json")) as f:
        assert json.load(f) == config
    back = tf.read_safetensors(os.path.join(case_dir, "model.safetensors"))
    assert list(back) == order
    for k, shape in tr.expected_shapes(config):
        assert list(back[k].shape) == shape, k
        assert np.array_equal(back[k], stored[k].numpy()), k
    gback = tf.read_safetensors(os.path.join(case_dir, "grads_batch.safetensors"))
    assert list(gback) == order + ["loss"]
    for k in order:
        assert np.array_equal(gback[k], grads[k].numpy().astype(np.float32).astype(np.float64)), k
    assert abs(gback["loss"][0] - loss) < 1e-6
    with open(os.path.join(case_dir, "tokens.txt")) as f:
        assert [[int(t) for t in line.split(",")] for line in f.read().splitlines()] == tokens.tolist()
    lf = np.fromfile(os.path.join(case_dir, "logits.f32"), dtype="<f4").reshape(BATCH, T, V)
    assert np.array_equal(lf, logits.numpy().astype(np.float32))
    assert np.abs(lf - logits.numpy()).max() < 1e-5

    probs = torch.softmax(logits, dim=-1)
    print("    logits [%d, %d, %d]  mean|x| = %.4f  max|x| = %.4f  std = %.4f  max p = %.3f  loss = %.6f"
          % (BATCH, T, V, logits.abs().mean().item(), logits.abs().max().item(), logits.std().item(),
             probs.max().item(), loss))
    for k in order:
        g = grads[k]
        print("      %-46s %-8s max|g| = %.3e  rms = %.3e"
              % (k, "x".join(str(s) for s in g.shape), g.abs().max().item(), g.pow(2).mean().sqrt().item()))
    sizes = {f: os.path.getsize(os.path.join(case_dir, f)) for f in sorted(os.listdir(case_dir))}
    print("    files: " + ", ".join("%s %d B" % kv for kv in sizes.items()))
    print("    case total %d B" % sum(sizes.values()))
    return sum(sizes.values())


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    total = 0
    for name, seed, T, spec in CASES:
        total += run_case(out_dir, name, seed, T, spec)
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
