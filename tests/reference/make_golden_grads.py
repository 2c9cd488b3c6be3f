#!/usr/bin/env python3
"""Golden gradients of the next-token cross-entropy loss for the F32 golden cases.

For each F32 case under tests/reference/golden/<case>/ (l2_norm_gelu_f32,
gelu_l2_norm_f32, softmax_f32) this loads model.safetensors (the weights as
stored, widened to float64) into the float64 reference model of
tokenformer_reference.py as leaf tensors with requires_grad, runs the forward
pass on tokens.txt (B = 2 sequences of T = 13 tokens), and backpropagates with
torch autograd.

Loss (next-token prediction, logits over ALL rows of the tied embedding, i.e.
vocab_rows classes, including padded rows >= vocab_size, as GPT-NeoX does):

    loss_b     = 1/(T-1) * sum_{t=0}^{T-2} CE(logits[b, t, :], tokens[b, t+1])
    loss_batch = 1/(B*(T-1)) * sum_b sum_{t=0}^{T-2} CE(logits[b, t, :], tokens[b, t+1])
               = mean_b loss_b          (every sequence has T-1 terms)
    CE(z, y)   = logsumexp(z) - z[y]

Output files (per case directory), all tensors little-endian F32:

    grads_batch.safetensors  d loss_batch / d param   (every case)
    grads_seq<b>.safetensors d loss_b / d param        (see PER_SEQ_DEFAULT)
    grads_losses.json        loss_seq0, loss_seq1, loss_batch of the case in
                             float64 (repr), for reference

Each grads_*.safetensors holds one tensor per parameter, with the same key
name, shape and order as model.safetensors, followed by "loss" of shape [1].
The tied embedding gradient includes both uses (input lookup and output
projection).

Size budget: a full F32 gradient file is as large as the model, so by default
only grads_seq0 of the smallest case (softmax_f32) is written besides the three
grads_batch files (~510 KB in all). Since both sequences have T-1 terms,
grads_seq1 = 2 * grads_batch - grads_seq0 (exact in float64; up to float32
rounding of the stored files). Pass --all-seqs to write grads_seq0/1 for every
case (~1.25 MB; not meant to be committed).

Checks run every time: forward logits vs the stored logits.f32, the loss vs a
hand-written logsumexp form, batch gradient == mean of per-sequence gradients,
and autograd vs float64 central finite differences on sampled entries.

Usage: OPENBLAS_NUM_THREADS=2 python3 make_golden_grads.py [--all-seqs] [golden_dir]
"""

import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as ref  # noqa: E402

CASES = ("l2_norm_gelu_f32", "gelu_l2_norm_f32", "softmax_f32")
# Which per-sequence files are written by default (case -> sequence indices).
PER_SEQ_DEFAULT = {"softmax_f32": (0,)}

FD_STEP = 1e-5
FD_SAMPLES_PER_TENSOR = 3
FD_SEED = 7


def load_case(case_dir):
    with open(os.path.join(case_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(case_dir, "tokens.txt")) as f:
        tokens = torch.tensor([[int(t) for t in line.split(",")] for line in f if line.strip()],
                              dtype=torch.long)
    stored = ref.read_safetensors(os.path.join(case_dir, "model.safetensors"))
    rows = stored[ref.EMBEDDING_KEY].shape[0]
    order = [name for name, _ in ref.expected_shapes(config, rows)]
    assert set(order) == set(stored), "unexpected keys in model.safetensors"
    logits_f32 = np.fromfile(os.path.join(case_dir, "logits.f32"), dtype="<f4")
    logits_f32 = logits_f32.reshape(tokens.shape[0], tokens.shape[1], rows)
    return config, tokens, stored, order, logits_f32


def next_token_loss(logits, tokens):
    """Mean CE over all (b, t), t in 0..T-2, predicting tokens[b, t+1]."""
    V = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1, :].reshape(-1, V), tokens[:, 1:].reshape(-1), reduction="mean")


def next_token_loss_manual(logits, tokens):
    z = logits[:, :-1, :]
    y = tokens[:, 1:]
    picked = torch.gather(z, -1, y.unsqueeze(-1)).squeeze(-1)
    return (torch.logsumexp(z, dim=-1) - picked).mean()


def loss_and_grads(params, order, config, tokens):
    for p in params.values():
        p.grad = None
    logits = ref.tokenformer_forward(params, config, tokens)
    loss = next_token_loss(logits, tokens)
    loss.backward()
    grads = {name: params[name].grad.detach().clone() for name in order}
    return loss.item(), grads, logits.detach()


def write_grads(path, order, grads, loss):
    tensors = []
    for name in order:
        g = grads[name].numpy()
        raw, _ = ref.to_storage(g, "F32")
        tensors.append((name, "F32", list(g.shape), raw))
    raw, _ = ref.to_storage(np.array([loss]), "F32")
    tensors.append(("loss", "F32", [1], raw))
    ref.write_safetensors(path, tensors)
    # Read back and compare.
    back = ref.read_safetensors(path)
    for name in order:
        assert np.array_equal(back[name], grads[name].numpy().astype(np.float32).astype(np.float64)), name
    assert back["loss"].shape == (1,)


