"""Direct calls into a BLAS library via ctypes: by default the OpenBLAS that NumPy ships.

NumPy's ``matmul`` cannot accumulate (``C += A @ B``) nor do a rank-1 update in place,
so gradient accumulation would need a scratch array and an extra pass over it. The
CBLAS routines do it in one pass: ``gemm`` with ``beta = 1``, ``ger`` (outer product
added in place), ``axpy``/``axpby`` (``y = a x + b y``). Only these four are used.

The symbols are looked up in the OpenBLAS that NumPy loaded
(``scipy_cblas_*64_`` in NumPy's wheels, plain ``cblas_*`` elsewhere). When none is
found (e.g. NumPy on Accelerate or MKL), :data:`AVAILABLE` is False and callers use
their NumPy fallback. Every function returns False when it cannot handle the arrays
(dtype or memory layout), so the fallback is always taken rather than guessed.
With ``ember[fast]`` and NumPy's wheels' OpenBLAS, :func:`gemm` makes the same call from
compiled code (``_blas_jit.py``: ~2 us instead of ~11 us of Python per product);
:func:`numpy_openblas_for_compiled_code` says whether compiled code can call that library.

Another BLAS can be chosen (opt-in, see docs/benchmarks.md "Choosing a BLAS"):
``EMBER_BLAS=scipy-openblas32|scipy-openblas64|mkl|/path/to/libblas.so`` in the
environment before ``import ember``, or :func:`configure_blas` at run time. It serves
these four routines (ember's accumulating products, its Linear/convolution GEMMs); what
NumPy computes itself (``matmul`` for matrix-vector products, ``dot``) stays on NumPy's.
The thread count of :func:`ember.configure_threads` reaches the chosen library too (it
is mapped into the process; its ``*_set_num_threads`` is called like NumPy's).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
from typing import Any

from . import _fast

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_FUNCS: dict = {}
_state: dict[str, Any] = {"library": None}  # and "numpy": NumPy's own Library, once looked up
#: the symbol flavours tried in order: (prefix, suffix, integer type)
#: (MKL's ``cblas_*_64`` are 64-bit whatever ``MKL_INTERFACE_LAYER`` says; its plain names follow it)
_FLAVOURS = (("scipy_cblas_", "64_", ctypes.c_int64), ("cblas_", "64_", ctypes.c_int64),
             ("cblas_", "_64", ctypes.c_int64), ("scipy_cblas_", "", ctypes.c_int),
             ("cblas_", "", ctypes.c_int))  # fmt: skip
#: names :func:`configure_blas` accepts besides a path: the pip package providing each
NAMES = {"numpy": "numpy", "scipy-openblas32": "scipy_openblas32", "scipy-openblas64": "scipy_openblas64",
         "mkl": "mkl"}  # fmt: skip


def _address(array) -> int:
    """The address of ``array``'s first element. (``array.ctypes.data`` would build a
    ctypes helper object with reference cycles on every call: garbage that only the
    cyclic collector frees, several per training step.)"""
    return array.__array_interface__["data"][0]


class Library:
    """One CBLAS library opened with ctypes: ``path``, ``int_type`` (its BLAS integer,
    32 or 64 bits) and ``symbol(name)``, the exported name of routine ``name``
    (e.g. ``"sgemm"`` -> ``"scipy_cblas_sgemm64_"``)."""

    def __init__(self, path: str, handle: ctypes.CDLL, prefix: str, suffix: str, int_type: Any) -> None:
        self.path, self.handle, self.int_type = path, handle, int_type
        self._prefix, self._suffix = prefix, suffix

    def symbol(self, name: str) -> str:
        """The exported name of CBLAS routine ``name`` (``sgemm``, ``dger``, ...)."""
        return f"{self._prefix}{name}{self._suffix}"

    def function(self, name: str) -> Any:
        """The ctypes function of CBLAS routine ``name`` with its argument types set."""
        I, P, E = self.int_type, ctypes.c_void_p, ctypes.c_int  # noqa: E741
        real = ctypes.c_float if name[0] == "s" else ctypes.c_double
        args = {"gemm": [E, E, E, I, I, I, real, P, I, P, I, real, P, I],
                "ger": [E, I, I, real, P, I, P, I, P, I],
                "axpy": [I, real, P, I, P, I],
                "axpby": [I, real, P, I, real, P, I]}[name[1:]]  # fmt: skip
        fn = getattr(self.handle, self.symbol(name))
        fn.argtypes, fn.restype = args, None
        return fn

    def address(self, name: str) -> int:
        """The address of CBLAS routine ``name`` (for compiled callers, e.g. Numba)."""
        return ctypes.cast(getattr(self.handle, self.symbol(name)), ctypes.c_void_p).value or 0

    def _entry(self, *names: str) -> Any:
        return next((getattr(self.handle, n) for n in names if hasattr(self.handle, n)), None)

    def set_num_threads(self, n: int) -> bool:
        """Limit this library to ``n`` threads; False when it has no known entry point."""
        fn = self._entry("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                         "openblas_set_num_threads64_", "openblas_set_num_threads", "MKL_Set_Num_Threads")  # fmt: skip
        if fn is None:
            return False
        fn(ctypes.c_int(n))
        return True

    def describe(self) -> str:
        """``file: version/build; core KERNEL``: OpenBLAS's config and core name, MKL's
        version string and the CPU-specific kernel library it mapped (``def`` = generic)."""
        text = os.path.basename(self.path)
        config = self._entry("scipy_openblas_get_config64_", "scipy_openblas_get_config", "openblas_get_config64_",
                             "openblas_get_config")  # fmt: skip
        core = self._entry("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                           "openblas_get_corename64_", "openblas_get_corename")  # fmt: skip
        for fn, what in ((config, ": "), (core, "; core ")):
            if fn is not None:
                fn.argtypes, fn.restype = [], ctypes.c_char_p
                text += what + (fn() or b"?").decode(errors="replace").strip()
        mkl = self._entry("MKL_Get_Version_String")
        if mkl is not None:
            buf = ctypes.create_string_buffer(256)
            mkl(buf, ctypes.c_int(len(buf)))
            text += ": " + buf.value.decode(errors="replace").strip()
            cpu = ("_def.", "_mc3.", "_avx2.", "_avx512.", "_avx10.")
            mkl_files = [os.path.basename(p) for p in _all_mapped() if "libmkl_" in p and "vml" not in p]
            kernels = sorted({f.split(".")[0][len("libmkl_"):] for f in mkl_files if any(k in f for k in cpu)})
            text += "; core " + ("/".join(kernels) or "not loaded yet")
        return text


def _all_mapped() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            return sorted({line.split()[-1] for line in maps if ".so" in line})
    except OSError:  # not Linux
        return []


def _mapped_libraries() -> list[str]:
    """The BLAS-looking libraries among :func:`_all_mapped` (by file name)."""
    return [p for p in _all_mapped() if "blas" in os.path.basename(p).lower() or "mkl_rt" in p]


def _open(path: str) -> Library | None:
    """``path`` opened as a CBLAS library, or None when it cannot be loaded or has no sgemm."""
    try:
        handle = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix, suffix, int_type in _FLAVOURS:
        if hasattr(handle, f"{prefix}sgemm{suffix}"):
            lib = Library(path, handle, prefix, suffix, int_type)
            if not suffix and "USE64BITINT" in lib.describe():  # an OpenBLAS built with 64-bit integers, no suffix
                lib.int_type = ctypes.c_int64
            return lib
    return None


def _numpy_library() -> Library | None:
    """NumPy's own BLAS: found once among the mapped libraries (those inside NumPy's
    package folders first), before any other library is loaded."""
    if "numpy" not in _state:
        paths = [p for p in _mapped_libraries() if "blas" in p.lower()]  # (not a NumPy on MKL: int width unknown)
        _state["numpy"] = next((lib for path in sorted(paths, key=lambda p: "numpy" not in p)
                                if (lib := _open(path)) is not None), None)  # fmt: skip
    return _state["numpy"]


def find_library(name: str) -> str:
    """The file of BLAS ``name``: ``scipy-openblas32``/``scipy-openblas64`` (pip packages
    of those names), ``mkl`` (pip package ``mkl``: ``libmkl_rt`` under ``sys.prefix/lib``
    or on the loader's path) or a path. ``numpy`` is NumPy's own (mapped) library.
    Raises ValueError naming what is missing and how to install it."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"configure_blas: name must be a non-empty str, got {name!r}")
    if name == "numpy":
        lib = _numpy_library()
        if lib is None:
            raise ValueError("configure_blas: name='numpy' but NumPy's BLAS exports no CBLAS sgemm ember can call")
        return lib.path
    if name.startswith("scipy-openblas"):
        if name not in NAMES:
            raise ValueError(f"configure_blas: unknown name {name!r}; known: {', '.join(NAMES)} or a path")
        try:
            package: Any = importlib.import_module(NAMES[name])
        except ImportError:
            raise ValueError(f"configure_blas: name={name!r} is not installed (pip install {name})") from None
        return os.path.join(package.get_lib_dir(), package.get_library(True))
    if name == "mkl":
        dirs = [os.path.join(base, "lib") for base in dict.fromkeys((sys.prefix, sys.base_prefix))]
        dirs += [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
        for folder in dirs:
            for file in ("libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so"):
                if os.path.exists(os.path.join(folder, file)):
                    return os.path.join(folder, file)
        raise ValueError("configure_blas: name='mkl' but no libmkl_rt.so was found under "
                         f"{', '.join(dirs)} (pip install mkl)")  # fmt: skip
    if os.sep in name or ".so" in name or name.endswith((".dylib", ".dll")):
        if not os.path.exists(name):
            raise ValueError(f"configure_blas: no such library file {name!r}")
        return name
    raise ValueError(f"configure_blas: unknown name {name!r}; known: {', '.join(NAMES)} or a path")


def _bind(lib: Library) -> None:
    funcs = {kind + name: lib.function(kind + name) for kind in "sd" for name in ("gemm", "ger", "axpy", "axpby")}
    _FUNCS.clear()
    _FUNCS.update(funcs)
    _state["library"] = lib


def open_library(name: str) -> Library:
    """BLAS ``name`` (see :func:`find_library`) opened, without making ember use it.
    Raises ValueError when it is missing or exports no CBLAS ``sgemm``."""
    path = find_library(name)
    lib = _open(path)
    if lib is None:
        raise ValueError(f"configure_blas: {path!r} (name={name!r}) cannot be loaded or exports no CBLAS sgemm")
    return lib


def configure_blas(name: str = "numpy", threads: int | None = None) -> str:
    """Make ember's ctypes BLAS calls (:func:`gemm`, :func:`ger`, :func:`axpby`) use the
    library ``name`` (see :func:`find_library`; default NumPy's own) and return its
    :meth:`Library.describe` line. ``threads``: also limit that library to this many
    threads (else its own default: ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` or all
    cores; :func:`ember.configure_threads` called afterwards reaches it as well).
    Raises ValueError when the library is missing or exports no CBLAS ``sgemm``; the
    previous choice then stays."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"configure_blas: threads must be None or a positive int, got {threads!r}")
    lib = open_library(name)
    try:
        _bind(lib)
    except AttributeError as missing:
        raise ValueError(f"configure_blas: {lib.path!r} lacks a routine ember needs ({missing})") from None
    global AVAILABLE
    AVAILABLE = True
    if threads is not None:
        lib.set_num_threads(threads)
    return lib.describe()


def library() -> Library | None:
    """The library ember's ctypes calls use now (None when there is none)."""
    return _state["library"]


def sgemm_address() -> int:
    """The address of the chosen library's ``sgemm`` (0 when none), with
    ``library().symbol("sgemm")`` / ``library().int_type`` telling its name and integer
    width: for compiled code (Numba) that calls BLAS itself."""
    lib = _state["library"]
    return 0 if lib is None else lib.address("sgemm")


def _load() -> bool:
    if os.environ.get("EMBER_NO_BLAS"):
        return False
    import numpy  # noqa: F401  (NumPy loads its BLAS)

    _numpy_library()  # found before another library is mapped
    chosen = os.environ.get("EMBER_BLAS")
    if chosen:
        try:
            configure_blas(chosen)
        except (ValueError, TypeError) as error:
            raise ImportError(f"EMBER_BLAS={chosen!r}: {error}") from None
        return True
    lib = _numpy_library()
    if lib is None:
        return False
    try:
        _bind(lib)
    except AttributeError:
        return False
    return True


AVAILABLE = _load()


def describe() -> str:
    """One line naming the BLAS library ember calls, its version/build and the CPU kernel
    it picked (OpenBLAS ``openblas_get_config`` / ``openblas_get_corename``, MKL's version
    string and kernel library), e.g. ``libscipy_openblas64_-32a4b2a6.so: OpenBLAS
    0.3.31.188.0 ... Haswell MAX_THREADS=64; core Haswell``; when ember uses another
    library than NumPy's (:func:`configure_blas`), ``ember: ... | NumPy: ...``. Speed figures
    mean little without it: the same machine type has run different CPUs, on which
    OpenBLAS picks different kernels. "unknown" when none is found."""
    numpy_lib = _numpy_library()
    numpy_text = numpy_lib.describe() if numpy_lib is not None else "unknown"
    lib = _state["library"]
    if lib is None or (numpy_lib is not None and os.path.samefile(lib.path, numpy_lib.path)):
        return numpy_text
    return f"ember: {lib.describe()} | NumPy: {numpy_text}"


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
    compiled = _state.get("gemm")
    if compiled is None:
        compiled = _state["gemm"] = _compiled_gemm()
    if compiled and _state["library"] is _state.get("numpy") and _fast.use(compiled):
        return bool(compiled(a, b, out, alpha, beta))  # the same call from compiled code (_blas_jit)
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


#: the routines compiled code calls by name in NumPy's wheels' OpenBLAS (64-bit integers)
COMPILED_SYMBOLS = ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_")


def numpy_openblas_for_compiled_code() -> Library | None:
    """NumPy's own BLAS when compiled code (``ember[fast]``: ``_blas_jit``, the recurrent
    kernels) can call it by name: Numba installed, the library exports
    :data:`COMPILED_SYMBOLS`, and those symbols made resolvable for Numba (once,
    ``llvmlite.binding.load_library_permanently``, which also lets the compiled code be
    cached on disk). None otherwise (then the ctypes calls or the NumPy code run)."""
    if "compiled" not in _state:
        lib = _numpy_library()
        if lib is not None and (not _fast.available() or os.environ.get("EMBER_NO_BLAS")
                                or not all(hasattr(lib.handle, name) for name in COMPILED_SYMBOLS)):  # fmt: skip
            lib = None
        if lib is not None:
            from llvmlite import binding

            binding.load_library_permanently(lib.path)
        _state["compiled"] = lib
    return _state["compiled"]


def _compiled_gemm() -> Any:
    """:func:`ember._blas_jit.gemm` when it can serve :func:`gemm`, else False. Checked
    once, on the first product."""
    if numpy_openblas_for_compiled_code() is None:
        return False
    from . import _blas_jit

    return _blas_jit.gemm


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
