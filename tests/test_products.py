"""Every matrix product of every module goes through its Backend.

A recording backend counts the products (gemm, ger, the affine and column products) that
reach it, while NumPy's ``matmul``/``dot`` and ember's direct BLAS entry points
(``_blas.gemm``, ``_blas.ger``) fail when called from ``ember.nn`` code: a module that
multiplies past its backend fails here, whichever case exercises it.
"""

import sys
from dataclasses import dataclass

import numpy as np
import pytest
from cases import CASES

from ember import Backend, _blas, nn
from ember.testing import map_structure

# modules whose own math has a matrix product: each of their cases must reach the backend
MULTIPLYING = (nn.Linear, nn.SpatialConvolution, nn.SpatialFullConvolution, nn.TemporalConvolution,
               nn.SpatialSubtractiveNormalization, nn.SpatialDivisiveNormalization, nn.SquaredEuclidean,
               nn.Cosine)  # fmt: skip


def _recorded(name):
    """Backend method ``name``, counting its calls in ``self.calls``."""

    def method(self, *args, **kwargs):
        self.calls[name] = self.calls.get(name, 0) + 1
        return getattr(Backend, name)(self, *args, **kwargs)

    return method


@dataclass(frozen=True)
class RecordingBackend(Backend):
    """NumPy float64, counting the products it is asked for (per method name)."""

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "calls", {})

    gemm, ger, affine, gemm_columns = (_recorded(name) for name in ("gemm", "ger", "affine", "gemm_columns"))


def _refuse_from_nn(name, real):
    """``real``, except that a call made directly from ``ember.nn`` code raises."""

    def guarded(*args, **kwargs):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("ember.nn"):
            raise AssertionError(f"{caller} calls {name} directly instead of going through its Backend")
        return real(*args, **kwargs)

    return guarded


@pytest.fixture
def guarded_products(monkeypatch):
    for name in ("matmul", "dot", "tensordot"):
        monkeypatch.setattr(np, name, _refuse_from_nn(f"numpy.{name}", getattr(np, name)))
    for name in ("gemm", "ger", "axpby"):
        monkeypatch.setattr(_blas, name, _refuse_from_nn(f"_blas.{name}", getattr(_blas, name)))


def _run(case, module, x, t):
    if case.is_criterion:
        module.forward(x, t)
        module.backward(x, t)
        return
    if case.reseed:
        case.reseed(module)
    out = module.forward(x)
    probe = map_structure(lambda o: np.random.default_rng(3).standard_normal(o.shape) if hasattr(o, "shape") else o, out)
    module.zero_grad_parameters()
    module.backward(x, probe)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_products_reach_the_backend(case, guarded_products):
    backend = RecordingBackend("numpy", "float64")
    module = case.build().to(backend)
    assert all(m.backend is backend for m in module.modules())
    x, t = case.sample()
    _run(case, module, x, t)
    if any(isinstance(m, MULTIPLYING) for m in module.modules()):
        assert sum(backend.calls.values()) > 0, f"{case.name}: no product reached the backend"


@pytest.mark.parametrize("batch", [1, 2, 40, 64])
def test_linear_products_are_the_backend_shortcuts_chosen_by_shape(batch, monkeypatch):
    """Linear's forward is one affine product, its input gradient one gemm, its weight
    gradient a rank-1 ``ger`` for one sample and an accumulating gemm otherwise; with BLAS
    each is one BLAS call (the transposed forward for 2-48 samples through a wide layer),
    except one sample's forward: a matrix-vector product (NumPy's gemv; a GEMM with M = 1
    is ~5x slower in OpenBLAS)."""
    if not _blas.AVAILABLE:
        pytest.skip("no OpenBLAS found in NumPy")
    blas_calls = []
    for name in ("gemm", "ger"):
        real = getattr(_blas, name)
        monkeypatch.setattr(_blas, name, lambda *a, _real=real, _name=name, **k: blas_calls.append(_name) or _real(*a, **k))
    backend = RecordingBackend("numpy", "float32")
    lin = nn.Linear(300, 260).to(backend)
    x = np.random.default_rng(0).standard_normal((batch, 300)).astype(np.float32)
    y = lin.forward(x)
    if batch == 1:
        assert backend.calls == {"affine": 1} and blas_calls == []
    else:
        assert backend.calls == {"affine": 1, "gemm": 1} and blas_calls == ["gemm"]
    np.testing.assert_allclose(y, x @ lin.weight.T + lin.bias, rtol=1e-5, atol=1e-5)
    blas_calls.clear()
    lin.backward(x, np.ones((batch, 260), np.float32))
    # one sample: dE/dx is a matrix-vector product (NumPy's gemv), dE/dW a rank-1 update
    assert blas_calls == (["ger"] if batch == 1 else ["gemm", "gemm"])
