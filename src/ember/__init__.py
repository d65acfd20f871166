"""ember: the module-based deep learning of LeCun & Ranzato's lecture (the Torch7 nn way).

    import ember
    from ember import nn
    net = nn.Sequential(nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 10), nn.LogSoftMax())

Importing ember changes nothing outside ember and imports no NumPy: the subpackages
(``ember.nn``, ``ember.optim``, ...) and ``ember.save``/``ember.load`` load on first use,
so that :func:`configure_threads` (the process-wide BLAS and thread settings, see
:mod:`ember.runtime`) can still run before NumPy loads its BLAS. The package map is in
docs/index.md.
"""

import importlib as _importlib

from ._version import __version__
from .errors import FormatError, ShapeError, TrainingError
from .runtime import configure_threads

from typing import Any

# name -> (module, attribute or None for the module itself), imported on first access
_LAZY = {
    "nn": ("ember.nn", None), "optim": ("ember.optim", None), "data": ("ember.data", None),
    "models": ("ember.models", None), "Backend": ("ember.backend", "Backend"),
    "get_backend": ("ember.backend", "get_backend"), "load": ("ember.io", "load"), "save": ("ember.io", "save"),
    "manual_seed": ("ember.nn.init", "manual_seed"), "load_t7": ("ember.t7", "load_t7"),
    "configure_blas": ("ember._blas", "configure_blas"),  # opt-in BLAS library (docs/benchmarks.md)
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = _importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[Any]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "nn", "optim", "data", "models", "Backend", "get_backend", "ShapeError", "TrainingError", "FormatError",
    "load", "save", "load_t7", "manual_seed", "configure_threads", "configure_blas", "__version__",
]  # fmt: skip
