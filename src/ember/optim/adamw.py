"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019), ``optim.adamw``."""

from __future__ import annotations

from .adam import adam_step
from .._typing import Array, FEval, OptimResult


def adamw(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> OptimResult:
    """One AdamW step on the flat vector ``x`` (updated in place).

    As :func:`~ember.optim.adam`, except that weight decay shrinks the parameters
    directly instead of entering the gradient (and so the moment estimates)::

        x <- x * (1 - clr wd)                         (decoupled decay)
        x <- x - clr sqrt(1 - b2^t)/(1 - b1^t) * m / (sqrt(v) + eps)

    ``config``: the keys of :func:`~ember.optim.adam`; ``weight_decay`` defaults to
    1e-2 (PyTorch's AdamW default). Torch7 has no AdamW: this follows PyTorch's order
    (decay with the current learning rate, before the moment update) and keeps
    Torch7's placement of eps (added to sqrt(v) before bias correction).

    ``state``: ``t``, ``m``, ``v`` as for adam. Order per call:
      1. fx, g = feval(x)
      2. clr = lr / (1 + t lrd);  x *= 1 - clr wd
      3. t += 1; moments; x -= step * m / (sqrt(v) + eps)   (as adam, steps 4-7)
    Returns ``(x, [fx])``.
    """
    return adam_step("adamw", feval, x, config, state, decoupled=True)
