"""Shared timing helpers for the benchmarks: interleaved windows, medians, ratios.

The host is shared and its speed drifts, so ember and PyTorch are timed in alternating
short windows within one process and compared by the median of per-window throughputs.
"""

from __future__ import annotations

import os
import statistics
import time


def set_threads(n):
    """Limit BLAS (NumPy) and PyTorch to ``n`` threads."""
    from ember.threads import set_num_threads

    set_num_threads(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass


def window(step, seconds):
    """Run ``step()`` repeatedly for about ``seconds``; return calls per second."""
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def compare(steps: dict, windows=7, seconds=0.5, warmup=3, raw=False):
    """Interleave timing windows of each named step; return {name: median steps/s}
    (``raw=True``: {name: [steps/s of each window]}, for per-window ratios)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates = {name: [] for name in steps}
    for _ in range(windows):
        for name, step in steps.items():
            rates[name].append(window(step, seconds))
    return rates if raw else {name: statistics.median(r) for name, r in rates.items()}


def ember_sgd_step(net, x, y):
    """One training step of an ember classifier (ClassNLL, SGD lr 0.01, momentum 0.9):
    returns a function running it. The input gradient is skipped (the input is data)."""
    from ember import nn, optim

    crit = nn.ClassNLLCriterion()
    net.compute_grad_input = False  # PyTorch skips that gradient too
    params, grads = net.get_parameters()
    config = {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0}

    def feval(_):
        grads.fill(0)
        out = net.forward(x)
        loss = crit.forward(out, y)
        net.backward(x, crit.backward(out, y))
        return loss, grads

    return lambda: optim.sgd(feval, params, config)


def torch_sgd_step(model, x, y):
    """The same step in PyTorch: ``model(x)`` gives log-probabilities; x, y are NumPy arrays."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(model(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def machine_line():
    import numpy

    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover
        tv = "absent"
    return f"numpy {numpy.__version__}, torch {tv}, {os.cpu_count()} cpus"
