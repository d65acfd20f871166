"""RMSprop (Tieleman & Hinton 2012) with Torch7's semantics (``optim.rmsprop``)."""

from __future__ import annotations

from ._validate import buffer, evaluate, moving_average, number, scratch, setup, step_over_root, weight_decay
from .._typing import Array, FEval, OptimResult

_KEYS = {"learning_rate", "alpha", "epsilon", "weight_decay", "initial_mean"}


def rmsprop(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One RMSprop step on the flat vector ``x`` (updated in place).

    ::

        m <- alpha m + (1 - alpha) g*g
        x <- x - lr * g / (sqrt(m) + eps)

    ``config`` (defaults in brackets): ``learning_rate`` [1e-2], ``alpha`` [0.99],
    ``epsilon`` [1e-8], ``weight_decay`` [0], ``initial_mean`` [0] (the value m starts
    from). No learning-rate decay (as Torch7; use a schedule).

    ``state``: ``m`` (the leaky mean of squared gradients). Order per call
    (torch/optim rmsprop.lua):
      1. fx, g = feval(x)
      2. g += wd x
      3. m = alpha m + (1 - alpha) g^2
      4. x -= lr g / (sqrt(m) + eps)
    Returns ``(x, [fx])``.
    """
    config, state = setup("rmsprop", config, state, _KEYS, ("m",))
    lr = number("rmsprop", config, "learning_rate", 1e-2, low=0)
    alpha = number("rmsprop", config, "alpha", 0.99, low=0, high=1)
    eps = number("rmsprop", config, "epsilon", 1e-8, low=0)
    wd = number("rmsprop", config, "weight_decay", 0.0, low=0)
    m0 = number("rmsprop", config, "initial_mean", 0.0, low=0)
    tmp = scratch(state, x)
    denom = scratch(state, x, "_denom")
    m, _ = buffer(state, "m", x, fill=m0)

    # 1. loss and gradient
    fx, g = evaluate("rmsprop", feval, x)

    # 2. weight decay
    weight_decay(x, g, wd, tmp)

    # 3. leaky mean of the squared gradient
    moving_average(m, g, alpha, tmp, square=True)

    # 4. scaled step
    step_over_root(x, g, m, eps, lr, tmp, denom)
    return x, [fx]
