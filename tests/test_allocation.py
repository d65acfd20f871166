"""Once warm, a training step at fixed shapes allocates no new arrays (buffers are reused)."""

import numpy as np
import pytest
from allocation import warm_step_allocation

from ember import _blas, models, nn
from ember.training import make_feval


# (batch, bound in bytes). NumPy's ufunc iterator uses transient buffers of at most 8192
# elements per operand for broadcast operations, and Python objects come and go; with
# 4096 samples every activation-sized array is >= 160 KB (4096 x 10 floats), so a peak
# under 128 KB means no such array was made. At batch 1 the bound catches weight-sized
# arrays (the 3 MB gradient of the first layer); at batch 32 (Linear's transposed forward
# product, see backend.transposed_product_is_faster) it catches a 128 KB hidden-layer array.
# blas=False: NumPy without ember's direct OpenBLAS calls (e.g. NumPy built on MKL).
@pytest.mark.parametrize("blas", [True, False])
@pytest.mark.parametrize("batch, bound", [(1, 32 * 1024), (32, 32 * 1024), (4096, 128 * 1024)])
def test_mlp_training_step_allocates_nothing_once_warm(batch, bound, blas, monkeypatch):
    if not blas:
        monkeypatch.setattr(_blas, "AVAILABLE", False)
    elif not _blas.AVAILABLE:
        pytest.skip("no OpenBLAS found in NumPy")
    rng = np.random.default_rng(0)
    net = models.build_model("mnist-mlp", rng=rng)
    net.compute_grad_input = False
    crit = nn.ClassNLLCriterion()
    params, grads = net.get_parameters()
    x = rng.standard_normal((batch, 784)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    config, state = {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0, "weight_decay": 1e-4}, {}
    peak, kept = warm_step_allocation(make_feval(net, crit, x, y, grads), params, config, state)
    assert peak < bound, f"a warm step allocated up to {peak} bytes"
    assert kept < bound, f"{kept} bytes stayed allocated after 5 steps"
