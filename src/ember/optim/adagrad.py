"""AdaGrad (Duchi, Hazan & Singer 2011) with Torch7's semantics (``optim.adagrad``)."""

from __future__ import annotations

from ._validate import buffer, evaluate, hyperparameters, namespace, scratch, setup, step_over_root, weight_decay
from .._typing import Array, FEval, OptimResult

_KEYS = {  # hyperparameter: default and bounds
    "learning_rate": {"default": 1e-3, "low": 0},
    "learning_rate_decay": {"default": 0.0, "low": 0},
    "weight_decay": {"default": 0.0, "low": 0},
}
_STATE = ("eval_counter", "param_variance")


def adagrad(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One AdaGrad step on the flat vector ``x`` (updated in place).

    ::

        s <- s + g*g
        x <- x - clr * g / (sqrt(s) + 1e-10)

    ``config`` (defaults in brackets): ``learning_rate`` [1e-3], ``learning_rate_decay``
    [0], ``weight_decay`` [0]. The 1e-10 is fixed, as in Torch7 (PyTorch's default eps
    is the same).

    ``state``: ``eval_counter`` and ``param_variance`` (the running sum of squared
    gradients s). Order per call (torch/optim adagrad.lua):
      1. fx, g = feval(x)
      2. g += wd x
      3. clr = lr / (1 + n lrd), n = calls before this one
      4. s += g^2
      5. x -= clr g / (sqrt(s) + 1e-10)
      6. n += 1
    Returns ``(x, [fx])``.
    """
    config, state = setup("adagrad", config, state, _KEYS, _STATE)
    lr, lrd, wd = hyperparameters("adagrad", config, _KEYS)
    n = state.setdefault("eval_counter", 0)
    xp = namespace(x)
    tmp = scratch(state, x)
    std = scratch(state, x, "_std")
    variance, _ = buffer(state, "param_variance", x)

    # 1. loss and gradient
    fx, g = evaluate("adagrad", feval, x)

    # 2. weight decay
    weight_decay(x, g, wd, tmp)

    # 3. learning-rate decay
    clr = lr / (1 + n * lrd)

    # 4. accumulate the squared gradient
    xp.multiply(g, g, out=tmp)
    variance += tmp

    # 5. scaled step
    step_over_root(x, g, variance, 1e-10, clr, tmp, std)

    # 6. count the evaluation
    state["eval_counter"] = n + 1
    return x, [fx]
