"""AdaMax (Kingma & Ba 2015, section 7) with Torch7's semantics (``optim.adamax``)."""

from __future__ import annotations

from ._validate import buffer, evaluate, moving_average, namespace, number, scratch, setup, weight_decay
from .._typing import Array, FEval, OptimResult

_KEYS = {"learning_rate", "beta1", "beta2", "epsilon", "weight_decay"}


def adamax(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One AdaMax step on the flat vector ``x`` (updated in place).

    ::

        m <- b1 m + (1 - b1) g
        u <- max(b2 u, |g| + eps)          (exponentially weighted infinity norm)
        x <- x - lr / (1 - b1^t) * m / u

    ``config`` (defaults in brackets): ``learning_rate`` [2e-3], ``beta1`` [0.9],
    ``beta2`` [0.999], ``epsilon`` [1e-38, Torch7's; PyTorch uses 1e-8],
    ``weight_decay`` [0].

    ``state``: ``t``, ``m``, ``u``. Order per call (torch/optim adamax.lua):
      1. fx, g = feval(x)
      2. g += wd x
      3. t += 1
      4. m = b1 m + (1 - b1) g
      5. u = max(b2 u, |g| + eps)
      6. x -= lr / (1 - b1^t) * m / u
    Returns ``(x, [fx])``.
    """
    config, state = setup("adamax", config, state, _KEYS, ("t", "m", "u"))
    lr = number("adamax", config, "learning_rate", 2e-3, low=0)
    b1 = number("adamax", config, "beta1", 0.9, low=0, high=1, high_open=True)
    b2 = number("adamax", config, "beta2", 0.999, low=0, high=1)
    eps = number("adamax", config, "epsilon", 1e-38, low=0)
    wd = number("adamax", config, "weight_decay", 0.0, low=0)
    xp = namespace(x)
    tmp = scratch(state, x)
    m, _ = buffer(state, "m", x)
    u, _ = buffer(state, "u", x)

    # 1. loss and gradient
    fx, g = evaluate("adamax", feval, x)

    # 2. weight decay
    weight_decay(x, g, wd, tmp)

    # 3. count the step
    t = state["t"] = state.get("t", 0) + 1

    # 4. first moment
    moving_average(m, g, b1, tmp)

    # 5. infinity norm
    xp.abs(g, out=tmp)
    tmp += eps
    u *= b2
    xp.maximum(u, tmp, out=u)

    # 6. bias-corrected step
    xp.divide(m, u, out=tmp)
    tmp *= -lr / (1 - b1**t)
    x += tmp
    return x, [fx]
