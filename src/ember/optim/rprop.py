"""Rprop (Riedmiller & Braun 1993), the plain variant of Torch7's ``optim.rprop``."""

from __future__ import annotations

from ._validate import buffer, evaluate, integer, namespace, number, scratch, setup
from .._typing import Array, FEval, OptimResult

_KEYS = {"stepsize", "etaplus", "etaminus", "stepsizemax", "stepsizemin", "niter"}


def rprop(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """``niter`` Rprop steps on the flat vector ``x`` (updated in place).

    Each weight has its own step size, adapted from the sign of successive gradients
    (the gradient's magnitude is ignored)::

        same sign as last time:  step <- min(step * etaplus, stepsizemax)
        sign flipped:            step <- max(step * etaminus, stepsizemin), g <- 0
        x <- x - sign(g) * step

    ``config`` (defaults in brackets; Torch7's names): ``stepsize`` [0.1] (initial step
    of every weight), ``etaplus`` [1.2, > 1], ``etaminus`` [0.5, in (0, 1)],
    ``stepsizemax`` [50], ``stepsizemin`` [1e-6], ``niter`` [1].

    ``state``: ``delta`` (the previous gradient, zeroed where the sign flipped) and
    ``step_sizes`` (per weight). Order per iteration (torch/optim rprop.lua):
      1. fx, g = feval(x)
      2. s = sign(g * delta)
      3. step_sizes *= etaplus where s > 0, etaminus where s < 0
      4. clip step_sizes to [stepsizemin, stepsizemax]
      5. g = 0 where s < 0 (in place on the caller's gradient)
      6. x -= sign(g) * step_sizes
      7. delta = g
    Rprop is a full-batch method: use it with a deterministic feval.
    Returns ``(x, [fx per iteration])``.
    """
    config, state = setup("rprop", config, state, _KEYS, ("delta", "step_sizes"))
    step0 = number("rprop", config, "stepsize", 0.1, low=0, low_open=True)
    etaplus = number("rprop", config, "etaplus", 1.2, low=1, low_open=True)
    etaminus = number("rprop", config, "etaminus", 0.5, low=0, high=1, low_open=True, high_open=True)
    step_max = number("rprop", config, "stepsizemax", 50.0, low=0, low_open=True)
    step_min = number("rprop", config, "stepsizemin", 1e-6, low=0)
    niter = integer("rprop", config, "niter", 1)
    if step_min > step_max:
        raise ValueError(f"optim.rprop: stepsizemin ({step_min}) must be <= stepsizemax ({step_max})")
    xp = namespace(x)
    tmp = scratch(state, x)
    positive = scratch(state, x, "_positive", dtype=bool)
    negative = scratch(state, x, "_negative", dtype=bool)
    delta, _ = buffer(state, "delta", x)
    steps, _ = buffer(state, "step_sizes", x, fill=step0)
    history = []
    for _ in range(niter):
        # 1. loss and gradient
        fx, g = evaluate("rprop", feval, x)

        # 2. sign agreement with the previous gradient
        xp.multiply(g, delta, out=tmp)
        xp.greater(tmp, 0, out=positive)
        xp.less(tmp, 0, out=negative)

        # 3. grow or shrink each step size
        tmp.fill(1)
        xp.copyto(tmp, etaplus, where=positive)
        xp.copyto(tmp, etaminus, where=negative)
        steps *= tmp

        # 4. bounds
        xp.minimum(steps, step_max, out=steps)
        xp.maximum(steps, step_min, out=steps)

        # 5. no move (and no memory) where the sign flipped
        xp.copyto(g, 0, where=negative)

        # 6. move by the step size against the gradient's sign
        xp.sign(g, out=tmp)
        tmp *= steps
        x -= tmp

        # 7. remember the gradient
        delta[...] = g
        history.append(fx)
    return x, history
