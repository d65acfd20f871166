"""Averaged SGD (Polyak & Juditsky 1992; Bottou's sgd-2.0), Torch7's ``optim.asgd``."""

from __future__ import annotations

from ._validate import buffer, evaluate, namespace, number, scratch, setup
from .._typing import Array, FEval

_KEYS = {"eta0", "lambda", "alpha", "t0"}
_STATE = ("eta_t", "mu_t", "t", "ax")


def asgd(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> tuple[Array, list[float], Array]:
    """One ASGD step on the flat vector ``x`` (updated in place); also averages x.

    ::

        x   <- (1 - lambda eta_t) x - eta_t g
        ax  <- ax + mu_t (x - ax)
        eta_t = eta0 / (1 + lambda eta0 t)^alpha,   mu_t = 1 / max(1, t - t0)

    ``config`` (defaults in brackets): ``eta0`` [1e-4], ``lambda`` [1e-4] (the decay
    term; written ``"lambda"`` as in Torch7), ``alpha`` [0.75], ``t0`` [1e6] (the step
    at which averaging starts).

    ``state``: ``t``, ``eta_t``, ``mu_t`` and ``ax`` (the averaged parameters: use them
    for testing). Order per call (torch/optim asgd.lua):
      1. fx, g = feval(x)
      2. x *= 1 - lambda eta_t
      3. x -= eta_t g
      4. ax = x while mu_t = 1, else ax += mu_t (x - ax)
      5. t += 1; update eta_t and mu_t
    Returns ``(x, [fx], ax)``.
    """
    config, state = setup("asgd", config, state, _KEYS, _STATE)
    eta0 = number("asgd", config, "eta0", 1e-4, low=0)
    lam = number("asgd", config, "lambda", 1e-4, low=0)
    alpha = number("asgd", config, "alpha", 0.75, low=0)
    t0 = number("asgd", config, "t0", 1e6, low=0)
    eta_t = state.setdefault("eta_t", eta0)
    mu_t = state.setdefault("mu_t", 1.0)
    t = state.setdefault("t", 0)
    xp = namespace(x)
    tmp = scratch(state, x)
    ax, _ = buffer(state, "ax", x)

    # 1. loss and gradient
    fx, g = evaluate("asgd", feval, x)

    # 2. decay term
    x *= 1 - lam * eta_t

    # 3. gradient step
    xp.multiply(g, -eta_t, out=tmp)
    x += tmp

    # 4. averaging
    if mu_t != 1:
        xp.subtract(x, ax, out=tmp)
        tmp *= mu_t
        ax += tmp
    else:
        ax[...] = x

    # 5. next step size and averaging rate
    t += 1
    state["t"] = t
    state["eta_t"] = eta0 / (1 + lam * eta0 * t) ** alpha
    state["mu_t"] = 1 / max(1, t - t0)
    return x, [fx], ax
