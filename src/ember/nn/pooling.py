"""Max and average pooling over 2-D windows: SpatialMaxPooling, SpatialAveragePooling.

Torch7 argument order (width before height): ``(kw, kh, dw, dh, pad_w, pad_h)``.
Output size: OH = floor((H + 2 pad_h - kh) / dh) + 1, or rounded up in ceil mode
(``ceil_mode=True`` or ``:ceil()``), where a last window that would start beyond the
input and its left padding is dropped (the Torch7/PyTorch rule).
"""

from __future__ import annotations

import numpy as np

from .. import _fast
from . import _conv_fast
from ._layout import axis_order
from ._parallel import split
from ._pooling_base import WindowPooling
from ._spatial import claim_first_max
from .module import saved, scratch


class SpatialMaxPooling(WindowPooling):
    """Max over each kh x kw window: ``y[n,c,p,q] = max_{i,j} x_pad[n, c, p dh + i, q dw + j]``.

    ``SpatialMaxPooling(kw, kh, dw=kw, dh=kh, pad_w=0, pad_h=0, ceil_mode=False)``; the
    padding is -inf (never selected) and at most half the kernel.

    bprop to input: dE/dx gets dE/dy[p,q] at the **first** maximum of window (p, q) in
    scan order (row by row), and nothing at other tied positions -- as Torch7 and
    PyTorch do. Ties are common on images with a constant background (MNIST); sending
    the gradient to every tied position would be wrong. Overlapping windows add up.

    The backward pass finds the first maximum of each window by comparing the window's
    values (kept from the forward pass) with the output, in scan order. With
    ``ember[fast]`` (Numba) the forward pass records the index of each window's first
    maximum instead, in the same pass as the max, and the backward pass routes the
    gradient through it (``_conv_fast``; same results).
    """

    _pad_fill = float("-inf")

    taken = scratch("whether an earlier tap of the window held its maximum (bool, like the output)")
    first = scratch("whether this tap holds the window's first maximum (bool, like the output)")
    routed = scratch("dE/dy where this tap holds the first maximum, else 0")
    argmax = saved("compiled path: tap index i*kw + j of each window's first maximum, (A, OH, OW, B) "
                   "(see _conv_fast.as_ahwb); None after a NumPy forward")

    def __init__(self, kw, kh, dw=None, dh=None, pad_w=0, pad_h=0, ceil_mode=False):
        super().__init__()
        self._init_window(kw, kh, kw if dw is None else dw, kh if dh is None else dh, pad_w, pad_h, ceil_mode)

    def update_output(self, input):
        x4, (oh, ow) = self._sized_batch(input)
        out4 = self._output4(x4, oh, ow)
        kept, self.argmax = self.argmax, None  # set again only by a compiled forward
        if not (_fast.use(_conv_fast.max_pool_forward) and self._compiled_forward(x4, oh, ow, out4, kept)):
            taps = self._gather(x4, oh, ow)
            self._reduce_taps(self.backend.xp.maximum, taps, out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def _compiled_forward(self, x4, oh, ow, out4, kept):
        """The max and the index of the first maximum in one compiled pass; False (nothing
        done) when the arrays have no (A, H, W, B) view."""
        src = self._source(x4, oh, ow)
        if axis_order(src) != axis_order(out4):
            return False
        s, o = _conv_fast.as_ahwb(src), _conv_fast.as_ahwb(out4)
        if s is None or o is None:
            return False
        index = self._fit(kept, o.shape, dtype=np.int32)  # the last call's buffer when it fits
        kernel = _conv_fast.max_pool_forward
        geometry = (self.kh, self.kw, self.dh, self.dw)
        split(lambda a, b: kernel(s[a:b], o[a:b], index[a:b], *geometry), o.shape[0], s.size, self.backend.xp)
        self.argmax = index
        return True

    def _compiled_backward(self, x4, g4, oh, ow):
        """The gradient routed through :attr:`argmax`; None when the arrays have no
        (A, H, W, B) view (the caller then gathers the windows again)."""
        tiles = self._tiles(x4, oh, ow)
        gsrc, finish = self._grad_target(x4, oh, ow, zero=not tiles)
        gs, go, index = _conv_fast.as_ahwb(gsrc), _conv_fast.as_ahwb(g4), self.argmax
        if gs is None or go is None or go.shape != index.shape or axis_order(gsrc) != axis_order(g4):
            return None
        kernel = _conv_fast.max_pool_backward
        geometry = (self.kh, self.kw, self.dh, self.dw, tiles)
        split(lambda a, b: kernel(go[a:b], index[a:b], gs[a:b], *geometry), go.shape[0], gs.size, self.backend.xp)
        return finish()

    def update_grad_input(self, input, grad_output):
        x4, g4, out4, (oh, ow) = self._grad_setup(input, grad_output)
        xp = self.backend.xp
        if self.argmax is not None and _conv_fast.max_pool_backward is not None:
            gx4 = self._compiled_backward(x4, g4, oh, ow)
            if gx4 is not None:
                self.grad_input = self._unbatch(gx4, input)
                return self.grad_input
            self._gather(x4, oh, ow)  # the NumPy code below reads the windows' values
        taps4 = self.taps  # gathered by the forward pass
        taken4 = self.taken = self._fit(self.taken, None, like=out4, dtype=bool)
        mask4 = self.first = self._fit(self.first, None, like=out4, dtype=bool)
        product4 = self.routed = self._fit(self.routed, None, like=out4)
        last = len(taps4) - 1

        def first_maximum(t, a, b):
            """dE/dy where tap t holds the first maximum of its window (planes a..b-1)."""
            view, out, taken, mask, g = taps4[t][:, a:b], out4[:, a:b], taken4[:, a:b], mask4[:, a:b], g4[:, a:b]
            if last == 0:
                return g
            if t == 0:
                xp.equal(view, out, out=taken)
                current = taken
            elif t == last:
                xp.logical_not(taken, out=mask)  # the only tap left that can hold the first max
                current = mask
            else:
                current = claim_first_max(xp, view, out, taken, mask)
            return xp.multiply(g, current, out=product4[:, a:b])

        self.grad_input = self._unbatch(self._spread(x4, oh, ow, first_maximum), input)
        return self.grad_input


class SpatialAveragePooling(WindowPooling):
    """Mean over each kh x kw window.

    ``SpatialAveragePooling(kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, ceil_mode=False,
    count_include_pad=True)`` -- Torch7's defaults (note dw, dh default to **1** here,
    unlike max pooling; PyTorch's AvgPool2d defaults the stride to the kernel).

    fprop:   y[p,q] = (1/D[p,q]) sum_{i,j} x_pad[p dh + i, q dw + j], zero padding, where
             D = kh*kw, or, for windows cut by the ceil-mode edge, the window's size within
             the padded input; with ``count_include_pad=False`` the padding is not counted.
    bprop:   dE/dx_pad[p dh + i, q dw + j] += dE/dy[p,q] / D[p,q].
    """

    def __init__(self, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self._init_window(kw, kh, dw, dh, pad_w, pad_h, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    inverse_divisor = saved("1/D for the last input size: a scalar, or an (OH, OW) array")
    divisor_size = saved("the (H, W, OH, OW) that inverse_divisor was computed for")
    scaled = scratch("dE/dy / D")

    def _inverse_divisor(self, h, w, oh, ow):
        """1/D as a scalar when constant, else an (OH, OW) array (kept while the sizes stay)."""
        if self.divisor_size == (h, w, oh, ow):
            return self.inverse_divisor

        def counts(size, out, k, d, p):
            start = np.arange(out) * d - p
            end = np.minimum(start + k, size + p)
            full = end - start
            inside = np.minimum(end, size) - np.maximum(start, 0)
            return full, inside

        fh, ih = counts(h, oh, self.kh, self.dh, self.pad_h)
        fw, iw = counts(w, ow, self.kw, self.dw, self.pad_w)
        divisor = np.outer(fh, fw) if self.count_include_pad else np.outer(ih, iw)
        if (divisor == self.kh * self.kw).all():
            value = 1.0 / (self.kh * self.kw)
        else:
            value = self.backend.asarray(1.0 / divisor)
        self.divisor_size, self.inverse_divisor = (h, w, oh, ow), value
        return value

    def update_output(self, input):
        x4, (oh, ow) = self._sized_batch(input)
        xp = self.backend.xp
        taps = self._gather(x4, oh, ow)
        out4 = self._reduce_taps(xp.add, taps, self._output4(x4, oh, ow))
        xp.multiply(out4, self._inverse_divisor(*x4.shape[2:], oh, ow), out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, g4, out4, (oh, ow) = self._grad_setup(input, grad_output)
        scaled = self.scaled = self._fit(self.scaled, None, like=out4)
        self.backend.xp.multiply(g4, self._inverse_divisor(*x4.shape[2:], oh, ow), out=scaled)
        self.grad_input = self._unbatch(self._spread(x4, oh, ow, lambda t, a, b: scaled[:, a:b]), input)
        return self.grad_input

    def extra_repr(self):
        return super().extra_repr() + ("" if self.count_include_pad else ", count_include_pad=False")
