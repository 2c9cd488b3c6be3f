#!/usr/bin/env python3
"""Independent float64 reference implementation of the FIT language model with Pattention projections.

FIT: "FIT: Far-reaching Interleaved Transformers" (arXiv 2305.12689), here with every linear
projection replaced by a TokenFormer Pattention (see tokenformer_reference.py, whose LayerNorm,
rotary and safetensors helpers this module reuses).

This module is used to produce golden test files for the C++ implementation; see
make_golden_fit.py. Everything is computed in float64 with plain torch ops, written to be read side
by side with the specification below rather than to be fast.

Config (JSON keys): architecture "fit"; num_layers = U, the number of units; hidden_size C;
num_attention_heads H; qkv_slot_num, proj_slot_num, ffn_slot_num; vocab_size V; rotary_pct;
norm_activation_type; layernorm_epsilon; rotary_emb_base; fit_layers; group_size n;
latents_per_group m; latent_size Cl; latent_attention_heads Hl; max_groups Gmax; causal.

fit_layers = "(a0)b0(a1)b1...(ak)": block i has a_i local layers then b_i global layers; the last
block "(ak)" has no global layers (ak >= 1), every other block has b_i >= 1 (a_i >= 0). Units in
execution order: for each block i, a_i x local, then (not for the last block) read, b_i x global,
write. "(1)1(1)1(1)" -> local read global write local read global write local (U = 9).

Pattention(X) = Theta(X @ K^T) @ V (K [tokens, d_in], V [tokens, d_out]), Theta as in
tokenformer_reference.py, except that an all-zero score row gives an all-zero Theta row with zero
gradient under the two L2 normalizations (the official code computes 0/0 = NaN there; this is the
convention of the C++ kernels, kernels/reference/pattention_norm.hpp). Such rows occur here: the zero
rows S[b, 0] of a causal write (LN(0) = 0) and the zero padding rows before the first local unit.

Forward for token ids [B, T]:
  1. x = E[tokens]; G = ceil(T / n) <= Gmax; x is padded with zero rows to Tp = G*n positions;
     group g = positions [g*n, (g+1)*n).
  2. z [B, G*m, Cl]: row g*m + i = fit.latents[g, i] (first G groups), for every sequence.
  3. Units (every LN non-parametric, eps = layernorm_epsilon; attention scale 1/sqrt(head_dim)):
     local : TokenFormer layer on x (h = x + attn(LN(x)); out = h + mlp(LN(h))), width C, H heads,
             GPT-NeoX rotary on the first int((C/H) * rotary_pct) dims of q and k at absolute
             positions 0..Tp-1 (base rotary_emb_base). Query t sees keys of its own group only;
             causal: keys u <= t; not causal: keys u < T (padding masked).
     read  : z = z + proj(attn(Q(LN(z)), K(LN(x)), V(LN(x)))); Q, proj Cl->Cl; K, V C->Cl; Hl heads,
             no rotary. Latents of group g see the n tokens of group g; not causal: padding masked.
     global: TokenFormer layer on z, width Cl, Hl heads, no rotary. causal: a latent of group g sees
             the latents of groups 0..g; not causal: all G*m latents.
     write : causal: S[b, g] = z[b, g-1] for g >= 1, S[b, 0] = m zero rows; not causal: S = z.
             x = x + proj(attn(Q(LN(x)), K(LN(S)), V(LN(S)))); Q, proj C->C; K, V Cl->C; H heads, no
             rotary. Tokens of group g see the m rows S[b, g].
     (q/k/v/Q/K/V use qkv_slot_num tokens, proj uses proj_slot_num, mlp ffn_slot_num.)
  4. y = final affine LN(x[:, :T]) (final_norm.weight/bias); logits = y @ E^T [B, T, V] (tied).

Parameters (safetensors keys): sequential.0.word_embeddings.weight [V, C]; fit.latents [Gmax, m, Cl];
fit.{j}.local.attention.{query,key,value,proj}.{key,value}_param_tokens, fit.{j}.local.mlp.*;
fit.{j}.global.attention.*, fit.{j}.global.mlp.*; fit.{j}.read.{query,key,value,proj}.*;
fit.{j}.write.{query,key,value,proj}.*; final_norm.weight, final_norm.bias [C].

Two formulations of every grouped attention are implemented: "dense" (one [Tq, Tk] boolean mask over
the whole sequence; used for the golden files) and "groups" (a loop over groups and, where causal,
over query positions, attending to explicit key slices without any mask).

Usage: OPENBLAS_NUM_THREADS=1 python3 fit_reference.py --self-test
"""

