#!/usr/bin/env python3
"""Independent float64 reference implementation of the TokenFormer language model.

TokenFormer: "Rethinking Transformer Scaling with Tokenized Model Parameters"
(arXiv 2410.23168), official code github.com/Haiyang-W/TokenFormer (GPT-NeoX based).

This module is used to produce golden test files for the C++ implementation; see
make_golden.py. Everything here is computed in float64 with plain torch ops, and
written to be read side by side with the C++ code rather than to be fast.

Semantics (matching the official megatron/model/tokenformer.py):

  Pattention(X) = Theta(X @ K^T) @ V
      K = key_param_tokens   [n, d_in]
      V = value_param_tokens [n, d_out]
      Theta acts on each row of the [.., n] score matrix:
        'l2_norm_gelu': s / ||s||_2 * sqrt(n), then exact (erf) GELU
        'gelu_l2_norm': exact GELU, then g / ||g||_2 * sqrt(n)
        'softmax'     : exp(s) / sum(exp(s)) * n      (= softmax(s) * n)

  Layer (pre-norm, sequential residual, non-parametric LayerNorm):
      h   = x + attn(LN(x))
      out = h + mlp(LN(h))
  attn: q/k/v = Pattention_{query,key,value}(x), split into heads, partial
        GPT-NeoX rotary (rotate-half) on the first rotary_ndims dims of each
        head of q and k, causal softmax attention with scale 1/sqrt(head_dim),
        heads merged, then Pattention_proj.
  mlp:  a single Pattention hidden -> hidden (no extra activation).

  Model: x = E[tokens]; layers; final affine LayerNorm; logits = x @ E^T (tied).

Run `python3 tokenformer_reference.py --self-test` to check the pieces against
alternative formulations.
"""

import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPE = torch.float64

NORM_ACTIVATION_TYPES = ("l2_norm_gelu", "gelu_l2_norm", "softmax")


# ----------------------------------------------------------------------------
# Pattention
# ----------------------------------------------------------------------------

def gelu_exact(x):
    """GELU with the exact erf formulation (torch.nn.functional.gelu default)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def theta(scores, norm_activation_type):
    """Modified-softmax nonlinearity of Pattention, applied along the last dim."""
    n = scores.shape[-1]
    if norm_activation_type == "l2_norm_gelu":
        norm = torch.sqrt((scores * scores).sum(dim=-1, keepdim=True))
        return gelu_exact(scores / norm * math.sqrt(n))
    if norm_activation_type == "gelu_l2_norm":
        g = gelu_exact(scores)
        norm = torch.sqrt((g * g).sum(dim=-1, keepdim=True))
        return g / norm * math.sqrt(n)
    if norm_activation_type == "softmax":
        # Official code: exp(s) / ||exp(s)||_1 * n, without max subtraction.
        # Mathematically identical to softmax(s) * n.
        e = torch.exp(scores)
        return e / e.sum(dim=-1, keepdim=True) * n
    raise ValueError("unknown norm_activation_type: %r" % (norm_activation_type,))


def pattention(x, key_param_tokens, value_param_tokens, norm_activation_type):
    """out = Theta(x @ K^T) @ V.  x [..., d_in], K [n, d_in], V [n, d_out]."""
    scores = x @ key_param_tokens.transpose(0, 1)
    return theta(scores, norm_activation_type) @ value_param_tokens


# ----------------------------------------------------------------------------
# Norms
# ----------------------------------------------------------------------------

def layer_norm(x, eps, weight=None, bias=None):
    """LayerNorm over the last dim with biased variance (as F.layer_norm)."""
    mean = x.mean(dim=-1, keepdim=True)
    xc = x - mean
    var = (xc * xc).mean(dim=-1, keepdim=True)
    y = xc / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


# ----------------------------------------------------------------------------
# Rotary position embedding (GPT-NeoX style, rotate-half)
# ----------------------------------------------------------------------------

def rotary_ndims_for(config):
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    return int(head_dim * config["rotary_pct"])


def rotary_cos_sin(seq_len, rotary_ndims, base=10000.0):
    """cos/sin tables [seq_len, rotary_ndims] for positions 0..seq_len-1."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_ndims, 2, dtype=DTYPE) / rotary_ndims))
    positions = torch.arange(seq_len, dtype=DTYPE)
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return torch.cos(emb), torch.sin(emb)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_partial_rotary(x, rotary_ndims, cos, sin):
    """x [B, T, H, D]; rotate the first rotary_ndims dims of each head.

    cos/sin are [T, rotary_ndims] and broadcast over batch and heads.
    """
    if rotary_ndims == 0:
        return x
    x_rot, x_pass = x[..., :rotary_ndims], x[..., rotary_ndims:]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    x_rot = x_rot * c + rotate_half(x_rot) * s
    return torch.cat((x_rot, x_pass), dim=-1)


