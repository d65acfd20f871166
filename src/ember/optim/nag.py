"""Nesterov's accelerated gradient, Sutskever et al. 2013 form (``optim.nag``)."""

from __future__ import annotations

from ._validate import buffer, evaluate, namespace, number, scratch, setup, vector, weight_decay
from .._typing import Array, FEval, OptimResult

_KEYS = {"learning_rate", "learning_rate_decay", "weight_decay", "momentum", "learning_rates"}


def nag(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One Nesterov step on the flat vector ``x`` (updated in place).

    The gradient is taken at the look-ahead point ``x + mu v`` (Sutskever, Martens,
    Dahl & Hinton, ICML 2013), with the velocity ``v`` kept in ``state``::

        x <- x + mu v                      (look ahead; skipped on the first call)
        g  = df/dx(x) + wd x
        v <- mu v - clr g
        x <- x - clr g                     (so x ends at x_old + v)

    ``config`` (defaults in brackets): ``learning_rate`` [1e-3],
    ``learning_rate_decay`` [0], ``weight_decay`` [0], ``momentum`` [0.9, must be > 0],
    ``learning_rates`` (per-parameter multipliers).

    ``state``: ``eval_counter`` (calls so far) and ``dfdx`` (the velocity v, Torch7's
    name). Order per call (torch/optim nag.lua):
      1. x += mu v (when v exists)
      2. fx, g = feval(x)
      3. g += wd x
      4. clr = lr / (1 + n lrd)
      5. v = mu v (zeros on the first call)
      6. x -= clr g (or clr lrs g); v -= clr g (same term)
      7. n += 1
    Returns ``(x, [fx])``, fx evaluated at the look-ahead point.
    """
    config, state = setup("nag", config, state, _KEYS, ("eval_counter", "dfdx"))
    lr = number("nag", config, "learning_rate", 1e-3, low=0)
    lrd = number("nag", config, "learning_rate_decay", 0.0, low=0)
    wd = number("nag", config, "weight_decay", 0.0, low=0)
    mom = number("nag", config, "momentum", 0.9, low=0, high=1, low_open=True)
    lrs = vector("nag", config, "learning_rates", x)
    n = state.setdefault("eval_counter", 0)
    xp = namespace(x)
    tmp = scratch(state, x)
    v, first = buffer(state, "dfdx", x)

    # 1. step along the velocity: the gradient is taken at the look-ahead point
    if not first:
        xp.multiply(v, mom, out=tmp)
        x += tmp

    # 2. loss and gradient at the look-ahead point
    fx, g = evaluate("nag", feval, x)

    # 3. weight decay (in place on the caller's gradient, as Torch7)
    weight_decay(x, g, wd, tmp)

    # 4. learning-rate decay
    clr = lr / (1 + n * lrd)

    # 5. decay the velocity
    v *= mom

    # 6. the gradient step, applied to both x and v
    if lrs is not None:
        xp.multiply(lrs, g, out=tmp)
        tmp *= -clr
    else:
        xp.multiply(g, -clr, out=tmp)
    x += tmp
    v += tmp

    # 7. count the evaluation
    state["eval_counter"] = n + 1
    return x, [fx]
