"""Compiled loops (``ember[fast]``: Numba) for the image modules: max pooling.

Each kernel has a NumPy reference in the module that calls it (``pooling.py``,
``_im2col.py``); tests/test_fast_conv.py checks that both give the same results. Kernels
are ``None`` without Numba, and :func:`ember._fast.use` decides at call time.

Arrays reach the kernels as C-contiguous 4-D views ``(A, H, W, B)``: the image axes in
the middle, every other axis folded into ``A`` (outside, in memory) or ``B`` (inside).
ember's CHWN batches are (C, H, W, N), C-contiguous NCHW ones (N*C, H, W, 1), NHWC ones
(N, H, W, C). The innermost loop runs over ``B``, the batch in the CHWN layout the
convolutions produce, so it is contiguous and vectorises.

What was measured (docs/convnets.md, "Speed"): max pooling forward + backward on the
LeNet-5 shapes ran 1.8x faster compiled (one pass each, the first maximum's index kept,
instead of a gather copy and kh*kw whole-array passes). A compiled col2im (one gather
per input pixel, each element written once) was tried and dropped: 1.0-1.2x on LeNet's
second layer, 0.5x on a 3-plane 32x32 input -- it is bound by reading the columns, as
NumPy's strided adds are; a compiled im2col is a copy as well, no faster than ``copyto``.
"""

from __future__ import annotations

import numpy as np

from .. import _fast
from ._layout import axis_order


def as_ahwb(array4: np.ndarray) -> np.ndarray | None:
    """The (A, H, W, B) C-contiguous view of an (N, C, H, W) array (see the module
    docstring), or None when its memory layout has no such view (H, W not adjacent, or
    not contiguous): the caller then runs its NumPy code."""
    order = axis_order(array4)
    try:
        p = order.index(2)
    except ValueError:  # pragma: no cover - a 4-D array always has axis 2
        return None
    if p + 1 >= len(order) or order[p + 1] != 3:
        return None
    moved = array4.transpose(order)
    if not moved.flags.c_contiguous:
        return None
    outer = 1
    for axis in order[:p]:
        outer *= array4.shape[axis]
    inner = 1
    for axis in order[p + 2 :]:
        inner *= array4.shape[axis]
    return moved.reshape(outer, array4.shape[2], array4.shape[3], inner)


@_fast.kernel()
def max_pool_forward(src, out, index, kh, kw, sh, sw):  # pragma: no cover - compiled
    """out[a,p,q,b] = max over the window (p sh + i, q sw + j) of src[a, ., ., b];
    index (int32) = i*kw + j of the **first** maximum in scan order (strictly greater
    values replace it). Row by row: each tap updates a whole output row, the inner loop
    runs over b. (An 8-bit index ran 3x slower, and conditional stores 1.5x slower: neither
    vectorises.)"""
    n_a, oh, ow, n_b = out.shape
    for a in range(n_a):
        for p in range(oh):
            orow, irow, first = out[a, p], index[a, p], src[a, p * sh]
            for q in range(ow):
                for b in range(n_b):
                    orow[q, b] = first[q * sw, b]
                    irow[q, b] = 0
            for i in range(kh):
                srow = src[a, p * sh + i]
                for j in range(kw):
                    if i + j == 0:
                        continue
                    t = np.int32(i * kw + j)
                    for q in range(ow):
                        x = q * sw + j
                        for b in range(n_b):  # selects, no branch: this loop vectorises
                            v, m = srow[x, b], orow[q, b]
                            up = v > m or (v != v and m == m)  # a NaN wins, as in np.maximum
                            orow[q, b] = v if up else m
                            irow[q, b] = t if up else irow[q, b]


@_fast.kernel()
def max_pool_backward(grad_out, index, grad_src, kh, kw, sh, sw, tiles):  # pragma: no cover - compiled
    """grad_src[window (p, q) tap index[p, q]] += grad_out[p, q]. With ``tiles`` (stride ==
    kernel) every covered element is written (the gradient or 0), so grad_src needs no
    zeroing there; otherwise grad_src must be zero and overlapping windows add up."""
    n_a, oh, ow, n_b = grad_out.shape
    for a in range(n_a):
        for p in range(oh):
            if tiles:
                for i in range(kh):
                    for q in range(ow):
                        for j in range(kw):
                            t = i * kw + j
                            for b in range(n_b):
                                g = grad_out[a, p, q, b]
                                grad_src[a, p * sh + i, q * sw + j, b] = g if index[a, p, q, b] == t else 0 * g
            else:
                for q in range(ow):
                    for b in range(n_b):
                        t = index[a, p, q, b]
                        grad_src[a, p * sh + t // kw, q * sw + t % kw, b] += grad_out[a, p, q, b]
