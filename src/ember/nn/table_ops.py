"""Modules that combine the entries of a table into one array.

``CAddTable`` is the lecture's Add/Plus module (K inputs summed); ``CMaxTable`` its Max
over inputs; ``Switch`` its multiplexer (a discrete input picks which of K inputs is
copied to the output). All take a table (a Python list) of arrays of one shape and
return one array; ``grad_input`` is a table of the same length.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, check_same_shape, describe, name_of, shape_error
from ._tables import check_entry, check_float_entries, check_float_table, check_table, is_table, reused, table_buffers
from .module import Module, saved, scratch
from .._typing import Array

from typing import Any


class _TableOp(Module):
    """Base of the elementwise table operations: input a table of same-shape arrays."""

    _input_kind = "any"
    #: exact number of entries (None: any number >= _min_entries)
    _n_entries = None
    _min_entries = 1

    def _check(self, input: Array):
        return check_float_table(self, input, self._n_entries, self._min_entries)

    def _grad_buffers(self, input: Array):
        self.grad_input = table_buffers(self.backend, self.grad_input, [x.shape for x in input])
        return self.grad_input

    def _check_grad(self, input: Array, grad_output: Array):
        self._check(input)
        check_same_shape(self, "grad_output", grad_output, input[0])
        return self._grad_buffers(input)


class CAddTable(_TableOp):
    """Sum of the entries of a table (the lecture's Add/Plus module).

    fprop:          y = x_1 + x_2 + ... + x_K     (entries of one shape)
    bprop to input: dE/dx_k = dE/dy for every k   (each a copy)
    """

    def update_output(self, input: Array) -> Array:
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input[0].shape)
        out[...] = input[0]
        for x in input[1:]:
            out += x
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        for g in self._check_grad(input, grad_output):
            g[...] = grad_output
        return self.grad_input


class CSubTable(_TableOp):
    """Difference of a table of two arrays: ``y = x_1 - x_2``.

    bprop: dE/dx_1 = dE/dy, dE/dx_2 = -dE/dy.
    """

    _n_entries = 2

    def update_output(self, input: Array) -> Array:
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input[0].shape)
        self.backend.xp.subtract(input[0], input[1], out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        g1, g2 = self._check_grad(input, grad_output)
        g1[...] = grad_output
        self.backend.xp.negative(grad_output, out=g2)
        return self.grad_input


class CMulTable(_TableOp):
    """Elementwise product of the entries of a table: ``y = x_1 * x_2 * ... * x_K``.

    bprop: dE/dx_k = dE/dy * prod_{j != k} x_j (computed as a product, so zeros in the
    input are handled exactly; no division).
    """

    def update_output(self, input: Array) -> Array:
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input[0].shape)
        out[...] = input[0]
        for x in input[1:]:
            out *= x
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        for k, g in enumerate(self._check_grad(input, grad_output)):
            g[...] = grad_output
            for j, x in enumerate(input):
                if j != k:
                    g *= x
        return self.grad_input


class CDivTable(_TableOp):
    """Elementwise quotient of a table of two arrays: ``y = x_1 / x_2``.

    bprop: dE/dx_1 = dE/dy / x_2,  dE/dx_2 = -dE/dy * x_1 / x_2^2 = -dE/dy * y / x_2.
    """

    _n_entries = 2

    def update_output(self, input: Array) -> Array:
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input[0].shape)
        self.backend.xp.divide(input[0], input[1], out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = self.backend.xp
        g1, g2 = self._check_grad(input, grad_output)
        xp.divide(grad_output, input[1], out=g1)
        xp.multiply(g1, input[0], out=g2)
        g2 /= input[1]
        xp.negative(g2, out=g2)
        return self.grad_input


class CMaxTable(_TableOp):
    """Elementwise maximum over the entries of a table: ``y = max_k x_k``.

    bprop: the gradient goes to the first entry (lowest k) holding the maximum, 0 to the
    others (Torch7's and PyTorch's tie rule).
    """

    _better = "greater"
    winner = saved("for each element, the index k of the first entry holding the max (int64)")
    better = scratch("where entry k beats the best so far (bool)")
    picked = scratch("where entry k is the winner (bool)")

    def update_output(self, input: Array) -> Array:
        self._check(input)
        xp = self.backend.xp
        out = self.output = self.backend.ensure(self.output, input[0].shape)
        winner = self.winner = self._fit(self.winner, input[0].shape, dtype="int64")
        better = self.better = self._fit(self.better, input[0].shape, dtype="bool")
        out[...] = input[0]
        winner.fill(0)
        for k, x in enumerate(input[1:], start=1):
            getattr(xp, self._better)(x, out, out=better)  # strict: ties keep the first
            xp.copyto(winner, k, where=better)
            xp.copyto(out, x, where=better)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = self.backend.xp
        picked = self.picked = self._fit(self.picked, input[0].shape, dtype="bool")
        for k, g in enumerate(self._check_grad(input, grad_output)):
            xp.equal(self.winner, k, out=picked)
            xp.multiply(grad_output, picked, out=g)
        return self.grad_input


class CMinTable(CMaxTable):
    """Elementwise minimum over the entries of a table: ``y = min_k x_k``.

    bprop: the gradient goes to the first entry holding the minimum, 0 to the others.
    """

    _better = "less"


class Switch(Module):
    """The lecture's multiplexer: a discrete selector picks which of K inputs is copied
    to the output; only that input receives a gradient.

    Input: the table ``[s, x_0, x_1, ..., x_{K-1}]``:

    - ``s`` (entry 0) is the selector, **0-based**: a Python int (or 0-d integer array)
      choosing one input for the whole batch, or an integer array of shape (N,) choosing
      one input per sample;
    - ``x_k`` are float arrays of one shape; with a per-sample selector they are
      batches (N, ...).

    fprop:          y[n] = x_{s[n]}[n]       (y = x_s for a scalar selector)
    bprop to input: dE/dx_k[n] = dE/dy[n] if s[n] == k, else 0
                    the selector gets no gradient: grad_input[0] is None.

    ``n_inputs`` (optional) fixes K; a selector outside [0, K-1] raises a ShapeError.
    """

    _input_kind = "any"

    def __init__(self, n_inputs: int = None) -> None:
        super().__init__()
        if n_inputs is not None and (not isinstance(n_inputs, int) or n_inputs < 1):
            raise ValueError(f"Switch: n_inputs must be a positive int or None, got {n_inputs!r}")
        self.n_inputs = n_inputs

    def _parse(self, input: Array):
        """(selector, inputs, per_sample) after checking everything."""
        k = self.n_inputs
        check_table(self, input, None if k is None else k + 1, 2, "entries: [selector, x_0, ..., x_{K-1}]")
        selector, inputs = input[0], list(input[1:])
        check_float_entries(self, inputs, offset=1)
        xp = self.backend.xp
        n = len(inputs)
        if isinstance(selector, (int, np.integer)) and not isinstance(selector, (bool, np.bool_)):
            value, per_sample = int(selector), False
        elif isinstance(selector, xp.ndarray) and selector.dtype.kind in "iu" and selector.ndim in (0, 1):
            per_sample = selector.ndim == 1
            value = int(selector) if not per_sample else None
        else:
            raise ShapeError(
                f"{name_of(self)}: expected the selector (table entry 0) as an int or an integer array (N,) "
                f"with values in [0, {n - 1}], got {describe(selector)}"
            )
        if per_sample:
            shape = inputs[0].shape
            if not shape or shape[0] != selector.shape[0]:
                raise shape_error(
                    self, f"one selector value per sample: inputs (N, ...) with N = {selector.shape[0]}", inputs[0]
                )
            if selector.size:
                low, high = int(selector.min()), int(selector.max())
                if low < 0 or high >= n:
                    bad = low if low < 0 else high
                    raise ShapeError(f"{name_of(self)}: selector values must be in [0, {n - 1}] (0-based), got {bad}")
            return selector, inputs, True
        if not 0 <= value < n:
            raise ShapeError(f"{name_of(self)}: selector must be in [0, {n - 1}] (0-based), got {value}")
        return value, inputs, False

    mask = scratch("where the selector picks entry k (bool)")

    def _mask(self, selector, k, ndim):
        mask = self.mask = self._fit(self.mask, selector.shape, dtype="bool")
        self.backend.xp.equal(selector, k, out=mask)
        return mask.reshape(selector.shape + (1,) * (ndim - 1))

    def update_output(self, input: Array) -> Array:
        selector, inputs, per_sample = self._parse(input)
        xp = self.backend.xp
        out = self.output = self.backend.ensure(self.output, inputs[0].shape)
        if not per_sample:
            out[...] = inputs[selector]
            return out
        for k, x in enumerate(inputs):
            xp.copyto(out, x, where=self._mask(selector, k, x.ndim))
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        selector, inputs, per_sample = self._parse(input)
        check_same_shape(self, "grad_output", grad_output, inputs[0])
        xp = self.backend.xp
        old = reused(self.grad_input, len(input))
        grads = [None] + [self.backend.ensure(old[k + 1], x.shape) for k, x in enumerate(inputs)]
        for k, g in enumerate(grads[1:]):
            if per_sample:
                xp.multiply(grad_output, self._mask(selector, k, g.ndim), out=g)
            elif k == selector:
                g[...] = grad_output
            else:
                g.fill(0)
        self.grad_input = grads
        return grads

    def extra_repr(self) -> str:
        return "" if self.n_inputs is None else f"{self.n_inputs} inputs"


class MixtureTable(Module):
    """Gated mixture of experts (Torch7 ``MixtureTable``): a soft, differentiable Switch.

    Input: the table ``[g, experts]`` where ``g`` holds the gate weights, (N, K) for a
    batch or (K,) for one sample (typically the output of a SoftMax), and ``experts`` is
    either a table of K arrays of one shape (N, ...) / (...) or one array (N, K, ...) /
    (K, ...).

    fprop:           y[n] = sum_k g[n, k] e_k[n]
    bprop to gates:  dE/dg[n, k] = < dE/dy[n], e_k[n] >   (sum over the non-batch axes)
    bprop to expert: dE/de_k[n] = g[n, k] dE/dy[n]
    ``grad_input`` has the structure of the input: [dE/dg, dE/d(experts)].
    """

    mixed = scratch("sum_j g_j e_j with a batch axis, (N, ...)")
    term = scratch("one expert's term g_j e_j (dE/dy e_j in the backward)")

    _input_kind = "any"

    def _parse(self, input: Array):
        check_table(self, input, 2, what="entries: [gates, experts]")
        gater, experts = input
        check_entry(self, 0, gater)
        if gater.ndim not in (1, 2):
            raise shape_error(self, "gates (N, K) or (K,) as table entry 0", gater)
        batch = gater.ndim == 2
        k = gater.shape[-1]
        n = gater.shape[0] if batch else 1
        if is_table(experts):
            if len(experts) != k:
                raise shape_error(self, f"{k} experts (one per gate)", f"a table of {len(experts)} experts")
            check_float_entries(self, list(experts))
            shape = experts[0].shape
            if batch and (not shape or shape[0] != n):
                raise shape_error(self, f"experts of shape (N, ...) with N = {n} like the gates", experts[0])
            stacked = False
            tail = shape[1:] if batch else shape
        else:
            check_entry(self, 1, experts)
            lead = (n, k) if batch else (k,)
            if experts.shape[: len(lead)] != lead:
                raise shape_error(self, f"experts as an array of shape {lead + ('...',)} (gates are {gater.shape})", experts)
            stacked = True
            tail = experts.shape[len(lead) :]
        return gater.reshape(n, k), experts, batch, stacked, n, k, tail

    def update_output(self, input: Array) -> Array:
        gates, experts, batch, stacked, n, k, tail = self._parse(input)
        if stacked and not batch:
            experts = experts.reshape((1, k) + tail)
        xp = self.backend.xp
        out = self.mixed = self._fit(self.mixed, (n,) + tail)
        term = self.term = self._fit(self.term, (n,) + tail)
        ones = (1,) * len(tail)
        out.fill(0)
        for j in range(k):
            e = experts[:, j] if stacked else experts[j].reshape((n,) + tail)
            xp.multiply(gates[:, j].reshape((n,) + ones), e, out=term)
            out += term
        self.output = out if batch else out.reshape(tail)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        gates, experts, batch, stacked, n, k, tail = self._parse(input)
        expected = (n,) + tail if batch else tail
        if getattr(grad_output, "shape", None) != expected:
            raise shape_error(self, f"grad_output of shape {expected}", grad_output)
        if stacked and not batch:
            experts = experts.reshape((1, k) + tail)
        xp = self.backend.xp
        go = grad_output.reshape((n,) + tail)
        ones = (1,) * len(tail)
        old = self.grad_input if is_table(self.grad_input) else [None, None]
        g_gate = self.backend.ensure(old[0], input[0].shape)
        gg = g_gate.reshape(n, k)
        term = self.term = self._fit(self.term, (n,) + tail)
        if stacked:
            g_exp = self.backend.ensure(old[1], input[1].shape)
            ge_all = g_exp.reshape((n, k) + tail)
            ge = [ge_all[:, j] for j in range(k)]
        else:
            g_exp = table_buffers(self.backend, old[1], [e.shape for e in input[1]])
            ge = [g.reshape((n,) + tail) for g in g_exp]
        axes = tuple(range(1, 1 + len(tail)))
        for j in range(k):
            e = experts[:, j] if stacked else experts[j].reshape((n,) + tail)
            xp.multiply(go, e, out=term)
            gg[:, j] = term.sum(axis=axes) if axes else term
            xp.multiply(gates[:, j].reshape((n,) + ones), go, out=ge[j])
        self.grad_input = [g_gate, g_exp]
        return self.grad_input
