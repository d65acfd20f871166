"""ISTA and FISTA: proximal gradient descent for ``F(x) = f(x) + g(x)`` (Torch7 ``optim.FistaLS``).

Used for sparse coding (``ember.unsup``): ``f(z) = 1/2 ||x - D z||^2`` is smooth,
``g(z) = lambda |z|_1`` is not, and its proximal map is the soft threshold
(:func:`soft_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .._typing import Array
from ._validate import integer, namespace, number, setup

_KEYS = {"L", "L_step", "max_iter", "max_line", "err_thres", "fista", "line_search"}


def soft_threshold(x: Array, threshold: float | Array, out: Array | None = None) -> Array:
    """The proximal map of ``threshold * |.|_1``: ``sign(x) max(|x| - threshold, 0)``.

    Computed as ``x - clip(x, -t, t)``; ``threshold`` may be a scalar or an array that
    broadcasts against ``x`` (one threshold per unit). ``out`` may be ``x`` (in place).
    """
    xp = namespace(x)
    clipped = xp.clip(x, -threshold, threshold)
    if out is None:
        return x - clipped
    xp.subtract(x, clipped, out=out)
    return out


def fista(f: Callable[..., Any], g: Callable[[Array], float], pl: Callable[[Array, float], Array], x_init: Array,
          config: dict | None = None, state: dict | None = None) -> tuple[Array, dict]:
    """Minimise ``F(x) = f(x) + g(x)`` by FISTA (Beck & Teboulle 2009) with backtracking.

    Torch7's ``optim.FistaLS(f, g, pl, xinit, params)``, in Python:

    - ``f(x, need_grad)``: the smooth part; returns ``f(x)`` (a float) when ``need_grad``
      is False and ``(f(x), df/dx)`` when it is True. ``df/dx`` must be Lipschitz.
    - ``g(x)``: the non-smooth part (a float).
    - ``pl(x, L)``: the proximal step, in place: ``x <- argmin_u g(u) + L/2 ||u - x||^2``
      (for ``g = lambda |.|_1``: ``soft_threshold(x, lambda / L, out=x)``); returns x.
    - ``x_init``: the starting point (left unchanged).

    ``config`` (defaults in brackets; Torch7's names in snake_case):
    ``L`` [0.1] the inverse step size to start from (a Lipschitz constant of df/dx makes
    the line search unnecessary); ``L_step`` [1.5] its growth factor in the line search;
    ``max_iter`` [50]; ``max_line`` [20] line-search steps per iteration; ``err_thres``
    [1e-4] stop when ``||x_k - x_{k-1}|| <= err_thres ||x_{k-1}||``;
    ``fista`` [True] (False: ISTA, no momentum); ``line_search`` [True] (False: fixed
    step ``1/L``, one f evaluation per iteration).

    Per iteration k (y_1 = x_0 = x_init, t_1 = 1):
      1. f(y_k) and df/dy_k
      2. x_k = pl(y_k - df/dy_k / L, L); while the line search is on and
         f(x_k) > f(y_k) + <x_k - y_k, df/dy_k> + L/2 ||x_k - y_k||^2: L *= L_step, redo 2
      3. FISTA: t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,
         y_{k+1} = x_k + (t_k - 1) / t_{k+1} (x_k - x_{k-1});  ISTA: y_{k+1} = x_k
      4. stop when the relative change of x is below ``err_thres``

    ``state`` (default: ``config``) keeps ``L``, the last value used, so the next call
    starts from it (as Torch7 writes it back into ``params.L``).
    Returns ``(x, history)``; history: ``iterations``, ``line_steps`` (L increases),
    ``L``, and ``energy`` (F(x_k) per iteration, recorded when the line search is on).
    """
    config, state = setup("fista", config, state, _KEYS, ("L",))
    L = number("fista", state if "L" in state else config, "L", 0.1, low=0, low_open=True)
    L_step = number("fista", config, "L_step", 1.5, low=1)
    max_iter = integer("fista", config, "max_iter", 50)
    max_line = integer("fista", config, "max_line", 20, low=0)
    err_thres = number("fista", config, "err_thres", 1e-4, low=0)
    accelerate = bool(config.get("fista", True))
    line_search = bool(config.get("line_search", True))
    if not hasattr(x_init, "shape"):
        raise TypeError(f"optim.fista: x_init must be an array, got {type(x_init).__name__}")
    xp = namespace(x_init)

    x_prev = x_init.copy()
    y = x_init.copy()
    x = x_init.copy()
    t = 1.0
    history: dict = {"iterations": 0, "line_steps": 0, "energy": []}
    for k in range(1, max_iter + 1):
        # 1. the smooth part and its gradient at y
        fy, grad = f(y, True)
        if grad is None or getattr(grad, "shape", None) != y.shape:
            raise ValueError(f"optim.fista: f(x, True) must return (value, gradient of shape {y.shape})")
        # 2. proximal gradient step, growing L until the quadratic model bounds f
        for _ in range(max_line + 1):
            xp.multiply(grad, -1.0 / L, out=x)
            x += y
            pl(x, L)
            if not line_search:
                break
            fx = float(f(x, False))
            d = x - y
            model = fy + float(xp.vdot(d, grad)) + 0.5 * L * float(xp.vdot(d, d))
            if fx <= model + 1e-12 * abs(model):
                break
            L *= L_step
            history["line_steps"] += 1
        if line_search:
            history["energy"].append(fx + float(g(x)))
        # 3. momentum (FISTA) or none (ISTA)
        change = float(xp.linalg.norm(x - x_prev))
        scale = float(xp.linalg.norm(x_prev))
        if accelerate:
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            xp.subtract(x, x_prev, out=y)
            y *= (t - 1.0) / t_next
            y += x
            t = t_next
        else:
            y[...] = x
        x_prev[...] = x
        history["iterations"] = k
        # 4. convergence
        if change <= err_thres * max(scale, 1e-300):
            break
    state["L"] = L
    history["L"] = L
    return x, history


def ista(f: Callable[..., Any], g: Callable[[Array], float], pl: Callable[[Array, float], Array], x_init: Array,
         config: dict | None = None, state: dict | None = None) -> tuple[Array, dict]:
    """ISTA: :func:`fista` without the momentum step (``config["fista"] = False``)."""
    settings = dict(config or {})
    settings["fista"] = False
    if state is None:
        state = config if config is not None else {}
    return fista(f, g, pl, x_init, settings, state)
