"""Why 2 ranks and 1 process drift apart in float32 but not in float64: two replicas of a
network trained side by side in one process, one on whole batches, one as 2 ranks do
(two half-batch mean gradients, each times 1/2, added: the allreduce of 2 ranks), with
the same data order and starting weights.

    python benchmarks/exactness_drift.py [--model mnist-mlp] [--dtype float32] [--act relu|tanh]
                                         [--steps 938] [--every 25] [--seed 1] [--save both.npz]
                                         [--split 2] [--perturb EPS]

Replica one is ``ember train --model M --seed S --epochs 1 --threads 1`` and replica two
``mpirun -np 2 ember train ...`` (same flags), bit for bit (``--save`` writes both
parameter vectors; mnist-mlp: 0.0 difference to both runs' files).

Per step it prints the largest parameter difference and the number of hidden units
(sample x unit) whose ReLU is on in one replica and off in the other (a "kink flip").
A flip changes that unit's gradient contribution from 0 to its full value: the
difference it causes is the size of a gradient term, not of the rounding that caused it.
With ``--act tanh`` the same net has a smooth activation (no kinks).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from ember import nn, optim  # noqa: E402
from ember.distributed import share_of  # noqa: E402
from ember.models import get_model  # noqa: E402
from ember.training import load_dataset  # noqa: E402


def build(name, act, dtype, seed):
    """The model of ``ember train --model name --seed seed`` (ReLUs swapped for Tanh with ``act="tanh"``)."""
    spec = get_model(name)
    model = spec.build(n_classes=10, rng=np.random.default_rng(seed))
    if act == "tanh":
        model = nn.Sequential(*[nn.Tanh() if isinstance(m, nn.ReLU) else m for m in model.children()])
    return spec, (model.double() if dtype == "float64" else model)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-mlp")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--act", default="relu", choices=["relu", "tanh"])
    p.add_argument("--steps", type=int, default=938)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--save", help="an .npz file for both replicas' final parameters")
    p.add_argument("--split", type=int, default=2, help="replica two's batch split in this many shares (1: whole)")
    p.add_argument("--perturb", type=float, default=0.0,
                   help="replica two starts from the weights times (1 + this x random sign)")
    a = p.parse_args()
    spec, one = build(a.model, a.act, a.dtype, a.seed)
    _, two = build(a.model, a.act, a.dtype, a.seed)
    dt = np.float64 if a.dtype == "float64" else np.float32
    data = load_dataset(spec.input_shape)
    x_all = np.asarray(data.x_train).astype(dt)
    y_all = data.y_train
    order = np.random.default_rng(a.seed).permutation(len(y_all))  # ember train's first epoch
    crit1, crit2 = nn.ClassNLLCriterion(), nn.ClassNLLCriterion()
    if dt == np.float64:
        crit1, crit2 = crit1.double(), crit2.double()
    p1, g1 = one.get_parameters()
    p2, g2 = two.get_parameters()
    p2[...] = p1
    if a.perturb:
        p2 *= 1 + a.perturb * np.random.default_rng(5).choice([-1.0, 1.0], size=p2.shape)
    d = spec.defaults  # ember train's sgd settings for this model
    config1 = {"learning_rate": d["lr"], "momentum": d["momentum"], "learning_rate_decay": d["lr_decay"],
               "dampening": 0.0}  # fmt: skip
    config2, s1, s2 = dict(config1), {}, {}
    kinks1 = [m for m in one.modules() if isinstance(m, (nn.ReLU, nn.Tanh))]
    kinks2 = [m for m in two.modules() if isinstance(m, (nn.ReLU, nn.Tanh))]
    first_flip = None
    flips_total = 0
    print(f"{a.model} {a.act} {a.dtype}: step, max |param diff|, kink flips this step, kink flips so far")
    for step in range(a.steps):
        index = order[step * 64 : (step + 1) * 64]
        xb, yb = x_all[index], y_all[index]

        def feval1(x):
            one.zero_grad_parameters()
            out = one.forward(xb)
            loss = crit1.forward(out, yb)
            one.backward(xb, crit1.backward(out, yb))
            return loss, g1

        states = []

        def feval2(x):
            total = np.zeros_like(g2)
            loss = 0.0
            states.clear()
            for r in range(a.split):
                lo, hi = share_of(r, a.split, len(index))
                weight = (hi - lo) / len(index)
                two.zero_grad_parameters()
                out = two.forward(xb[lo:hi])
                loss += weight * float(crit2.forward(out, yb[lo:hi]))
                two.backward(xb[lo:hi], crit2.backward(out, yb[lo:hi]))
                states.append([m.output.copy() for m in kinks2])
                if weight != 1:
                    np.multiply(g2, weight, out=g2)
                total += g2  # rank 0's part + rank 1's part, as the allreduce of 2 ranks adds them
            g2[...] = total
            return loss, g2

        optim.sgd(feval1, p1, config1, s1)
        optim.sgd(feval2, p2, config2, s2)
        flips = 0
        if a.act == "relu":
            for k, m in enumerate(kinks1):
                on1 = m.output > 0
                on2 = np.concatenate([st[k] > 0 for st in states])
                flips += int((on1 != on2).sum())
        flips_total += flips
        if flips and first_flip is None:
            first_flip = step + 1
        diff = float(np.abs(p1.astype(np.float64) - p2).max())
        if (step + 1) % a.every == 0 or flips or step < 5:
            print(f"{step + 1:5d}  {diff:.3e}  {flips:5d}  {flips_total:6d}", flush=True)
    print(f"first kink flip at step {first_flip}; final max |param diff| {diff:.3e}")
    if a.save:  # the two replicas' final parameters (to compare with ember train's files)
        np.savez(a.save, one=p1, two=p2)


if __name__ == "__main__":
    main()
