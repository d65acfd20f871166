"""SpatialZeroPadding: add (or, with negative sizes, crop) a border of zeros."""

from __future__ import annotations

from ..errors import shape_error
from ._layout import axis_order
from ._spatial import SpatialModule
from .module import scratch
from .._typing import Array

from typing import Any


class SpatialZeroPadding(SpatialModule):
    """Pad images with zeros: ``SpatialZeroPadding(pad_l, pad_r=pad_l, pad_t=pad_l, pad_b=pad_l)``.

    Torch7 order: left, right, top, bottom. A negative size crops that side instead.
    Input (N, C, H, W) or (C, H, W); output (N, C, H + pad_t + pad_b, W + pad_l + pad_r).

    fprop: y[.., pad_t + i, pad_l + j] = x[.., i, j] for every pixel kept, 0 in the border.
    bprop: dE/dx[.., i, j] = dE/dy[.., pad_t + i, pad_l + j] (0 for cropped pixels).
    The output keeps the input's memory layout.
    """

    def __init__(self, pad_l: int, pad_r: int | None = None, pad_t: int | None = None,
                 pad_b: int | None = None) -> None:
        super().__init__()
        pads = [pad_l, pad_l if pad_r is None else pad_r, pad_l if pad_t is None else pad_t,
                pad_l if pad_b is None else pad_b]  # fmt: skip
        if any(isinstance(p, bool) or not isinstance(p, int) for p in pads):
            raise ValueError(f"SpatialZeroPadding: pad sizes must be ints, got {pads}")
        self.pad_l, self.pad_r, self.pad_t, self.pad_b = pads

    grad_input4 = scratch("dE/dx, 4-D, in the input's layout")

    def _regions(self, h, w):
        """(output slice, input slice) pairs of the rows and columns that are copied."""
        rows_out = slice(max(self.pad_t, 0), max(self.pad_t, 0) + h + min(self.pad_t, 0) + min(self.pad_b, 0))
        rows_in = slice(max(-self.pad_t, 0), h - max(-self.pad_b, 0))
        cols_out = slice(max(self.pad_l, 0), max(self.pad_l, 0) + w + min(self.pad_l, 0) + min(self.pad_r, 0))
        cols_in = slice(max(-self.pad_l, 0), w - max(-self.pad_r, 0))
        return (rows_out, cols_out), (rows_in, cols_in)

    def update_output(self, input: Array) -> Array:
        x4 = self._batch(input)
        n, c, h, w = x4.shape
        oh, ow = h + self.pad_t + self.pad_b, w + self.pad_l + self.pad_r
        if oh < 1 or ow < 1:
            raise shape_error(self, f"input {self._expected_input()} larger than what is cropped", input)
        out4 = self.out4 = self._fit(self.out4, (n, c, oh, ow), order=axis_order(x4))
        (ro, co), (ri, ci) = self._regions(h, w)
        if any((self.pad_l, self.pad_r, self.pad_t, self.pad_b)):
            out4.fill(0)
        self.backend.xp.copyto(out4[:, :, ro, co], x4[:, :, ri, ci])
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x4, g4 = self._batch_pair(input, grad_output)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        (ro, co), (ri, ci) = self._regions(*x4.shape[2:])
        if min(self.pad_l, self.pad_r, self.pad_t, self.pad_b) < 0:
            gx4.fill(0)
        self.backend.xp.copyto(gx4[:, :, ri, ci], g4[:, :, ro, co])
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"l={self.pad_l}, r={self.pad_r}, t={self.pad_t}, b={self.pad_b}"
