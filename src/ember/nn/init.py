"""Parameter initialisation from a seeded NumPy generator.

Models are initialised on the CPU from a ``numpy.random.Generator`` (then moved with
``module.to(backend)``), so the initial weights are the same on every backend. Each
module takes an optional ``rng``; without one it draws from ember's generator, which
:func:`manual_seed` resets (like Torch7's ``torch.manualSeed``).
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Re-seed the generator used by modules created without an explicit ``rng``."""
    global _generator
    _generator = np.random.default_rng(seed)


def get_rng(rng=None) -> np.random.Generator:
    """``rng`` itself, a generator seeded with ``rng`` if it is an int, else ember's."""
    if rng is None:
        return _generator
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise ValueError(f"rng must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def uniform(rng, shape, bound, dtype="float32") -> np.ndarray:
    """Samples of U(-bound, bound) as a NumPy array of ``dtype``."""
    return get_rng(rng).uniform(-bound, bound, size=shape).astype(dtype)
