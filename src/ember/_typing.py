"""Type aliases of ember's public signatures.

``Array`` is a NumPy or a CuPy ``ndarray`` (the backend decides; CuPy is optional, so it
cannot be named here). ``PathLike`` is a file or folder name (``str`` or ``os.PathLike``); ``RNG`` what
``rng=`` arguments take (a seed, a NumPy ``Generator``, or None for ember's global one). ``FEval`` is the lecture's closure: ``loss, grad = feval(x)`` at the
flat parameter vector ``x``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np

Array: TypeAlias = Any
FEval: TypeAlias = Callable[[Any], tuple[float, Any]]
OptimResult: TypeAlias = tuple[Any, list[float]]
PathLike: TypeAlias = str | os.PathLike[str]
RNG: TypeAlias = int | np.random.Generator | None
