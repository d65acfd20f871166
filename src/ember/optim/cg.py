"""Nonlinear conjugate gradients (Rasmussen's ``minimize.m``), Torch7's ``optim.cg``."""

from __future__ import annotations

import math

from ._validate import dot, evaluate, integer, namespace, number, scratch, setup
from .._typing import Array, FEval

_KEYS = {"rho", "sig", "int", "ext", "max_iter", "ratio", "max_eval"}


def cg(feval: FEval, x: Array, config: dict | None = None, state: dict | None = None) -> tuple[Array, list[float], int]:
    """Minimise from ``x`` (updated in place) by Polak-Ribiere conjugate gradients.

    Each iteration searches along ``s`` (initially ``-g``) with a line search built
    from cubic extrapolation and quadratic/cubic interpolation until the Wolfe-Powell
    conditions ``f2 <= f1 + rho z <g1, s>`` and ``|<g2, s>| <= -sig <g1, s>`` hold, then
    updates ``s <- (<g2, g2> - <g2, g1>) / <g1, g1> * s - g2`` (restarting with
    ``-g2`` when that is not a descent direction). A failed line search restarts
    along the steepest descent; two failures in a row end the call.

    ``config`` (defaults in brackets): ``max_eval`` [1.25 max_iter] (the evaluation
    budget, which is what limits a call), ``max_iter`` [20] (evaluations per line
    search), ``rho`` [0.01], ``sig`` [0.5], ``int`` [0.1] (do not re-evaluate within
    int of the bracket's ends), ``ext`` [3.0] (extrapolate at most ext times the
    current step), ``ratio`` [100] (maximum slope ratio).

    ``state``: only work arrays (``"_"`` keys); each call starts afresh, as Torch7's.
    Differences from Torch7's Lua port: a single failed line search does not end the
    call (the Lua port tests ``ls_failed`` as a number, which is always true in Lua);
    this follows minimize.m.
    Returns ``(x, f_history, n_evals)``: f_history[0] is f before the call and
    f_history[-1] f at the returned x.
    """
    config, state = setup("cg", config, state, _KEYS)
    rho = number("cg", config, "rho", 0.01, low=0, high=1, low_open=True, high_open=True)
    sig = number("cg", config, "sig", 0.5, low=rho, high=1, low_open=True, high_open=True)
    interp = number("cg", config, "int", 0.1, low=0, high=0.5, low_open=True, high_open=True)
    ext = number("cg", config, "ext", 3.0, low=1, low_open=True)
    max_iter = integer("cg", config, "max_iter", 20)
    ratio = number("cg", config, "ratio", 100.0, low=0, low_open=True)
    max_eval = number("cg", config, "max_eval", max_iter * 1.25, low=1)
    xp = namespace(x)
    df0, df1, df2 = (scratch(state, x, name) for name in ("_df0", "_df1", "_df2"))
    s, x0, tmp = (scratch(state, x, name) for name in ("_s", "_x0", "_scratch"))

    def move(step) -> None:  # x += step * s
        xp.multiply(s, step, out=tmp)
        xp.add(x, tmp, out=x)

    def probe():  # f and g at x, g copied into df2
        f, g = evaluate("cg", feval, x)
        df2[...] = g
        return float(f), dot(df2, s)

    # 1. start: steepest descent, initial step 1 / (1 - slope)
    f1, g = evaluate("cg", feval, x)
    f1 = float(f1)
    df1[...] = g
    history, evals, failed = [f1], 1, False
    xp.negative(df1, out=s)
    d1 = -dot(s, s)
    z1 = 1.0 / (1 - d1)
    while evals < max_eval:
        # 2. line search along s, from x0
        x0[...] = x
        f0 = f1
        df0[...] = df1
        move(z1)
        f2, d2 = probe()
        evals += 1
        f3, d3, z3 = f1, d1, -z1
        budget = min(max_iter, max_eval - evals)
        success, limit = False, -1.0
        while True:
            while (f2 > f1 + z1 * rho * d1 or d2 > -sig * d1) and budget > 0:
                # 2a. interpolate back: quadratic if f rose, else cubic
                limit = z1
                if f2 > f1:
                    z2 = z3 - _div(0.5 * d3 * z3 * z3, d3 * z3 + f2 - f3)
                else:
                    a = _div(6 * (f2 - f3), z3) + 3 * (d2 + d3)
                    b = 3 * (f3 - f2) - z3 * (d3 + 2 * d2)
                    z2 = _div(_sqrt(b * b - a * d2 * z3 * z3) - b, a)
                if not math.isfinite(z2):
                    z2 = z3 / 2
                z2 = max(min(z2, interp * z3), (1 - interp) * z3)
                z1 += z2
                move(z2)
                f2, d2 = probe()
                evals += 1
                budget -= 1
                z3 -= z2
            if f2 > f1 + z1 * rho * d1 or d2 > -sig * d1:
                break  # failure
            if d2 > sig * d1:
                success = True
                break
            if budget == 0:
                break
            # 2b. extrapolate with a cubic, within the safeguards
            a = _div(6 * (f2 - f3), z3) + 3 * (d2 + d3)
            b = 3 * (f3 - f2) - z3 * (d3 + 2 * d2)
            z2 = _div(-d2 * z3 * z3, b + _sqrt(b * b - a * d2 * z3 * z3))
            if not math.isfinite(z2) or z2 < 0:
                z2 = z1 * (ext - 1) if limit < -0.5 else (limit - z1) / 2
            elif limit > -0.5 and z2 + z1 > limit:
                z2 = (limit - z1) / 2
            elif limit < -0.5 and z2 + z1 > z1 * ext:
                z2 = z1 * (ext - 1)
            elif z2 < -z3 * interp:
                z2 = -z3 * interp
            elif limit > -0.5 and z2 < (limit - z1) * (1 - interp):
                z2 = (limit - z1) * (1 - interp)
            f3, d3, z3 = f2, d2, -z2
            z1 += z2
            move(z2)
            f2, d2 = probe()
            evals += 1
            budget -= 1
        if success:
            # 3. Polak-Ribiere direction
            f1 = f2
            history.append(f1)
            beta = (dot(df2, df2) - dot(df2, df1)) / dot(df1, df1)
            s *= beta
            s -= df2
            df1, df2 = df2, df1
            d2 = dot(df1, s)
            if d2 > 0:  # not a descent direction: restart
                xp.negative(df1, out=s)
                d2 = -dot(s, s)
            z1 *= min(ratio, d1 / (d2 - 1e-320))
            d1, failed = d2, False
        else:
            # 4. failure: back to x0, restart along the steepest descent
            x[...] = x0
            f1 = f0
            df1[...] = df0
            if failed or evals > max_eval:
                break
            df1, df2 = df2, df1
            xp.negative(df1, out=s)
            d1 = -dot(s, s)
            z1 = 1.0 / (1 - d1)
            failed = True
    state["_df1"], state["_df2"] = df1, df2
    if history[-1] != f1:
        history.append(f1)
    return x, history, evals


def _div(a, b):
    return a / b if b != 0 else math.copysign(math.inf, a) if a != 0 else math.nan


def _sqrt(v):
    return math.sqrt(v) if v >= 0 else math.nan
