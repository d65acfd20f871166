"""Modules that only change how data is laid out: Identity, Reshape, View."""

from __future__ import annotations

import math

from ..errors import shape_error
from .module import Module
from .._typing import Array

from typing import Any


class Identity(Module):
    """``y = x`` (no copy).  bprop: dE/dx = dE/dy (no copy). Any input, tables included."""

    _input_kind = "any"

    def update_output(self, input: Array) -> Array:
        self.output = input
        return input

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self.grad_input = grad_output
        return grad_output


class Reshape(Module):
    """Reshape each sample to ``size`` (e.g. ``Reshape(3 * 32 * 32)`` flattens SVHN images).

    An input with exactly prod(size) elements is one sample; otherwise the first axis is
    the batch and the rest must hold prod(size) elements: (N, ...) -> (N, *size).
    ``size`` may contain one -1, inferred from the others. Returns a view when the
    input is contiguous. bprop reshapes dE/dy back to the input's shape.
    """

    def __init__(self, *size: int) -> None:
        super().__init__()
        size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        if not size or any(not isinstance(s, int) or (s <= 0 and s != -1) for s in size) or size.count(-1) > 1:
            raise ValueError(f"{type(self).__name__}: size must be positive ints (one -1 allowed), got {size!r}")
        self.size = size
        self._known = math.prod(s for s in size if s != -1)

    def spec(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "args": {"*size": list(self.size)}}

    def _target_shape(self, input: Array):
        if -1 not in self.size and input.size == self._known:
            return self.size
        if input.ndim >= 1 and -1 not in self.size and input.size // max(input.shape[0], 1) == self._known:
            return (input.shape[0],) + self.size
        if -1 in self.size and input.ndim >= 2 and (input.size // input.shape[0]) % self._known == 0:
            return (input.shape[0],) + self.size
        raise shape_error(self, f"a sample of {self._known} elements or a batch (N, ...) of them", input)

    def update_output(self, input: Array) -> Array:
        self.output = input.reshape(self._target_shape(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        if grad_output.size != input.size:
            raise shape_error(self, f"grad_output with {input.size} elements", grad_output)
        self.grad_input = grad_output.reshape(input.shape)
        return self.grad_input

    def extra_repr(self) -> str:
        return "x".join(map(str, self.size))


class View(Reshape):
    """Like :class:`Reshape` but never copies: raises if the new shape needs a copy.

    A convolution's output (laid out channel-major, batch innermost) flattens to
    (N, C*H*W) without a copy, so ``View(800)`` after a conv stack works as in Torch7.
    """

    def update_output(self, input: Array) -> Array:
        out = super().update_output(input)
        if out.size and not self.backend.xp.shares_memory(out, input):
            raise shape_error(self, f"an input that reshapes to {out.shape} without a copy (View never copies; "
                                    "use Reshape)", "a strided view")  # fmt: skip
        return out
