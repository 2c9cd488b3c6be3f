#!/usr/bin/env python3
"""Independent float64 reference of a plain pre-norm GPT-NeoX-style Transformer language model.

This is the "transformer" architecture of the library: the same model skeleton as the TokenFormer
of tokenformer_reference.py (embedding, pre-norm sequential-residual layers, final affine LayerNorm,
tied output head, partial GPT-NeoX rotary, causal softmax attention) with every Pattention replaced
by an ordinary linear layer, affine LayerNorms inside the layers and a GELU MLP. The rotary, attention,
head-splitting, LayerNorm, GELU and safetensors helpers are imported from tokenformer_reference.py,
so the conventions are identical. Used by make_golden_transformer.py to produce golden test files;
everything is float64 with plain torch ops, written to be read side by side with the C++ code.

Semantics (Linear weights in PyTorch layout [out, in]; LN = LayerNorm over the last dim, biased
variance, eps = config layernorm_epsilon):

  x = E[tokens]                                   E = sequential.0.word_embeddings.weight [V, C]
  layer i (keys under "sequential.{i+2}."):
      h   = x + attn(LN(x; input_layernorm.weight, input_layernorm.bias))
      out = h + mlp(LN(h; post_attention_layernorm.weight, post_attention_layernorm.bias))
  attn(a): q = a @ Wq^T + bq   (attention.query.weight [C, C], attention.query.bias [C]),
           k, v likewise (attention.key.*, attention.value.*);
           split into H = num_attention_heads heads of D = C / H;
           GPT-NeoX rotate-half rotary on the first rotary_ndims = int(D * rotary_pct) dims of each
           head of q and k, positions 0..T-1, base rotary_emb_base;
           causal softmax attention with scale 1/sqrt(D); heads merged;
           out = ctx @ Wp^T + bp (attention.proj.weight [C, C], attention.proj.bias [C]).
  mlp(a):  W2 @ gelu_exact(W1 @ a + b1) + b2
           (mlp.dense_h_to_4h.weight [I, C], .bias [I]; mlp.dense_4h_to_h.weight [C, I], .bias [C];
            I = intermediate_size, gelu_exact = erf GELU)
  final:   xn = LN(x; sequential.{L+3}.norm.weight, sequential.{L+3}.norm.bias); logits = xn @ E^T.

expected_shapes(config) lists (key, shape) in file order: the embeddings; per layer
input_layernorm.{weight,bias}, attention.{query,key,value,proj}.{weight,bias},
post_attention_layernorm.{weight,bias}, mlp.dense_h_to_4h.{weight,bias}, mlp.dense_4h_to_h.{weight,bias};
then the final norm weight and bias.

Run `python3 transformer_reference.py --self-test` to check the model against an alternative
formulation (torch.nn.Linear / nn.LayerNorm / nn.GELU modules, per-head loop attention with an
explicit softmax, rotary as explicit 2-D pair rotations), causality, prefix consistency, the use of
rotary_pct and rotary_emb_base, and autograd against central differences.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as tf  # noqa: E402
from tokenformer_reference import (  # noqa: E402,F401  (re-exported for make_golden_transformer.py)
    apply_partial_rotary,
    causal_attention,
    gelu_exact,
    layer_norm,
    merge_heads,
    read_safetensors,
    rotary_cos_sin,
    rotary_ndims_for,
    split_heads,
    write_safetensors,
)

DTYPE = torch.float64

EMBEDDING_KEY = tf.EMBEDDING_KEY  # "sequential.0.word_embeddings.weight"

CONFIG_KEYS = (
    "architecture", "num_layers", "hidden_size", "num_attention_heads", "intermediate_size",
    "vocab_size", "rotary_pct", "layernorm_epsilon", "rotary_emb_base",
)

# Per-layer tensors, in file order. "C" = hidden_size, "I" = intermediate_size.
LAYER_PARAMS = (
    ("input_layernorm.weight", ("C",)),
    ("input_layernorm.bias", ("C",)),
    ("attention.query.weight", ("C", "C")),
    ("attention.query.bias", ("C",)),
    ("attention.key.weight", ("C", "C")),
    ("attention.key.bias", ("C",)),
    ("attention.value.weight", ("C", "C")),
    ("attention.value.bias", ("C",)),
    ("attention.proj.weight", ("C", "C")),
    ("attention.proj.bias", ("C",)),
    ("post_attention_layernorm.weight", ("C",)),
    ("post_attention_layernorm.bias", ("C",)),
    ("mlp.dense_h_to_4h.weight", ("I", "C")),
    ("mlp.dense_h_to_4h.bias", ("I",)),
    ("mlp.dense_4h_to_h.weight", ("C", "I")),
    ("mlp.dense_4h_to_h.bias", ("C",)),
)
LAYER_PARAM_SUFFIXES = tuple(name for name, _ in LAYER_PARAMS)


def layer_prefix(i):
    """Layer i (0-based) lives at pipeline index i + 2 (as in tokenformer_reference)."""
    return tf.layer_prefix(i)


def final_norm_keys(num_layers):
    """("sequential.{L+3}.norm.weight", "sequential.{L+3}.norm.bias")."""
    return tf.final_norm_keys(num_layers)


def expected_shapes(config):
    """List of (key, shape) in file order for a model with this config."""
    dims = {"C": config["hidden_size"], "I": config["intermediate_size"]}
    out = [(EMBEDDING_KEY, [config["vocab_size"], config["hidden_size"]])]
    for i in range(config["num_layers"]):
        for suffix, shape in LAYER_PARAMS:
            out.append((layer_prefix(i) + suffix, [dims[d] for d in shape]))
    w, b = final_norm_keys(config["num_layers"])
    out.append((w, [config["hidden_size"]]))
    out.append((b, [config["hidden_size"]]))
    return out


def check_config(config):
    assert config.get("architecture", "transformer") == "transformer", config.get("architecture")
    C, H = config["hidden_size"], config["num_attention_heads"]
    assert C > 0 and H > 0 and C % H == 0, "hidden_size must be a multiple of num_attention_heads"
    assert config["intermediate_size"] > 0 and config["vocab_size"] > 0 and config["num_layers"] >= 0
    assert 0.0 <= config["rotary_pct"] <= 1.0
    assert rotary_ndims_for(config) % 2 == 0, "rotary_ndims must be even"


def rotary_base(config):
    return float(config.get("rotary_emb_base", 10000.0))


# ----------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------

def linear(x, weight, bias):
    """x @ weight^T + bias, weight [out, in]."""
    return x @ weight.transpose(0, 1) + bias


def attention_block(a, p, config, attention_fn=causal_attention):
    """a [B, T, C] (already layer-normed). p: this layer's tensors by suffix."""
    heads = config["num_attention_heads"]
    q = split_heads(linear(a, p["attention.query.weight"], p["attention.query.bias"]), heads)
    k = split_heads(linear(a, p["attention.key.weight"], p["attention.key.bias"]), heads)
    v = split_heads(linear(a, p["attention.value.weight"], p["attention.value.bias"]), heads)
    rot = rotary_ndims_for(config)
    cos, sin = rotary_cos_sin(a.shape[1], rot, rotary_base(config))
    q = apply_partial_rotary(q, rot, cos, sin)
    k = apply_partial_rotary(k, rot, cos, sin)
    ctx = merge_heads(attention_fn(q, k, v))
    return linear(ctx, p["attention.proj.weight"], p["attention.proj.bias"])


