"""AdaDelta (Zeiler 2012) with Torch7's semantics (``optim.adadelta``)."""

from __future__ import annotations

from ._validate import buffer, evaluate, hyperparameters, moving_average, namespace, scratch, setup, weight_decay
from .._typing import Array, FEval, OptimResult

_KEYS = {  # hyperparameter: default and bounds
    "rho": {"default": 0.9, "low": 0, "high": 1},
    "eps": {"default": 1e-6, "low": 0},
    "weight_decay": {"default": 0.0, "low": 0},
    "learning_rate": {"default": 1.0, "low": 0},
}
_STATE = ("eval_counter", "param_variance", "acc_delta")


def adadelta(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One AdaDelta step on the flat vector ``x`` (updated in place).

    ::

        s <- rho s + (1 - rho) g*g
        d  = sqrt(a + eps) / sqrt(s + eps) * g
        x <- x - lr d
        a <- rho a + (1 - rho) d*d

    ``config`` (defaults in brackets): ``rho`` [0.9], ``eps`` [1e-6], ``weight_decay``
    [0], ``learning_rate`` [1] (not in Torch7, which has no learning rate; PyTorch's
    ``lr``; the default leaves Torch7's update unchanged).

    ``state``: ``eval_counter``, ``param_variance`` (s) and ``acc_delta`` (a, the
    running mean of squared updates). Order per call (torch/optim adadelta.lua):
      1. fx, g = feval(x)
      2. g += wd x
      3. s = rho s + (1 - rho) g^2
      4. d = sqrt(a + eps) / sqrt(s + eps) * g
      5. x -= lr d
      6. a = rho a + (1 - rho) d^2
      7. n += 1
    Returns ``(x, [fx])``.
    """
    config, state = setup("adadelta", config, state, _KEYS, _STATE)
    rho, eps, wd, lr = hyperparameters("adadelta", config, _KEYS)
    n = state.setdefault("eval_counter", 0)
    xp = namespace(x)
    tmp = scratch(state, x)
    delta = scratch(state, x, "_delta")
    variance, _ = buffer(state, "param_variance", x)
    acc_delta, _ = buffer(state, "acc_delta", x)

    # 1. loss and gradient
    fx, g = evaluate("adadelta", feval, x)

    # 2. weight decay
    weight_decay(x, g, wd, tmp)

    # 3. running mean of the squared gradient
    moving_average(variance, g, rho, tmp, square=True)

    # 4. the update: RMS of past updates over RMS of gradients, times g
    xp.add(acc_delta, eps, out=delta)
    xp.sqrt(delta, out=delta)
    xp.add(variance, eps, out=tmp)
    xp.sqrt(tmp, out=tmp)
    delta /= tmp
    delta *= g

    # 5. parameter update
    if lr == 1:
        x -= delta
    else:
        xp.multiply(delta, -lr, out=tmp)
        x += tmp

    # 6. running mean of the squared update
    moving_average(acc_delta, delta, rho, tmp, square=True)

    # 7. count the evaluation
    state["eval_counter"] = n + 1
    return x, [fx]