import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as tf  # noqa: E402

DTYPE = torch.float64

EMBEDDING_KEY = tf.EMBEDDING_KEY
LATENTS_KEY = "fit.latents"
FINAL_NORM_WEIGHT = "final_norm.weight"
FINAL_NORM_BIAS = "final_norm.bias"

PROJECTIONS = ("query", "key", "value", "proj")


# ----------------------------------------------------------------------------
# fit_layers
# ----------------------------------------------------------------------------

def parse_fit_layers(text):
    """'(a0)b0(a1)b1...(ak)' -> list of (kind, block), kind in local/read/global/write."""
    units = []
    i, block = 0, 0

    def number():
        nonlocal i
        j = i
        while i < len(text) and text[i].isdigit():
            i += 1
        if i == j:
            raise ValueError("fit_layers %r: expected a number at character %d" % (text, j))
        return int(text[j:i])

    if not text:
        raise ValueError("fit_layers is empty")
    while True:
        if i >= len(text) or text[i] != "(":
            raise ValueError("fit_layers %r: expected '(' at character %d" % (text, i))
        i += 1
        local = number()
        if i >= len(text) or text[i] != ")":
            raise ValueError("fit_layers %r: expected ')' at character %d" % (text, i))
        i += 1
        units += [("local", block)] * local
        if i == len(text):
            if local == 0:
                raise ValueError("fit_layers %r: the last block needs a local layer" % text)
            return units
        glob = number()
        if glob == 0:
            raise ValueError("fit_layers %r: every block but the last needs a global layer" % text)
        units += [("read", block)] + [("global", block)] * glob + [("write", block)]
        block += 1
        if i == len(text):
            raise ValueError("fit_layers %r: must end with a block of local layers '(k)'" % text)


def unit_kinds(config):
    return [kind for kind, _ in parse_fit_layers(config["fit_layers"])]


# ----------------------------------------------------------------------------
# Pattention (Theta with the zero-row convention)
# ----------------------------------------------------------------------------

def theta(scores, act):
    """Theta along the last dim. L2 normalizations: a row whose norm is 0 gives zeros (and zero
    gradient), as the C++ kernels; otherwise identical to tokenformer_reference.theta."""
    n = scores.shape[-1]
    if act == "l2_norm_gelu":
        ss = (scores * scores).sum(dim=-1, keepdim=True)
        zero = ss == 0
        scale = torch.where(zero, torch.zeros_like(ss), math.sqrt(n) / torch.sqrt(torch.where(zero, torch.ones_like(ss), ss)))
        return tf.gelu_exact(scores * scale)
    if act == "gelu_l2_norm":
        g = tf.gelu_exact(scores)
        ss = (g * g).sum(dim=-1, keepdim=True)
        zero = ss == 0
        scale = torch.where(zero, torch.zeros_like(ss), math.sqrt(n) / torch.sqrt(torch.where(zero, torch.ones_like(ss), ss)))
        return g * scale
    if act == "softmax":
        return tf.theta(scores, act)
    raise ValueError("unknown norm_activation_type: %r" % (act,))


def pattention(x, p, name, act):
    """Theta(x @ K^T) @ V with K = p[name + '.key_param_tokens'], V = p[name + '.value_param_tokens']."""
    K = p[name + ".key_param_tokens"]
    V = p[name + ".value_param_tokens"]
    return theta(x @ K.transpose(0, 1), act) @ V


# ----------------------------------------------------------------------------
# Attention: dense masks and the group-loop formulation
# ----------------------------------------------------------------------------

