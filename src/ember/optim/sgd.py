"""Stochastic gradient descent with Torch7's semantics and order (``optim.sgd``)."""

from __future__ import annotations

from ..backend import axpby
from ._fast_update import momentum_step
from ._validate import evaluate, namespace, number, scratch, setup, state_vector, vector, weight_decay
from .._typing import Array, FEval, OptimResult

_KEYS = {
    "learning_rate", "learning_rate_decay", "weight_decay", "weight_decays", "l1_weight_decay",
    "momentum", "dampening", "nesterov", "learning_rates",
}  # fmt: skip


def sgd(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One SGD step on the flat parameter vector ``x`` (updated in place).

    ``feval(x) -> (loss, dloss/dx)`` is the lecture's closure. ``config`` keys (Torch7
    names in snake_case; defaults in brackets):

    - ``learning_rate`` [1e-3], ``learning_rate_decay`` [0]
    - ``weight_decay`` [0] (L2), ``weight_decays`` (per-parameter vector)
    - ``l1_weight_decay`` [0] (L1 on the weights; the lecture recommends "a bit of L1
      or L2"; Torch7's sgd has only L2)
    - ``momentum`` [0], ``dampening`` [= momentum, Torch7's default; PyTorch uses 0],
      ``nesterov`` [False] (needs momentum > 0 and dampening 0)
    - ``learning_rates`` (per-parameter vector of learning-rate multipliers)

    ``state`` (default: ``config``) is a plain dict holding ``eval_counter`` and the
    momentum buffer ``dfdx``; keys starting with ``_`` are scratch space.

    Order, per call (as torch/optim sgd.lua):
      1. fx, g = feval(x)
      2. g += wd * x (or wds * x); g += l1 * sign(x)
      3. momentum: v = g on the first call, then v = mu v + (1 - d) g;
         g = g + mu v (Nesterov) or g = v
      4. clr = lr / (1 + n * lrd), n = evaluations so far (the first step uses lr)
      5. x -= clr * g (or clr * lrs * g)
      6. n += 1
    Returns ``(x, [fx])`` with fx the loss before the update.

    With ``ember[fast]`` (Numba), steps 2-5 of a momentum step with scalar settings run
    as one compiled pass over the vectors (``optim/_fast_update.py``); same results.
    """
    config, state = setup("sgd", config, state, _KEYS, ("eval_counter", "dfdx"))
    lr = number("sgd", config, "learning_rate", 1e-3, low=0)
    lrd = number("sgd", config, "learning_rate_decay", 0.0, low=0)
    wd = number("sgd", config, "weight_decay", 0.0, low=0)
    l1 = number("sgd", config, "l1_weight_decay", 0.0, low=0)
    mom = number("sgd", config, "momentum", 0.0, low=0, high=1)
    damp = number("sgd", config, "dampening", mom, low=0, high=1)
    nesterov = bool(config.get("nesterov", False))
    wds = vector("sgd", config, "weight_decays", x)
    lrs = vector("sgd", config, "learning_rates", x)
    if nesterov and (mom <= 0 or damp != 0):
        raise ValueError(f"optim.sgd: nesterov needs momentum > 0 and dampening 0, got momentum={mom}, dampening={damp}")
    n = state.setdefault("eval_counter", 0)

    # 1. loss and gradient at x
    fx, g = evaluate("sgd", feval, x)
    v = state.get("dfdx")
    if (mom != 0 and wds is None and lrs is None and l1 == 0 and v is not None and v.shape == x.shape
            and momentum_step(x, g, v, wd, mom, damp, nesterov, lr / (1 + n * lrd))):  # fmt: skip
        # steps 2-5 in one compiled pass (ember[fast]; the NumPy code below is the reference)
        state["eval_counter"] = n + 1
        return x, [fx]
    tmp = scratch(state, x)
    xp = namespace(x)

    # 2. weight decay, in place on the caller's gradient (as Torch7)
    weight_decay(x, g, wd, tmp)
    if wds is not None:
        xp.multiply(x, wds, out=tmp)
        g += tmp
    if l1 != 0:
        xp.sign(x, out=tmp)
        axpby(l1, tmp, 1.0, g)

    # 3. momentum
    if mom != 0:
        v = state.get("dfdx")
        if v is None or v.shape != x.shape:
            v = state["dfdx"] = state_vector(g, fill=None)
        else:
            axpby(1 - damp, g, mom, v, tmp)
        if nesterov:
            axpby(mom, v, 1.0, g, tmp)
        else:
            g = v

    # 4. learning-rate decay (annealing)
    clr = lr / (1 + n * lrd)

    # 5. parameter update
    if lrs is not None:
        xp.multiply(lrs, g, out=tmp)
        axpby(-clr, tmp, 1.0, x)
    else:
        axpby(-clr, g, 1.0, x, tmp)

    # 6. count the evaluation
    state["eval_counter"] = n + 1
    return x, [fx]

