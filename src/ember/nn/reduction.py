"""Reductions over one axis: Sum, Mean, Max, Min.

``dim`` is 0-based and may be negative; with minibatches the batch is axis 0, so a
negative ``dim`` (e.g. ``Max(-1)``) works for one sample and for a batch alike.
"""

from __future__ import annotations

from ..errors import check_same_shape, shape_error
from .module import Module, saved
from .._typing import Array

from typing import Any


class _Reduce(Module):
    def __init__(self, dim=-1) -> None:
        super().__init__()
        if not isinstance(dim, int):
            raise ValueError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def _axis(self, input: Array):
        if not -input.ndim <= self.dim < input.ndim:
            raise shape_error(self, f"input with an axis {self.dim}", input)
        return self.dim % input.ndim

    def _out_shape(self, input: Array, axis):
        return input.shape[:axis] + input.shape[axis + 1 :]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Sum(_Reduce):
    """``y = sum_k x_k`` along ``dim`` (``size_average=True`` divides by the axis length).

    bprop: dE/dx_k = dE/dy (divided by the length when averaging), broadcast along dim.
    """

    def __init__(self, dim: int = -1, size_average: bool = False) -> None:
        super().__init__(dim)
        self.size_average = bool(size_average)

    def update_output(self, input: Array) -> Array:
        axis = self._axis(input)
        out = self.output = self.backend.ensure(self.output, self._out_shape(input, axis))
        xp = self.backend.xp
        if self.size_average:
            xp.mean(input, axis=axis, out=out)
        else:
            xp.sum(input, axis=axis, out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axis = self._axis(input)
        check_same_shape(self, "grad_output", grad_output, self.output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx[...] = self.backend.xp.expand_dims(grad_output, axis)
        if self.size_average:
            gx /= input.shape[axis]
        return gx


class Mean(Sum):
    """``y = (1/K) sum_k x_k`` along ``dim``.  bprop: dE/dx_k = dE/dy / K."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__(dim, size_average=True)

    def spec(self) -> dict[str, Any]:
        return {"type": "Mean", "args": {"dim": self.dim}}


class Max(_Reduce):
    """``y = max_k x_k`` along ``dim``.

    bprop: the whole gradient goes to the first position of the maximum (argmax), 0 to
    the others -- the lecture's Max module, and Torch7's and PyTorch's tie rule.
    """

    _pick = "argmax"
    indices = saved("the position of the first maximum along dim (int64)")

    def update_output(self, input: Array) -> Array:
        axis = self._axis(input)
        xp = self.backend.xp
        shape = self._out_shape(input, axis)
        index = self.indices = self._fit(self.indices, shape, dtype="int64")
        getattr(xp, self._pick)(input, axis=axis, out=index)
        out = self.output = self.backend.ensure(self.output, shape)
        out[...] = xp.take_along_axis(input, xp.expand_dims(index, axis), axis).reshape(shape)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axis = self._axis(input)
        check_same_shape(self, "grad_output", grad_output, self.output)
        xp = self.backend.xp
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx.fill(0)
        xp.put_along_axis(gx, xp.expand_dims(self.indices, axis), xp.expand_dims(grad_output, axis), axis)
        return gx


class Min(Max):
    """``y = min_k x_k`` along ``dim``; bprop sends the gradient to the first argmin."""

    _pick = "argmin"