def mlp_block(a, p):
    hidden = gelu_exact(linear(a, p["mlp.dense_h_to_4h.weight"], p["mlp.dense_h_to_4h.bias"]))
    return linear(hidden, p["mlp.dense_4h_to_h.weight"], p["mlp.dense_4h_to_h.bias"])


def transformer_layer(x, p, config, attention_fn=causal_attention):
    eps = config.get("layernorm_epsilon", 1e-5)
    h = x + attention_block(layer_norm(x, eps, p["input_layernorm.weight"], p["input_layernorm.bias"]),
                            p, config, attention_fn)
    return h + mlp_block(layer_norm(h, eps, p["post_attention_layernorm.weight"],
                                    p["post_attention_layernorm.bias"]), p)


def layer_params(state_dict, i):
    prefix = layer_prefix(i)
    return {s: state_dict[prefix + s] for s in LAYER_PARAM_SUFFIXES}


def transformer_forward(state_dict, config, tokens, attention_fn=causal_attention, return_hidden=False):
    """tokens: int tensor [B, T]. Returns float64 logits [B, T, V].

    Tensors already in float64 are used as they are (so autograd reaches them)."""
    sd = {k: v if v.dtype == DTYPE else v.to(DTYPE) for k, v in state_dict.items()}
    E = sd[EMBEDDING_KEY]
    x = E[tokens]
    for i in range(config["num_layers"]):
        x = transformer_layer(x, layer_params(sd, i), config, attention_fn)
    wk, bk = final_norm_keys(config["num_layers"])
    xn = layer_norm(x, config.get("layernorm_epsilon", 1e-5), sd[wk], sd[bk])
    logits = xn @ E.transpose(0, 1)
    if return_hidden:
        return logits, x
    return logits


