"""Parameter initialisation from seeded NumPy generators.

Models are initialised on the CPU from a ``numpy.random.Generator`` (then moved with
``module.to(backend)``), so the initial weights are the same on every backend. Each
module takes an optional ``rng`` (a generator, or an int seed) and owns what it is given.

Without ``rng``, a module gets a generator of its own, seeded from ember's default seed
sequence -- never one shared with other modules, so e.g. a ``Dropout``'s masks do not
depend on how many weights other modules drew. :func:`manual_seed` restarts that sequence
(like Torch7's ``torch.manualSeed``): after ``manual_seed(s)`` the modules created
without ``rng``, in the same order, get the same generators, hence the same initial
weights and the same dropout masks. It seeds nothing else: not NumPy's global
``np.random``, not the data order (``TrainOptions.seed``), not a module built with ``rng``.
"""

from __future__ import annotations

from .._typing import RNG

import numpy as np
from numpy.random import Generator

from typing import Any

# ember's one piece of process-wide random state: the sequence whose children seed modules built without rng.
_DEFAULT = {"seeds": np.random.SeedSequence()}


def manual_seed(seed: int) -> None:
    """Restart the seed sequence that gives modules created without ``rng`` their generators."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _DEFAULT["seeds"] = np.random.SeedSequence(int(seed))


def get_rng(rng: RNG = None) -> np.random.Generator:
    """``rng`` itself, a generator seeded with ``rng`` if it is an int, else a new generator
    seeded from the next child of ember's default seed sequence (see :func:`manual_seed`)."""
    if rng is None:
        return np.random.default_rng(_DEFAULT["seeds"].spawn(1)[0])
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise ValueError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def uniform(rng: RNG, shape: tuple[int, ...], bound: Any, dtype: str = "float32") -> np.ndarray:
    """Samples of U(-bound, bound) as a NumPy array of ``dtype``."""
    return get_rng(rng).uniform(-bound, bound, size=shape).astype(dtype)
