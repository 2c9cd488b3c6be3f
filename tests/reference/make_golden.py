#!/usr/bin/env python3
"""Generate golden TokenFormer test cases under tests/reference/golden/<case>/.

Each case directory holds:
  config.json        official GPT-NeoX/TokenFormer config keys
  model.safetensors  weights under the official state-dict keys, in the case dtype
  tokens.txt         one sequence per line, comma-separated token ids
  logits.f32         little-endian float32 logits [B, T, V_rows], row-major

Logits are computed in float64 (tokenformer_reference.py) from the weights as
stored, i.e. after rounding to the case dtype, and only then cast to float32.

Weight init (all i.i.d. normal, sampled in float32 from a seeded torch.Generator
in expected_shapes() order, then rounded to the storage dtype):
  word embeddings            N(0, 0.5^2)
  key_param_tokens           N(0, 0.5^2)   (softmax cases: N(0, 0.1^2), so that
                                            exp() of the scores stays far from one-hot)
  value_param_tokens         N(0, 0.2^2)
  final norm weight          1 + N(0, 0.2^2)
  final norm bias            N(0, 0.2^2)
These keep activations O(1) and logits O(1)-O(10).

Usage: OPENBLAS_NUM_THREADS=2 python3 make_golden.py [output_dir]
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as ref  # noqa: E402

BATCH = 2
SEQ_LEN = 13

EMBED_STD = 0.5
KEY_STD = 0.5
KEY_STD_SOFTMAX = 0.1
VALUE_STD = 0.2
NORM_STD = 0.2

CASES = [
    # name, seed, dtype, config (vocab_rows = rows of the embedding tensor)
    ("l2_norm_gelu_f32", 1001, "F32", dict(
        num_layers=2, hidden_size=64, num_attention_heads=4, qkv_slot_num=24, proj_slot_num=20,
        ffn_slot_num=72, vocab_size=100, vocab_rows=128, rotary_pct=0.25,
        norm_activation_type="l2_norm_gelu")),
    ("gelu_l2_norm_f32", 1002, "F32", dict(
        num_layers=3, hidden_size=32, num_attention_heads=2, qkv_slot_num=17, proj_slot_num=33,
        ffn_slot_num=50, vocab_size=77, vocab_rows=77, rotary_pct=0.25,
        norm_activation_type="gelu_l2_norm")),
    ("softmax_f32", 1003, "F32", dict(
        num_layers=2, hidden_size=48, num_attention_heads=3, qkv_slot_num=16, proj_slot_num=16,
        ffn_slot_num=40, vocab_size=64, vocab_rows=64, rotary_pct=0.5,
        norm_activation_type="softmax")),
    ("l2_norm_gelu_f16", 2001, "F16", dict(
        num_layers=2, hidden_size=64, num_attention_heads=4, qkv_slot_num=24, proj_slot_num=20,
        ffn_slot_num=72, vocab_size=100, vocab_rows=128, rotary_pct=0.25,
        norm_activation_type="l2_norm_gelu")),
    ("softmax_bf16", 2003, "BF16", dict(
        num_layers=2, hidden_size=48, num_attention_heads=3, qkv_slot_num=16, proj_slot_num=16,
        ffn_slot_num=40, vocab_size=64, vocab_rows=64, rotary_pct=0.5,
        norm_activation_type="softmax")),
]

CONFIG_KEYS = (
    "num_layers", "hidden_size", "num_attention_heads", "qkv_slot_num", "proj_slot_num",
    "ffn_slot_num", "vocab_size", "rotary_pct", "norm_activation_type", "layernorm_epsilon",
    "max_position_embeddings",
)


def make_config(spec):
    cfg = dict(spec)
    cfg.pop("vocab_rows")
    cfg["layernorm_epsilon"] = 1e-5
    cfg["max_position_embeddings"] = 2048
    return {k: cfg[k] for k in CONFIG_KEYS}


def sample_weights(config, vocab_rows, gen):
    """float32 master weights, keyed by official names, in file order."""
    key_std = KEY_STD_SOFTMAX if config["norm_activation_type"] == "softmax" else KEY_STD
    wk, bk = ref.final_norm_keys(config["num_layers"])
    weights = []
    for name, shape in ref.expected_shapes(config, vocab_rows):
        z = torch.randn(*shape, generator=gen, dtype=torch.float32)
        if name == ref.EMBEDDING_KEY:
            t = z * EMBED_STD
        elif name.endswith("key_param_tokens"):
            t = z * key_std
        elif name.endswith("value_param_tokens"):
            t = z * VALUE_STD
        elif name == wk:
            t = 1.0 + z * NORM_STD
        elif name == bk:
            t = z * NORM_STD
        else:
            raise AssertionError(name)
        weights.append((name, shape, t.numpy()))
    return weights


def write_case(out_dir, name, seed, dtype, spec):
    config = make_config(spec)
    vocab_rows = spec["vocab_rows"]
    gen = torch.Generator().manual_seed(seed)
    weights = sample_weights(config, vocab_rows, gen)
    tokens = torch.randint(0, config["vocab_size"], (BATCH, SEQ_LEN), generator=gen)

    tensors = []
    stored = {}
    for tname, shape, arr in weights:
        raw, as_stored = ref.to_storage(arr, dtype)
        tensors.append((tname, dtype, shape, raw))
        stored[tname] = torch.from_numpy(as_stored)

    logits = ref.tokenformer_forward(stored, config, tokens)
    assert tuple(logits.shape) == (BATCH, SEQ_LEN, vocab_rows)
    assert torch.isfinite(logits).all()

    case_dir = os.path.join(out_dir, name)
    os.makedirs(case_dir, exist_ok=True)
    with open(os.path.join(case_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    ref.write_safetensors(os.path.join(case_dir, "model.safetensors"), tensors)
    with open(os.path.join(case_dir, "tokens.txt"), "w") as f:
        for row in tokens.tolist():
            f.write(",".join(str(t) for t in row) + "\n")
    with open(os.path.join(case_dir, "logits.f32"), "wb") as f:
        f.write(logits.numpy().astype("<f4").tobytes())

    # Sanity: the file we wrote reads back to the weights we computed from.
    back = ref.read_safetensors(os.path.join(case_dir, "model.safetensors"))
    for tname, t in stored.items():
        assert np.array_equal(back[tname], t.numpy()), tname

    l = logits.abs()
    probs = torch.softmax(logits[..., : config["vocab_size"]], dim=-1)
    print("%-18s %-4s L=%d hidden=%d heads=%d qkv=%d proj=%d ffn=%d vocab=%d rows=%d rot=%g"
          % (name, dtype, config["num_layers"], config["hidden_size"], config["num_attention_heads"],
             config["qkv_slot_num"], config["proj_slot_num"], config["ffn_slot_num"],
             config["vocab_size"], vocab_rows, config["rotary_pct"]))
    print("    logits [%d, %d, %d]  mean|x| = %.4f  max|x| = %.4f  std = %.4f  max softmax p = %.3f"
          % (BATCH, SEQ_LEN, vocab_rows, l.mean().item(), l.max().item(), logits.std().item(),
             probs.max().item()))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden")
    os.makedirs(out_dir, exist_ok=True)
    for name, seed, dtype, spec in CASES:
        write_case(out_dir, name, seed, dtype, spec)


if __name__ == "__main__":
    main()
