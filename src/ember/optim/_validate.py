"""Hyperparameter validation shared by the optimizers."""

from __future__ import annotations

import math
import numbers


def number(algorithm, config, key, default, low=None, high=None, low_open=False):
    """Read ``config[key]`` (or ``default``), check it is a finite real in range."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"optim.{algorithm}: {key} must be a finite number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        bound = ">" if low_open else ">="
        raise ValueError(f"optim.{algorithm}: {key} must be {bound} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"optim.{algorithm}: {key} must be <= {high}, got {value!r}")
    return float(value)


def vector(algorithm, config, key, x):
    """Optional per-parameter vector ``config[key]`` with the shape of x."""
    value = config.get(key)
    if value is not None and getattr(value, "shape", None) != x.shape:
        raise ValueError(
            f"optim.{algorithm}: {key} must be an array of shape {x.shape} like x, "
            f"got {getattr(value, 'shape', type(value).__name__)}"
        )
    return value


def known_keys(algorithm, config, allowed):
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ValueError(f"optim.{algorithm}: unknown hyperparameter(s) {unknown}; known: {sorted(allowed)}")


def scratch(state, x, name="_scratch"):
    """A work array kept in ``state`` under a private name (not part of a checkpoint)."""
    buf = state.get(name)
    if buf is None or buf.shape != x.shape or buf.dtype != x.dtype:
        buf = state[name] = x * 0
    return buf
