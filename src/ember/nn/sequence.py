"""Modules around recurrent layers: Sequencer, Bidirectional, LastStep, SequencerCriterion.

All take batch-first sequences (N, T, ...). Masks (see :func:`ember.nn.set_mask`) mark
the real steps of padded sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError, check_same_shape, describe, shape_error
from .module import Composite, Criterion, Module, backprop, saved, scratch
from .recurrent import SequenceModule, _ragged_message, check_mask, host_mask, set_mask


def _sequence_array(module, value, what="input (N, T, ...)", floating=False):
    """``value`` if it is a batch of sequences (N, T, ...) (of the backend's dtype when
    ``floating``), else a ShapeError (a helpful one for a ragged list of sequences)."""
    xp = module.backend.xp
    if isinstance(value, (list, tuple)) and value and all(hasattr(v, "shape") for v in value):
        raise _ragged_message(module, value, what)
    if not isinstance(value, xp.ndarray) or value.ndim < 2:
        raise shape_error(module, what, value)
    if value.shape[1] == 0:
        raise ShapeError(f"{module!r}: expected {what} with at least one time step, got {describe(value)}")
    if floating and value.dtype != module.backend.dtype:
        raise ShapeError(f"{module!r}: expected input of dtype {module.backend.dtype}, got {value.dtype}")
    return value


class Sequencer(Composite):
    """Apply a module without memory to every time step: ``y[:, t] = module(x[:, t])``.

    The steps are stacked into one batch, (N, T, ...) -> (N*T, ...), so the module runs
    once per call (same result as Torch7's per-step clones for any module that treats
    samples independently; a BatchNormalization inside would see N*T samples).
    bprop: the same reshaping of dE/dy and of dE/dx. To unfold a module *with*
    memory (a cell), use :class:`Recurrent`. Padded steps are computed like the others;
    masked consumers (recurrent layers, :class:`SequencerCriterion`) ignore them.
    """

    _input_kind = "any"

    def __init__(self, module: Module) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"Sequencer: expected a Module, got {type(module).__name__}")
        self.module = module
        self.backend = module.backend

    def children(self):
        return [self.module]

    def _flat(self, value, lead):
        return value.reshape((lead[0] * lead[1],) + value.shape[2:])

    def update_output(self, input):
        x = _sequence_array(self, input)
        lead = x.shape[:2]
        y = self.module.forward(self._flat(x, lead))
        self.output = y.reshape(lead + y.shape[1:])
        return self.output

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        check_same_shape(self, "grad_output", grad_output, self.output)
        lead = input.shape[:2]
        gx = backprop(self.module, self._flat(input, lead), self._flat(grad_output, lead), scale, need_input,
                      need_params)
        if need_input:
            self.grad_input = None if gx is None else gx.reshape(input.shape)

    def __repr__(self):
        return f"Sequencer({self.module!r})"


class Bidirectional(Composite, SequenceModule):
    """Run one sequence module forward in time and another backward, and merge.

    ``y = merge(F(x), reverse(B(reverse(x))))`` with ``reverse`` flipping the time axis;
    merge "concat" (default; features of F then B, as PyTorch's bidirectional layers)
    or "sum". ``backward_module`` defaults to a copy of ``module`` re-initialised with
    its ``reset`` (independent weights). With a mask, B gets the reversed mask: padded
    steps then come first and hold B's initial state, so B starts at each sequence's
    last real step. bprop: dE/dx = dE/dx(F) + reverse(dE/dx(B)).
    """

    x_reversed = saved("the input reversed in time (the backward module's input)")
    grad_forward = scratch("dE/d(forward module's output)")
    grad_reversed = scratch("dE/d(backward module's output), reversed in time")

    def __init__(self, module: Module, backward_module: Module | None = None, merge: str = "concat", rng: Any = None) -> None:
        super().__init__()
        if merge not in ("concat", "sum"):
            raise ValueError(f"Bidirectional: merge must be 'concat' or 'sum', got {merge!r}")
        if backward_module is None:
            backward_module = module.clone()
            if hasattr(backward_module, "reset"):
                backward_module.reset(rng=rng)
        self.forward_module, self.backward_module, self.merge = module, backward_module, merge
        self.backend = module.backend

    def children(self):
        return [self.forward_module, self.backward_module]

    def set_mask(self, mask):
        super().set_mask(mask)
        set_mask(self.forward_module, self.mask)
        set_mask(self.backward_module, None if self.mask is None else np.ascontiguousarray(self.mask[:, ::-1]))
        return self

    def remember(self, mode="both"):
        raise ValueError("Bidirectional: a backward-in-time pass cannot carry its state into the next call")

    def update_output(self, input):
        x = _sequence_array(self, input, "input (N, T, F)", floating=True)
        check_mask(self, *x.shape[:2])
        y1 = self.forward_module.forward(x)
        x_rev = self.x_reversed = self._fit(self.x_reversed, x.shape)
        x_rev[...] = x[:, ::-1]
        y2 = self.backward_module.forward(x_rev)
        if y1.shape[:2] != x.shape[:2] or y2.shape[:2] != x.shape[:2] or (self.merge == "sum" and y1.shape != y2.shape):
            raise shape_error(self, "both modules to return (N, T, H) sequences (equal shapes for merge='sum')",
                              f"{describe(y1)} and {describe(y2)}")
        if self.merge == "sum":
            out = self.output = self._fit(self.output, y1.shape)
            out[...] = y2[:, ::-1]
            out += y1
        else:
            h1 = y1.shape[2]
            out = self.output = self._fit(self.output, y1.shape[:2] + (h1 + y2.shape[2],))
            out[:, :, :h1] = y1
            out[:, :, h1:] = y2[:, ::-1]
        return out

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        """dE/dx = dE/dx(F) + reverse(dE/dx(B)), from the split and reversed dE/dy."""
        check_same_shape(self, "grad_output", grad_output, self.output)
        y1, y2 = self.forward_module.output, self.backward_module.output
        h1 = y1.shape[2]
        g1 = self.grad_forward = self._fit(self.grad_forward, y1.shape)
        g1[...] = grad_output if self.merge == "sum" else grad_output[:, :, :h1]
        g2 = self.grad_reversed = self._fit(self.grad_reversed, y2.shape)
        g2[...] = (grad_output if self.merge == "sum" else grad_output[:, :, h1:])[:, ::-1]
        gx1 = backprop(self.forward_module, input, g1, scale, need_input, need_params)
        gx2 = backprop(self.backward_module, self.x_reversed, g2, scale, need_input, need_params)
        if need_input:
            gx = self.grad_input = self._fit(self.grad_input, input.shape)
            gx[...] = gx2[:, ::-1]
            gx += gx1

    def __repr__(self):
        return f"Bidirectional({self.forward_module!r}, {self.backward_module!r}, merge={self.merge})"


class LastStep(SequenceModule):
    """The output of the last step: (N, T, F) -> (N, F), ``y_n = x[n, T-1]``.

    With a mask, each sequence's last real step: ``y_n = x[n, max{t: mask[n, t]}]``
    (zeros for a sequence with no real step). bprop: dE/dx[n, last_n] = dE/dy_n, 0 elsewhere.
    Feeds a classifier from a sequence encoder (e.g. MNIST rows into an LSTM).
    """

    def _last(self, n, t_len):
        if self.mask is None:
            return None
        check_mask(self, n, t_len)
        any_real = self.mask.any(axis=1)
        last = t_len - 1 - np.argmax(self.mask[:, ::-1], axis=1)
        xp = self.backend.xp
        return xp.asarray(np.where(any_real, last, 0)), xp.asarray(any_real)

    def update_output(self, input):
        x = _sequence_array(self, input, "input (N, T, F)", floating=True)
        n, t_len = x.shape[:2]
        out = self.output = self.backend.ensure(self.output, (n,) + x.shape[2:])
        picked = self._last(n, t_len)
        if picked is None:
            out[...] = x[:, -1]
        else:
            last, real = picked
            out[...] = x[self.backend.xp.arange(n), last]
            out[~real] = 0
        return out

    def update_grad_input(self, input, grad_output):
        n, t_len = input.shape[:2]
        check_same_shape(self, "grad_output", grad_output, self.output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx.fill(0)
        picked = self._last(n, t_len)
        if picked is None:
            gx[:, -1] = grad_output
        else:
            last, real = picked
            rows = self.backend.xp.arange(n)[real]
            gx[rows, last[real]] = grad_output[real]
        return gx


class SequencerCriterion(Criterion):
    """Apply a criterion to every step of a sequence at once.

    Input (N, T, ...) and target (N, T, ...) are flattened to N*T samples (only the real
    steps when a mask is set with ``set_mask``) and given to ``criterion`` in one call:
    with an averaging criterion (``ClassNLLCriterion()``) the loss is the mean over all
    real steps, e.g. nats per character for a language model. Torch7's
    SequencerCriterion summed the per-step losses instead (T times this value without a
    mask). bprop: the criterion's gradient, reshaped back; zero at padded steps.
    """

    def __init__(self, criterion: Criterion) -> None:
        super().__init__()
        if not isinstance(criterion, Criterion):
            raise TypeError(f"SequencerCriterion: expected a Criterion, got {type(criterion).__name__}")
        self.criterion = criterion
        self.backend = criterion.backend
        self.mask = None

    def children(self):
        return [self.criterion]

    def set_mask(self, mask):
        """Ignore padded steps: ``mask`` (N, T), true at real steps; ``None`` clears."""
        self.mask = host_mask(self, mask)
        return self

    def _flatten(self, input, target):
        x = _sequence_array(self, input)
        n, t_len = x.shape[:2]
        t_shape = getattr(target, "shape", None)
        if t_shape is None or len(t_shape) < 2 or tuple(t_shape[:2]) != (n, t_len):
            raise ShapeError(
                f"{self!r}: expected a target with the input's (N, T) = ({n}, {t_len}) leading axes, got "
                f"{describe(target)}" + (" (sequences of mismatched lengths? pad them and set a mask)" if t_shape else "")
            )
        flat_x = x.reshape((n * t_len,) + x.shape[2:])
        flat_t = target.reshape((n * t_len,) + tuple(t_shape[2:]))
        if self.mask is None:
            return flat_x, flat_t, None
        check_mask(self, n, t_len)
        keep = self.backend.xp.asarray(np.flatnonzero(self.mask))
        return flat_x[keep], flat_t[keep], keep

    def update_output(self, input, target):
        x, t, _ = self._flatten(input, target)
        self.output = self.criterion.forward(x, t)
        return self.output

    def update_grad_input(self, input, target):
        x, t, keep = self._flatten(input, target)
        g = self.criterion.backward(x, t)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        if keep is None:
            gx[...] = g.reshape(input.shape)
        else:
            gx.fill(0)
            gx.reshape((-1,) + input.shape[2:])[keep] = g
        return gx

    def __repr__(self):
        return f"SequencerCriterion({self.criterion!r})"


__all__ = ["Sequencer", "Bidirectional", "LastStep", "SequencerCriterion"]
