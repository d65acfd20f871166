"""Direct calls into the BLAS library that NumPy already ships (OpenBLAS), via ctypes.

NumPy's ``matmul`` cannot accumulate (``C += A @ B``) nor do a rank-1 update in place,
so gradient accumulation would need a scratch array and an extra pass over it. The
CBLAS routines do it in one pass: ``gemm`` with ``beta = 1``, ``ger`` (outer product
added in place), ``axpy``/``axpby`` (``y = a x + b y``). Only these four are used.

Nothing is compiled: the symbols are looked up in the OpenBLAS that NumPy loaded
(``scipy_cblas_*64_`` in NumPy's wheels, plain ``cblas_*`` elsewhere). When none is
found (e.g. NumPy on Accelerate or MKL), :data:`AVAILABLE` is False and callers use
their NumPy fallback. Every function returns False when it cannot handle the arrays
(dtype or memory layout), so the fallback is always taken rather than guessed.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_FUNCS: dict = {}


def _address(array) -> int:
    """The address of ``array``'s first element. (``array.ctypes.data`` would build a
    ctypes helper object with reference cycles on every call: garbage that only the
    cyclic collector frees, several per training step.)"""
    return array.__array_interface__["data"][0]


def _find_library():
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "blas" in line.lower() and ".so" in line})
    except OSError:
        return None, None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix, int_type in (("scipy_cblas_", "64_", ctypes.c_int64), ("cblas_", "64_", ctypes.c_int64),
                                         ("cblas_", "", ctypes.c_int)):  # fmt: skip
            if hasattr(lib, f"{prefix}sgemm{suffix}"):
                return (lambda name, lib=lib, p=prefix, s=suffix: getattr(lib, f"{p}{name}{s}")), int_type
    return None, None


def _load():
    if os.environ.get("EMBER_NO_BLAS"):
        return False
    lookup, blas_int = _find_library()
    if lookup is None:
        return False
    I, P, E = blas_int, ctypes.c_void_p, ctypes.c_int  # noqa: E741
    for kind, real in (("s", ctypes.c_float), ("d", ctypes.c_double)):
        sig = {
            "gemm": [E, E, E, I, I, I, real, P, I, P, I, real, P, I],
            "ger": [E, I, I, real, P, I, P, I, P, I],
            "axpy": [I, real, P, I, P, I],
            "axpby": [I, real, P, I, real, P, I],
        }
        for name, args in sig.items():
            try:
                fn = lookup(kind + name)
            except AttributeError:
                return False
            fn.argtypes, fn.restype = args, None
            _FUNCS[kind + name] = fn
    return True


AVAILABLE = _load()


def describe() -> str:
    """One line naming the BLAS library NumPy loaded, its version/build and the CPU kernel
    it picked (OpenBLAS ``openblas_get_config`` / ``openblas_get_corename``), e.g.
    ``libscipy_openblas64_-32a4b2a6.so: OpenBLAS 0.3.31.188.0 ... Haswell MAX_THREADS=64;
    core Haswell``. Speed figures mean little without it: the same machine type has run
    different CPUs, on which OpenBLAS picks different kernels. "unknown" when none is found."""
    import numpy  # noqa: F401  (NumPy loads its BLAS)

    try:
        with open("/proc/self/maps") as maps:
            mapped = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:  # not Linux
        return "unknown"
    paths = sorted(p for p in mapped if "blas" in os.path.basename(p).lower() or "mkl_rt" in p)
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        text = os.path.basename(path)
        for what, names in (("", ("scipy_openblas_get_config64_", "scipy_openblas_get_config", "openblas_get_config64_",
                                  "openblas_get_config")),
                            ("core ", ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                                       "openblas_get_corename64_", "openblas_get_corename"))):  # fmt: skip
            fn = next((getattr(lib, name) for name in names if hasattr(lib, name)), None)
            if fn is not None:
                fn.argtypes, fn.restype = [], ctypes.c_char_p
                text += ("; " if what else ": ") + what + (fn() or b"?").decode(errors="replace").strip()
        found.append(text)
    return " | ".join(found) or "unknown"
_KIND = {np.dtype("float32"): "s", np.dtype("float64"): "d"}


def _matrix(a):
    """(pointer, leading dimension, transposed?) for a 2-D array BLAS can read, else None."""
    if a.ndim != 2:
        return None
    isz = a.itemsize
    rows, cols = a.shape
    s0, s1 = a.strides
    if (s1 == isz or cols == 1) and s0 % isz == 0 and s0 // isz >= max(cols, 1):
        return _address(a), max(s0 // isz, 1), False
    if (s0 == isz or rows == 1) and s1 % isz == 0 and s1 // isz >= max(rows, 1):
        return _address(a), max(s1 // isz, 1), True
    return None


def gemm(a, b, out, alpha=1.0, beta=0.0) -> bool:
    """``out = alpha * a @ b + beta * out`` for 2-D arrays (any of them may be transposed
    views). Returns False (doing nothing) when BLAS is unavailable or the layout is not
    supported, or the shapes do not fit (BLAS would read or write out of bounds; the
    NumPy fallback then raises its own error)."""
    kind = _KIND.get(out.dtype)
    if not AVAILABLE or kind is None or a.dtype != out.dtype or b.dtype != out.dtype:
        return False
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2 or a.shape[1] != b.shape[0] or out.shape != (a.shape[0], b.shape[1]):
        return False
    ma, mb, mc = _matrix(a), _matrix(b), _matrix(out)
    if ma is None or mb is None or mc is None or mc[2]:
        return False
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return True
    if k == 0:
        out *= beta
        return True
    _FUNCS[kind + "gemm"](_ROW_MAJOR, _TRANS if ma[2] else _NO_TRANS, _TRANS if mb[2] else _NO_TRANS,
                          m, n, k, alpha, ma[0], ma[1], mb[0], mb[1], beta, mc[0], mc[1])  # fmt: skip
    return True


def _vector(v):
    if v.ndim != 1 or v.strides[0] % v.itemsize:
        return None
    stride = v.strides[0] // v.itemsize
    if stride <= 0:
        return None
    return _address(v), stride


def ger(alpha, x, y, out) -> bool:
    """``out += alpha * outer(x, y)`` in place (out C-contiguous rows). False if unsupported."""
    kind = _KIND.get(out.dtype)
    if not AVAILABLE or kind is None or x.dtype != out.dtype or y.dtype != out.dtype:
        return False
    vx, vy, mc = _vector(x), _vector(y), _matrix(out)
    if vx is None or vy is None or mc is None or mc[2] or out.shape != (x.shape[0], y.shape[0]):
        return False
    _FUNCS[kind + "ger"](_ROW_MAJOR, out.shape[0], out.shape[1], alpha, vx[0], vx[1], vy[0], vy[1], mc[0], mc[1])
    return True


def axpby(alpha, x, beta, y) -> bool:
    """``y = alpha * x + beta * y`` in place, for 1-D arrays or C-contiguous arrays of one
    shape (seen as 1-D). False if unsupported."""
    kind = _KIND.get(y.dtype)
    if not AVAILABLE or kind is None or x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.ndim != 1:
        if not (x.flags.c_contiguous and y.flags.c_contiguous):
            return False
        x, y = x.reshape(-1), y.reshape(-1)
    vx, vy = _vector(x), _vector(y)
    if vx is None or vy is None:
        return False
    if beta == 1.0:
        _FUNCS[kind + "axpy"](y.shape[0], alpha, vx[0], vx[1], vy[0], vy[1])
    else:
        _FUNCS[kind + "axpby"](y.shape[0], alpha, vx[0], vx[1], beta, vy[0], vy[1])
    return True