def next_token_loss(logits, tokens):
    """Mean over b and t in 0..T-2 of CE(logits[b, t, :], tokens[b, t+1])."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1))


# ----------------------------------------------------------------------------
# Checks (shared with make_golden_transformer.py)
# ----------------------------------------------------------------------------

def _report(name, err, tol, exact=False):
    ok = err == 0.0 if exact else err <= tol
    print("  %-64s max|diff| = %.3e  %s" % (name, err, "ok" if ok else "FAIL"))
    if not ok:
        raise AssertionError(name)


def maxdiff(a, b):
    a = torch.as_tensor(a, dtype=DTYPE)
    b = torch.as_tensor(b, dtype=DTYPE)
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return (a - b).abs().max().item() if a.numel() else 0.0


def check_causality(sd, config, tokens, positions, label):
    """Changing token t changes no logit at positions < t (exactly) and does change position t;
    prefix runs give the full run's logits."""
    V = config["vocab_size"]
    base = transformer_forward(sd, config, tokens)
    worst = 0.0
    for t in positions:
        t2 = tokens.clone()
        t2[:, t] = (t2[:, t] + 1) % V
        other = transformer_forward(sd, config, t2)
        worst = max(worst, maxdiff(other[:, :t], base[:, :t]))
        assert maxdiff(other[:, t], base[:, t]) > 1e-6, "changing token %d did not change its logits" % t
    _report("%s: token t changes no logit < t, t in %s" % (label, list(positions)), worst, 0.0, exact=True)
    worst = 0.0
    for t in positions:
        if t >= 1:
            worst = max(worst, maxdiff(transformer_forward(sd, config, tokens[:, :t]), base[:, :t]))
    _report("%s: logits of prefixes [:t] == full logits [:t]" % label, worst, 1e-12)
    return base


def finite_difference_check(params, order, config, tokens, names, gen, samples=3, step=1e-5, tol=1e-6):
    """Autograd vs float64 central differences on sampled entries of the named tensors.

    params: {name: float64 tensor}, modified in place and restored. Returns (loss, grads, worst
    relative error), the error of each entry relative to max(1e-3, |autograd|, max |grad| of its tensor).
    For every tensor, `samples` random entries and the entry of largest |grad| are checked."""
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    loss = next_token_loss(transformer_forward(params, config, tokens), tokens)
    loss.backward()
    grads = {k: params[k].grad.detach().clone() for k in order}
    for p in params.values():
        p.requires_grad_(False)
        p.grad = None
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
                lp = next_token_loss(transformer_forward(params, config, tokens), tokens).item()
                flat[i] = orig - step
                lm = next_token_loss(transformer_forward(params, config, tokens), tokens).item()
                flat[i] = orig
                fd = (lp - lm) / (2 * step)
                ad = g[i].item()
                scale = max(1e-3, abs(ad), g.abs().max().item())
                err = abs(fd - ad) / scale
                worst = max(worst, err)
                assert err < tol, "%s[%d]: autograd %.10e vs fd %.10e" % (name, i, ad, fd)
    return loss.item(), grads, worst


# ----------------------------------------------------------------------------
# Self-test: an alternative formulation built from torch.nn modules and loops
# ----------------------------------------------------------------------------

def _rotate_pairs(vec, t, rotary_ndims, base):
    """One head vector at position t: rotate the (j, j + r/2) pairs by t * base^(-2j/r) explicitly."""
    out = vec.clone()
    half = rotary_ndims // 2
    for j in range(half):
        ang = t * base ** (-2.0 * j / rotary_ndims)
        c, s = math.cos(ang), math.sin(ang)
        a, b = vec[j], vec[j + half]
        out[j] = a * c - b * s
        out[j + half] = a * s + b * c
    return out


