"""Embeddings: LookupTable (Torch7's name; PyTorch's ``nn.Embedding``)."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, check_same_shape, describe
from .init import get_rng
from .module import Module, scratch
from .._typing import Array, RNG

from typing import Any


class LookupTable(Module):
    """A table of ``n_index`` learned vectors of size ``n_output``: ``y[..., :] = W[x[...]]``.

    Input: integer indices of any shape (e.g. (N, T) for token sequences), 0-based, in
    [0, n_index); output ``x.shape + (n_output,)``.

    bprop to weights: dE/dW[k] += scale * sum of dE/dy over the positions where x == k.
    The indices get no gradient: ``grad_input`` is an integer array of zeros (as Torch7).

    ``padding_index`` (PyTorch's ``padding_idx``): that row starts at zero and never
    receives a gradient, so padded positions embed to zeros. (Torch7's ``paddingValue``
    skipped the gradient too but left the row's initial values.) Init N(0, 1) as both.
    """

    _input_kind = "any"
    _param_names = ("weight",)
    scaled = scratch("scale * dE/dy rows")
    padding_row = scratch("grad_weight[padding_index], restored after the scatter-add")

    def __init__(self, n_index: int, n_output: int, padding_index: Any = None, rng: RNG = None) -> None:
        super().__init__()
        for label, value in (("n_index", n_index), ("n_output", n_output)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LookupTable: {label} must be a positive int, got {value!r}")
        if padding_index is not None and not (isinstance(padding_index, (int, np.integer)) and 0 <= padding_index < n_index):
            raise ValueError(f"LookupTable: padding_index must be None or in [0, {n_index - 1}], got {padding_index!r}")
        self.n_index, self.n_output = int(n_index), int(n_output)
        self.padding_index = None if padding_index is None else int(padding_index)
        self.weight = get_rng(rng).standard_normal((self.n_index, self.n_output)).astype("float32")
        if self.padding_index is not None:
            self.weight[self.padding_index] = 0
        self.grad_weight = self.weight * 0

    def _check(self, input: Array):
        xp = self.backend.xp
        if not isinstance(input, xp.ndarray):
            raise ShapeError(f"{self!r}: expected an integer index array, got {describe(input)}")
        if input.dtype.kind not in "iu":
            raise ShapeError(f"{self!r}: expected integer indices (0-based), got dtype {input.dtype}")
        if input.size:
            low, high = int(input.min()), int(input.max())
            if low < 0 or high >= self.n_index:
                raise ShapeError(f"{self!r}: indices must be in [0, {self.n_index - 1}] (0-based), got {low if low < 0 else high}")

    def update_output(self, input: Array) -> Array:
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input.shape + (self.n_output,))
        xp = self.backend.xp
        if xp is np:  # indices are checked above; mode "raise" would gather into a temporary first
            np.take(self.weight, input, axis=0, out=out, mode="clip")
        else:
            xp.take(self.weight, input, axis=0, out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        check_same_shape(self, "grad_output", grad_output, self.output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape, dtype=input.dtype)
        gx.fill(0)
        return gx

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = self.backend.xp
        rows = grad_output.reshape(-1, self.n_output)
        if scale != 1:
            scaled = self.scaled = self._fit(self.scaled, rows.shape)
            xp.multiply(rows, scale, out=scaled)
            rows = scaled
        keep = None
        if self.padding_index is not None:
            keep = self.padding_row = self._fit(self.padding_row, (self.n_output,))
            keep[...] = self.grad_weight[self.padding_index]
        xp.add.at(self.grad_weight, input.reshape(-1), rows)
        if keep is not None:
            self.grad_weight[self.padding_index] = keep

    def extra_repr(self) -> str:
        pad = f", padding_index={self.padding_index}" if self.padding_index is not None else ""
        return f"{self.n_index} -> {self.n_output}{pad}"


__all__ = ["LookupTable"]