def local_mask(Tp, n, T, causal):
    """[Tp, Tp] bool, True where query t may see key u."""
    t = torch.arange(Tp)[:, None]
    u = torch.arange(Tp)[None, :]
    allowed = (t // n) == (u // n)
    if causal:
        return allowed & (u <= t)
    return allowed & (u < T)


def read_mask(G, n, m, T, causal):
    """[G*m, G*n] bool: latent row r (group r // m) may see token u."""
    r = torch.arange(G * m)[:, None]
    u = torch.arange(G * n)[None, :]
    allowed = (r // m) == (u // n)
    if causal:
        return allowed
    return allowed & (u < T)


def global_mask(G, m, causal):
    """[G*m, G*m] bool: latent r may see latent c."""
    r = torch.arange(G * m)[:, None]
    c = torch.arange(G * m)[None, :]
    if causal:
        return (c // m) <= (r // m)
    return torch.ones(G * m, G * m, dtype=torch.bool)


def write_mask(G, n, m):
    """[G*n, G*m] bool: token t may see row r of S."""
    t = torch.arange(G * n)[:, None]
    r = torch.arange(G * m)[None, :]
    return (t // n) == (r // m)


def masked_attention(q, k, v, allowed):
    """q [B, Tq, H, D], k/v [B, Tk, H, D], allowed [Tq, Tk] bool -> [B, Tq, H, D]."""
    D = q.shape[-1]
    qh, kh, vh = (a.permute(0, 2, 1, 3) for a in (q, k, v))
    scores = qh @ kh.transpose(-2, -1) / math.sqrt(D)  # [B, H, Tq, Tk]
    scores = scores.masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return (probs @ vh).permute(0, 2, 1, 3)


def attend(q, k, v):
    """Unmasked attention of q [B, tq, H, D] over k/v [B, tk, H, D], explicit max-shifted softmax."""
    D = q.shape[-1]
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(D)
    w = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    w = w / w.sum(dim=-1, keepdim=True)
    return torch.einsum("bhqk,bkhd->bqhd", w, v)


def local_attention_groups(q, k, v, n, T, causal):
    B, Tp, H, D = q.shape
    out = []
    for s in range(0, Tp, n):
        if causal:
            for t in range(s, s + n):
                out.append(attend(q[:, t:t + 1], k[:, s:t + 1], v[:, s:t + 1]))
        else:
            e = min(s + n, T)
            out.append(attend(q[:, s:s + n], k[:, s:e], v[:, s:e]))
    return torch.cat(out, dim=1)


def global_attention_groups(q, k, v, m, causal):
    B, R, H, D = q.shape
    if not causal:
        return attend(q, k, v)
    return torch.cat([attend(q[:, r:r + m], k[:, :r + m], v[:, :r + m]) for r in range(0, R, m)], dim=1)


# ----------------------------------------------------------------------------
# Units
# ----------------------------------------------------------------------------

def split_heads(x, heads):
    B, T, C = x.shape
    return x.reshape(B, T, heads, C // heads)


def tokenformer_layer(x, p, act, heads, rotary_ndims, rotary_base, eps, attention_fn):
    """Pre-norm TokenFormer layer; attention_fn(q, k, v) does the (masked) attention after rotary."""
    xn = tf.layer_norm(x, eps)
    q = split_heads(pattention(xn, p, "attention.query", act), heads)
    k = split_heads(pattention(xn, p, "attention.key", act), heads)
    v = split_heads(pattention(xn, p, "attention.value", act), heads)
    if rotary_ndims > 0:
        cos, sin = tf.rotary_cos_sin(x.shape[1], rotary_ndims, rotary_base)
        q = tf.apply_partial_rotary(q, rotary_ndims, cos, sin)
        k = tf.apply_partial_rotary(k, rotary_ndims, cos, sin)
    h = x + pattention(tf.merge_heads(attention_fn(q, k, v)), p, "attention.proj", act)
    return h + pattention(tf.layer_norm(h, eps), p, "mlp", act)


def local_unit(x, p, cfg, T, mode):
    n, causal = cfg["group_size"], cfg["causal"]
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    rot = int((C // H) * cfg["rotary_pct"])
    if mode == "dense":
        mask = local_mask(x.shape[1], n, T, causal)
        fn = lambda q, k, v: masked_attention(q, k, v, mask)  # noqa: E731
    else:
        fn = lambda q, k, v: local_attention_groups(q, k, v, n, T, causal)  # noqa: E731
    return tokenformer_layer(x, p, cfg["norm_activation_type"], H, rot, cfg.get("rotary_emb_base", 10000.0),
                             cfg["layernorm_epsilon"], fn)


def global_unit(z, p, cfg, mode):
    m, causal = cfg["latents_per_group"], cfg["causal"]
    G = z.shape[1] // m
    if mode == "dense":
        mask = global_mask(G, m, causal)
        fn = lambda q, k, v: masked_attention(q, k, v, mask)  # noqa: E731
    else:
        fn = lambda q, k, v: global_attention_groups(q, k, v, m, causal)  # noqa: E731
    return tokenformer_layer(z, p, cfg["norm_activation_type"], cfg["latent_attention_heads"], 0, 10000.0,
                             cfg["layernorm_epsilon"], fn)


def read_unit(z, x, p, cfg, T, mode):
    act, eps, Hl = cfg["norm_activation_type"], cfg["layernorm_epsilon"], cfg["latent_attention_heads"]
    n, m, causal = cfg["group_size"], cfg["latents_per_group"], cfg["causal"]
    G = z.shape[1] // m
    zn, xn = tf.layer_norm(z, eps), tf.layer_norm(x, eps)
    q = split_heads(pattention(zn, p, "query", act), Hl)
    k = split_heads(pattention(xn, p, "key", act), Hl)
    v = split_heads(pattention(xn, p, "value", act), Hl)
    if mode == "dense":
        ctx = masked_attention(q, k, v, read_mask(G, n, m, T, causal))
    else:
        parts = []
        for g in range(G):
            s = g * n
            e = s + n if causal else min(s + n, T)
            parts.append(attend(q[:, g * m:(g + 1) * m], k[:, s:e], v[:, s:e]))
        ctx = torch.cat(parts, dim=1)
    return z + pattention(tf.merge_heads(ctx), p, "proj", act)


def write_unit(x, z, p, cfg, mode):
    act, eps, H = cfg["norm_activation_type"], cfg["layernorm_epsilon"], cfg["num_attention_heads"]
    n, m, causal = cfg["group_size"], cfg["latents_per_group"], cfg["causal"]
    B, R, Cl = z.shape
    G = R // m
    q = split_heads(pattention(tf.layer_norm(x, eps), p, "query", act), H)
    if mode == "dense":
        S = torch.cat((torch.zeros(B, m, Cl, dtype=z.dtype), z[:, :R - m]), dim=1) if causal else z
        Sn = tf.layer_norm(S, eps)
        k = split_heads(pattention(Sn, p, "key", act), H)
        v = split_heads(pattention(Sn, p, "value", act), H)
        ctx = masked_attention(q, k, v, write_mask(G, n, m))
    else:
        parts = []
        for g in range(G):
            if causal:
                src = z[:, (g - 1) * m:g * m] if g >= 1 else torch.zeros(B, m, Cl, dtype=z.dtype)
            else:
                src = z[:, g * m:(g + 1) * m]
            srcn = tf.layer_norm(src, eps)
            kg = split_heads(pattention(srcn, p, "key", act), H)
            vg = split_heads(pattention(srcn, p, "value", act), H)
            parts.append(attend(q[:, g * n:(g + 1) * n], kg, vg))
        ctx = torch.cat(parts, dim=1)
    return x + pattention(tf.merge_heads(ctx), p, "proj", act)


# ----------------------------------------------------------------------------
# Parameters and model
# ----------------------------------------------------------------------------

def unit_shapes(kind, cfg):
    """[(suffix, shape)] of one unit, in file order."""
    C, Cl = cfg["hidden_size"], cfg["latent_size"]
    qkv, proj, ffn = cfg["qkv_slot_num"], cfg["proj_slot_num"], cfg["ffn_slot_num"]
    if kind in ("local", "global"):
        w = C if kind == "local" else Cl
        dims = {"query": (qkv, w, w), "key": (qkv, w, w), "value": (qkv, w, w), "proj": (proj, w, w)}
        prefix = "attention."
    elif kind == "read":
        dims = {"query": (qkv, Cl, Cl), "key": (qkv, C, Cl), "value": (qkv, C, Cl), "proj": (proj, Cl, Cl)}
        prefix = ""
    elif kind == "write":
        dims = {"query": (qkv, C, C), "key": (qkv, Cl, C), "value": (qkv, Cl, C), "proj": (proj, C, C)}
        prefix = ""
    else:
        raise ValueError(kind)
    out = []
    for name in PROJECTIONS:
        tokens, d_in, d_out = dims[name]
        out.append((prefix + name + ".key_param_tokens", [tokens, d_in]))
        out.append((prefix + name + ".value_param_tokens", [tokens, d_out]))
    if kind in ("local", "global"):
        out.append(("mlp.key_param_tokens", [ffn, w]))
        out.append(("mlp.value_param_tokens", [ffn, w]))
    return out


def unit_prefix(j, kind):
    return "fit.%d.%s." % (j, kind)


def expected_shapes(cfg):
    """[(key, shape)] of every parameter, in file order."""
    C = cfg["hidden_size"]
    out = [(EMBEDDING_KEY, [cfg["vocab_size"], C]),
           (LATENTS_KEY, [cfg["max_groups"], cfg["latents_per_group"], cfg["latent_size"]])]
    for j, kind in enumerate(unit_kinds(cfg)):
        out += [(unit_prefix(j, kind) + s, shape) for s, shape in unit_shapes(kind, cfg)]
    out += [(FINAL_NORM_WEIGHT, [C]), (FINAL_NORM_BIAS, [C])]
    return out


def check_config(cfg):
    units = unit_kinds(cfg)
    assert cfg["num_layers"] == len(units), "num_layers must be the number of units"
    assert cfg["hidden_size"] % cfg["num_attention_heads"] == 0
    assert cfg["latent_size"] % cfg["latent_attention_heads"] == 0
    rot = int((cfg["hidden_size"] // cfg["num_attention_heads"]) * cfg["rotary_pct"])
    assert rot % 2 == 0, "rotary dims must be even"


def fit_forward(sd, cfg, tokens, mode="dense", pad_fill=None, return_hidden=False):
    """tokens [B, T] -> float64 logits [B, T, V].

    mode: 'dense' (masks) or 'groups' (loops). pad_fill: optional [B, Tp - T, C] values to put in the
    padding rows instead of zeros (for the padding tests).
    """
    check_config(cfg)
    sd = {k: v.to(DTYPE) for k, v in sd.items()}
    n, m, Cl = cfg["group_size"], cfg["latents_per_group"], cfg["latent_size"]
    E = sd[EMBEDDING_KEY]
    B, T = tokens.shape
    G = -(-T // n)
    assert G <= cfg["max_groups"], "T = %d needs %d groups > max_groups %d" % (T, G, cfg["max_groups"])
    Tp = G * n
    x = E[tokens]
    pad = torch.zeros(B, Tp - T, x.shape[-1], dtype=DTYPE) if pad_fill is None else pad_fill.to(DTYPE)
    x = torch.cat((x, pad), dim=1)
    z = sd[LATENTS_KEY][:G].reshape(1, G * m, Cl).expand(B, G * m, Cl)
    for j, kind in enumerate(unit_kinds(cfg)):
        prefix = unit_prefix(j, kind)
        p = {s: sd[prefix + s] for s, _ in unit_shapes(kind, cfg)}
        if kind == "local":
            x = local_unit(x, p, cfg, T, mode)
        elif kind == "global":
            z = global_unit(z, p, cfg, mode)
        elif kind == "read":
            z = read_unit(z, x, p, cfg, T, mode)
        else:
            x = write_unit(x, z, p, cfg, mode)
    hidden = x[:, :T]
    y = tf.layer_norm(hidden, cfg["layernorm_epsilon"], sd[FINAL_NORM_WEIGHT], sd[FINAL_NORM_BIAS])
    logits = y @ E.transpose(0, 1)
    if return_hidden:
        return logits, hidden
    return logits


def next_token_loss(logits, tokens):
    """Mean over b and t in 0..T-2 of CE(logits[b, t, :], tokens[b, t+1])."""
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))


# ----------------------------------------------------------------------------
# Checks (shared with make_golden_fit.py)
# ----------------------------------------------------------------------------

def _report(name, err, tol, exact=False):
    ok = err == 0.0 if exact else err <= tol
    print("  %-60s max|diff| = %.3e  %s" % (name, err, "ok" if ok else "FAIL"))
    if not ok:
        raise AssertionError(name)


def maxdiff(a, b):
    return (a - b).abs().max().item() if a.numel() else 0.0


def check_dense_vs_groups(sd, cfg, tokens, label):
    a = fit_forward(sd, cfg, tokens, mode="dense")
    b = fit_forward(sd, cfg, tokens, mode="groups")
    _report("%s: dense masks vs group loops (logits)" % label, maxdiff(a, b), 1e-12)
    return a


def check_causality(sd, cfg, tokens, positions, label, vocab):
    """AR: changing token t changes no logit at positions < t (exactly) and changes position t."""
    base = fit_forward(sd, cfg, tokens)
    worst = 0.0
    for t in positions:
        t2 = tokens.clone()
        t2[:, t] = (t2[:, t] + 1) % vocab
        other = fit_forward(sd, cfg, t2)
        worst = max(worst, maxdiff(other[:, :t], base[:, :t]))
        assert maxdiff(other[:, t:], base[:, t:]) > 1e-6, "changing token %d changed nothing after it" % t
    _report("%s: token t changes no logit < t, t in %s" % (label, list(positions)), worst, 0.0, exact=True)
    # Prefix consistency: a prefix run gives the same logits as the full run.
    worst = 0.0
    for t in positions:
        if t >= 1:
            worst = max(worst, maxdiff(fit_forward(sd, cfg, tokens[:, :t]), base[:, :t]))
    _report("%s: logits of prefixes [:t] == full logits [:t]" % label, worst, 1e-12)


def check_padding(sd, cfg, tokens, gen, label):
    """Padding rows filled with random values instead of zeros change no logit."""
    B, T = tokens.shape
    n, C = cfg["group_size"], cfg["hidden_size"]
    Tp = -(-T // n) * n
    assert Tp > T, "needs a sequence with padding"
    base = fit_forward(sd, cfg, tokens)
    worst = 0.0
    for mode in ("dense", "groups"):
        for _ in range(2):
            fill = torch.randn(B, Tp - T, C, generator=gen, dtype=DTYPE) * 3.0
            worst = max(worst, maxdiff(fit_forward(sd, cfg, tokens, mode=mode, pad_fill=fill), base))
    _report("%s: random padding rows change no logit (T=%d, Tp=%d)" % (label, T, Tp), worst, 1e-12)


def check_not_causal(sd, cfg, tokens, vocab, label):
    """Encoder sanity: changing the last token changes logits at earlier positions of its group."""
    base = fit_forward(sd, cfg, tokens)
    t2 = tokens.clone()
    t2[:, -1] = (t2[:, -1] + 1) % vocab
    d = maxdiff(fit_forward(sd, cfg, t2)[:, :-1], base[:, :-1])
    assert d > 1e-6, "encoder: a later token did not change earlier logits"
    print("  %-60s max|diff| = %.3e  ok" % ("%s: encoder is bidirectional (last token moves earlier)" % label, d))


def finite_difference_check(params, order, cfg, tokens, names, gen, samples=3, step=1e-5, tol=1e-6):
    """Autograd vs float64 central differences on sampled entries of the named tensors.

    params: {name: float64 leaf tensor}. Returns the worst relative error."""
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    loss = next_token_loss(fit_forward(params, cfg, tokens), tokens)
    loss.backward()
    grads = {k: params[k].grad.detach().clone() for k in order}
    for p in params.values():
        p.requires_grad_(False)
    worst = 0.0
    with torch.no_grad():
        for name in names:
            flat = params[name].view(-1)
            g = grads[name].view(-1)
            idx = torch.randint(0, flat.numel(), (samples,), generator=gen).tolist()
            idx.append(int(g.abs().argmax()))
            for i in idx:
                orig = flat[i].item()
                flat[i] = orig + step
                lp = next_token_loss(fit_forward(params, cfg, tokens), tokens).item()
                flat[i] = orig - step
                lm = next_token_loss(fit_forward(params, cfg, tokens), tokens).item()
                flat[i] = orig
                fd = (lp - lm) / (2 * step)
                ad = g[i].item()
                scale = max(1e-3, abs(ad), g.abs().max().item())
                err = abs(fd - ad) / scale
                worst = max(worst, err)
                assert err < tol, "%s[%d]: autograd %.10e vs fd %.10e" % (name, i, ad, fd)
    return loss.item(), grads, worst


# ----------------------------------------------------------------------------
# Self-test
# ----------------------------------------------------------------------------

def _config(**kw):
    cfg = dict(architecture="fit", hidden_size=16, num_attention_heads=2, qkv_slot_num=6, proj_slot_num=5,
               ffn_slot_num=7, vocab_size=23, rotary_pct=0.5, norm_activation_type="l2_norm_gelu",
               layernorm_epsilon=1e-5, rotary_emb_base=10000.0, fit_layers="(1)1(1)", group_size=4,
               latents_per_group=2, latent_size=8, latent_attention_heads=2, max_groups=5, causal=True)
    cfg.update(kw)
    cfg["num_layers"] = len(parse_fit_layers(cfg["fit_layers"]))
    return cfg


def random_model(cfg, gen, key_std=0.5, value_std=0.2):
    sd = {}
    for name, shape in expected_shapes(cfg):
        z = torch.randn(*shape, generator=gen, dtype=DTYPE)
        if name.endswith("key_param_tokens"):
            sd[name] = z * key_std
        elif name.endswith("value_param_tokens"):
            sd[name] = z * value_std
        elif name == FINAL_NORM_WEIGHT:
            sd[name] = 1.0 + 0.2 * z
        else:
            sd[name] = 0.5 * z if name != FINAL_NORM_BIAS else 0.2 * z
    return sd


def _dense_mask_tests():
    # Masks vs their definitions written out element by element.
    n, m, G, T = 3, 2, 3, 8
    Tp = G * n
    for causal in (True, False):
        lm = local_mask(Tp, n, T, causal)
        rm = read_mask(G, n, m, T, causal)
        gm = global_mask(G, m, causal)
        for t in range(Tp):
            for u in range(Tp):
                want = (t // n == u // n) and ((u <= t) if causal else (u < T))
                assert bool(lm[t, u]) == want
        for r in range(G * m):
            for u in range(Tp):
                assert bool(rm[r, u]) == ((r // m == u // n) and (causal or u < T))
            for c in range(G * m):
                assert bool(gm[r, c]) == ((c // m <= r // m) if causal else True)
    wm = write_mask(G, n, m)
    for t in range(Tp):
        for r in range(G * m):
            assert bool(wm[t, r]) == (t // n == r // m)
    print("  %-60s ok" % "dense masks == their element-wise definitions")


def self_test():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(4321)
    print("FIT reference self-test (float64)")

    # fit_layers parsing.
    kinds = lambda s: [k for k, _ in parse_fit_layers(s)]  # noqa: E731
    assert kinds("(1)1(1)1(1)") == ["local", "read", "global", "write"] * 2 + ["local"]
    assert kinds("(2)2(1)") == ["local", "local", "read", "global", "global", "write", "local"]
    assert kinds("(1)2(2)") == ["local", "read", "global", "global", "write", "local", "local"]
    assert kinds("(0)1(3)") == ["read", "global", "write", "local", "local", "local"]
    assert kinds("(2)") == ["local", "local"]
    for bad in ("", "(0)", "(1)0(1)", "(1)1", "1(1)", "(1)1(1", "(a)"):
        try:
            parse_fit_layers(bad)
        except ValueError:
            continue
        raise AssertionError("accepted fit_layers %r" % bad)
    print("  %-60s ok" % "fit_layers parsing")

    # Theta: identical to tokenformer_reference.theta away from zero rows; zero rows -> zeros, zero grad.
    s = torch.randn(5, 7, generator=gen, dtype=DTYPE)
    for act in tf.NORM_ACTIVATION_TYPES:
        _report("theta %s == tokenformer_reference.theta" % act, maxdiff(theta(s, act), tf.theta(s, act)), 1e-15)
        z = torch.zeros(2, 7, dtype=DTYPE, requires_grad=True)
        out = theta(z, act)
        want = torch.ones(2, 7, dtype=DTYPE) if act == "softmax" else torch.zeros(2, 7, dtype=DTYPE)
        assert torch.equal(out.detach(), want), act
        out.sum().backward()
        assert torch.isfinite(z.grad).all(), act
        if act != "softmax":
            assert torch.equal(z.grad, torch.zeros_like(z.grad)), act
    print("  %-60s ok" % "theta of a zero row: zeros (L2) / ones (softmax), finite grad")

    _dense_mask_tests()

    # Masked attention vs group loops on random q, k, v, for every attention of the model.
    n, m, G, T, H, D = 3, 2, 4, 10, 2, 5
    Tp = G * n
    q = torch.randn(2, Tp, H, D, generator=gen, dtype=DTYPE)
    k = torch.randn(2, Tp, H, D, generator=gen, dtype=DTYPE)
    v = torch.randn(2, Tp, H, D, generator=gen, dtype=DTYPE)
    ql = torch.randn(2, G * m, H, D, generator=gen, dtype=DTYPE)
    kl = torch.randn(2, G * m, H, D, generator=gen, dtype=DTYPE)
    vl = torch.randn(2, G * m, H, D, generator=gen, dtype=DTYPE)
    for causal in (True, False):
        tag = "causal" if causal else "encoder"
        _report("local attention (%s): dense mask vs group loop" % tag,
                maxdiff(masked_attention(q, k, v, local_mask(Tp, n, T, causal)),
                        local_attention_groups(q, k, v, n, T, causal)), 1e-12)
        _report("global attention (%s): dense mask vs group loop" % tag,
                maxdiff(masked_attention(ql, kl, vl, global_mask(G, m, causal)),
                        global_attention_groups(ql, kl, vl, m, causal)), 1e-12)
    # Single-group causal local attention == tokenformer_reference.causal_attention.
    _report("local attention, one group == tf.causal_attention",
            maxdiff(masked_attention(q, k, v, local_mask(Tp, Tp, Tp, True)), tf.causal_attention(q, k, v)), 1e-12)

    # Whole model: dense vs groups, causality, padding, for several configs.
    configs = [
        ("ar l2_norm_gelu (1)1(1)1(1)", _config(fit_layers="(1)1(1)1(1)")),
        ("ar gelu_l2_norm (2)2(1)", _config(fit_layers="(2)2(1)", norm_activation_type="gelu_l2_norm")),
        ("ar softmax (0)1(1) n=3 m=3", _config(fit_layers="(0)1(1)", norm_activation_type="softmax",
                                                group_size=3, latents_per_group=3, latent_size=12,
                                                latent_attention_heads=3, rotary_pct=1.0)),
        ("enc l2_norm_gelu (1)1(1)1(1)", _config(fit_layers="(1)1(1)1(1)", causal=False)),
        ("enc softmax (2)2(1) n=3", _config(fit_layers="(2)2(1)", causal=False, norm_activation_type="softmax",
                                            group_size=3, max_groups=6)),
    ]
    for label, cfg in configs:
        sd = random_model(cfg, gen, key_std=0.25 if cfg["norm_activation_type"] == "softmax" else 0.5)
        n = cfg["group_size"]
        for T in (3 * n, 3 * n + 2):
            toks = torch.randint(0, cfg["vocab_size"], (2, T), generator=gen)
            lab = "%s T=%d" % (label, T)
            logits = check_dense_vs_groups(sd, cfg, toks, lab)
            assert torch.isfinite(logits).all()
            if cfg["causal"]:
                check_causality(sd, cfg, toks, sorted({1, n - 1, n, n + 1, 2 * n, T - 1}), lab, cfg["vocab_size"])
            else:
                check_not_causal(sd, cfg, toks, cfg["vocab_size"], lab)
            if T % n:
                check_padding(sd, cfg, toks, gen, lab)

    # A FIT model with local layers only and one group is the plain TokenFormer model.
    cfg = _config(fit_layers="(2)", group_size=16, max_groups=1, rotary_pct=0.25, hidden_size=24,
                  num_attention_heads=3, qkv_slot_num=7, proj_slot_num=5, ffn_slot_num=11)
    for act in tf.NORM_ACTIVATION_TYPES:
        cfg["norm_activation_type"] = act
        sd = random_model(cfg, gen, key_std=0.25 if act == "softmax" else 0.5)
        tsd = {EMBEDDING_KEY: sd[EMBEDDING_KEY]}
        for i in range(2):
            for s, _ in unit_shapes("local", cfg):
                tsd[tf.layer_prefix(i) + s] = sd[unit_prefix(i, "local") + s]
        wk, bk = tf.final_norm_keys(2)
        tsd[wk], tsd[bk] = sd[FINAL_NORM_WEIGHT], sd[FINAL_NORM_BIAS]
        toks = torch.randint(0, cfg["vocab_size"], (2, 13), generator=gen)
        _report("'(2)', one group == tokenformer_forward (%s)" % act,
                maxdiff(fit_forward(sd, cfg, toks), tf.tokenformer_forward(tsd, cfg, toks)), 1e-12)

    # Gradients vs central finite differences.
    for label, cfg in (configs[0], configs[2], configs[3]):
        sd = random_model(cfg, gen, key_std=0.25 if cfg["norm_activation_type"] == "softmax" else 0.5)
        order = [k for k, _ in expected_shapes(cfg)]
        units = unit_kinds(cfg)
        j_read, j_write = units.index("read"), units.index("write")
        j_glob, j_loc = units.index("global"), (units.index("local") if "local" in units else None)
        names = [LATENTS_KEY, EMBEDDING_KEY, FINAL_NORM_WEIGHT,
                 "fit.%d.read.key.key_param_tokens" % j_read,
                 "fit.%d.read.query.value_param_tokens" % j_read,
                 "fit.%d.write.value.value_param_tokens" % j_write,
                 "fit.%d.write.key.key_param_tokens" % j_write,
                 "fit.%d.global.mlp.key_param_tokens" % j_glob,
                 "fit.%d.global.mlp.value_param_tokens" % j_glob,
                 "fit.%d.global.attention.key.key_param_tokens" % j_glob]
        if j_loc is not None:
            names.append("fit.%d.local.attention.query.key_param_tokens" % j_loc)
        toks = torch.randint(0, cfg["vocab_size"], (2, 3 * cfg["group_size"] + 1), generator=gen)
        params = {k: v.clone() for k, v in sd.items()}
        _, _, worst = finite_difference_check(params, order, cfg, toks, names, gen, samples=2)
        _report("%s: autograd vs central differences (rel, %d tensors)" % (label, len(names)), worst, 1e-6)

    print("self-test passed")


if __name__ == "__main__":
    if "--self-test" in sys.argv[1:]:
        self_test()
    else:
        print(__doc__)
