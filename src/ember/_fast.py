"""The optional compiled path (``pip install ember[fast]``: Numba), and the switch that picks it.

Some loops cannot be written as a few whole-array NumPy calls without extra passes over
memory: the LSTM/GRU gate math, bias + activation, im2col/col2im, pooling gathers, the
optimizer's update over the flat parameter vector. With Numba installed, those loops are
compiled once (and cached on disk, so a later process loads them in well under a second);
without it, the NumPy code runs. **The NumPy code is the reference**: every compiled kernel
is tested against it (tests/test_fast.py), and results agree to float rounding.

Selection, checked at call time so a test can flip it:

* ``EMBER_FAST=0`` in the environment (read at import) turns the compiled path off;
* :func:`set_enabled` turns it off or on again in a running process;
* :func:`enabled` tells whether compiled kernels are used now (Numba importable and on).

Kernels are declared with :func:`kernel`, which returns ``None`` when Numba is absent,
so a caller writes ``if _fast.enabled() and _my_kernel is not None``... through
:func:`use`, which does both checks.

Compiled files are cached under ``NUMBA_CACHE_DIR`` when the user set it, else under
``~/.cache/ember/numba`` (site-packages may be read-only).
"""

from __future__ import annotations

import os
from typing import Any, Callable

_wanted = os.environ.get("EMBER_FAST", "1") != "0"
_numba: Any = None
_checked = False


def _load_numba():
    global _numba, _checked
    if not _checked:
        _checked = True
        if _wanted:  # EMBER_FAST=0: Numba is never imported
            os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "ember", "numba"))
            try:
                import numba
            except ImportError:  # the extra is not installed: the NumPy path runs
                numba = None
            _numba = numba
    return _numba


def available() -> bool:
    """True when Numba can be imported (whether or not the compiled path is switched on)."""
    return _load_numba() is not None


def enabled() -> bool:
    """True when compiled kernels are used now: Numba is installed and the path is on."""
    return _wanted and available()


def set_enabled(on: bool) -> bool:
    """Switch the compiled path on or off for this process; returns the previous setting.

    Turning it on has no effect without Numba (:func:`enabled` stays False)."""
    global _wanted
    previous = _wanted
    _wanted = bool(on)
    return previous


def kernel(**options) -> Callable[[Callable], Callable | None]:
    """Decorator: compile the function with Numba in nopython mode, cached on disk.

    Defaults: ``cache=True``, ``nogil=True`` (kernels may run on ember's helper thread),
    ``error_model="numpy"`` (a division by zero gives inf like NumPy instead of raising,
    and lets divisions vectorise). Compilation is lazy (at the first call). Without Numba
    the decorator returns ``None``.
    """

    def decorate(function: Callable) -> Callable | None:
        numba = _load_numba()
        if numba is None:
            return None
        settings = {"cache": True, "nogil": True, "error_model": "numpy", **options}
        return numba.njit(**settings)(function)

    return decorate


def use(compiled: Callable | None) -> bool:
    """True when ``compiled`` (a :func:`kernel` result) should run now instead of NumPy code."""
    return compiled is not None and _wanted
