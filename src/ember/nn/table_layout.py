"""Modules that move data between arrays and tables without arithmetic.

``JoinTable`` / ``SplitTable`` convert between a table and one array; ``SelectTable``,
``NarrowTable`` and ``FlattenTable`` pick or reshape entries of a table; ``Replicate``
repeats an array along a new axis (a broadcast view, no copy).

Axes (``dim``) are **0-based axes of the arrays, counting the batch axis**, and may be
negative (counted from the end, so ``JoinTable(-1)`` joins features for one sample and
for a batch alike). Table indices are 0-based (Torch7's were 1-based).
"""

from __future__ import annotations

from ..errors import check_same_shape, shape_error
from ._tables import check_entry, check_table, copy_into, is_table, normalize_axis, reused, zeros_like
from .module import Module
from .._typing import Array

from typing import Any


def _check_int(cls, name, value, low=None):
    if not isinstance(value, int) or isinstance(value, bool) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{cls}: {name} must be an int{bound}, got {value!r}")


class JoinTable(Module):
    """Concatenate a table of arrays along axis ``dim``: y = [x_1 | x_2 | ... | x_K].

    The entries must agree on every axis but ``dim``.
    bprop: dE/dx_k = the slice of dE/dy that x_k filled (a copy).
    """

    _input_kind = "any"

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        _check_int("JoinTable", "dim", dim)
        self.dim = dim

    def _check(self, input: Array):
        check_table(self, input)
        first = check_entry(self, 0, input[0])
        axis = normalize_axis(self, self.dim, first.ndim, "entry")
        for i, x in enumerate(input):
            check_entry(self, i, x)
            if x.ndim != first.ndim or x.shape[:axis] + x.shape[axis + 1 :] != first.shape[:axis] + first.shape[axis + 1 :]:
                raise shape_error(
                    self,
                    f"entries that agree on every axis but {axis} (entry 0 is {tuple(first.shape)})",
                    f"entry {i} of shape {tuple(x.shape)}",
                )
        return axis

    def update_output(self, input: Array) -> Array:
        axis = self._check(input)
        shape = list(input[0].shape)
        shape[axis] = sum(x.shape[axis] for x in input)
        out = self.output = self.backend.ensure(self.output, tuple(shape))
        self.backend.xp.concatenate(input, axis=axis, out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axis = self._check(input)
        check_same_shape(self, "grad_output", grad_output, self.output)
        old = reused(self.grad_input, len(input))
        grads, start = [], 0
        for i, x in enumerate(input):
            g = self.backend.ensure(old[i], x.shape)
            index = (slice(None),) * axis + (slice(start, start + x.shape[axis]),)
            g[...] = grad_output[index]
            grads.append(g)
            start += x.shape[axis]
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class SplitTable(Module):
    """Split an array along axis ``dim`` into a table of its slices (each without that axis).

    fprop: y_k = x.take(k, axis=dim), k = 0..size-1 (views, no copy)
    bprop: dE/dx = stack_k(dE/dy_k) along dim.
    """

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        _check_int("SplitTable", "dim", dim)
        self.dim = dim

    def update_output(self, input: Array) -> Array:
        axis = normalize_axis(self, self.dim, input.ndim)
        self.output = [input[(slice(None),) * axis + (k,)] for k in range(input.shape[axis])]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axis = normalize_axis(self, self.dim, input.ndim)
        n = input.shape[axis]
        part = input.shape[:axis] + input.shape[axis + 1 :]
        if not is_table(grad_output) or len(grad_output) != n or any(getattr(g, "shape", None) != part for g in grad_output):
            raise shape_error(self, f"grad_output as a table of {n} arrays of shape {part}", grad_output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.stack(grad_output, axis=axis, out=gx)
        return gx

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class SelectTable(Module):
    """Entry ``index`` of a table (0-based; negative counts from the end).

    fprop: y = x[index] (the entry itself, an array or a table; no copy)
    bprop: dE/dx[index] = dE/dy (a copy), zeros of the right structure for the other
    entries (None for non-float entries such as integer selectors).
    """

    _input_kind = "any"

    def __init__(self, index: int) -> None:
        super().__init__()
        _check_int("SelectTable", "index", index)
        self.index = index

    def _position(self, input: Array):
        check_table(self, input, min_n=1, what="entries")
        if not -len(input) <= self.index < len(input):
            raise shape_error(self, f"a table with an entry {self.index} (0-based)", f"a table of {len(input)} entries")
        return self.index % len(input)

    def update_output(self, input: Array) -> Array:
        self.output = input[self._position(input)]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        k = self._position(input)
        old = reused(self.grad_input, len(input))
        grads = [zeros_like(self.backend, old[i], x) if i != k else None for i, x in enumerate(input)]
        grads[k] = copy_into(self.backend, old[k], grad_output)
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return str(self.index)


class NarrowTable(Module):
    """Entries ``offset .. offset + length - 1`` of a table, as a table (0-based offset).

    bprop: dE/dy goes back to those entries (copies), zeros to the others.
    """

    _input_kind = "any"

    def __init__(self, offset: Any, length: int = 1) -> None:
        super().__init__()
        _check_int("NarrowTable", "offset", offset, 0)
        _check_int("NarrowTable", "length", length, 1)
        self.offset, self.length = offset, length

    def _check(self, input: Array) -> None:
        check_table(self, input, min_n=self.offset + self.length, what="entries")

    def update_output(self, input: Array) -> Array:
        self._check(input)
        self.output = list(input[self.offset : self.offset + self.length])
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self._check(input)
        if not is_table(grad_output) or len(grad_output) != self.length:
            raise shape_error(self, f"grad_output as a table of {self.length} entries", grad_output)
        old = reused(self.grad_input, len(input))
        grads = []
        for i, x in enumerate(input):
            if self.offset <= i < self.offset + self.length:
                grads.append(copy_into(self.backend, old[i], grad_output[i - self.offset]))
            else:
                grads.append(zeros_like(self.backend, old[i], x))
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return f"offset={self.offset}, length={self.length}"


def _flatten(value, out):
    if is_table(value):
        for item in value:
            _flatten(item, out)
    else:
        out.append(value)
    return out


class FlattenTable(Module):
    """Flatten nested tables into one flat table of their leaves, depth first:
    ``[a, [b, [c]], d] -> [a, b, c, d]`` (the leaves themselves, no copies).

    bprop: the flat dE/dy is nested back into the input's structure (no copies).
    """

    _input_kind = "any"

    def update_output(self, input: Array) -> Array:
        check_table(self, input, min_n=0, what="entries")
        self.output = _flatten(input, [])
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        n = len(_flatten(input, []))
        if not is_table(grad_output) or len(grad_output) != n:
            raise shape_error(self, f"grad_output as a flat table of {n} entries", grad_output)
        leaves = iter(grad_output)

        def nest(value):
            return [nest(v) for v in value] if is_table(value) else next(leaves)

        self.grad_input = nest(input)
        return self.grad_input


class Replicate(Module):
    """Repeat the input ``n_features`` times along a new axis ``dim`` of the output.

    x of shape S -> y of shape S with n_features inserted at axis ``dim`` (0-based axis of
    the output, negative from the end; for a batch (N, D) use ``Replicate(n, 1)``).
    The output is a read-only broadcast view (stride 0, no copy), as in Torch7.
    bprop: dE/dx = sum of dE/dy over the new axis.
    """

    def __init__(self, n_features: int, dim: int = 0) -> None:
        super().__init__()
        _check_int("Replicate", "n_features", n_features, 1)
        _check_int("Replicate", "dim", dim)
        self.n_features, self.dim = n_features, dim

    def _axis(self, input: Array):
        return normalize_axis(self, self.dim, input.ndim + 1, "output")

    def update_output(self, input: Array) -> Array:
        axis = self._axis(input)
        xp = self.backend.xp
        shape = input.shape[:axis] + (self.n_features,) + input.shape[axis:]
        self.output = xp.broadcast_to(xp.expand_dims(input, axis), shape)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axis = self._axis(input)
        check_same_shape(self, "grad_output", grad_output, self.output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.sum(grad_output, axis=axis, out=gx)
        return gx

    def extra_repr(self) -> str:
        return f"{self.n_features}, dim={self.dim}"
