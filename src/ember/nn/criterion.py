"""Criteria (cost modules): ``loss = forward(input, target)``, ``backward(input, target)``.

Class targets are **0-based** integers (Torch7 used 1-based ones). ``size_average``
(default True) divides by the number of samples or elements as each class says.
"""

from __future__ import annotations

import numpy as np

from .. import _fast
from ..errors import ShapeError, describe, shape_error
from . import _softmax_fast
from .activation import LogSoftMax
from .module import Criterion, scratch
from .._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..nn.module import Module


def _class_batch(criterion, input: Array):
    """(batch input (N, C), single) for a (C,) sample or an (N, C) batch."""
    if input.ndim == 1:
        return input.reshape(1, -1), True
    if input.ndim == 2:
        return input, False
    raise shape_error(criterion, "input (N, C) or (C,) of class scores", input)


def from_torch(target: Array) -> Any:
    """A PyTorch tensor of labels as a NumPy array (detached, on the CPU); anything else as
    it is. PyTorch's class labels mean what ember's do (0-based int64 indices, as
    ``nn.NLLLoss`` takes them), so a criterion takes them as they are."""
    if type(target).__module__.startswith("torch") and hasattr(target, "detach"):
        return target.detach().cpu().numpy()
    return target


def _class_targets(criterion, target: Array, n, n_classes, single, ignore_index=None):
    """Validate class labels; returns ``(labels, in_range)``: an int64 array (N,) on the
    backend, and whether every label is a class in [0, C) (none is ``ignore_index``).

    NumPy labels are checked before they move to a GPU backend, so a training step on
    the GPU does not wait for the device to read the smallest and largest label."""
    xp = criterion.backend.xp
    target = from_torch(target)
    if single and isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = np.asarray([int(target)])
    if not hasattr(target, "dtype") or not hasattr(target.dtype, "kind"):
        raise ShapeError(f"{criterion!r}: expected integer class labels, got {describe(target)}")
    if target.dtype.kind not in "iu":
        raise ShapeError(
            f"{criterion!r}: expected integer class labels (0-based), got dtype {target.dtype}"
        )
    target = target.reshape(-1) if single else target
    if target.shape != (n,):
        raise ShapeError(f"{criterion!r}: expected {n} labels, shape ({n},), got {describe(target)}")
    low, high = (int(target.min()), int(target.max())) if target.size else (0, 0)
    in_range = 0 <= low and high < n_classes  # the common case: checked without a temporary array
    if not in_range:
        valid = target if ignore_index is None else target[target != ignore_index]
        if valid.size and (int(valid.min()) < 0 or int(valid.max()) >= n_classes):
            bad = int(valid.min()) if int(valid.min()) < 0 else int(valid.max())
            raise ShapeError(
                f"{criterion!r}: labels must be in [0, {n_classes - 1}] (0-based), got {bad}"
                + (f" (ignore_index is {ignore_index})" if ignore_index is not None else "")
            )
    if xp is not np and not isinstance(target, xp.ndarray):  # NumPy labels for a GPU criterion
        target = xp.asarray(target)
    return target, in_range


class _ClassWeights:
    """Optional per-class (or per-element) weights, kept as a constant of the criterion."""

    _constant_names = ("weights",)

    def _set_weights(self, weights) -> None:
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)