# ----------------------------------------------------------------------------
# Attention and layer
# ----------------------------------------------------------------------------

def causal_attention(q, k, v):
    """Causal softmax attention. q, k, v [B, T, H, D] -> [B, T, H, D]."""
    B, T, H, D = q.shape
    qh = q.permute(0, 2, 1, 3)  # [B, H, T, D]
    kh = k.permute(0, 2, 1, 3)
    vh = v.permute(0, 2, 1, 3)
    scores = qh @ kh.transpose(-2, -1) / math.sqrt(D)  # [B, H, T, T]
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    ctx = probs @ vh  # [B, H, T, D]
    return ctx.permute(0, 2, 1, 3)


def split_heads(x, num_heads):
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads)


def merge_heads(x):
    B, T, H, D = x.shape
    return x.reshape(B, T, H * D)


def attention_block(x, p, config, attention_fn=causal_attention):
    """x [B, T, hidden] (already layer-normed). p: dict of this layer's tensors."""
    act = config["norm_activation_type"]
    heads = config["num_attention_heads"]
    q = pattention(x, p["attention.query.key_param_tokens"], p["attention.query.value_param_tokens"], act)
    k = pattention(x, p["attention.key.key_param_tokens"], p["attention.key.value_param_tokens"], act)
    v = pattention(x, p["attention.value.key_param_tokens"], p["attention.value.value_param_tokens"], act)
    q, k, v = split_heads(q, heads), split_heads(k, heads), split_heads(v, heads)
    rot = rotary_ndims_for(config)
    cos, sin = rotary_cos_sin(x.shape[1], rot)
    q = apply_partial_rotary(q, rot, cos, sin)
    k = apply_partial_rotary(k, rot, cos, sin)
    ctx = merge_heads(attention_fn(q, k, v))
    return pattention(ctx, p["attention.proj.key_param_tokens"], p["attention.proj.value_param_tokens"], act)


def mlp_block(x, p, config):
    return pattention(x, p["mlp.key_param_tokens"], p["mlp.value_param_tokens"], config["norm_activation_type"])


def tokenformer_layer(x, p, config, attention_fn=causal_attention):
    eps = config.get("layernorm_epsilon", 1e-5)
    h = x + attention_block(layer_norm(x, eps), p, config, attention_fn)
    return h + mlp_block(layer_norm(h, eps), p, config)


# ----------------------------------------------------------------------------
# State dict layout (official GPT-NeoX pipeline layout)
# ----------------------------------------------------------------------------

LAYER_PARAM_SUFFIXES = (
    "attention.query.key_param_tokens",
    "attention.query.value_param_tokens",
    "attention.key.key_param_tokens",
    "attention.key.value_param_tokens",
    "attention.value.key_param_tokens",
    "attention.value.value_param_tokens",
    "attention.proj.key_param_tokens",
    "attention.proj.value_param_tokens",
    "mlp.key_param_tokens",
    "mlp.value_param_tokens",
)

EMBEDDING_KEY = "sequential.0.word_embeddings.weight"


