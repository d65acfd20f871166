"""Once warm, a training step at fixed shapes allocates no new arrays (buffers are reused)."""

import tracemalloc

import numpy as np
import pytest

from ember import models, nn, optim
from ember.train import make_feval


@pytest.mark.parametrize("batch", [1, 128])
def test_mlp_training_step_allocates_nothing_once_warm(batch):
    rng = np.random.default_rng(0)
    net = models.build_model("mnist-mlp", rng=rng)
    net.compute_grad_input = False
    crit = nn.ClassNLLCriterion()
    params, grads = net.get_parameters()
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    config, state = {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-4}, {}
    peak, kept = warm_step_allocation(make_feval(net, crit, x, y, grads), params, config, state)
    # Small Python objects (ctypes arguments, label index arrays) come and go; an array
    # of activations (>= 4 KB at batch 1, 512 KB at batch 128) or the 3 MB weight
    # gradient would show up here.
    assert peak < 12 * 1024, f"a warm step allocated up to {peak} bytes"
    assert kept < 12 * 1024, f"{kept} bytes stayed allocated after 5 steps"


def warm_step_allocation(feval, params, config, state, warm=3, steps=5):
    """(peak, kept): bytes allocated during ``steps`` SGD steps after ``warm`` warm-up steps."""
    for _ in range(warm):
        optim.sgd(feval, params, config, state)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(steps):
            optim.sgd(feval, params, config, state)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, current - base
