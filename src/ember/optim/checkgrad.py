"""Finite-difference check of a ``feval`` closure (``optim.checkgrad``), and the
Rosenbrock test function."""

from __future__ import annotations

import warnings

import numpy as np

from ..backend import to_numpy
from ._validate import evaluate, namespace
from .._typing import Array, FEval

from typing import Any


def checkgrad(feval: FEval, x: Array, eps: float = 1e-7) -> tuple[Any, Any, Any]:
    """Compare ``feval``'s gradient with central differences, coordinate by coordinate.

    ``dC_est[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps)``; the returned error is
    the relative distance ``||dC - dC_est|| / ||dC + dC_est||`` (Torch7's measure: about
    eps^2 for a correct gradient of a smooth function, O(1) for a wrong one).

    ``x`` is perturbed in place and restored. The analytic gradient is copied first,
    so a feval that returns the same buffer each call (as the lecture's closure does)
    is handled. Use float64: in float32 the differences are dominated by rounding
    (a warning says so). Cost: 2 len(x) + 1 evaluations.
    Returns ``(diff, dC, dC_est)`` as float64 NumPy arrays.
    """
    if not (isinstance(eps, float | int) and eps > 0):
        raise ValueError(f"optim.checkgrad: eps must be a positive number, got {eps!r}")
    if x.ndim != 1:
        raise ValueError(f"optim.checkgrad: x must be a flat vector, got shape {x.shape}")
    if x.dtype != np.float64:
        warnings.warn(f"optim.checkgrad: x is {x.dtype}; finite differences need float64 to be reliable", stacklevel=2)
    _, g = evaluate("checkgrad", feval, x)
    analytic = to_numpy(g).astype(np.float64)
    numeric = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        keep = x[i].item()
        x[i] = keep + eps
        f_plus = float(feval(x)[0])
        x[i] = keep - eps
        f_minus = float(feval(x)[0])
        x[i] = keep
        numeric[i] = (f_plus - f_minus) / (2 * eps)
    total = np.linalg.norm(analytic + numeric)
    diff = float(np.linalg.norm(analytic - numeric) / total) if total > 0 else float(np.linalg.norm(analytic - numeric))
    return diff, analytic, numeric


def rosenbrock(x: Array) -> tuple[Any, Any]:
    """The Rosenbrock function and its gradient, a ``feval`` for tests and examples::

        f(x) = sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2

    Its minimum is f = 0 at x = (1, ..., 1), at the end of a long curved valley.
    Returns ``(f, g)`` with a new gradient array.
    """
    xp = namespace(x)
    head, tail = x[:-1], x[1:]
    gap = tail - head * head
    f = float(xp.sum(100 * gap * gap + (1 - head) ** 2))
    g = xp.zeros_like(x)
    g[:-1] = -400 * head * gap - 2 * (1 - head)
    g[1:] += 200 * gap
    return f, g