class ClassNLLCriterion(_ClassWeights, Criterion):
    """Negative log-likelihood of the correct class, for log-probabilities (LogSoftMax).

    Input (N, C) or (C,); target (N,) ints in [0, C) or one int. With class weights w
    (default 1) and samples whose target is ``ignore_index`` left out:

        loss = -sum_n w[t_n] x[n, t_n] / (size_average ? sum_n w[t_n] : 1)
        dE/dx[n, t_n] = -w[t_n] / (size_average ? sum_n w[t_n] : 1), 0 elsewhere.
    """

    flat_index = scratch("n * C + t_n: the flat positions of the picked log-probabilities")
    ramp = scratch("0, 1, ..., N-1 (int64)")
    picked = scratch("x[n, t_n]")

    def __init__(self, weights: Array | None = None, size_average: bool = True, ignore_index: int = -100) -> None:
        super().__init__(size_average)
        self._set_weights(weights)
        if self.weights is not None and self.weights.ndim != 1:
            raise ValueError(f"ClassNLLCriterion: weights must be 1-D (one per class), got {self.weights.shape}")
        self.ignore_index = int(ignore_index)

    def _prepare(self, input: Array, target: Array):
        batch, single = _class_batch(self, input)
        n, c = batch.shape
        if self.weights is not None and self.weights.shape[0] != c:
            raise shape_error(self, f"{self.weights.shape[0]} classes (one weight each)", input)
        target, in_range = _class_targets(self, target, n, c, single, self.ignore_index)
        xp = self.backend.xp
        # flat positions n * C + t of the picked log-probabilities, in a reused buffer
        flat = self.flat_index = self._fit(self.flat_index, (n,), dtype="int64")
        xp.multiply(self._arange(n), c, out=flat)
        flat += target
        if self.weights is None and in_range and not 0 <= self.ignore_index < c:
            # no weights and no ignored sample: no per-sample weight array is needed
            return batch, flat, None, (n if self.size_average else 1.0)
        keep = target != self.ignore_index
        safe = xp.where(keep, target, 0)
        flat -= target
        flat += safe
        if self.weights is None:
            w = keep.astype(input.dtype)
        else:
            w = xp.asarray(self.weights, dtype=input.dtype)[safe] * keep
        total = float(w.sum())
        norm = total if (self.size_average and total > 0) else 1.0
        return batch, flat, w, norm

    def _arange(self, n):
        """0, 1, ..., n-1 as int64 on the backend, kept between calls."""
        if self.ramp is None or self.ramp.shape != (n,):
            self.ramp = self.backend.xp.arange(n, dtype="int64")
        return self.ramp

    def _compiled(self, input: Array, target: Array, kernel) -> bool:
        """Whether the compiled path (``nn/_softmax_fast.py``) may run: an (N, C) NumPy
        batch, no class weights, no ``ignore_index`` among the classes, NumPy labels."""
        return (_fast.use(kernel) and self.weights is None and input.ndim == 2
                and not 0 <= self.ignore_index < input.shape[1]
                and _softmax_fast.labels_ready(target, input.shape[0]))  # fmt: skip

    def update_output(self, input: Array, target: Array) -> Array:
        pick = _softmax_fast.pick_classes
        if pick is not None and self._compiled(input, target, pick) and _softmax_fast.rows_ready(input):
            picked = self.picked = self._fit(self.picked, (input.shape[0],))
            if pick(input, target, picked):  # else a label is not a class: NumPy below
                total = float(picked.sum())
                self.output = -total / (input.shape[0] if self.size_average else 1.0)
                return self.output
        batch, flat, w, norm = self._prepare(input, target)
        xp = self.backend.xp
        picked = self.picked = self._fit(self.picked, flat.shape)
        xp.take(batch.reshape(-1), flat, out=picked)
        total = float(picked.sum()) if w is None else float((picked * w).sum())
        self.output = -total / norm
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        write = _softmax_fast.write_class_gradient
        if write is not None and self._compiled(input, target, write) and _softmax_fast.rows_ready(input, gx):
            value = gx.dtype.type(-1.0 / (input.shape[0] if self.size_average else 1.0))
            if write(target, value, gx):  # else NumPy below redoes it all
                return gx
        batch, flat, w, norm = self._prepare(input, target)
        xp = self.backend.xp
        gx.fill(0)
        xp.put(gx.reshape(-1), flat, -1.0 / norm if w is None else -w / norm)
        return gx

    def extra_repr(self) -> str:
        return "" if self.size_average else "size_average=False"


