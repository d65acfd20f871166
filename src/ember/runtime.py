"""Process-wide settings, made by one explicit call: :func:`configure_threads`.

Importing ember changes nothing outside ember (no environment variable, no thread, no
global generator shared with other libraries). What only exists once per process --
BLAS's threads and how long they spin when idle, and ember's one helper thread for the
array work BLAS does not cover -- is set by :func:`configure_threads`. The ``ember``
command calls it first thing; the benchmarks call it before importing NumPy; a library
user calls it the same way::

    import ember
    ember.configure_threads()        # before NumPy is imported, for the short idle spin
    import numpy as np

Why the idle spin matters (docs/convnets.md): OpenBLAS keeps an idle worker spinning for
about 2^28 cycles (~0.1 s) after each matrix product, on the core ember's helper thread
needs for im2col/col2im/pooling; ``OPENBLAS_THREAD_TIMEOUT=20`` (2^20 cycles, ~0.3 ms)
keeps back-to-back products as fast and frees the core. OpenBLAS reads that variable only
when it is loaded, i.e. when NumPy is first imported, so :func:`configure_threads` can
only shorten the spin when it runs before NumPy is imported (``import ember`` imports no
NumPy), or when the variable was already set in the environment that started Python.
Otherwise the helper thread would only slow the step down, so ember's array work stays on
the calling thread. Results never depend on any of this, only speed.

Without a call, nothing is changed: BLAS keeps its defaults and ember's array work runs on
the calling thread (no helper thread is ever started).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

#: OPENBLAS_THREAD_TIMEOUT set by :func:`configure_threads`: idle BLAS threads sleep after 2^20 cycles
BLAS_IDLE_TIMEOUT = "20"

_SYMBOLS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads",
            "scipy_openblas_set_num_threads", "MKL_Set_Num_Threads")  # fmt: skip


@dataclass(frozen=True)
class ThreadSettings:
    """What :func:`configure_threads` achieved.

    ``blas_threads``: the count BLAS accepted (None: left at BLAS's default, or no BLAS
    library found); ``blas_idle_short``: OpenBLAS's idle threads stop spinning after
    ~0.3 ms; ``helper_threads``: threads for ember's own array work (1 = calling thread
    only, 2 = plus one helper thread, started on first use).
    """

    blas_threads: int | None
    blas_idle_short: bool
    helper_threads: int


def configure_threads(n: int | None = None, blas_idle_short: bool = True) -> ThreadSettings:
    """Set the process-wide threading of BLAS and of ember's array work; returns what took effect.

    ``n``: BLAS threads (None keeps BLAS's default, usually all cores); ember's own array
    work then uses ``min(2, n or cores)`` threads, but only when BLAS's idle spin is short.
    ``blas_idle_short``: set ``OPENBLAS_THREAD_TIMEOUT=20`` in ``os.environ`` (unless it is
    set already) when NumPy has not been imported yet; it takes effect when NumPy loads
    OpenBLAS. After NumPy was imported without the variable, the spin cannot be shortened
    any more and ember's array work stays on one thread. ``blas_idle_short=False`` leaves
    the environment alone (the variable, if the user set it, still counts).

    Call it again at any time, e.g. with a thread count parsed from a command line.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"configure_threads: n must be None or a positive int, got {n!r}")
    if blas_idle_short and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", BLAS_IDLE_TIMEOUT)
    # Set before NumPy was loaded (by us or by the user's environment): OpenBLAS has read it.
    idle_short = "OPENBLAS_THREAD_TIMEOUT" in os.environ
    blas_threads = n if n is not None and _set_blas_threads(n) else None
    helper = min(2, n or os.cpu_count() or 1) if idle_short else 1
    from .nn import _parallel  # the helper thread lives with the array work that uses it

    _parallel.set_num_threads(helper)
    return ThreadSettings(blas_threads, idle_short, helper)


def _loaded_blas_libraries():
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:  # not Linux
        return []
    return sorted(p for p in paths if "blas" in os.path.basename(p).lower() or "mkl_rt" in p)


def _set_blas_threads(n: int) -> bool:
    """Limit NumPy's BLAS to ``n`` threads; True when a BLAS library accepted it.

    Uses ``threadpoolctl`` when it is installed; otherwise calls the ``set_num_threads``
    entry point of the OpenBLAS library that NumPy loaded (found among the process's
    mapped libraries), so no extra dependency is needed for the common case.
    """
    import numpy  # noqa: F401  (make sure NumPy's BLAS is loaded)

    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        return True
    except ImportError:
        pass
    done = False
    for path in _loaded_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _SYMBOLS:
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done = True
                break
    return done


__all__ = ["configure_threads", "ThreadSettings", "BLAS_IDLE_TIMEOUT"]
