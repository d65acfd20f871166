"""Type aliases of ember's public signatures.

``Array`` is a NumPy or a CuPy ``ndarray`` (the backend decides; CuPy is optional, so it
cannot be named here). ``FEval`` is the lecture's closure: ``loss, grad = feval(x)`` at the
flat parameter vector ``x``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

Array: TypeAlias = Any
FEval: TypeAlias = Callable[[Any], tuple[float, Any]]
OptimResult: TypeAlias = tuple[Any, list[float]]