class CrossEntropyCriterion(Criterion):
    """``LogSoftMax`` followed by ``ClassNLLCriterion`` on raw class scores.

    loss = -sum_n w[t_n] log softmax(x_n)[t_n] / (size_average ? sum_n w[t_n] : 1)
    dE/dx_n = (softmax(x_n) - onehot(t_n)) * w[t_n] / norm.
    """

    def __init__(self, weights: Array | None = None, size_average: bool = True, ignore_index: int = -100) -> None:
        super().__init__(size_average)
        self.log_softmax = LogSoftMax()
        self.nll = ClassNLLCriterion(weights, size_average, ignore_index)

    def children(self) -> list[Module]:
        return [self.log_softmax, self.nll]

    def update_output(self, input: Array, target: Array) -> Array:
        _class_batch(self, input)
        try:
            self.output = self.nll.forward(self.log_softmax.forward(input), target)
        except (ShapeError, ValueError) as error:  # the inner modules' label checks, named as the user's module
            raise type(error)(f"{self!r}: {error}") from error
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        if getattr(self.log_softmax.output, "shape", None) != getattr(input, "shape", None):
            self.update_output(input, target)  # backward without a forward of this input (Torch7 allows it)
        grad = self.nll.backward(self.log_softmax.output, target)
        self.grad_input = self.log_softmax.backward(input, grad)
        return self.grad_input


class _Pairwise(Criterion):
    """Elementwise regression criteria: loss = reduce_i f(x_i, y_i)."""

    diff = scratch("x - y (|x - y| for AbsCriterion)")

    def _finish(self, total, count):
        return float(total) / (count if self.size_average else 1)

    def _scale(self, input: Array):
        return 1.0 / input.size if self.size_average else 1.0

    def _difference(self, input: Array, target: Array):
        """Check the target, then ``grad_input = x - y`` (reused buffer), returned for the
        caller to finish in place."""
        self._check_float_target(input, target)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.subtract(input, target, out=gx)
        return gx


