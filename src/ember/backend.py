"""Array backends: NumPy on the CPU, CuPy on an NVIDIA GPU.

A :class:`Backend` is a small frozen object holding the array namespace (``xp``) and
the floating-point dtype. It is chosen once (a CLI flag or ``module.to(backend)``) and
passed explicitly; module code only calls ``xp`` functions with ``out=`` so the same code
runs on both namespaces.

Matrix products go through :meth:`Backend.gemm` so that a GPU backend can call
cuBLAS directly, and so that every module's products can be made allocation-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _blas

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

    # -- products -----------------------------------------------------------------
    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, scratch=None):
        """``out = alpha * op(a) @ op(b) + beta * out`` with op = transpose when asked.

        With ``beta == 0`` the product is written straight into ``out``. Otherwise the
        product goes to ``scratch`` (same shape as ``out``) first and is added, because
        NumPy's matmul cannot accumulate; pass a persistent ``scratch`` to stay
        allocation-free.
        """
        xp = self.xp
        a = a.T if trans_a else a
        b = b.T if trans_b else b
        if xp is np and _blas.gemm(a, b, out, alpha, beta):
            return out
        if beta == 0:
            xp.matmul(a, b, out=out)
            if alpha != 1:
                out *= alpha
            return out
        if scratch is None:
            scratch = xp.empty_like(out)
        xp.matmul(a, b, out=scratch)
        if alpha != 1:
            scratch *= alpha
        if beta != 1:
            out *= beta
        out += scratch
        return out


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
