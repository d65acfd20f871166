"""Hyperparameter validation and state helpers shared by the optimizers.

Every optimizer starts the same way: :func:`setup` resolves ``state = state or config``
(Torch7's rule) and rejects unknown hyperparameters, the ``number``/``integer`` readers
validate each value, and :func:`evaluate` calls ``feval`` and checks what it returned.
Arrays that are part of the optimizer's state live in ``state`` under plain names
(:func:`buffer`); work arrays live under ``"_"``-prefixed names (:func:`scratch`) and are
not part of a checkpoint.
"""

from __future__ import annotations

import math
import numbers

from .. import _pages
from ..backend import axpby
from .._typing import Array, FEval

from typing import Any


def number(algorithm: str, config: dict[str, Any], key: str, default: Any, low: Any = None, high: Any = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """Read ``config[key]`` (or ``default``), check it is a finite real in range."""
    value = config.get(key, default)
    kind = type(value)  # float and int first: an ABC check costs more than the rest (called every step)
    if not (kind is float or kind is int or (kind is not bool and isinstance(value, numbers.Real))) or not math.isfinite(value):
        raise ValueError(f"optim.{algorithm}: {key} must be a finite number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = ">" if low_open else ">="
        raise ValueError(f"optim.{algorithm}: {key} must be {bound} {low}, got {value!r}")
    if high is not None and (value > high or (high_open and value == high)):
        bound = "<" if high_open else "<="
        raise ValueError(f"optim.{algorithm}: {key} must be {bound} {high}, got {value!r}")
    return float(value)


def integer(algorithm: str, config: dict[str, Any], key: str, default: Any, low: int = 1) -> int:
    """Read ``config[key]`` (or ``default``), check it is an integer >= ``low``."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"optim.{algorithm}: {key} must be an integer >= {low}, got {value!r}")
    return int(value)


def hyperparameters(algorithm: str, config: dict[str, Any], spec: Any) -> tuple[Any, ...]:
    """Read several hyperparameters at once: ``spec`` maps each key to the keyword
    arguments of :func:`number` (``default`` and the bounds); returns their values as a
    tuple, in ``spec``'s order. ``spec``'s keys double as the known keys for :func:`setup`."""
    return tuple(number(algorithm, config, key, **bounds) for key, bounds in spec.items())


def vector(algorithm: str, config: dict[str, Any], key: str, x: Array) -> Any:
    """Optional per-parameter vector ``config[key]`` with the shape of x."""
    value = config.get(key)
    if value is not None and getattr(value, "shape", None) != x.shape:
        raise ValueError(
            f"optim.{algorithm}: {key} must be an array of shape {x.shape} like x, "
            f"got {getattr(value, 'shape', type(value).__name__)}"
        )
    return value


def known_keys(algorithm: str, config: Any, allowed: Any) -> None:
    """Raise ValueError naming the keys of ``config`` (a dict or any iterable of keys)
    that are not in ``allowed``."""
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"optim.{algorithm}: unknown hyperparameter(s) {unknown}; known: {sorted(allowed)}")


def setup(algorithm: str, config: dict[str, Any] | None, state: dict[str, Any] | None, keys: Any,
          state_keys: tuple[Any, ...] = ()) -> tuple[Any, Any]:
    """``(config, state)`` with Torch7's ``state = state or config``; unknown keys raise.

    When ``state`` is ``config`` (no separate state given), the state's own keys
    (``state_keys``) and scratch keys (``"_..."``) are allowed in it.
    """
    config = {} if config is None else config
    state = config if state is None else state
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise ValueError(f"optim.{algorithm}: config and state must be dicts, got {type(config).__name__}, {type(state).__name__}")
    skip = state_keys if state is config else ()
    for key in config:  # the common case (every key known) without building sets
        if key not in keys and key not in skip and not (isinstance(key, str) and key.startswith("_")):
            known_keys(algorithm, [k for k in config if k not in skip and not (isinstance(k, str) and k.startswith("_"))], keys)
    return config, state


def evaluate(algorithm: str, feval: FEval, x: Array) -> tuple[Any, Any]:
    """``fx, g = feval(x)``, checking that g is an array of x's shape. A PyTorch tensor
    returned as the loss or the gradient means the same as a number or an array, so it
    is taken as one (``float(loss)``, the gradient through NumPy)."""
    result = feval(x)
    if not isinstance(result, tuple) or len(result) != 2:
        raise ValueError(f"optim.{algorithm}: feval(x) must return (loss, gradient), got {type(result).__name__}")
    fx, g = result
    if type(g).__module__.startswith("torch") and hasattr(g, "detach"):  # a PyTorch habit, same meaning
        g = namespace(x).asarray(g.detach().cpu().numpy())
    if type(fx).__module__.startswith("torch") and hasattr(fx, "item"):
        fx = float(fx.item())
    if g is None or getattr(g, "shape", None) != x.shape:
        raise ValueError(f"optim.{algorithm}: feval must return (loss, gradient of shape {x.shape}), got {getattr(g, 'shape', g)!r}")
    return fx, g


def scratch(state: dict[str, Any], x: Array, name: str = "_scratch", dtype: Any = None) -> Any:
    """A work array like x (or of ``dtype``) kept in ``state`` under a private name
    (``"_..."``, not part of a checkpoint); allocated on the first call only."""
    if not name.startswith("_"):
        raise ValueError(f"scratch names start with '_', got {name!r}")
    dtype = x.dtype if dtype is None else dtype
    buf = state.get(name)
    if buf is None or buf.shape != x.shape or buf.dtype != dtype:
        buf = state[name] = namespace(x).zeros(x.shape, dtype=dtype)
    return buf


def state_vector(x: Array, fill: float | None = 0.0) -> Any:
    """A new array like ``x`` filled with ``fill``, or a copy of ``x`` (``fill=None``), for
    the optimizer's state: a flat NumPy vector lies on 2 MB pages where Linux allows it
    (:mod:`ember._pages`, like the flat parameters themselves; only speed differs)."""
    if type(x).__module__ == "numpy" and x.ndim == 1:
        return _pages.like(x, fill)
    return x.copy() if fill is None else namespace(x).full_like(x, fill)


def buffer(state: dict[str, Any], name: str, x: Array, fill: float = 0.0) -> tuple[Any, bool]:
    """A persistent state array like x (e.g. a momentum), created filled with ``fill``.

    Returns ``(array, created)``; a stored array of another shape or dtype is replaced.
    """
    buf = state.get(name)
    if buf is not None and getattr(buf, "shape", None) == x.shape and buf.dtype == x.dtype:
        return buf, False
    buf = state[name] = state_vector(x, fill)
    return buf, True


def namespace(x: Array) -> Any:
    """``numpy`` or ``cupy``, whichever ``x`` belongs to."""
    if type(x).__module__.startswith("cupy"):
        import cupy

        return cupy
    import numpy

    return numpy


def weight_decay(x: Array, g: Array, wd: Any, tmp: Array) -> None:
    """``g += wd * x`` in place (Torch7's L2 term on the flat vector): one BLAS pass, or
    through ``tmp`` without BLAS."""
    if wd != 0:
        axpby(wd, x, 1.0, g, tmp)


def dot(a: Any, b: Any) -> float:
    """``<a, b>`` as a Python float (no temporary array)."""
    return float(namespace(a).dot(a, b))


def moving_average(avg: Any, value: Any, decay: Any, tmp: Array, square: bool = False) -> None:
    """``avg = decay * avg + (1 - decay) * value`` (``value**2`` if ``square``), in place."""
    xp = namespace(avg)
    avg *= decay
    if square:
        xp.multiply(value, value, out=tmp)
        tmp *= 1 - decay
    else:
        xp.multiply(value, 1 - decay, out=tmp)
    avg += tmp


def step_over_root(x: Array, numerator: Any, second: Any, eps: float, step: float, tmp: Array, denom: Any) -> None:
    """``x -= step * numerator / (sqrt(second) + eps)``, in place (via tmp and denom)."""
    xp = namespace(x)
    xp.sqrt(second, out=denom)
    denom += eps
    xp.divide(numerator, denom, out=tmp)
    tmp *= -step
    x += tmp
