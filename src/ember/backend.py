"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

A :class:`Backend` is a small frozen object holding the array namespace (``xp``) and
the floating-point dtype. It is chosen once (a CLI flag or ``module.to(backend)``) and
passed explicitly; module code only calls ``xp`` functions with ``out=`` so the same code
runs on both namespaces.

Every matrix product of the modules goes through the backend (:meth:`Backend.gemm`,
:meth:`Backend.ger`, :meth:`Backend.affine`, :meth:`Backend.gemm_columns`), so that a GPU
backend can call cuBLAS directly and the CPU shortcuts (BLAS called in place, rank-1
updates, transposed and chunked products) are chosen here, by shape, not in each module.
"""

from __future__ import annotations

import threading
import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _blas, _pages

#: NumPy's OpenBLAS when compiled code can call it by name, else None: the array layer's
#: door to it for ``nn`` (whose products otherwise all go through :meth:`Backend.gemm`)
compiled_blas = _blas.numpy_openblas_for_compiled_code

_NAMES = ("numpy", "cupy")
_DTYPES = ("float32", "float64")


def _check_gpu(cupy):
    """Fail at ``Backend('cupy')`` rather than deep inside the first array operation
    when CuPy is installed but no GPU or CUDA driver can be used."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - CuPy raises its own CUDA error types
        raise ImportError(f"Backend('cupy'): CuPy is installed but CUDA is not usable here ({exc})") from exc
    if count < 1:
        raise ImportError("Backend('cupy'): CuPy is installed but no NVIDIA GPU was found")


