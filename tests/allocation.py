"""Measuring what a warm step allocates (tracemalloc), shared by the allocation tests."""

import gc
import tracemalloc

from ember import optim


def allocations(step, repeats=3):
    """(peak, retained) bytes traced over ``repeats`` calls of ``step()``. Garbage from
    before is collected first and the collector is off meanwhile, so the figures are the
    step's own."""
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(repeats):
            step()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    return peak - base, current - base


def warm_step_allocation(feval, params, config, state, warm=3, steps=5):
    """(peak, retained) bytes of ``steps`` SGD steps after ``warm`` warm-up steps."""
    for _ in range(warm):
        optim.sgd(feval, params, config, state)
    return allocations(lambda: optim.sgd(feval, params, config, state), steps)


def warm_recurrent_step(kind, layers=1, bidirectional=False, n=256, t=12, hidden=64):
    """A warm training step of ``kind`` (LSTM/GRU) -> LastStep -> Linear -> LogSoftMax on
    random sequences; returns (the recurrent layer, peak bytes, bytes kept, the smallest
    per-step array's bytes, (N, H) float32)."""
    import numpy as np

    from ember import nn
    from ember.training import make_feval

    rng = np.random.default_rng(0)
    layer = getattr(nn, kind)(28, hidden, num_layers=layers, bidirectional=bidirectional, rng=rng)
    width = hidden * (2 if bidirectional else 1)
    net = nn.Sequential(layer, nn.LastStep(), nn.Linear(width, 10, rng=rng), nn.LogSoftMax())
    net.compute_grad_input = False
    params, grads = net.get_parameters()
    x = rng.standard_normal((n, t, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    peak, kept = warm_step_allocation(make_feval(net, nn.ClassNLLCriterion(), x, y, grads), params,
                                      {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0}, {}, steps=3)
    return layer, peak, kept, n * hidden * 4
