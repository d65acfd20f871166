"""Adaptive poolings: a fixed output size whatever the input size."""

from __future__ import annotations

from ..errors import check_positive, shape_error
from ._layout import axis_order
from ._spatial import SpatialModule
from .module import saved, scratch


def adaptive_bins(size, out):
    """[(start, end)] of the ``out`` bins over ``size``: start = floor(i size / out),
    end = ceil((i + 1) size / out) (Torch7 and PyTorch; bins may overlap by one)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


class _Adaptive(SpatialModule):
    def __init__(self, owidth, oheight):
        super().__init__()
        check_positive(type(self).__name__, owidth=owidth, oheight=oheight)
        self.owidth, self.oheight = owidth, oheight

    def _plan(self, input):
        x4 = self._batch(input)
        h, w = x4.shape[2:]
        if h < self.oheight or w < self.owidth:
            raise shape_error(self, f"input {self._expected_input()} with H >= {self.oheight} and W >= {self.owidth}",
                              input)  # fmt: skip
        windows = [(i, j, hs, he, ws, we) for i, (hs, he) in enumerate(adaptive_bins(h, self.oheight))
                   for j, (ws, we) in enumerate(adaptive_bins(w, self.owidth))]  # fmt: skip
        self.out4 = self._fit(self.out4, x4.shape[:2] + (self.oheight, self.owidth), order=axis_order(x4))
        return x4, windows, self.out4

    grad_input4 = scratch("dE/dx, 4-D, in the input's layout")

    def extra_repr(self):
        return f"{self.owidth}x{self.oheight}"


class SpatialAdaptiveMaxPooling(_Adaptive):
    """Max pooling to a fixed (oheight, owidth) output: ``SpatialAdaptiveMaxPooling(owidth, oheight)``.

    Output cell (i, j) is the max over rows [floor(i H/OH), ceil((i+1) H/OH)) and the
    matching columns. bprop: the gradient goes to the first maximum of each bin in scan
    order (bins may overlap by one pixel; contributions add up).
    """

    argmax = saved("per bin, the (N, C) index of its first maximum within the bin")

    def update_output(self, input):
        x4, windows, out4 = self._plan(input)
        xp = self.backend.xp
        self.argmax = []
        for i, j, hs, he, ws, we in windows:
            flat = x4[:, :, hs:he, ws:we].reshape(x4.shape[0], x4.shape[1], -1)
            index = xp.argmax(flat, axis=-1)
            self.argmax.append(index)
            out4[:, :, i, j] = xp.take_along_axis(flat, index[..., None], axis=-1)[..., 0]
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, windows, _ = self._plan(input)
        g4 = self._check_grad_output(grad_output, input)
        xp = self.backend.xp
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        gx4.fill(0)
        for (i, j, hs, he, ws, we), index in zip(windows, self.argmax):
            local = xp.zeros(x4.shape[:2] + ((he - hs) * (we - ws),), dtype=x4.dtype)
            xp.put_along_axis(local, index[..., None], g4[:, :, i, j][..., None], axis=-1)
            view = gx4[:, :, hs:he, ws:we]
            view += local.reshape(view.shape)
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input


class SpatialAdaptiveAveragePooling(_Adaptive):
    """Average pooling to a fixed output size: ``SpatialAdaptiveAveragePooling(owidth, oheight)``.

    y[i, j] = mean of the bin (i, j) (bins as in SpatialAdaptiveMaxPooling).
    bprop: dE/dx += dE/dy[i, j] / (bin area) over each bin.
    """

    def update_output(self, input):
        x4, windows, out4 = self._plan(input)
        xp = self.backend.xp
        for i, j, hs, he, ws, we in windows:
            xp.mean(x4[:, :, hs:he, ws:we], axis=(2, 3), out=out4[:, :, i, j])
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, windows, _ = self._plan(input)
        g4 = self._check_grad_output(grad_output, input)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        gx4.fill(0)
        for i, j, hs, he, ws, we in windows:
            view = gx4[:, :, hs:he, ws:we]
            view += g4[:, :, i, j][:, :, None, None] * (1.0 / ((he - hs) * (we - ws)))
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input


__all__ = ["SpatialAdaptiveMaxPooling", "SpatialAdaptiveAveragePooling", "adaptive_bins"]
