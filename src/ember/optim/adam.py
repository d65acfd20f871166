"""Adam (Kingma & Ba 2015) with Torch7's semantics (``optim.adam``)."""

from __future__ import annotations

import math

from ._validate import buffer, evaluate, moving_average, number, scratch, setup, step_over_root, weight_decay
from .._typing import Array, FEval, OptimResult
from .._typing import Array, FEval

from typing import Any

_KEYS = {"learning_rate", "learning_rate_decay", "beta1", "beta2", "epsilon", "weight_decay"}
_STATE = ("t", "m", "v")


def adam(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One Adam step on the flat vector ``x`` (updated in place).

    ::

        m <- b1 m + (1 - b1) g            v <- b2 v + (1 - b2) g*g
        x <- x - clr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)

    ``config`` (defaults in brackets): ``learning_rate`` [1e-3], ``learning_rate_decay``
    [0], ``beta1`` [0.9], ``beta2`` [0.999], ``epsilon`` [1e-8], ``weight_decay`` [0]
    (L2 added to the gradient, ``g += wd x``; see :func:`~ember.optim.adamw` for the
    decoupled form).

    ``state``: ``t`` (steps so far), ``m`` and ``v`` (first and second moment
    estimates). As Torch7 (and unlike PyTorch) eps is added to sqrt(v) *before* the bias
    correction, so its effective size differs slightly from PyTorch's.

    Order per call (torch/optim adam.lua):
      1. fx, g = feval(x)
      2. clr = lr / (1 + t lrd), t = steps before this one
      3. g += wd x
      4. t += 1
      5. m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
      6. denom = sqrt(v) + eps
      7. x -= clr sqrt(1 - b2^t) / (1 - b1^t) * m / denom
    Returns ``(x, [fx])``.
    """
    return adam_step("adam", feval, x, config, state, decoupled=False)


def adam_step(algorithm: str, feval: FEval, x: Array, config: dict[str, Any] | None, state: dict[str, Any] | None,
              decoupled: bool) -> tuple[Any, list[Any]]:
    """The Adam step shared by :func:`adam` and :func:`~ember.optim.adamw`."""
    config, state = setup(algorithm, config, state, _KEYS, _STATE)
    lr = number(algorithm, config, "learning_rate", 1e-3, low=0)
    lrd = number(algorithm, config, "learning_rate_decay", 0.0, low=0)
    b1 = number(algorithm, config, "beta1", 0.9, low=0, high=1, high_open=True)
    b2 = number(algorithm, config, "beta2", 0.999, low=0, high=1, high_open=True)
    eps = number(algorithm, config, "epsilon", 1e-8, low=0)
    wd = number(algorithm, config, "weight_decay", 1e-2 if decoupled else 0.0, low=0)
    t = state.setdefault("t", 0)
    tmp = scratch(state, x)
    denom = scratch(state, x, "_denom")
    m, _ = buffer(state, "m", x)
    v, _ = buffer(state, "v", x)

    # 1. loss and gradient
    fx, g = evaluate(algorithm, feval, x)

    # 2. learning-rate decay (before counting this step, so the first step uses lr)
    clr = lr / (1 + t * lrd)

    # 3. weight decay: L2 in the gradient (adam) or decoupled shrinking of x (adamw)
    if decoupled:
        if wd != 0:
            x *= 1 - clr * wd
    else:
        weight_decay(x, g, wd, tmp)

    # 4. count the step
    t += 1
    state["t"] = t

    # 5. moment estimates
    moving_average(m, g, b1, tmp)
    moving_average(v, g, b2, tmp, square=True)

    # 6-7. bias-corrected step over the denominator sqrt(v) + eps
    step_over_root(x, m, v, eps, clr * math.sqrt(1 - b2**t) / (1 - b1**t), tmp, denom)
    return x, [fx]
