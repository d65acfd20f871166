"""A line search satisfying the strong Wolfe conditions (``optim.lswolfe``), and the
cubic interpolation it uses (``optim.polyinterp``)."""

from __future__ import annotations

from typing import Any

import math

from ._validate import dot, integer, known_keys, namespace, number
from .._typing import Array, FEval

_OPTIONS = {"c1", "c2", "tol_x", "max_iter", "verbose"}


def polyinterp(x1: Array, f1: Any, g1: Any, x2: Array, f2: Any, g2: Any, lower: Any = None, upper: Any = None) -> Any:
    """Minimiser of the cubic through ``(x1, f1)``, ``(x2, f2)`` with slopes g1, g2.

    With the cubic ``p(s) = f1 + g1 s + B s^2 + A s^3`` (s = x - x1, h = x2 - x1)::

        B = (3 (f2 - f1) / h - 2 g1 - g2) / h,   A = (g1 + g2 - 2 (f2 - f1) / h) / h^2

    the candidates are the roots of ``p'`` inside ``[lower, upper]`` and the two bounds;
    the one with the smallest ``p`` is returned. Without bounds the interval is
    ``[min(x1, x2), max(x1, x2)]`` (interpolation) and, when the cubic has no real
    minimiser, its midpoint (as Torch7's ``optim.polyinterp`` for two points).
    """
    lo = min(x1, x2) if lower is None else lower
    hi = max(x1, x2) if upper is None else upper
    h = x2 - x1
    if h == 0 or not all(math.isfinite(v) for v in (x1, f1, g1, x2, f2, g2, lo, hi)):
        return (lo + hi) / 2
    slope = (f2 - f1) / h
    b = (3 * slope - 2 * g1 - g2) / h
    a = (g1 + g2 - 2 * slope) / (h * h)
    roots = []
    if a != 0:
        disc = b * b - 3 * a * g1
        if disc >= 0:
            r = math.sqrt(disc)
            roots = [(-b + r) / (3 * a), (-b - r) / (3 * a)]
    elif b != 0:
        roots = [-g1 / (2 * b)]
    if lower is None and upper is None:
        # interpolation: the local minimiser (p'' > 0), clamped into the interval
        minima = [s for s in roots if 6 * a * s + 2 * b > 0]
        if not minima:
            return (lo + hi) / 2
        return min(max(x1 + minima[0], lo), hi)

    def p(s):
        return f1 + s * (g1 + s * (b + s * a))

    candidates = [lo, hi] + [x1 + s for s in roots if lo <= x1 + s <= hi]
    return min(candidates, key=lambda t: p(t - x1))


