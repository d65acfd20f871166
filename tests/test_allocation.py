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
    feval = make_feval(net, crit, x, y, grads)
    for _ in range(3):
        optim.sgd(feval, params, config, state)
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(5):
            optim.sgd(feval, params, config, state)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the smallest activation buffer is batch x 10 floats; the weight gradient is 3 MB
    assert peak - base < 16 * 1024, f"a warm step allocated up to {peak - base} bytes"
    assert current - base < 4 * 1024