def finite_difference_check(params, order, config, tokens, grads, gen):
    """Central differences in float64 on a few sampled entries of every tensor."""
    worst = 0.0
    with torch.no_grad():
        for name in order:
            p = params[name]
            flat = p.view(-1)
            idx = torch.randint(0, flat.numel(), (FD_SAMPLES_PER_TENSOR,), generator=gen).tolist()
            # Always include the entry with the largest gradient.
            idx.append(int(grads[name].abs().view(-1).argmax()))
            for i in idx:
                orig = flat[i].item()
                flat[i] = orig + FD_STEP
                lp = next_token_loss(ref.tokenformer_forward(params, config, tokens), tokens).item()
                flat[i] = orig - FD_STEP
                lm = next_token_loss(ref.tokenformer_forward(params, config, tokens), tokens).item()
                flat[i] = orig
                fd = (lp - lm) / (2 * FD_STEP)
                ad = grads[name].view(-1)[i].item()
                scale = max(1e-3, abs(ad), grads[name].abs().max().item())
                err = abs(fd - ad) / scale
                worst = max(worst, err)
                assert err < 1e-6, "%s[%d]: autograd %.10e vs fd %.10e" % (name, i, ad, fd)
    return worst


def run_case(out_dir, case, seq_files):
    case_dir = os.path.join(out_dir, case)
    config, tokens, stored, order, logits_f32 = load_case(case_dir)
    params = {name: torch.from_numpy(stored[name].copy()).to(ref.DTYPE).requires_grad_(True) for name in order}
    B, T = tokens.shape

    # Batch loss/gradients.
    loss_batch, grads_batch, logits = loss_and_grads(params, order, config, tokens)
    fwd_err = np.abs(logits.numpy().astype(np.float32) - logits_f32).max()
    assert fwd_err <= 1e-6, "forward logits differ from logits.f32 by %g" % fwd_err
    manual = next_token_loss_manual(logits, tokens).item()
    assert abs(manual - loss_batch) < 1e-12 * max(1.0, abs(loss_batch)), (manual, loss_batch)

    # Per-sequence losses/gradients.
    seq = []
    for b in range(B):
        lb, gb, _ = loss_and_grads(params, order, config, tokens[b:b + 1])
        seq.append((lb, gb))
    assert abs(sum(l for l, _ in seq) / B - loss_batch) < 1e-12
    mean_err = max((sum(g[name] for _, g in seq) / B - grads_batch[name]).abs().max().item() for name in order)
    assert mean_err < 1e-12, "batch grad != mean of per-seq grads (%g)" % mean_err

    # Finite differences (batch loss).
    for p in params.values():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(FD_SEED)
    fd_worst = finite_difference_check(params, order, config, tokens, grads_batch, gen)

    write_grads(os.path.join(case_dir, "grads_batch.safetensors"), order, grads_batch, loss_batch)
    written = ["grads_batch.safetensors"]
    for b in seq_files:
        lb, gb = seq[b]
        fname = "grads_seq%d.safetensors" % b
        write_grads(os.path.join(case_dir, fname), order, gb, lb)
        written.append(fname)
    losses = {"loss_seq%d" % b: seq[b][0] for b in range(B)}
    losses["loss_batch"] = loss_batch
    losses["normalization"] = "mean over t in 0..T-2 of CE(logits[b,t,:vocab_rows], tokens[b,t+1]); " \
                              "batch: mean over all B*(T-1) terms"
    losses["num_classes"] = int(logits.shape[-1])
    with open(os.path.join(case_dir, "grads_losses.json"), "w") as f:
        json.dump(losses, f, indent=2)
        f.write("\n")

    print("%-18s B=%d T=%d classes=%d  loss_seq0=%.9f loss_seq1=%.9f loss_batch=%.9f"
          % (case, B, T, logits.shape[-1], seq[0][0], seq[1][0], loss_batch))
    print("    fwd vs logits.f32 %.2e, batch==mean(seq) %.2e, worst fd rel err %.2e, wrote %s"
          % (fwd_err, mean_err, fd_worst, ", ".join(written)))
    for name in order:
        g = grads_batch[name]
        print("      %-48s %-12s max|g| = %.4e  rms = %.4e"
              % (name, "x".join(str(s) for s in g.shape), g.abs().max().item(), g.pow(2).mean().sqrt().item()))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    all_seqs = "--all-seqs" in sys.argv[1:]
    out_dir = args[0] if args else os.path.join(HERE, "golden")
    torch.set_num_threads(1)
    for case in CASES:
        run_case(out_dir, case, (0, 1) if all_seqs else PER_SEQ_DEFAULT.get(case, ()))


if __name__ == "__main__":
    main()
