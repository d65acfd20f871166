"""One case per public module and criterion, gathered from ``tests/cases_*.py``.

A case says how to build the module (in float64), how to sample an input (and a
target for criteria), and optionally how to build the PyTorch equivalent. Every test
in ``test_gradients.py``, ``test_contract.py`` and ``test_torch_parity.py`` runs over
``CASES``; ``test_coverage.py`` fails when a public module has no case.
"""

from __future__ import annotations

import glob
import importlib
import os
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

F64 = "numpy:float64"


@dataclass
class Case:
    """How to exercise one module.

    make(rng) -> module (any backend; tests move it to float64)
    input(rng) -> array or table; target(rng) -> target (criteria only)
    torch(module, torch) -> (fn, [(ember_array, torch_parameter), ...]) where fn takes
        torch tensors like the ember input (and target) and returns the output / loss
    reseed(module): called before each forward for modules with noise
    covers: the class names the case counts for (default: the module's class)
    """

    name: str
    make: Callable
    input: Callable
    target: Callable | None = None
    torch: Callable | None = None
    reseed: Callable | None = None
    covers: tuple = ()
    roundtrip: bool = True
    params_fd: bool = True
    eps: float = 1e-6
    atol: float = 1e-6
    extra: dict = field(default_factory=dict)

    def build(self, seed=0):
        module = self.make(np.random.default_rng(seed)).to(F64)
        return module

    def sample(self, seed=1):
        rng = np.random.default_rng(seed)
        x = self.input(rng)
        t = self.target(rng) if self.target is not None else None
        return x, t

    @property
    def is_criterion(self):
        return self.target is not None


def normal(*shape, low=None, away=None):
    """A sampler of float64 normals; ``away=(point, gap)`` keeps values off a kink."""

    def sample(rng):
        x = rng.standard_normal(shape)
        if away is not None:
            point, gap = away
            x = np.where(np.abs(x - point) < gap, x + np.sign(x - point + 1e-12) * 2 * gap, x)
        return x if low is None else np.maximum(x, low)

    return sample


def uniform(*shape, low=0.0, high=1.0):
    return lambda rng: rng.uniform(low, high, size=shape)


def criterion_case(name, make, inp, tgt, torch_fn=None, **kw):
    """A Case for a criterion built by ``make()``; ``torch_fn(torch, x, t)`` is PyTorch's loss."""
    torch = None if torch_fn is None else (lambda m, torch: ((lambda x, t: torch_fn(torch, x, t)), []))
    return Case(name, lambda rng: make(), inp, target=tgt, torch=torch, **kw)


def signs(*shape):
    """A sampler of +-1 labels."""
    return lambda rng: rng.choice([-1.0, 1.0], size=shape)


def reseed(module):
    """Give a noisy module (dropout) the same fresh generator before every pass."""
    module.rng = np.random.default_rng(7)


def torch_params(torch, *arrays):
    """Leaf tensors (float64, requiring gradients) holding copies of ember arrays."""
    return [torch.tensor(np.array(a), dtype=torch.float64, requires_grad=True) for a in arrays]


def _collect():
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    cases = []
    for path in sorted(glob.glob(os.path.join(here, "cases_*.py"))):
        module = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
        cases.extend(module.CASES)
    names = [c.name for c in cases]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise RuntimeError(f"duplicate case names: {sorted(duplicated)}")
    return cases


CASES = _collect()
