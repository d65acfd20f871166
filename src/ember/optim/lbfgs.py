"""Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989), Torch7's ``optim.lbfgs``."""

from __future__ import annotations

from ._validate import buffer, dot, evaluate, integer, namespace, number, scratch, setup
from .._typing import Array, FEval

_KEYS = {
    "max_iter", "max_eval", "tol_fun", "tol_x", "n_correction", "line_search",
    "line_search_options", "learning_rate", "verbose",
}  # fmt: skip
_STATE = (
    "func_eval", "n_iter", "d", "t", "g_old", "f_old", "h_diag", "s_history", "y_history",
    "history_size", "history_start",
)  # fmt: skip


def lbfgs(feval: FEval, x: Array, config: dict | None = None,
          state: dict | None = None) -> tuple[Array, list[float], int]:
    """Up to ``max_iter`` L-BFGS iterations from ``x`` (updated in place).

    The direction is ``d = -H g`` where H, the inverse-Hessian estimate, is never
    formed: the two-loop recursion applies it from the last ``n_correction`` pairs
    ``s_k = x_{k+1} - x_k``, ``y_k = g_{k+1} - g_k`` (a pair is kept only when
    ``<y, s> > 1e-10``), starting from ``H0 = <y, s> / <y, y>`` times the identity.
    The step is a fixed ``learning_rate`` (the first iteration of a run uses
    ``min(1, 1/sum|g|) * learning_rate``), or a line search such as
    :func:`~ember.optim.lswolfe`.

    ``config`` (defaults in brackets): ``max_iter`` [20], ``max_eval``
    [1.25 max_iter], ``tol_fun`` [1e-5] (stop when sum|g| <= tol_fun), ``tol_x`` [1e-9]
    (stop when the step or the change of f is below it), ``n_correction`` [100],
    ``line_search`` [None, or a function like ``optim.lswolfe``],
    ``line_search_options`` (dict passed to it), ``learning_rate`` [1], ``verbose``
    [False]. Memory: two (n_correction, len(x)) arrays.

    ``state`` (so that a later call continues the same run): ``func_eval``, ``n_iter``,
    ``d``, ``t``, ``g_old``, ``f_old``, ``h_diag``, and the history rings
    ``s_history``, ``y_history`` with ``history_size`` and ``history_start``.

    Per call (torch/optim lbfgs.lua):
      1. f, g = feval(x); stop if sum|g| <= tol_fun
      2. repeat: d = -g on the very first iteration, else store (s, y) and run the
         two-loop recursion
      3. stop if <g, d> > -tol_x (no descent possible)
      4. step: line search, or x += t d then f, g = feval(x) (skipped on the last
         iteration)
      5. stop on max_iter, max_eval, sum|g| <= tol_fun, sum|t d| <= tol_x or
         |f - f_old| < tol_x
    Returns ``(x, f_history, n_evals)``: f_history[0] is f before the call,
    f_history[-1] the last value computed.
    """
    config, state = setup("lbfgs", config, state, _KEYS, _STATE)
    max_iter = integer("lbfgs", config, "max_iter", 20)
    max_eval = number("lbfgs", config, "max_eval", max_iter * 1.25, low=1)
    tol_fun = number("lbfgs", config, "tol_fun", 1e-5, low=0)
    tol_x = number("lbfgs", config, "tol_x", 1e-9, low=0)
    n_correction = integer("lbfgs", config, "n_correction", 100)
    lr = number("lbfgs", config, "learning_rate", 1.0, low=0, low_open=True)
    line_search = config.get("line_search")
    if line_search is not None and not callable(line_search):
        raise ValueError(f"optim.lbfgs: line_search must be a function like optim.lswolfe, got {line_search!r}")
    ls_options = config.get("line_search_options")
    say = print if config.get("verbose") else (lambda *a: None)
    xp = namespace(x)
    tmp = scratch(state, x)
    work = scratch(state, x, "_work")
    state.setdefault("func_eval", 0)
    state.setdefault("n_iter", 0)

    # 1. loss and gradient at the starting point
    f, g = evaluate("lbfgs", feval, x)
    history, evals = [f], 1
    state["func_eval"] += 1
    if _abs_sum(g, tmp) <= tol_fun:
        say("<optim.lbfgs> optimality condition below tol_fun")
        return x, history, evals

    d, _ = buffer(state, "d", x)
    g_old, _ = buffer(state, "g_old", x)
    t = state.get("t", lr)
    for it in range(1, max_iter + 1):
        state["n_iter"] += 1

        # 2. descent direction
        if state["n_iter"] == 1:
            xp.negative(g, out=d)
            state["h_diag"] = 1.0
            state["history_size"] = state["history_start"] = 0
        else:
            _remember(state, g, g_old, d, t, n_correction, tmp, work)
            _two_loop(state, g, d, tmp, work, xp)
        g_old[...] = g
        f_old = state["f_old"] = f

        # 3. directional derivative
        gtd = dot(g, d)
        if gtd > -tol_x:
            say("<optim.lbfgs> no descent direction")
            break

        # 4. step length and move
        t = min(1.0, 1.0 / _abs_sum(g, tmp)) * lr if state["n_iter"] == 1 else lr
        if line_search is not None:
            f, g, x, t, ls_evals = line_search(feval, x, t, d, f, g, gtd, ls_options, state)
            history.append(f)
        else:
            xp.multiply(d, t, out=tmp)
            x += tmp
            ls_evals = 0
            if it != max_iter:  # in the stochastic setting the last evaluation is wasted
                f, g = evaluate("lbfgs", feval, x)
                ls_evals = 1
                history.append(f)
        evals += ls_evals
        state["func_eval"] += ls_evals
        state["t"] = t

        # 5. stopping tests
        if it == max_iter:
            say("<optim.lbfgs> reached max_iter")
            break
        if evals >= max_eval:
            say("<optim.lbfgs> reached max_eval")
            break
        if _abs_sum(g, tmp) <= tol_fun:
            say("<optim.lbfgs> optimality condition below tol_fun")
            break
        if abs(t) * _abs_sum(d, tmp) <= tol_x:
            say("<optim.lbfgs> step size below tol_x")
            break
        if abs(f - f_old) < tol_x:
            say("<optim.lbfgs> function value changing less than tol_x")
            break
    # the gradient may be a line-search copy: keep the last one for the next call
    return x, history, evals


