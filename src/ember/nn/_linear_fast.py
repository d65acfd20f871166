"""The compiled outer product of a Linear layer's first gradient write (``ember[fast]``: Numba).

A one-sample step's weight gradient is an outer product, ``dE/dW = scale * dy x^T``. When
the gradient is known to be zero (:mod:`ember.nn._fresh_grads`) it is written, not added:
:func:`outer_write` writes it in one pass over the (out, in) array, where NumPy's
broadcast product runs at about half that speed and BLAS ``ger`` needs the array zeroed
first. The NumPy code in ``linear.py`` is the reference (tests/test_fresh_grads.py
compares the two).
"""

from __future__ import annotations

from .. import _fast


@_fast.kernel()
def outer_write(alpha, a, b, out):  # pragma: no cover - compiled
    """out[i, j] = (alpha * a[i]) * b[j] for 1-D ``a``, ``b`` and a C-contiguous ``out``."""
    for i in range(a.shape[0]):
        ai = alpha * a[i]
        for j in range(b.shape[0]):
            out[i, j] = ai * b[j]