class MSECriterion(_Pairwise):
    """Mean squared error (no 1/2): ``loss = sum_i (x_i - y_i)^2 / n`` (n = all elements;
    a sum when ``size_average=False``).  dE/dx = 2 (x - y) / n."""

    def update_output(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        diff = self.diff = self._fit(self.diff, input.shape)
        xp = self.backend.xp
        xp.subtract(input, target, out=diff)
        self.output = self._finish(xp.vdot(diff.reshape(-1), diff.reshape(-1)), input.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        gx = self._difference(input, target)
        gx *= 2 * self._scale(input)
        return gx


class AbsCriterion(_Pairwise):
    """Mean absolute error: ``loss = sum_i |x_i - y_i| / n``.  dE/dx = sign(x - y) / n."""

    def update_output(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        xp = self.backend.xp
        diff = self.diff = self._fit(self.diff, input.shape)
        xp.subtract(input, target, out=diff)
        xp.abs(diff, out=diff)
        self.output = self._finish(diff.sum(), input.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        gx = self._difference(input, target)
        self.backend.xp.sign(gx, out=gx)
        gx *= self._scale(input)
        return gx


class SmoothL1Criterion(_Pairwise):
    """Huber loss with threshold 1: per element d = x - y,
    ``l = 0.5 d^2 if |d| < 1 else |d| - 0.5``; averaged over n elements.
    dE/dx = clip(d, -1, 1) / n."""

    def update_output(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        xp = self.backend.xp
        d = xp.abs(input - target)
        self.output = self._finish(xp.where(d < 1, 0.5 * d * d, d - 0.5).sum(), input.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        gx = self._difference(input, target)
        self.backend.xp.clip(gx, -1, 1, out=gx)
        gx *= self._scale(input)
        return gx


class BCECriterion(_ClassWeights, _Pairwise):
    """Binary cross-entropy on probabilities x in (0, 1) and targets y in [0, 1]:

        loss = -sum_i w_i [y_i log(x_i + eps) + (1 - y_i) log(1 - x_i + eps)] / n
        dE/dx = -w (y - x) / ((x + eps)(1 - x + eps)) / n,    eps = 1e-12 (Torch7)

    ``weights`` (optional) broadcast against the input.
    """

    eps = 1e-12

    def __init__(self, weights: Array | None = None, size_average: bool = True) -> None:
        super().__init__(size_average)
        self._set_weights(weights)

    def _w(self, input: Array):
        return 1.0 if self.weights is None else self.backend.xp.asarray(self.weights, dtype=input.dtype)

    def update_output(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        low, high = (float(target.min()), float(target.max())) if target.size else (0.0, 0.0)
        if not (low >= 0 and high <= 1):
            raise ValueError(f"{self!r}: targets must be probabilities in [0, 1], got values in [{low:g}, {high:g}]")
        xp, eps = self.backend.xp, self.eps
        terms = target * xp.log(input + eps) + (1 - target) * xp.log(1 - input + eps)
        self.output = self._finish(-(terms * self._w(input)).sum(), input.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        eps = self.eps
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx[...] = -(target - input) / ((input + eps) * (1 - input + eps)) * self._w(input)
        gx *= self._scale(input)
        return gx


def _sign_targets(criterion, input: Array, target: Array):
    if not hasattr(target, "shape") or target.shape != input.shape:
        raise ShapeError(f"{criterion!r}: expected targets of shape {tuple(input.shape)} (values +1/-1), got {describe(target)}")
    return target.astype(input.dtype, copy=False)


class MarginCriterion(_Pairwise):
    """Two-class hinge loss with labels y in {+1, -1}:
    ``loss = sum_i max(0, margin - y_i x_i) / n``;  dE/dx_i = -y_i / n where the hinge is active."""

    def __init__(self, margin: float = 1.0, size_average: bool = True) -> None:
        super().__init__(size_average)
        self.margin = float(margin)

    def update_output(self, input: Array, target: Array) -> Array:
        y = _sign_targets(self, input, target)
        xp = self.backend.xp
        self.output = self._finish(xp.maximum(0, self.margin - y * input).sum(), input.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        y = _sign_targets(self, input, target)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx[...] = -y * (self.margin - y * input > 0) * self._scale(input)
        return gx


class MultiMarginCriterion(_ClassWeights, Criterion):
    """Multi-class hinge loss (Torch7 / PyTorch ``MultiMarginLoss``). Per sample with target t:

        l = sum_{i != t} w_t max(0, margin - x_t + x_i)^p / C,   p in {1, 2}

    averaged over the batch when ``size_average``. dE/dx_i = w_t p h_i^(p-1) / C for each
    active term h_i = margin - x_t + x_i > 0, and dE/dx_t = -(sum of those).
    """

    def __init__(self, p: int = 1, weights: Array | None = None, margin: float = 1.0,
                 size_average: bool = True) -> None:
        super().__init__(size_average)
        if p not in (1, 2):
            raise ValueError(f"MultiMarginCriterion: p must be 1 or 2, got {p}")
        self.p, self.margin = int(p), float(margin)
        self._set_weights(weights)

    def _hinge(self, input: Array, target: Array):
        batch, single = _class_batch(self, input)
        n, c = batch.shape
        t, _ = _class_targets(self, target, n, c, single)
        xp = self.backend.xp
        picked = xp.take_along_axis(batch, t.reshape(-1, 1), 1)
        h = self.margin - picked + batch
        h = xp.maximum(h, 0)
        xp.put_along_axis(h, t.reshape(-1, 1), 0, 1)
        w = 1.0 if self.weights is None else xp.asarray(self.weights, dtype=input.dtype)[t].reshape(-1, 1)
        return batch, t, h, w, n, c

    def update_output(self, input: Array, target: Array) -> Array:
        batch, t, h, w, n, c = self._hinge(input, target)
        total = float(((h**self.p) * w).sum()) / c
        self.output = total / n if self.size_average else total
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        batch, t, h, w, n, c = self._hinge(input, target)
        xp = self.backend.xp
        g = (h > 0) * (1.0 if self.p == 1 else 2 * h) * w / c
        if self.size_average:
            g = g / n
        xp.put_along_axis(g, t.reshape(-1, 1), -g.sum(axis=1, keepdims=True), 1)
        self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.grad_input[...] = g.reshape(input.shape)
        return self.grad_input


class DistKLDivCriterion(_Pairwise):
    """Kullback-Leibler divergence; input = log-probabilities, target = probabilities:

        loss = sum_i y_i (log y_i - x_i) / n   (terms with y_i = 0 count 0)
        dE/dx = -y / n
    """

    def update_output(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        xp = self.backend.xp
        logy = xp.log(xp.where(target > 0, target, 1))
        self.output = self._finish((target * (logy - input)).sum(), input.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        self._check_float_target(input, target)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.multiply(target, -self._scale(input), out=gx)
        return gx
