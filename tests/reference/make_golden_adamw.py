#!/usr/bin/env python3
"""Golden AdamW steps (torch.optim.AdamW, float32) -> golden/adamw/adamw.safetensors.

All tensors are F32 with shape [7, 5], sampled in float32 from
torch.Generator().manual_seed(SEED) in this order:
    p0 ~ N(0, 1)
    g1 ~ N(0, 1) * 1.0,  g2 ~ N(0, 1) * 0.3,  g3 ~ N(0, 1) * 3.0
(the different gradient scales make m and v evolve differently).

Run "p": AdamW(lr=6e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1),
         starting from p0, .grad = g1, g2, g3 on steps 1, 2, 3.
         Stored: p1, p2, p3 (param after each step), m3 = exp_avg and
         v3 = exp_avg_sq after step 3.
Run "q": same gradients and starting point p0, AdamW(lr=0.1, betas=(0.9, 0.95),
         eps=1e-8, weight_decay=0.0). Stored: q1, q2, q3 (and qm3, qv3).

torch 1.13 AdamW single-tensor update (step t = 1, 2, 3; all float32):
    p  <- p * (1 - lr * weight_decay)             (decoupled decay, before moments)
    m  <- beta1 * m + (1 - beta1) * g             (torch: m.mul_(b1).add_(g, alpha=1-b1))
    v  <- beta2 * v + (1 - beta2) * g * g         (torch: v.mul_(b2).addcmul_(g, g, value=1-b2))
    bc1 = 1 - beta1^t ; bc2 = 1 - beta2^t          (Python floats, i.e. double)
    p  <- p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
The hyperparameters are also written to adamw.json next to the tensors.

Usage: python3 make_golden_adamw.py [golden_dir]
"""

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import tokenformer_reference as ref  # noqa: E402

SEED = 4242
SHAPE = (7, 5)
GRAD_SCALES = (1.0, 0.3, 3.0)
BETAS = (0.9, 0.95)
EPS = 1e-8
RUNS = {
    # prefix: (lr, weight_decay, name of the stored moments)
    "p": (6e-4, 0.1, ("m3", "v3")),
    "q": (0.1, 0.0, ("qm3", "qv3")),
}


def run_adamw(p0, grads, lr, weight_decay):
    param = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([param], lr=lr, betas=BETAS, eps=EPS, weight_decay=weight_decay,
                            amsgrad=False, maximize=False, foreach=False)
    steps = []
    for g in grads:
        param.grad = g.clone()
        opt.step()
        steps.append(param.detach().clone())
    state = opt.state[param]
    return steps, state["exp_avg"].clone(), state["exp_avg_sq"].clone()


def manual_adamw(p0, grads, lr, weight_decay):
    """Independent float32 re-implementation of the formula in the docstring."""
    b1, b2 = BETAS
    p = p0.clone()
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        p = p * (1.0 - lr * weight_decay)
        m = m * b1 + g * (1.0 - b1)
        v = v * b2 + g * g * (1.0 - b2)
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        p = p - (lr / bc1) * m / (v.sqrt() / (bc2 ** 0.5) + EPS)
        out.append(p)
    return out, m, v


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden")
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    p0 = torch.randn(*SHAPE, generator=gen, dtype=torch.float32)
    grads = [torch.randn(*SHAPE, generator=gen, dtype=torch.float32) * s for s in GRAD_SCALES]

    tensors = [("p0", p0)] + [("g%d" % (i + 1), g) for i, g in enumerate(grads)]
    for prefix, (lr, wd, (mname, vname)) in RUNS.items():
        steps, m, v = run_adamw(p0, grads, lr, wd)
        msteps, mm, mv = manual_adamw(p0, grads, lr, wd)
        for i, (a, b) in enumerate(zip(steps, msteps)):
            err = (a - b).abs().max().item()
            assert err <= 1e-6 * max(1.0, a.abs().max().item()), (prefix, i + 1, err)
        assert (m - mm).abs().max().item() <= 1e-6 and (v - mv).abs().max().item() <= 1e-6
        for i, s in enumerate(steps):
            tensors.append(("%s%d" % (prefix, i + 1), s))
        tensors.append((mname, m))
        tensors.append((vname, v))
        moved = (steps[-1] - p0).abs().max().item()
        print("run %s: lr=%g wd=%g  max|%s3 - p0| = %.6e  max|%s1 - p0| = %.6e  (manual formula diff %.1e)"
              % (prefix, lr, wd, prefix, moved, prefix, (steps[0] - p0).abs().max().item(),
                 max((a - b).abs().max().item() for a, b in zip(steps, msteps))))

    for name, t in tensors:
        assert t.dtype == torch.float32 and tuple(t.shape) == SHAPE, name
        assert torch.isfinite(t).all(), name

    case_dir = os.path.join(out_dir, "adamw")
    os.makedirs(case_dir, exist_ok=True)
    path = os.path.join(case_dir, "adamw.safetensors")
    ref.write_safetensors(path, [(n, "F32", list(SHAPE), t.numpy().astype("<f4").tobytes()) for n, t in tensors])
    back = ref.read_safetensors(path)
    for n, t in tensors:
        assert np.array_equal(back[n], t.numpy().astype(np.float64)), n

    hparams = {
        "shape": list(SHAPE),
        "steps": len(grads),
        "betas": list(BETAS),
        "eps": EPS,
        "runs": {
            "p": {"lr": RUNS["p"][0], "weight_decay": RUNS["p"][1], "start": "p0",
                  "grads": ["g1", "g2", "g3"], "params_after_step": ["p1", "p2", "p3"],
                  "exp_avg_after_step3": "m3", "exp_avg_sq_after_step3": "v3"},
            "q": {"lr": RUNS["q"][0], "weight_decay": RUNS["q"][1], "start": "p0",
                  "grads": ["g1", "g2", "g3"], "params_after_step": ["q1", "q2", "q3"],
                  "exp_avg_after_step3": "qm3", "exp_avg_sq_after_step3": "qv3"},
        },
        "torch_version": torch.__version__,
    }
    with open(os.path.join(case_dir, "adamw.json"), "w") as f:
        json.dump(hparams, f, indent=2)
        f.write("\n")
    print("wrote %s (%s)" % (path, ", ".join(n for n, _ in tensors)))


if __name__ == "__main__":
    main()