def layer_prefix(i):
    """Layer i (0-based) lives at pipeline index i + 2."""
    return "sequential.%d." % (i + 2)


def final_norm_keys(num_layers):
    base = "sequential.%d.norm." % (num_layers + 3)
    return base + "weight", base + "bias"


def expected_shapes(config, vocab_rows):
    """Ordered dict-like list of (key, shape) for a model with this config."""
    hidden = config["hidden_size"]
    slots = {
        "attention.query": config["qkv_slot_num"],
        "attention.key": config["qkv_slot_num"],
        "attention.value": config["qkv_slot_num"],
        "attention.proj": config["proj_slot_num"],
        "mlp": config["ffn_slot_num"],
    }
    out = [(EMBEDDING_KEY, [vocab_rows, hidden])]
    for i in range(config["num_layers"]):
        for suffix in LAYER_PARAM_SUFFIXES:
            module = suffix.rsplit(".", 1)[0]
            out.append((layer_prefix(i) + suffix, [slots[module], hidden]))
    w, b = final_norm_keys(config["num_layers"])
    out.append((w, [hidden]))
    out.append((b, [hidden]))
    return out


def layer_params(state_dict, i):
    prefix = layer_prefix(i)
    return {s: state_dict[prefix + s] for s in LAYER_PARAM_SUFFIXES}


def tokenformer_forward(state_dict, config, tokens, attention_fn=causal_attention, return_hidden=False):
    """tokens: int tensor [B, T]. Returns float64 logits [B, T, V_rows]."""
    sd = {k: v.to(DTYPE) for k, v in state_dict.items()}
    E = sd[EMBEDDING_KEY]
    x = E[tokens]
    for i in range(config["num_layers"]):
        x = tokenformer_layer(x, layer_params(sd, i), config, attention_fn)
    wk, bk = final_norm_keys(config["num_layers"])
    xn = layer_norm(x, config.get("layernorm_epsilon", 1e-5), sd[wk], sd[bk])
    logits = xn @ E.transpose(0, 1)
    if return_hidden:
        return logits, x
    return logits


# ----------------------------------------------------------------------------
# Storage dtypes and a minimal safetensors writer/reader
# ----------------------------------------------------------------------------