class _ModuleLayer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, I = cfg["hidden_size"], cfg["intermediate_size"]
        eps = cfg["layernorm_epsilon"]
        self.cfg = cfg
        self.ln1 = torch.nn.LayerNorm(C, eps=eps, dtype=DTYPE)
        self.ln2 = torch.nn.LayerNorm(C, eps=eps, dtype=DTYPE)
        self.q = torch.nn.Linear(C, C, dtype=DTYPE)
        self.k = torch.nn.Linear(C, C, dtype=DTYPE)
        self.v = torch.nn.Linear(C, C, dtype=DTYPE)
        self.proj = torch.nn.Linear(C, C, dtype=DTYPE)
        self.fc1 = torch.nn.Linear(C, I, dtype=DTYPE)
        self.fc2 = torch.nn.Linear(I, C, dtype=DTYPE)
        self.act = torch.nn.GELU(approximate="none")

    MAP = {
        "input_layernorm": "ln1", "post_attention_layernorm": "ln2", "attention.query": "q",
        "attention.key": "k", "attention.value": "v", "attention.proj": "proj",
        "mlp.dense_h_to_4h": "fc1", "mlp.dense_4h_to_h": "fc2",
    }

    def load(self, p):
        with torch.no_grad():
            for suffix in LAYER_PARAM_SUFFIXES:
                module, kind = suffix.rsplit(".", 1)
                getattr(getattr(self, self.MAP[module]), kind).copy_(p[suffix])

    def attention(self, a):
        """Per batch, head and query position: explicit rotations, scores, max-shifted softmax."""
        B, T, C = a.shape
        H = self.cfg["num_attention_heads"]
        D = C // H
        rot = int(D * self.cfg["rotary_pct"])
        base = float(self.cfg["rotary_emb_base"])
        q, k, v = self.q(a), self.k(a), self.v(a)
        ctx = torch.zeros(B, T, C, dtype=DTYPE)
        for b in range(B):
            for h in range(H):
                sl = slice(h * D, (h + 1) * D)
                qs = [_rotate_pairs(q[b, t, sl], t, rot, base) for t in range(T)]
                ks = [_rotate_pairs(k[b, t, sl], t, rot, base) for t in range(T)]
                for t in range(T):
                    s = [float((qs[t] * ks[j]).sum()) / math.sqrt(D) for j in range(t + 1)]
                    m = max(s)
                    w = [math.exp(z - m) for z in s]
                    tot = sum(w)
                    acc = torch.zeros(D, dtype=DTYPE)
                    for j in range(t + 1):
                        acc = acc + (w[j] / tot) * v[b, j, sl]
                    ctx[b, t, sl] = acc
        return self.proj(ctx)

    def forward(self, x):
        h = x + self.attention(self.ln1(x))
        return h + self.fc2(self.act(self.fc1(self.ln2(h))))


def _module_forward(sd, cfg, tokens):
    emb = torch.nn.Embedding(cfg["vocab_size"], cfg["hidden_size"], dtype=DTYPE)
    norm = torch.nn.LayerNorm(cfg["hidden_size"], eps=cfg["layernorm_epsilon"], dtype=DTYPE)
    wk, bk = final_norm_keys(cfg["num_layers"])
    with torch.no_grad():
        emb.weight.copy_(sd[EMBEDDING_KEY])
        norm.weight.copy_(sd[wk])
        norm.bias.copy_(sd[bk])
        x = emb(tokens)
        for i in range(cfg["num_layers"]):
            layer = _ModuleLayer(cfg)
            layer.load(layer_params(sd, i))
            x = layer(x)
        return F.linear(norm(x), emb.weight)


def _config(**kw):
    cfg = dict(architecture="transformer", num_layers=2, hidden_size=16, num_attention_heads=2,
               intermediate_size=24, vocab_size=23, rotary_pct=0.5, layernorm_epsilon=1e-5,
               rotary_emb_base=10000.0)
    cfg.update(kw)
    return cfg


def random_model(cfg, gen):
    sd = {}
    for name, shape in expected_shapes(cfg):
        z = torch.randn(*shape, generator=gen, dtype=DTYPE)
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            sd[name] = 1.0 + 0.2 * z
        elif name.endswith("norm.bias") or name.endswith("layernorm.bias"):
            sd[name] = 0.2 * z
        elif name.endswith(".bias"):
            sd[name] = 0.1 * z
        else:
            sd[name] = 0.3 * z
    return sd


