"""Type aliases of ember's public signatures.

``Array`` is a NumPy or a CuPy ``ndarray`` (the backend decides; CuPy is optional, so it
cannot be named here). ``PathLike`` is a file or folder name (``str`` or
``os.PathLike``). ``RNG`` is what ``rng=`` arguments take: an int seed, a NumPy
``Generator``, or None (a generator seeded from ember's global sequence, see
``ember.manual_seed``). ``FEval`` is the lecture's closure: ``loss, grad = feval(x)`` at
the flat parameter vector ``x``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # NumPy is not imported by `import ember` (threads are configured first)
    import numpy as np

Array: TypeAlias = Any
FEval: TypeAlias = Callable[[Any], tuple[float, Any]]
OptimResult: TypeAlias = tuple[Any, list[float]]
PathLike: TypeAlias = str | os.PathLike[str]
RNG: TypeAlias = "int | np.random.Generator | None"