@dataclass(frozen=True)
class Backend:
    """Where arrays live and in which precision.

    ``Backend("numpy", "float32")`` is the default; ``float64`` is used for gradient
    checks; ``Backend("cupy")`` needs the optional ``cupy`` package and a GPU.
    """

    name: str = "numpy"
    dtype: str = "float32"
    xp: Any = field(init=False, repr=False, compare=False)  # the numpy or cupy module
    #: per-thread work arrays of :meth:`work`
    _work: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.name not in _NAMES:
            raise ValueError(f"Backend: name must be one of {_NAMES}, got {self.name!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"Backend: dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if self.name == "numpy":
            xp = np
        else:
            try:
                import cupy as xp  # noqa: PLC0415 - optional, imported only when asked for
            except ImportError as exc:  # pragma: no cover - depends on the machine
                raise ImportError(
                    "Backend('cupy') needs the optional 'cupy' package and an NVIDIA GPU: "
                    "pip install 'ember[gpu]'"
                ) from exc
            _check_gpu(xp)
        object.__setattr__(self, "xp", xp)
        object.__setattr__(self, "_work", threading.local())

    def __deepcopy__(self, memo):  # immutable: copies of modules share their backend
        return self

    def __copy__(self):
        return self

    # -- arrays -----------------------------------------------------------------
    def empty(self, shape, dtype=None):
        """An uninitialised array on this backend (default dtype: the backend's)."""
        return self.xp.empty(shape, dtype=dtype or self.dtype)

    def zeros(self, shape, dtype=None):
        """An array of zeros on this backend (default dtype: the backend's)."""
        return self.xp.zeros(shape, dtype=dtype or self.dtype)

    def flat_vector(self, n, fill=0.0):
        """A 1-D vector of ``n`` elements of the backend's dtype, filled with ``fill`` (None:
        uninitialised): the flat parameter and gradient vectors. On NumPy a long one lies on
        2 MB memory pages where Linux allows it (:mod:`ember._pages`; only speed differs)."""
        vector = _pages.empty(n, self.dtype) if self.xp is np else self.xp.empty(n, dtype=self.dtype)
        if fill is not None:
            vector.fill(fill)
        return vector

    def ensure(self, buffer, shape, dtype=None):
        """Return ``buffer`` if it already has ``shape`` and dtype, else a new empty array.

        This is how output and gradient buffers are reused across calls: a module
        reallocates only when the batch size (or another shape) changes.
        """
        dtype = dtype or self.dtype
        if (
            buffer is not None
            and buffer.shape == tuple(shape)
            and buffer.dtype == dtype
            and isinstance(buffer, self.xp.ndarray)
        ):
            return buffer
        return self.xp.empty(shape, dtype=dtype)

    def asarray(self, array, dtype=None):
        """Copy/convert ``array`` (NumPy or this backend's) to this backend and dtype."""
        dtype = dtype or self.dtype
        if self.xp is np:
            if type(array).__module__.startswith("cupy"):
                array = array.get()
            return np.asarray(array, dtype=dtype)
        return self.xp.asarray(array, dtype=dtype)

    def to_numpy(self, array):
        """A NumPy copy (or the array itself on the NumPy backend)."""
        return to_numpy(array)

    def is_array(self, obj) -> bool:
        """Whether ``obj`` is an array of this backend's namespace (NumPy or CuPy)."""
        return isinstance(obj, self.xp.ndarray)

    # -- work arrays -------------------------------------------------------------
    def work(self, key, shape, dtype=None):
        """A scratch array owned by the backend, reused per (``key``, shape, dtype) and per
        thread: what the backend's own operations need between two steps (a product that
        NumPy cannot accumulate in place, a transposed product), so modules need not know.
        At most :data:`WORK_ARRAYS` are kept per thread (the oldest goes first);
        :meth:`clear_work` drops them."""
        cache = self._work.__dict__
        slot = (key, tuple(shape), dtype or self.dtype)
        buffer = cache.get(slot)
        if buffer is None:
            if len(cache) >= WORK_ARRAYS:
                cache.pop(next(iter(cache)))
            buffer = cache[slot] = self.xp.empty(shape, dtype=dtype or self.dtype)
        return buffer

    def clear_work(self):
        """Drop this thread's work arrays (see :meth:`work`)."""
        self._work.__dict__.clear()

    # -- products -----------------------------------------------------------------
    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, scratch=None):
        """``out = alpha * op(a) @ op(b) + beta * out`` with op = transpose when asked.

        The backend picks the routine by shape: a rank-1 accumulation (inner dimension 1,
        ``beta == 1``) is :meth:`ger`; a matrix-vector product (one row or one column
        of output, ``beta == 0``) is NumPy's matmul (a BLAS gemv); the rest calls BLAS
        gemm directly, which accumulates in place. Without BLAS (CuPy, NumPy on MKL) an
        accumulating product goes through a work array of the backend (``scratch``, the
        older explicit form, is still accepted).
        """
        xp = self.xp
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if a.ndim == 2 and b.ndim == 2 and a.shape[1] == 1 and beta == 1:
            return self.ger(alpha, a[:, 0], b[0], out)
        if xp is np and out.ndim == 2 and (beta != 0 or min(out.shape) > 1) and _blas.gemm(a, b, out, alpha, beta):
            return out
        if beta == 0:
            xp.matmul(a, b, out=out)
            if alpha != 1:
                out *= alpha
            return out
        if scratch is None:
            scratch = self.work("gemm", out.shape, out.dtype)
        xp.matmul(a, b, out=scratch)
        return axpby(alpha, scratch, beta, out, scratch)

    def ger(self, alpha, x, y, out):
        """``out += alpha * outer(x, y)`` in place, the rank-1 update (BLAS ``ger``: a
        K = 1 GEMM runs at about 1 GFLOP/s in OpenBLAS, ``ger`` at memory speed)."""
        if self.xp is np and _blas.ger(alpha, x, y, out):
            return out
        outer = self.work("ger", out.shape, out.dtype)
        with unbuffered(self.xp):  # a broadcast product: no iterator buffers
            self.xp.multiply(x.reshape(-1, 1), y.reshape(1, -1), out=outer)
        return axpby(alpha, outer, 1.0, out, outer)

    def affine(self, x, weight, bias, out):
        """``out = x weight^T + bias`` (``bias`` may be None) for x (N, in) or (in,): the
        Linear layer's forward product.

        With BLAS: the bias is copied in and the product accumulated onto it (one gemm,
        no broadcast add), or, for 2-48 samples through a layer at least 256 wide on both
        sides, computed as y^T = W x^T followed by one transposed copy that adds the bias
        (1.3-2.8x faster in OpenBLAS there, see :func:`transposed_product_is_faster`), or,
        for one sample (N = 1), as the matrix-vector product W x plus the bias.
        """
        xp = self.xp
        blas = xp is np and _blas.AVAILABLE and x.ndim == 2
        if blas and transposed_product_is_faster(x.shape[0], weight.shape[1], weight.shape[0]):
            out_t = self.work("affine", (weight.shape[0], x.shape[0]), out.dtype)
            self.gemm(weight, x, out_t, trans_b=True)
            with unbuffered(xp):  # a transposed operand would otherwise get 64 KB of iterator buffers
                if bias is None:
                    xp.copyto(out, out_t.T)
                else:
                    xp.add(out_t.T, bias, out=out)
            return out
        if x.ndim == 1 or (blas and x.shape[0] == 1):  # one sample: W x, a matrix-vector product
            # (BLAS gemv); OpenBLAS's GEMM with M = 1 takes ~5x as long (784 -> 1000, Zen 3,
            # OpenBLAS Haswell kernel, 2 threads, 2026-12-03: 190 us, gemv 35 us)
            row_x, row_out = (x, out) if x.ndim == 1 else (x[0], out[0])
            xp.matmul(weight, row_x, out=row_out)
            if bias is not None:
                row_out += bias
            return out
        if blas and bias is not None:
            xp.copyto(out, bias)
            return self.gemm(x, weight, out, trans_b=True, beta=1.0)
        self.gemm(x, weight, out, trans_b=True)
        if bias is not None:
            with unbuffered(xp):  # a broadcast add: no iterator buffers
                out += bias
        return out

    def gemm_columns(self, weight, cols, out, trans_cols=False):
        """Products with an im2col column matrix ``cols`` (K, ncols), chosen by shape:
        ``out (n_out, ncols) = weight (n_out, K) @ cols`` or, with ``trans_cols``,
        ``out (n_out, K) = weight (n_out, ncols) @ cols^T``.

        OpenBLAS multiplies (n_out x K) by (K x huge) at about half its speed when K is
        small (a first convolution layer: K = kh*kw + 1); cut into ~:data:`CHUNK`-column
        blocks and run as one batched product it is about twice as fast (docs/convnets.md).
        The transposed form then sums the blocks' partial products (a work array).
        """
        xp = self.xp
        count = column_chunks(*cols.shape)
        if count == 1:
            return self.gemm(weight, cols, out, trans_b=trans_cols)
        c3 = cols.reshape(cols.shape[0], count, -1)
        if not trans_cols:
            xp.matmul(weight, c3.transpose(1, 0, 2), out=out.reshape(out.shape[0], count, -1).transpose(1, 0, 2))
            return out
        parts = self.work("columns", (count,) + out.shape, out.dtype)
        w3 = weight.reshape(weight.shape[0], count, -1).transpose(1, 0, 2)
        xp.matmul(w3, c3.transpose(1, 2, 0), out=parts)
        xp.sum(parts, axis=0, out=out)
        return out