def self_test():
    gen = torch.Generator().manual_seed(4321)
    print("Transformer reference self-test (float64)")

    # Layout.
    cfg = _config()
    shapes = expected_shapes(cfg)
    assert shapes[0] == (EMBEDDING_KEY, [23, 16])
    assert shapes[1] == ("sequential.2.input_layernorm.weight", [16])
    assert shapes[13] == ("sequential.2.mlp.dense_h_to_4h.weight", [24, 16])
    assert shapes[15] == ("sequential.2.mlp.dense_4h_to_h.weight", [16, 24])
    assert shapes[17][0] == "sequential.3.input_layernorm.weight"
    assert shapes[-2:] == [("sequential.5.norm.weight", [16]), ("sequential.5.norm.bias", [16])]
    assert len(shapes) == 1 + 16 * 2 + 2 and len({n for n, _ in shapes}) == len(shapes)
    print("  %-64s %s" % ("expected_shapes order and shapes", "ok"))

    # The model against the nn-module / loop formulation, for several shapes and rotary settings.
    variants = (
        ("L=2 C=16 H=2 rot 0.5", _config()),
        ("L=1 C=12 H=3 rot 0.0", _config(num_layers=1, hidden_size=12, num_attention_heads=3,
                                         intermediate_size=20, vocab_size=29, rotary_pct=0.0)),
        ("L=2 C=12 H=2 rot 1.0 base 500000", _config(hidden_size=12, intermediate_size=16, rotary_pct=1.0,
                                                    rotary_emb_base=500000.0, layernorm_epsilon=1e-3)),
        ("L=0 C=8 H=1", _config(num_layers=0, hidden_size=8, num_attention_heads=1)),
    )
    for label, cfg in variants:
        check_config(cfg)
        sd = random_model(cfg, gen)
        toks = torch.randint(0, cfg["vocab_size"], (2, 7), generator=gen)
        logits = transformer_forward(sd, cfg, toks)
        assert tuple(logits.shape) == (2, 7, cfg["vocab_size"]) and torch.isfinite(logits).all()
        _report("%s: vs nn.Linear/LayerNorm/GELU + loop attention" % label,
                maxdiff(logits, _module_forward(sd, cfg, toks)), 1e-12)
        _report("%s: matrix vs loop attention (tokenformer_reference)" % label,
                maxdiff(logits, transformer_forward(sd, cfg, toks, attention_fn=tf._attention_loop)), 1e-12)
        if cfg["num_layers"] > 0:
            check_causality(sd, cfg, toks, [1, 3, 6], label)
        # A missing tensor is an error (every key is used).
        if cfg["num_layers"] > 0:
            short = dict(sd)
            del short[layer_prefix(cfg["num_layers"] - 1) + "mlp.dense_4h_to_h.bias"]
            try:
                transformer_forward(short, cfg, toks)
            except KeyError:
                pass
            else:
                raise AssertionError("missing tensor not noticed")

    # Rotary settings matter exactly when rotary_ndims > 0.
    cfg = _config()
    sd = random_model(cfg, gen)
    toks = torch.randint(0, cfg["vocab_size"], (2, 7), generator=gen)
    base = transformer_forward(sd, cfg, toks)
    d_base = maxdiff(transformer_forward(sd, dict(cfg, rotary_emb_base=500000.0), toks), base)
    d_pct = maxdiff(transformer_forward(sd, dict(cfg, rotary_pct=1.0), toks), base)
    assert d_base > 1e-6 and d_pct > 1e-6, (d_base, d_pct)
    print("  %-64s %s" % ("rotary_emb_base and rotary_pct change the logits", "ok"))
    cfg0 = dict(cfg, rotary_pct=0.0)
    _report("rotary_pct 0: rotary_emb_base has no effect",
            maxdiff(transformer_forward(sd, cfg0, toks),
                    transformer_forward(sd, dict(cfg0, rotary_emb_base=77.0), toks)), 0.0, exact=True)
    # rotary_pct 0 with a constant sequence: every position attends to identical rows, so every
    # position gives the same logits (no positional information at all).
    same = torch.full((1, 6), 5, dtype=torch.long)
    lg = transformer_forward(sd, cfg0, same)
    _report("rotary_pct 0: constant sequence -> identical logits per position",
            maxdiff(lg, lg[:, :1].expand_as(lg)), 1e-12)

    # Tied head.
    logits, hidden = transformer_forward(sd, cfg, toks, return_hidden=True)
    wk, bk = final_norm_keys(cfg["num_layers"])
    _report("tied logits == F.linear(F.layer_norm(h), E)", maxdiff(
        logits, F.linear(F.layer_norm(hidden, (16,), sd[wk], sd[bk], eps=1e-5), sd[EMBEDDING_KEY])), 1e-12)

    # Loss and gradients.
    loss = next_token_loss(logits, toks)
    manual = (torch.logsumexp(logits[:, :-1], dim=-1)
              - torch.gather(logits[:, :-1], -1, toks[:, 1:, None])[..., 0]).mean()
    _report("next_token_loss vs logsumexp - logit", abs(loss.item() - manual.item()), 1e-13)
    order = [n for n, _ in expected_shapes(cfg)]
    params = {k: v.clone() for k, v in sd.items()}
    _, _, worst = finite_difference_check(params, order, cfg, toks, order, torch.Generator().manual_seed(5),
                                          samples=1)
    _report("autograd vs central differences, all %d tensors (rel)" % len(order), worst, 1e-6)
    print("self-test passed")


if __name__ == "__main__":
    if "--self-test" in sys.argv[1:]:
        torch.set_num_threads(1)
        self_test()
    else:
        print(__doc__)
