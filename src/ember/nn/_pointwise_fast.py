"""Compiled elementwise loops (``ember[fast]``: Numba) for the transfer functions.

NumPy computes ReLU's input gradient in two passes, a comparison written as floats (a
casting loop, slow on large arrays) and a product; :func:`relu_backward` does both in one
pass over memory. The NumPy code in ``activation.py`` is the reference
(tests/test_fast_conv.py compares the two).
"""

from __future__ import annotations

import numpy as np

from .. import _fast
from ._layout import axis_order


def flat_views(*arrays: np.ndarray) -> list[np.ndarray] | None:
    """1-D views of arrays that have one shape and one dense memory layout (any axis
    order: CHWN images too), listing elements in memory order; None otherwise."""
    first = arrays[0]
    if all(a.flags.c_contiguous and a.shape == first.shape and a.dtype == first.dtype for a in arrays):
        return [a.reshape(-1) for a in arrays]  # the common case, without working out the axis order
    if any(a.shape != first.shape or a.strides != first.strides or a.dtype != first.dtype for a in arrays[1:]):
        return None
    order = axis_order(first)
    moved = [a.transpose(order) for a in arrays]
    if not moved[0].flags.c_contiguous:
        return None
    return [m.reshape(-1) for m in moved]


@_fast.kernel()
def relu_backward(y, grad_out, grad_in):  # pragma: no cover - compiled
    """grad_in = grad_out * (y > 0): the product with a 0/1 float, as the NumPy code
    computes it (so a NaN or inf gradient gives the same result)."""
    one, zero = y.dtype.type(1), y.dtype.type(0)
    for i in range(y.shape[0]):
        grad_in[i] = grad_out[i] * (one if y[i] > 0 else zero)