#: how many work arrays a backend keeps per thread (see :meth:`Backend.work`)
WORK_ARRAYS = 64

#: column products with K <= SMALL_K rows run in blocks of about CHUNK columns
#: (:meth:`Backend.gemm_columns`). BLAS is only ever called from the calling thread:
#: OpenBLAS called from two threads at once stalled for 100+ ms.
SMALL_K, CHUNK = 64, 1024


def column_chunks(rows, ncols):
    """How many equal column chunks to cut an (rows x ncols) product into (1: none)."""
    if rows > SMALL_K:
        return 1
    for count in range(max(1, ncols // CHUNK), ncols // (CHUNK // 4) + 1):
        if ncols % count == 0 and ncols // count <= 2 * CHUNK:
            return count
    return 1


def transposed_product_is_faster(batch, n_in, n_out):
    """Whether ``x W^T`` runs faster as ``(W x^T)^T`` in OpenBLAS: for 2-48 samples through
    a layer at least 256 wide on both sides (measured crossover,
    benchmarks/bench_linear_forward.py; narrower layers and larger batches are faster as
    y = x W^T)."""
    return 2 <= batch <= 48 and n_in >= 256 and n_out >= 256


@contextlib.contextmanager
def unbuffered(xp):
    """Run same-dtype ufuncs on strided views without NumPy's iterator buffers.

    NumPy 2 copies every operand of a ufunc through 8192-element buffers when the
    arrays cannot be flattened to one dimension, which makes ``col2im``-style strided
    adds (rows of a few hundred contiguous elements) 2-3x slower than the memory
    traffic requires. With a 256-element buffer size those rows are long enough for
    NumPy to loop over them in place. Only for ufuncs whose operands share one dtype
    (a cast still needs buffers, and small ones are slow). Per thread (NumPy keeps the
    setting in a context variable).
    """
    if xp.__name__ != "numpy":
        yield
        return
    old = xp.setbufsize(256)
    try:
        yield
    finally:
        xp.setbufsize(old)


def to_numpy(array):
    """``array`` itself if it is a NumPy array, else a NumPy copy of a CuPy array."""
    return array if isinstance(array, np.ndarray) else array.get()


def axpby(alpha, x, beta, y, scratch=None):
    """``y = alpha * x + beta * y`` in place (one pass through BLAS when possible).

    Without BLAS (NumPy on MKL or Accelerate, or strided arrays), ``alpha != 1`` needs
    ``scratch`` (same shape as ``y``; may be ``x`` itself when x may be overwritten) to
    stay free of temporaries.
    """
    if isinstance(y, np.ndarray):
        if _blas.axpby(alpha, x, beta, y):
            return y
    elif type(y).__module__.startswith("cupy"):
        return _cupy_axpby(alpha, x, beta, y)
    if beta != 1:
        y *= beta
    if alpha == 1:
        y += x
    elif scratch is None:
        y += alpha * x
    else:
        np.multiply(x, alpha, out=scratch)
        y += scratch
    return y


_CUPY_KERNELS: dict = {}


def _cupy_axpby(alpha, x, beta, y):
    """``y = alpha * x + beta * y`` as one CuPy kernel: on a GPU each array operation
    costs a launch, and the NumPy-style fallback needs three and a temporary array."""
    kernel = _CUPY_KERNELS.get("axpby")
    if kernel is None:
        import cupy  # noqa: PLC0415 - only on the GPU path

        kernel = _CUPY_KERNELS["axpby"] = cupy.ElementwiseKernel(
            "T a, T x, T b, T y_in", "T y", "y = a * x + b * y_in", "ember_axpby")
    kernel(y.dtype.type(alpha), x, y.dtype.type(beta), y, y)
    return y


NUMPY32 = Backend("numpy", "float32")
NUMPY64 = Backend("numpy", "float64")


def get_backend(spec) -> Backend:
    """Accept a Backend, or a string such as ``"numpy"``, ``"cupy"``, ``"numpy:float64"``."""
    if isinstance(spec, Backend):
        return spec
    if isinstance(spec, str):
        name, _, dtype = spec.partition(":")
        return Backend(name, dtype or "float32")
    raise ValueError(f"expected a Backend or a string like 'numpy:float64', got {spec!r}")
