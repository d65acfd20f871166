"""Shifted-window views, im2col and col2im on image batches (see ``_layout`` for layouts).

A convolution with kernel (kh, kw), stride (sh, sw), dilation (dh, dw) reads, for output
position (y, x) and kernel tap (i, j), the input pixel (i*dh + y*sh, j*dw + x*sw) of the
padded input. The "columns" of a batch are the array

    cols[c, i, j, y, x, n] = x_padded[n, c, i*dh + y*sh, j*dw + x*sw]

of shape (C, kh, kw, OH, OW, N), i.e. a (C*kh*kw, OH*OW*N) matrix: one GEMM with the
(n_out, C*kh*kw) weight matrix then gives the output directly in the CHWN layout.
:func:`im2col` fills it with one strided copy; :func:`col2im` is its adjoint (used for
the gradient with respect to the input), kh*kw strided in-place adds.
"""

from __future__ import annotations

from ..backend import unbuffered
from ._parallel import split


def out_size(size, kernel, stride, pad, dilation=1, ceil_mode=False):
    """Output length of a window sweep: floor((size + 2 pad - effective_k) / stride) + 1.

    With ``ceil_mode`` the division rounds up, except that the last window must start
    inside the input or its left padding (Torch7/PyTorch rule).
    """
    span = size + 2 * pad - (dilation * (kernel - 1) + 1)
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    n = -(-span // stride) + 1
    if (n - 1) * stride >= size + pad:
        n -= 1
    return n


def as_strided(xp, array, shape, strides):
    return xp.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)


def window_view(xp, src, kernel, out_hw, stride, dilation=(1, 1)):
    """View (C, kh, kw, OH, OW, N) of the windows of ``src`` (N, C, Hp, Wp), any layout."""
    (kh, kw), (oh, ow), (sh, sw), (dh, dw) = kernel, out_hw, stride, dilation
    n, c = src.shape[:2]
    s_n, s_c, s_h, s_w = src.strides
    return as_strided(xp, src, (c, kh, kw, oh, ow, n), (s_c, dh * s_h, dw * s_w, sh * s_h, sw * s_w, s_n))


def tap_view(src, i, j, out_hw, stride, dilation=(1, 1)):
    """The (N, C, OH, OW) view of ``src`` read by kernel tap (i, j) (a basic slice)."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return src[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]


def im2col(xp, src, cols6, kernel, out_hw, stride, dilation=(1, 1)):
    """cols6 (C, kh, kw, OH, OW, N) <- the windows of src (N, C, Hp, Wp): one strided copy
    (split over channels, or kernel rows for one channel, on two threads)."""
    windows = window_view(xp, src, kernel, out_hw, stride, dilation)
    if cols6.shape[0] > 1:
        split(lambda a, b: xp.copyto(cols6[a:b], windows[a:b]), cols6.shape[0], cols6.size, xp)
    else:
        split(lambda a, b: xp.copyto(cols6[:, a:b], windows[:, a:b]), cols6.shape[1], cols6.size, xp)
    return cols6


def col2im(xp, cols6, dst, kernel, out_hw, stride, dilation=(1, 1)):
    """dst (N, C, Hp, Wp) <- the adjoint of :func:`im2col`: zero, then one strided add
    per kernel tap. Fastest when ``dst`` is CHWN (each add runs over OW*N elements)."""
    kh, kw = kernel

    def work(a, b):  # channels a..b-1 (disjoint parts of dst)
        part = dst[:, a:b]
        part.fill(0)
        with unbuffered(xp):
            for i in range(kh):
                for j in range(kw):
                    view = tap_view(part, i, j, out_hw, stride, dilation)
                    xp.add(view, cols6[a:b, i, j].transpose(3, 0, 1, 2), out=view)

    split(work, dst.shape[1], cols6.size, xp)
    return dst
