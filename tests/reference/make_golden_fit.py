#!/usr/bin/env python3
"""Generate golden FIT (Pattention projections) test cases under tests/reference/golden/<case>/.

The model is fit_reference.py (float64). Each case directory holds:
  config.json              FIT config keys (architecture "fit", num_layers = number of units, ...)
  model.safetensors        F32 weights under the FIT keys (fit_reference.expected_shapes order)
  tokens.txt               one sequence per line, comma-separated token ids
  logits.f32               little-endian float32 logits [B, T, V], row-major, computed in float64
                           from the weights as stored and only then rounded
  grads_batch.safetensors  F32 d loss / d param for every parameter (same keys, shapes and order as
                           model.safetensors), then "loss" [1]:
                             loss = 1/(B*(T-1)) * sum_b sum_{t=0}^{T-2} CE(logits[b, t, :], tokens[b, t+1])
                           (as make_golden_grads.py; the tied embedding gradient has both uses)

Cases:
  fit_ar_f32          causal, l2_norm_gelu, "(1)1(1)1(1)", C=16 H=2 Cl=8 Hl=2 n=4 m=2 Gmax=5, T=14
                      (G=4, Tp=16: 2 padding rows)
  fit_enc_f32         not causal, gelu_l2_norm, "(2)2(1)", same sizes, T=14 (padding masked)
  fit_ar_softmax_f32  causal, softmax, "(1)2(2)", C=16 H=2 Cl=12 Hl=3 n=3 m=3 Gmax=6, T=12 (no padding)
All: qkv 6, proj 5, ffn 7, V=37, rotary_pct 0.5, layernorm_epsilon 1e-5, rotary_emb_base 10000, B=2.

Weight init (i.i.d. normal, sampled in float32 from a seeded torch.Generator in expected_shapes()
order): word embeddings N(0, 0.3^2) (tied head: logits std ~1.3); fit.latents N(0, 0.5^2);
key_param_tokens N(0, 0.5^2) (softmax case N(0, 0.4^2), so that Theta's exp() stays far from one-hot);
value_param_tokens N(0, 0.2^2), except those of the query and key Pattentions (of local, global, read
and write units) N(0, 0.5^2), so that attention scores are O(1) and the attention is not nearly
uniform (q/k gradients not tiny); final norm weight 1 + N(0, 0.2^2), bias N(0, 0.2^2).

Checks run before anything is written (a failure writes nothing for the case): dense-mask vs
group-loop attention (1e-12); causal cases: changing token t changes no logit < t exactly, for t
around group boundaries, and prefix logits == full logits; encoder case: random padding rows change
no logit (1e-12) and a later token does change earlier logits; autograd vs float64 central
differences on sampled entries of every parameter tensor; the files read back to what was computed.

Usage: OPENBLAS_NUM_THREADS=1 python3 make_golden_fit.py [output_dir]
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fit_reference as fit  # noqa: E402
import tokenformer_reference as tf  # noqa: E402

BATCH = 2

EMBED_STD = 0.3
LATENT_STD = 0.5
KEY_STD = 0.5
KEY_STD_SOFTMAX = 0.4
VALUE_STD = 0.2
QK_VALUE_STD = 0.5
NORM_STD = 0.2

FD_SEED = 7
FD_SAMPLES_PER_TENSOR = 2

COMMON = dict(hidden_size=16, num_attention_heads=2, qkv_slot_num=6, proj_slot_num=5, ffn_slot_num=7,
              vocab_size=37, rotary_pct=0.5)

CASES = [
    # name, seed, T, config
    ("fit_ar_f32", 3001, 14, dict(COMMON, norm_activation_type="l2_norm_gelu", fit_layers="(1)1(1)1(1)",
                                  group_size=4, latents_per_group=2, latent_size=8, latent_attention_heads=2,
                                  max_groups=5, causal=True)),
    ("fit_enc_f32", 3002, 14, dict(COMMON, norm_activation_type="gelu_l2_norm", fit_layers="(2)2(1)",
                                   group_size=4, latents_per_group=2, latent_size=8, latent_attention_heads=2,
                                   max_groups=5, causal=False)),
    ("fit_ar_softmax_f32", 3003, 12, dict(COMMON, norm_activation_type="softmax", fit_layers="(1)2(2)",
                                          group_size=3, latents_per_group=3, latent_size=12,
                                          latent_attention_heads=3, max_groups=6, causal=True)),
]

CONFIG_KEYS = (
    "architecture", "num_layers", "hidden_size", "num_attention_heads", "qkv_slot_num", "proj_slot_num",
    "ffn_slot_num", "vocab_size", "rotary_pct", "norm_activation_type", "layernorm_epsilon",
    "rotary_emb_base", "fit_layers", "group_size", "latents_per_group", "latent_size",
    "latent_attention_heads", "max_groups", "causal",
)


def make_config(spec):
    cfg = dict(spec)
    cfg["architecture"] = "fit"
    cfg["num_layers"] = len(fit.parse_fit_layers(cfg["fit_layers"]))
    cfg["layernorm_epsilon"] = 1e-5
    cfg["rotary_emb_base"] = 10000
    return {k: cfg[k] for k in CONFIG_KEYS}


def sample_weights(config, gen):
    """float32 weights [(name, shape, numpy array)] in file order."""
    key_std = KEY_STD_SOFTMAX if config["norm_activation_type"] == "softmax" else KEY_STD
    weights = []
    for name, shape in fit.expected_shapes(config):
        z = torch.randn(*shape, generator=gen, dtype=torch.float32)
        if name == fit.EMBEDDING_KEY:
            t = z * EMBED_STD
        elif name == fit.LATENTS_KEY:
            t = z * LATENT_STD
        elif name.endswith("key_param_tokens"):
            t = z * key_std
        elif name.endswith(("query.value_param_tokens", "key.value_param_tokens")):
            t = z * QK_VALUE_STD
        elif name.endswith("value_param_tokens"):
            t = z * VALUE_STD
        elif name == fit.FINAL_NORM_WEIGHT:
            t = 1.0 + z * NORM_STD
        elif name == fit.FINAL_NORM_BIAS:
            t = z * NORM_STD
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
    fit.check_config(config)
    gen = torch.Generator().manual_seed(seed)
    weights = sample_weights(config, gen)
    tokens = torch.randint(0, config["vocab_size"], (BATCH, T), generator=gen)
    order = [w[0] for w in weights]
    stored = {n: torch.from_numpy(tf.to_storage(a, "F32")[1]) for n, _, a in weights}
    n, V = config["group_size"], config["vocab_size"]
    print("%s: %s units=%d (%s) causal=%s T=%d G=%d Tp=%d"
          % (name, config["norm_activation_type"], config["num_layers"], config["fit_layers"],
             config["causal"], T, -(-T // n), -(-T // n) * n))

    # Checks on this very model.
    logits = fit.check_dense_vs_groups(stored, config, tokens, name)
    assert tuple(logits.shape) == (BATCH, T, V) and torch.isfinite(logits).all()
    if config["causal"]:
        positions = sorted({1, n - 1, n, n + 1, 2 * n, T - 2, T - 1})
        fit.check_causality(stored, config, tokens, positions, name, V)
        check_gen = torch.Generator().manual_seed(seed + 1)
        if T % n:
            fit.check_padding(stored, config, tokens, check_gen, name)
    else:
        fit.check_not_causal(stored, config, tokens, V, name)
        fit.check_padding(stored, config, tokens, torch.Generator().manual_seed(seed + 1), name)
        # Also with a sequence length that leaves 3 padding rows.
        fit.check_padding(stored, config, tokens[:, :T - 1] if (T - 1) % n else tokens[:, :T - 2],
                          torch.Generator().manual_seed(seed + 2), name)

    params = {k: v.clone() for k, v in stored.items()}
    loss, grads, fd_worst = fit.finite_difference_check(
        params, order, config, tokens, order, torch.Generator().manual_seed(FD_SEED), samples=FD_SAMPLES_PER_TENSOR)
    fit._report("%s: autograd vs central differences, all %d tensors (rel)" % (name, len(order)), fd_worst, 1e-6)
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
    back = tf.read_safetensors(os.path.join(case_dir, "model.safetensors"))
    assert list(back) == order
    for k in order:
        assert np.array_equal(back[k], stored[k].numpy()), k
    gback = tf.read_safetensors(os.path.join(case_dir, "grads_batch.safetensors"))
    assert list(gback) == order + ["loss"]
    for k in order:
        assert np.array_equal(gback[k], grads[k].numpy().astype(np.float32).astype(np.float64)), k
    lf = np.fromfile(os.path.join(case_dir, "logits.f32"), dtype="<f4").reshape(BATCH, T, V)
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