def _abs_sum(v, tmp):
    namespace(v).abs(v, out=tmp)
    return float(tmp.sum())


def _remember(state, g, g_old, d, t, n_correction, y, s) -> None:
    """Append the pair (s = t d, y = g - g_old) to the history ring when <y, s> > 1e-10."""
    xp = namespace(g)
    xp.subtract(g, g_old, out=y)
    xp.multiply(d, t, out=s)
    ys = dot(y, s)
    if ys <= 1e-10:
        return
    rows = (n_correction,) + g.shape
    s_hist, y_hist = state.get("s_history"), state.get("y_history")
    if s_hist is None or s_hist.shape != rows or s_hist.dtype != g.dtype:
        s_hist = state["s_history"] = xp.zeros(rows, dtype=g.dtype)
        y_hist = state["y_history"] = xp.zeros(rows, dtype=g.dtype)
        state["history_size"] = state["history_start"] = 0
    size, start = state["history_size"], state["history_start"]
    if size == n_correction:  # full: overwrite the oldest pair
        slot = start
        state["history_start"] = (start + 1) % n_correction
    else:
        slot = (start + size) % n_correction
        state["history_size"] = size + 1
    s_hist[slot] = s
    y_hist[slot] = y
    state["h_diag"] = ys / dot(y, y)


def _two_loop(state, g, d, q, tmp, xp) -> None:
    """d = -H g by the two-loop recursion over the stored pairs (oldest first)."""
    size, start = state.get("history_size", 0), state.get("history_start", 0)
    s_hist, y_hist = state.get("s_history"), state.get("y_history")
    n = 0 if s_hist is None else s_hist.shape[0]
    slots = [(start + i) % n for i in range(size)] if n else []
    ro = [1.0 / dot(y_hist[k], s_hist[k]) for k in slots]
    al = [0.0] * len(slots)
    xp.negative(g, out=q)
    for i in reversed(range(len(slots))):
        k = slots[i]
        al[i] = dot(s_hist[k], q) * ro[i]
        xp.multiply(y_hist[k], -al[i], out=tmp)
        q += tmp
    xp.multiply(q, state["h_diag"], out=d)
    for i, k in enumerate(slots):
        be = dot(y_hist[k], d) * ro[i]
        xp.multiply(s_hist[k], al[i] - be, out=tmp)
        d += tmp