def f32_to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bit patterns, round-to-nearest-even."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
    bits = a.view(np.uint32).astype(np.uint64)
    lsb = (bits >> np.uint64(16)) & np.uint64(1)
    rounded = ((bits + np.uint64(0x7FFF) + lsb) >> np.uint64(16)) & np.uint64(0xFFFF)
    nan = np.isnan(a)
    # Keep NaNs NaN (quiet, sign preserved).
    rounded = np.where(nan, ((bits >> np.uint64(16)) | np.uint64(0x0040)) & np.uint64(0xFFFF), rounded)
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b):
    b = np.asarray(b, dtype=np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def to_storage(a, dtype):
    """Round a float array to a safetensors dtype.

    Returns (raw little-endian bytes, float64 numpy array of the stored values).
    """
    a32 = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        stored = a32.astype("<f4")
        return stored.tobytes(), stored.astype(np.float64)
    if dtype == "F16":
        stored = a32.astype("<f2")
        return stored.tobytes(), stored.astype(np.float64)
    if dtype == "BF16":
        bits = f32_to_bf16_bits(a32).astype("<u2")
        return bits.tobytes(), bf16_bits_to_f32(bits).astype(np.float64)
    raise ValueError("unsupported dtype %r" % (dtype,))


def safetensors_bytes(tensors):
    """tensors: list of (name, dtype_str, shape, raw_bytes) in file order."""
    header = {}
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def write_safetensors(path, tensors):
    with open(path, "wb") as f:
        f.write(safetensors_bytes(tensors))


_NP_DTYPES = {"F32": "<f4", "F16": "<f2"}


def read_safetensors(path_or_bytes):
    """Minimal reader (for the self-test): returns {name: float64 numpy array}."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        data = bytes(path_or_bytes)
    else:
        with open(path_or_bytes, "rb") as f:
            data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = body[b:e]
        if info["dtype"] == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2"))
        else:
            arr = np.frombuffer(raw, dtype=_NP_DTYPES[info["dtype"]])
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


# ----------------------------------------------------------------------------
# Self-test: compare against alternative formulations
# ----------------------------------------------------------------------------

def _attention_loop(q, k, v):
    """Causal attention one query position at a time, explicit softmax."""
    B, T, H, D = q.shape
    out = torch.zeros_like(q)
    for b in range(B):
        for h in range(H):
            for t in range(T):
                s = torch.stack([(q[b, t, h] * k[b, j, h]).sum() for j in range(t + 1)]) / math.sqrt(D)
                m = s.max()
                w = torch.exp(s - m)
                w = w / w.sum()
                acc = torch.zeros(D, dtype=q.dtype)
                for j in range(t + 1):
                    acc = acc + w[j] * v[b, j, h]
                out[b, t, h] = acc
    return out


def _theta_scalar(row, act):
    """Theta for one row using Python floats and math.erf."""
    n = len(row)
    gelu = lambda z: 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))
    if act == "l2_norm_gelu":
        nrm = math.sqrt(sum(z * z for z in row))
        return [gelu(z / nrm * math.sqrt(n)) for z in row]
    if act == "gelu_l2_norm":
        g = [gelu(z) for z in row]
        nrm = math.sqrt(sum(z * z for z in g))
        return [z / nrm * math.sqrt(n) for z in g]
    m = max(row)
    e = [math.exp(z - m) for z in row]
    s = sum(e)
    return [z / s * n for z in e]


def _rotary_pairwise(x, rotary_ndims, base=10000.0):
    """Rotary via explicit 2-D rotations of the (j, j + r/2) pairs."""
    B, T, H, D = x.shape
    out = x.clone()
    half = rotary_ndims // 2
    for t in range(T):
        for j in range(half):
            ang = t * (1.0 / base ** (2.0 * j / rotary_ndims))
            c, s = math.cos(ang), math.sin(ang)
            a = x[:, t, :, j]
            b = x[:, t, :, j + half]
            out[:, t, :, j] = a * c - b * s
            out[:, t, :, j + half] = b * c + a * s
    return out


def _random_model(config, vocab_rows, gen):
    sd = {}
    for name, shape in expected_shapes(config, vocab_rows):
        sd[name] = torch.randn(*shape, generator=gen, dtype=DTYPE) * 0.5
    wk, bk = final_norm_keys(config["num_layers"])
    sd[wk] = 1.0 + 0.2 * torch.randn(config["hidden_size"], generator=gen, dtype=DTYPE)
    return sd


def _check(name, got, want, tol):
    got = torch.as_tensor(got, dtype=DTYPE)
    want = torch.as_tensor(want, dtype=DTYPE)
    assert got.shape == want.shape, "%s: shape %s vs %s" % (name, tuple(got.shape), tuple(want.shape))
    err = (got - want).abs().max().item() if got.numel() else 0.0
    scale = max(1.0, want.abs().max().item() if want.numel() else 0.0)
    ok = err <= tol * scale
    print("  %-52s max|diff| = %.3e  %s" % (name, err, "ok" if ok else "FAIL"))
    if not ok:
        raise AssertionError(name)


def self_test():
    gen = torch.Generator().manual_seed(1234)
    print("TokenFormer reference self-test (float64)")

    # Theta vs torch.softmax / F.gelu / scalar formulas.
    s = torch.randn(5, 11, generator=gen, dtype=DTYPE) * 2.0
    _check("theta softmax == torch.softmax(s) * n", theta(s, "softmax"), torch.softmax(s, dim=-1) * 11, 1e-13)
    _check("gelu_exact == F.gelu", gelu_exact(s), F.gelu(s), 1e-14)
    for act in NORM_ACTIVATION_TYPES:
        want = [_theta_scalar(row, act) for row in s.tolist()]
        _check("theta %s vs scalar math form" % act, theta(s, act), want, 1e-13)
    g = F.gelu(s)
    _check("theta gelu_l2_norm vs torch.norm form", theta(s, "gelu_l2_norm"),
           g / torch.norm(g, p=2, dim=-1, keepdim=True) * math.sqrt(11), 1e-13)
    _check("theta l2_norm_gelu vs torch.norm form", theta(s, "l2_norm_gelu"),
           F.gelu(s / torch.norm(s, p=2, dim=-1, keepdim=True) * math.sqrt(11)), 1e-13)

    # Pattention vs a sum over parameter tokens.
    x = torch.randn(2, 3, 8, generator=gen, dtype=DTYPE)
    K = torch.randn(6, 8, generator=gen, dtype=DTYPE)
    V = torch.randn(6, 5, generator=gen, dtype=DTYPE)
    for act in NORM_ACTIVATION_TYPES:
        want = torch.zeros(2, 3, 5, dtype=DTYPE)
        for b in range(2):
            for t in range(3):
                row = [float((x[b, t] * K[j]).sum()) for j in range(6)]
                w = _theta_scalar(row, act)
                for j in range(6):
                    want[b, t] += w[j] * V[j]
        _check("pattention %s vs token loop" % act, pattention(x, K, V, act), want, 1e-13)

    # LayerNorm vs F.layer_norm.
    y = torch.randn(3, 4, 10, generator=gen, dtype=DTYPE) * 3.0 + 1.0
    w = torch.randn(10, generator=gen, dtype=DTYPE)
    bb = torch.randn(10, generator=gen, dtype=DTYPE)
    _check("layer_norm (non-param) vs F.layer_norm", layer_norm(y, 1e-5), F.layer_norm(y, (10,), eps=1e-5), 1e-13)
    _check("layer_norm (affine) vs F.layer_norm", layer_norm(y, 1e-5, w, bb),
           F.layer_norm(y, (10,), w, bb, eps=1e-5), 1e-13)

    # Rotary: rotate-half vs explicit pair rotations; relative-position property.
    q = torch.randn(2, 9, 3, 12, generator=gen, dtype=DTYPE)
    for rot in (4, 6, 12):
        cos, sin = rotary_cos_sin(9, rot)
        _check("rotary rotate-half vs pairwise (r=%d)" % rot,
               apply_partial_rotary(q, rot, cos, sin), _rotary_pairwise(q, rot), 1e-13)
    u = torch.randn(12, generator=gen, dtype=DTYPE)
    w2 = torch.randn(12, generator=gen, dtype=DTYPE)
    cos, sin = rotary_cos_sin(9, 12)
    ru = apply_partial_rotary(u.expand(1, 9, 1, 12), 12, cos, sin)[0, :, 0]
    rw = apply_partial_rotary(w2.expand(1, 9, 1, 12), 12, cos, sin)[0, :, 0]
    dots = [float((ru[m] * rw[m - 3]).sum()) for m in range(3, 9)]
    _check("rotary <q_m, k_{m-3}> independent of m", dots, [dots[0]] * len(dots), 1e-12)

    # Attention: masked matrix form vs explicit loop.
    k = torch.randn(2, 9, 3, 12, generator=gen, dtype=DTYPE)
    v = torch.randn(2, 9, 3, 12, generator=gen, dtype=DTYPE)
    _check("causal attention matrix vs loop", causal_attention(q, k, v), _attention_loop(q, k, v), 1e-13)

    # Full model: matrix attention vs loop attention, causality, and shapes.
    for act, rot_pct in (("l2_norm_gelu", 0.25), ("gelu_l2_norm", 0.5), ("softmax", 1.0)):
        cfg = {
            "num_layers": 2, "hidden_size": 24, "num_attention_heads": 3,
            "qkv_slot_num": 7, "proj_slot_num": 5, "ffn_slot_num": 11,
            "vocab_size": 30, "rotary_pct": rot_pct, "norm_activation_type": act,
            "layernorm_epsilon": 1e-5,
        }
        if act == "softmax":
            sd = _random_model(cfg, 32, gen)
            for name in list(sd):
                if name.endswith("key_param_tokens"):
                    sd[name] = sd[name] * 0.3
        else:
            sd = _random_model(cfg, 32, gen)
        toks = torch.randint(0, 30, (2, 7), generator=gen)
        logits = tokenformer_forward(sd, cfg, toks)
        assert tuple(logits.shape) == (2, 7, 32)
        _check("model %s: matrix vs loop attention" % act, logits,
               tokenformer_forward(sd, cfg, toks, attention_fn=_attention_loop), 1e-12)
        _check("model %s: prefix logits are causal" % act, tokenformer_forward(sd, cfg, toks[:, :4]),
               logits[:, :4], 1e-12)
        toks2 = toks.clone()
        toks2[:, 5] = (toks2[:, 5] + 1) % 30
        _check("model %s: future token change leaves past" % act,
               tokenformer_forward(sd, cfg, toks2)[:, :5], logits[:, :5], 1e-12)
        changed = (tokenformer_forward(sd, cfg, toks2)[:, 5:] - logits[:, 5:]).abs().max().item()
        assert changed > 1e-6, "changing a token did not change its logits"
        _, hidden = tokenformer_forward(sd, cfg, toks, return_hidden=True)
        wk, bk = final_norm_keys(cfg["num_layers"])
        _check("model %s: tied logits = F.linear(LN(h), E)" % act, logits,
               F.linear(F.layer_norm(hidden, (24,), sd[wk], sd[bk], eps=1e-5), sd[EMBEDDING_KEY]), 1e-12)

    # Storage conversions vs torch, and safetensors round trip.
    a = torch.randn(4097, generator=gen, dtype=torch.float32) * 3.0
    specials = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 1e-8, 3.0e38, float("inf"), -float("inf")],
                            dtype=torch.float32)
    # Exact ties: mantissa low halves 0x8000 with even/odd kept bit.
    ties = torch.from_numpy(np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x3F80FFFF, 0x3F807FFF],
                                     dtype=np.uint32).view(np.float32).copy())
    a = torch.cat((a, specials, ties))
    bits = f32_to_bf16_bits(a.numpy())
    want_bits = a.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(bits, want_bits), "bf16 rounding differs from torch"
    print("  %-52s %s" % ("bf16 RNE bits == torch.bfloat16", "ok"))
    with np.errstate(over="ignore"):  # 3e38 -> inf in f16 is expected
        _, f16 = to_storage(a.numpy(), "F16")
    assert np.array_equal(f16, a.to(torch.float16).to(DTYPE).numpy()), "f16 rounding differs from torch"
    print("  %-52s %s" % ("f16 rounding == torch.float16", "ok"))
    nan_bits = f32_to_bf16_bits(np.array([float("nan")], dtype=np.float32))
    assert np.isnan(bf16_bits_to_f32(nan_bits)).all()

    tensors = []
    expect = {}
    for i, dt in enumerate(("F32", "F16", "BF16")):
        arr = np.random.RandomState(i).randn(3, 5).astype(np.float32)
        raw, stored = to_storage(arr, dt)
        tensors.append(("t.%d" % i, dt, [3, 5], raw))
        expect["t.%d" % i] = stored
    blob = safetensors_bytes(tensors)
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0 and len(blob) == 8 + n + sum(len(t[3]) for t in tensors)
    back = read_safetensors(blob)
    assert set(back) == set(expect)
    for name in expect:
        assert np.array_equal(back[name], expect[name])
    print("  %-52s %s" % ("safetensors write/read round trip", "ok"))
    print("self-test passed")


if __name__ == "__main__":
    if "--self-test" in sys.argv[1:]:
        self_test()
    else:
        print(__doc__)