def lswolfe(feval: FEval, x: Array, t: Any, d: Array, f: Any, g: Array, gtd: Any, options: dict[str, Any] | None = None,
            scratch: Any = None) -> tuple[Any, Any, Any, Any, Any]:
    """Search along ``d`` from ``x`` for a step t meeting the strong Wolfe conditions::

        f(x + t d) <= f + c1 t <g, d>             (sufficient decrease)
        |<g(x + t d), d>| <= -c2 <g, d>           (curvature)

    First a bracketing phase (extrapolating with :func:`polyinterp` between
    ``t + 0.01 (t - t_prev)`` and ``10 t``), then a zoom phase (cubic interpolation
    inside the bracket, with safeguards against steps too close to its ends).

    Arguments: ``feval``, the point ``x`` (moved in place to ``x + t d``), the initial
    step ``t``, the direction ``d``, ``f`` and ``g`` at x, ``gtd = <g, d>``.
    ``options`` (defaults in brackets): ``c1`` [1e-4], ``c2`` [0.9], ``tol_x`` [1e-9],
    ``max_iter`` [20], ``verbose`` [False]. ``scratch``: a dict where work arrays are
    kept between calls (optim.lbfgs passes its state).

    Returns ``(f_new, g_new, x, t, n_evals)``: g_new is a copy that stays valid until
    the next call with the same scratch. Use it with ``optim.lbfgs`` through
    ``config["line_search"] = optim.lswolfe``.
    """
    options = {} if options is None else options
    known_keys("lswolfe", options, _OPTIONS)
    c1 = number("lswolfe", options, "c1", 1e-4, low=0, high=1, low_open=True, high_open=True)
    c2 = number("lswolfe", options, "c2", 0.9, low=c1, high=1, low_open=True, high_open=True)
    tol_x = number("lswolfe", options, "tol_x", 1e-9, low=0)
    max_iter = integer("lswolfe", options, "max_iter", 20)
    verbose = bool(options.get("verbose", False))
    scratch = {} if scratch is None else scratch
    xp = namespace(x)
    x_init = _work(scratch, "_ls_x", x, xp)
    g0 = _work(scratch, "_ls_g0", x, xp)
    g_prev = _work(scratch, "_ls_gprev", x, xp)
    bracket_g = _work(scratch, "_ls_bracket", x, xp, rows=2)
    step = _work(scratch, "_ls_step", x, xp)
    x_init[...] = x
    g0[...] = g

    def move(t) -> None:  # x = x_init + t d
        xp.multiply(d, t, out=step)
        xp.add(x_init, step, out=x)

    # 1. evaluate at the initial step
    move(t)
    f_new, g_new = feval(x)
    n_evals, gtd_new = 1, dot(g_new, d)

    # 2. bracketing: find an interval containing a point meeting the Wolfe conditions
    it, t_prev, f_prev, gtd_prev, done = 0, 0.0, f, gtd, False
    g_prev[...] = g0
    bracket: Any = None
    bracket_f: Any = None
    while it < max_iter:
        if f_new > f + c1 * t * gtd or (it > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g[0], bracket_g[1] = g_prev, g_new
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, done = [t], [f_new], True
            bracket_g[0] = g_new
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g[0], bracket_g[1] = g_prev, g_new
            break
        t_next = polyinterp(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, t + 0.01 * (t - t_prev), t * 10)
        t_prev, f_prev, gtd_prev = t, f_new, gtd_new
        g_prev[...] = g_new
        t = t_next
        move(t)
        f_new, g_new = feval(x)
        n_evals, gtd_new, it = n_evals + 1, dot(g_new, d), it + 1
    if it == max_iter:
        bracket, bracket_f = [0.0, t], [f, f_new]
        bracket_g[0], bracket_g[1] = g0, g_new

    # 3. zoom: shrink the bracket until a point meets the conditions
    insufficient = False
    while not done and it < max_iter:
        lo = 0 if bracket_f[0] <= bracket_f[1] else 1
        hi = 1 - lo
        t = polyinterp(bracket[0], bracket_f[0], dot(bracket_g[0], d), bracket[1], bracket_f[1], dot(bracket_g[1], d))
        top, bottom = max(bracket), min(bracket)
        if min(top - t, t - bottom) / (top - bottom) < 0.1:  # too close to an end
            if insufficient or t >= top or t <= bottom:
                t = top - 0.1 * (top - bottom) if abs(t - top) < abs(t - bottom) else bottom + 0.1 * (top - bottom)
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        move(t)
        f_new, g_new = feval(x)
        n_evals, gtd_new, it = n_evals + 1, dot(g_new, d), it + 1
        if f_new > f + c1 * t * gtd or f_new >= bracket_f[lo]:
            bracket[hi], bracket_f[hi] = t, f_new
            bracket_g[hi] = g_new
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[hi] - bracket[lo]) >= 0:
                bracket[hi], bracket_f[hi] = bracket[lo], bracket_f[lo]
                bracket_g[hi] = bracket_g[lo]
            bracket[lo], bracket_f[lo] = t, f_new
            bracket_g[lo] = g_new
        if not done and abs((bracket[0] - bracket[1]) * gtd_new) < tol_x:
            break
    if verbose and it == max_iter:
        print("<optim.lswolfe> reached the maximum number of iterations")

    # 4. the best point of the bracket
    best = min(range(len(bracket)), key=lambda i: bracket_f[i])
    t = bracket[best]
    move(t)
    return bracket_f[best], bracket_g[best], x, t, n_evals


def _work(store, name, x: Array, xp, rows=None):
    shape = x.shape if rows is None else (rows,) + x.shape
    buf = store.get(name)
    if buf is None or buf.shape != shape or buf.dtype != x.dtype:
        buf = store[name] = xp.zeros(shape, dtype=x.dtype)
    return buf
