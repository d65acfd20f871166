"""Shared plumbing of the modules that take images: (C, H, W) or a batch (N, C, H, W)."""

from __future__ import annotations

from ..errors import check_same_shape, shape_error
from ._layout import axis_order
from ._parallel import split
from .module import Module, saved, scratch


def claim_first_max(xp, values, top, taken, mask):
    """``mask`` = where ``values`` equals the maximum ``top`` and no earlier candidate did
    (``taken``), then ``taken |= mask``: scanning candidates in order, the gradient of a
    max goes to the first maximum, as Torch7 and PyTorch do with ties. Returns mask."""
    xp.equal(values, top, out=mask)
    xp.greater(mask, taken, out=mask)  # equal and not already taken
    xp.logical_or(taken, mask, out=taken)
    return mask


class SpatialModule(Module):
    """Base of image modules: single images (C, H, W) are run as a batch of one."""

    #: number of input planes required (None: any)
    n_input_plane = None

    out4 = saved("the forward pass's 4-D output (N, C, OH, OW), which the backward reads")
    padded = scratch("the input inside its border (padding, ceil-mode edge) of fill values")
    grad_output4 = scratch("grad_output copied into the output's memory layout")

    def _batch(self, input, what="input"):
        """A 4-D (N, C, H, W) view of ``input``, checking the plane count."""
        if input.ndim == 4:
            x4 = input
        elif input.ndim == 3:
            x4 = input[None]
        else:
            raise shape_error(self, f"{what} {self._expected_input()}", input)
        if self.n_input_plane is not None and x4.shape[1] != self.n_input_plane:
            raise shape_error(self, f"{what} {self._expected_input()}", input)
        return x4

    def _expected_input(self):
        c = "C" if self.n_input_plane is None else self.n_input_plane
        return f"(N, {c}, H, W) or ({c}, H, W)"

    @staticmethod
    def _unbatch(array4, input):
        return array4 if input.ndim == 4 else array4[0]

    def _check_grad_output(self, grad_output, input):
        """grad_output must have the output's shape; returns its 4-D view."""
        check_same_shape(self, "grad_output", grad_output, self.output)
        return grad_output if input.ndim == 4 else grad_output[None]

    def _batch_pair(self, input, grad_output):
        """``(x4, g4)`` for a backward pass: the checked 4-D views of ``input`` and of
        ``grad_output`` (which must have the output's shape)."""
        x4 = self._batch(input)
        return x4, self._check_grad_output(grad_output, input)

    def _sized_batch(self, input):
        """``(x4, (OH, OW))`` for a forward pass: the checked 4-D view of ``input`` and the
        output size from the subclass's ``_out_hw(input, x4)`` (which raises when the input
        is too small)."""
        x4 = self._batch(input)
        return x4, self._out_hw(input, x4)

    def _padded(self, buffer, x4, top, left, size_hw, fill, order=None):
        """``buffer`` fitted to (N, C, *size_hw), holding ``x4`` at offset (top, left) and
        ``fill`` elsewhere (rows/columns of x4 beyond it are dropped). The border is
        written on every call: a reused buffer's border may hold an earlier, larger
        input (it is only a few rows and columns)."""
        n, c, h, w = x4.shape
        hp, wp = size_hw
        buf = self._fit(buffer, (n, c, hp, wp), order=axis_order(x4) if order is None else order)
        hh, ww = min(h, hp - top), min(w, wp - left)
        buf[:, :, :top] = fill
        buf[:, :, top + hh :] = fill
        buf[:, :, top : top + hh, :left] = fill
        buf[:, :, top : top + hh, left + ww :] = fill
        self.backend.xp.copyto(buf[:, :, top : top + hh, left : left + ww], x4[:, :, :hh, :ww])
        return buf

    def _split(self, work, x4):
        """Run ``work(a, b)`` over planes a..b-1 of x4, halves on two threads when large."""
        split(work, x4.shape[1], x4.size, self.backend.xp)

    def _grad_output_like(self, g4, reference):
        """``g4`` itself if laid out like ``reference``, else a copy that is (mixed
        layouts make every following elementwise operation strided)."""
        if axis_order(g4) == axis_order(reference):
            return g4
        self.grad_output4 = self._fit(self.grad_output4, None, like=reference)
        self.backend.xp.copyto(self.grad_output4, g4)
        return self.grad_output4
