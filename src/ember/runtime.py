"""Control the number of threads BLAS uses (``ember train --threads N``).

Uses ``threadpoolctl`` when it is installed; otherwise calls the ``set_num_threads``
entry point of the OpenBLAS library that NumPy loaded (found among the process's
mapped libraries), so no extra dependency is needed for the common case.
"""

from __future__ import annotations

import ctypes
import os

_SYMBOLS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads",
            "scipy_openblas_set_num_threads", "MKL_Set_Num_Threads")  # fmt: skip


def _loaded_blas_libraries():
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:  # not Linux
        return []
    return sorted(p for p in paths if "blas" in os.path.basename(p).lower() or "mkl_rt" in p)


def set_num_threads(n: int) -> bool:
    """Limit NumPy's BLAS (and ember's own array work) to ``n`` threads; returns True
    when a BLAS library accepted it."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive int, got {n!r}")
    import numpy  # noqa: F401  (make sure NumPy's BLAS is loaded)

    from .nn import _parallel

    _parallel.set_num_threads(min(n, _parallel.default_threads()))

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
