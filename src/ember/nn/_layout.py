"""Memory layouts of image batches, and reusable buffers with a chosen layout.

Every image array ember hands out has the logical shape (N, C, H, W) (batch first, as
in Torch7 and PyTorch). Its *memory* layout may differ: the convolution and pooling
modules keep activations channel-major with the batch innermost, "CHWN": the array
is a transposed view of a contiguous (C, H, W, N) buffer. That is the layout the
convolution GEMM writes (out = W . columns, columns indexed (C*kh*kw, OH*OW*N)), and in
it the shifted windows of im2col/col2im and of pooling are long contiguous runs
(OW*N elements) instead of rows of OW elements, which makes NumPy's copies several
times faster. Elementwise modules preserve whatever layout they receive, and
``Reshape`` of a CHWN batch to (N, C*H*W) is a free (Fortran-ordered) view that BLAS
reads directly.

An axis order ``order`` lists the logical axes from the outermost (largest stride) to
the innermost in memory: C-contiguous NCHW is (0, 1, 2, 3), CHWN is (1, 2, 3, 0).
"""

from __future__ import annotations
from .._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backend import Backend

CHWN = (1, 2, 3, 0)


def axis_order(array: Array) -> tuple[Any, ...]:
    """The memory order of ``array``'s axes, outermost first (ties keep logical order).

    Axes of length 1 have meaningless strides; they are placed where the logical order
    puts them relative to their neighbours.
    """
    shape, strides = array.shape, array.strides
    sized = [a for a in range(array.ndim) if shape[a] != 1]
    sized.sort(key=lambda a: -abs(strides[a]))
    order, ones = [], [a for a in range(array.ndim) if shape[a] == 1]
    for a in sized:
        while ones and ones[0] < a:
            order.append(ones.pop(0))
        order.append(a)
    return tuple(order + ones)


def _inverse(order):
    inverse = [0] * len(order)
    for position, axis in enumerate(order):
        inverse[axis] = position
    return tuple(inverse)


def empty_with_order(xp: Any, shape: tuple[int, ...], order: Any, dtype: Any) -> Any:
    """An uninitialised array of logical ``shape`` laid out in memory by ``order``."""
    base = xp.empty(tuple(shape[a] for a in order), dtype=dtype)
    return base.transpose(_inverse(order))


def has_layout(array: Array, shape: tuple[int, ...], order: Any, dtype: Any) -> Any:
    """True if ``array`` is exactly what :func:`empty_with_order` would give."""
    if array is None or tuple(array.shape) != tuple(shape) or array.dtype != dtype:
        return False
    expected, step = [0] * len(shape), array.itemsize
    for axis in reversed(order):
        expected[axis] = step
        step *= shape[axis]
    return all(shape[a] == 1 or array.strides[a] == expected[a] for a in range(len(shape)))


def ensure_layout(backend: Backend, buffer: Array, shape: tuple[int, ...], order: Any, dtype: Any = None) -> Any:
    """``buffer`` if it already has ``shape``, ``order`` and dtype, else a new one."""
    dtype = backend.xp.dtype(backend.dtype if dtype is None else dtype)
    if has_layout(buffer, shape, order, dtype) and isinstance(buffer, backend.xp.ndarray):
        return buffer
    return empty_with_order(backend.xp, shape, order, dtype)


def ensure_like(backend: Backend, buffer: Array, like: Any, dtype: Any = None) -> Any:
    """A buffer of ``like``'s shape and memory layout (reusing ``buffer`` when it fits)."""
    if (buffer is not None and like.flags.c_contiguous and buffer.flags.c_contiguous and buffer.shape == like.shape
            and buffer.dtype == (backend.dtype if dtype is None else dtype) and isinstance(buffer, backend.xp.ndarray)):
        return buffer  # the common case, decided without working out the axis order (~5 us a call)
    return ensure_layout(backend, buffer, like.shape, axis_order(like), dtype)


def as_matrix_chwn(array: Array) -> Any:
    """(C, H*W*N) view of a CHWN-laid-out (N, C, H, W) array, or None if it is not one."""
    n, c, h, w = array.shape
    moved = array.transpose(1, 2, 3, 0)
    if moved.flags.c_contiguous:
        return moved.reshape(c, h * w * n)
    return None
