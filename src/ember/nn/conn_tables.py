"""Connection tables for :class:`~ember.nn.SpatialConvolutionMap` (Torch7 ``nn.tables``).

A table is an integer array of shape (n_connections, 2); row ``[i, o]`` connects input
plane ``i`` to output plane ``o``. Planes are **0-based** (Torch7's are 1-based).
Available as ``ember.nn.tables.full``, ``one_to_one``, ``random`` and ``lenet5_c3``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .init import get_rng

from .._typing import Array, RNG


def _check(owner, **values):
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"tables.{owner}: {name} must be a positive int, got {value!r}")


def full(n_input_plane: int, n_output_plane: int) -> Any:
    """Every input plane to every output plane (output-major order, like Torch7)."""
    _check("full", n_input_plane=n_input_plane, n_output_plane=n_output_plane)
    outputs, inputs = np.meshgrid(np.arange(n_output_plane), np.arange(n_input_plane), indexing="ij")
    return np.stack([inputs.ravel(), outputs.ravel()], axis=1).astype(np.int64)


def one_to_one(n_feature: int) -> Array:
    """Input plane k to output plane k (a depthwise / per-plane filter bank)."""
    _check("one_to_one", n_feature=n_feature)
    k = np.arange(n_feature, dtype=np.int64)
    return np.stack([k, k], axis=1)


def random(n_input_plane: int, n_output_plane: int, n_to: int, rng: RNG = None) -> Array:
    """Each output plane gets ``n_to`` distinct input planes drawn at random.

    As in Torch7, inputs are dealt from successive random permutations of the input
    planes, so every input plane is used about equally often.
    """
    _check("random", n_input_plane=n_input_plane, n_output_plane=n_output_plane, n_to=n_to)
    if n_to > n_input_plane:
        raise ValueError(f"tables.random: n_to ({n_to}) cannot exceed n_input_plane ({n_input_plane})")
    rng = get_rng(rng)
    rows: list[Any] = []
    deck: list[Any] = []
    for out in range(n_output_plane):
        if len(deck) < n_to:
            deck = list(rng.permutation(n_input_plane))
        chosen, deck = deck[:n_to], deck[n_to:]
        rows.extend([int(i), out] for i in sorted(chosen))
    return np.asarray(rows, dtype=np.int64)


def lenet5_c3() -> Array:
    """The partial S2 -> C3 connections of LeNet-5 (LeCun et al. 1998, Table I): 6 -> 16.

    C3 maps 0-5 see 3 consecutive S2 maps, 6-11 see 4 consecutive ones, 12-14 see 4
    non-consecutive ones, and map 15 sees all 6 (60 connections). "Consecutive" wraps
    around from map 5 to map 0.
    """
    groups = [[(j + d) % 6 for d in range(3)] for j in range(6)]
    groups += [[(j + d) % 6 for d in range(4)] for j in range(6)]
    groups += [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5], list(range(6))]
    return np.asarray([[i, out] for out, inputs in enumerate(groups) for i in sorted(inputs)], dtype=np.int64)


__all__ = ["full", "one_to_one", "random", "lenet5_c3"]
