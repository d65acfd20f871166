"""Criteria on pairs and rankings: embeddings learned from similar/dissimilar pairs.

Label conventions differ, as they do in the literature; each class says which it uses:

- ``HingeEmbeddingCriterion``, ``L1HingeEmbeddingCriterion``, ``CosineEmbeddingCriterion``
  (Torch7/PyTorch): y = +1 similar, y = -1 dissimilar;
- ``MarginRankingCriterion``: y = +1 means x1 should rank higher than x2, -1 the reverse;
- ``ContrastiveCriterion`` (DrLIM, Hadsell, Chopra & LeCun 2006): **Y = 0 similar,
  Y = 1 dissimilar**, the paper's convention.

With ``size_average`` (default True) the loss is divided by the number of pairs.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError, describe, name_of, shape_error
from ._tables import check_float_table, table_buffers
from .criterion import from_torch
from .distance import CosineDistance, PairwiseDistance
from .module import Criterion, saved, scratch
from .._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..nn.module import Module


def _labels(criterion, target: Array, shape, allowed, meaning):
    """Validate labels (one per pair, values in ``allowed``) as a float array of ``shape``."""
    xp = criterion.backend.xp
    target = from_torch(target)
    if isinstance(target, (int, float, np.integer, np.floating)) and not isinstance(target, bool) and shape in ((), (1,)):
        target = xp.asarray([target]).reshape(shape)
    if (not hasattr(target, "shape") or tuple(target.shape) != tuple(shape)
            or getattr(target.dtype, "kind", None) not in tuple("iufb")):
        raise ShapeError(f"{name_of(criterion)}: expected targets of shape {tuple(shape)} ({meaning}), got {describe(target)}")
    values = target.astype(criterion.backend.dtype)
    ok = xp.zeros(values.shape, dtype=bool)
    for v in allowed:
        ok |= values == v
    if not bool(ok.all()):
        bad = float(values[~ok].reshape(-1)[0])
        raise ShapeError(f"{name_of(criterion)}: targets must be {meaning}, got {bad:g}")
    return values


class _PairCriterion(Criterion):
    """Criteria on a table [x1, x2] of vectors (D,) or batches (N, D), one label per pair."""

    _input_kind = "any"
    _allowed = (1.0, -1.0)
    _meaning = "+1 (similar) or -1 (dissimilar)"

    def _pair(self, input: Array, target: Array):
        x1, _ = check_float_table(self, input, 2)
        if x1.ndim not in (1, 2):
            raise shape_error(self, "entries of shape (N, D) or (D,)", x1)
        shape = (x1.shape[0],) if x1.ndim == 2 else ()
        return _labels(self, target, shape, self._allowed, self._meaning).reshape(-1)

    def _norm(self, n):
        return 1.0 / n if self.size_average else 1.0

    def _grads_through(self, module, input: Array, dloss):
        """dE/d(input) of a loss whose derivative w.r.t. ``module``'s output is ``dloss``."""
        self.grad_input = module.backward(input, dloss.reshape(module.output.shape).astype(self.backend.dtype))
        return self.grad_input


class HingeEmbeddingCriterion(Criterion):
    """Hinge loss on distances (Torch7/PyTorch ``HingeEmbeddingCriterion``).

    Input x: distances, any shape (e.g. the output of ``PairwiseDistance``); target y of
    the same shape, +1 (similar) or -1 (dissimilar):

        loss = sum_i l_i / n,   l_i = x_i if y_i = 1;  max(0, margin - x_i) if y_i = -1
        dE/dx_i = 1/n if y_i = 1;  -1/n if y_i = -1 and x_i <= margin, else 0
    n = number of elements (1 without size_average). Linear in x for similar pairs:
    this is not the DrLIM loss (see ``ContrastiveCriterion``).
    """

    def __init__(self, margin: float = 1.0, size_average: bool = True) -> None:
        super().__init__(size_average)
        self.margin = float(margin)

    def update_output(self, input: Array, target: Array) -> Array:
        y = _labels(self, target, input.shape, (1.0, -1.0), "+1 (similar) or -1 (dissimilar)")
        xp = self.backend.xp
        losses = xp.where(y > 0, input, xp.maximum(0, self.margin - input))
        self.output = float(losses.sum()) / (input.size if self.size_average else 1)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        y = _labels(self, target, input.shape, (1.0, -1.0), "+1 (similar) or -1 (dissimilar)")
        xp = self.backend.xp
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx[...] = xp.where(y > 0, 1.0, -(input <= self.margin).astype(input.dtype))
        gx *= 1.0 / input.size if self.size_average else 1.0
        return gx

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}"


class L1HingeEmbeddingCriterion(_PairCriterion):
    """Hinge embedding loss on the L1 distance of a pair (Torch7 ``L1HingeEmbeddingCriterion``).

    Input [x1, x2] of shape (N, D) or (D,); target y (N,) (or one number), +1 similar,
    -1 dissimilar; d_n = ||x1_n - x2_n||_1:

        loss = sum_n l_n / N,   l_n = d_n if y_n = 1;  max(0, margin - d_n) if y_n = -1
        dE/dx1_n = s_n sign(x1_n - x2_n) / N,  s_n = 1 (y = 1), -1 (y = -1 and d_n <= margin), else 0
        dE/dx2_n = -dE/dx1_n
    """

    def __init__(self, margin: float = 1.0, size_average: bool = True) -> None:
        super().__init__(size_average)
        self.distance = PairwiseDistance(1)
        self.hinge = HingeEmbeddingCriterion(margin, size_average)  # on the N distances

    @property
    def margin(self) -> Any:
        return self.hinge.margin

    def children(self) -> list[Module]:
        return [self.distance, self.hinge]

    def update_output(self, input: Array, target: Array) -> Array:
        y = self._pair(input, target)
        self.hinge.size_average = self.size_average
        self.output = self.hinge.forward(self.distance.forward(input).reshape(-1), y)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        y = self._pair(input, target)
        slope = self.hinge.backward(self.distance.output.reshape(-1), y)  # the forward's distances
        return self._grads_through(self.distance, input, slope)

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}"


class CosineEmbeddingCriterion(_PairCriterion):
    """Cosine embedding loss (Torch7/PyTorch ``CosineEmbeddingCriterion``).

    Input [x1, x2] (N, D) or (D,); target y (N,), +1 similar, -1 dissimilar;
    c_n = cos(x1_n, x2_n) as in ``CosineDistance`` (eps = 1e-12 on the squared norms):

        loss = sum_n l_n / N,   l_n = 1 - c_n if y_n = 1;  max(0, c_n - margin) if y_n = -1
        dE/dc_n = -1/N (y = 1), 1/N (y = -1 and c_n > margin), else 0; then through the cosine.
    """

    def __init__(self, margin: float = 0.0, size_average: bool = True) -> None:
        super().__init__(size_average)
        self.margin = float(margin)
        self.cosine = CosineDistance()

    def children(self) -> list[Module]:
        return [self.cosine]

    def update_output(self, input: Array, target: Array) -> Array:
        y = self._pair(input, target)
        xp = self.backend.xp
        c = self.cosine.forward(input).reshape(-1)
        self.output = float(xp.where(y > 0, 1 - c, xp.maximum(0, c - self.margin)).sum()) * self._norm(y.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        y = self._pair(input, target)
        c = self.cosine.output.reshape(-1)  # the forward's cosines
        slope = self.backend.xp.where(y > 0, -1.0, (c > self.margin).astype(c.dtype)) * self._norm(y.size)
        return self._grads_through(self.cosine, input, slope)

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}"


class MarginRankingCriterion(Criterion):
    """Ranking hinge loss (Torch7/PyTorch ``MarginRankingCriterion``).

    Input [x1, x2]: two arrays of one shape (scores, e.g. (N,)); target y of that shape
    (or (N,) for (N, 1) scores), +1 if x1 should rank higher, -1 if x2 should:

        loss = sum_i max(0, -y_i (x1_i - x2_i) + margin) / n
        dE/dx1_i = -y_i / n where the hinge is active (> 0), else 0;  dE/dx2 = -dE/dx1
    """

    _input_kind = "any"

    def __init__(self, margin: float = 0.0, size_average: bool = True) -> None:
        super().__init__(size_average)
        self.margin = float(margin)

    def _prepare(self, input: Array, target: Array):
        x1, x2 = check_float_table(self, input, 2)
        if hasattr(target, "shape") and target.shape != x1.shape and target.size == x1.size:
            target = target.reshape(x1.shape)
        y = _labels(self, target, x1.shape, (1.0, -1.0), "+1 (x1 ranks higher) or -1 (x2 ranks higher)")
        return x1, x2, y

    def update_output(self, input: Array, target: Array) -> Array:
        x1, x2, y = self._prepare(input, target)
        xp = self.backend.xp
        self.output = float(xp.maximum(0, self.margin - y * (x1 - x2)).sum()) / (x1.size if self.size_average else 1)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        x1, x2, y = self._prepare(input, target)
        g1, g2 = table_buffers(self.backend, self.grad_input, [x1.shape, x1.shape])
        g1[...] = -y * (self.margin - y * (x1 - x2) > 0)
        if self.size_average:
            g1 /= x1.size
        self.backend.xp.negative(g1, out=g2)
        self.grad_input = [g1, g2]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}"


class ContrastiveCriterion(_PairCriterion):
    """DrLIM contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006), for siamese networks.

    Input: the table [G(x1), G(x2)] of the two embeddings, (N, D) or (D,), computed by
    networks sharing their weights. Target Y (N,) (or one number), **paper convention:
    Y = 0 for a similar pair, Y = 1 for a dissimilar pair** (ints, bools or floats 0/1;
    the opposite of HingeEmbeddingCriterion's +1 = similar). With D_n = ||G(x1_n) - G(x2_n)||_2
    and margin m > 0:

        L = sum_n [(1 - Y_n) 1/2 D_n^2 + Y_n 1/2 max(0, m - D_n)^2] / N
        dL/dG(x1_n) = [(1 - Y_n) (G(x1_n) - G(x2_n))
                       - Y_n max(0, m - D_n) (G(x1_n) - G(x2_n)) / D_n] / N
        dL/dG(x2_n) = -dL/dG(x1_n)

    The similar term is differentiated as 1/2 ||delta||^2 (no 0/0 at D = 0); the
    dissimilar term's gradient is taken as 0 at D = 0. Similar pairs are pulled
    together, dissimilar pairs pushed apart until they are at least m apart. After
    ``forward``, ``distance`` holds the D_n (N,).
    """

    _allowed = (0.0, 1.0)
    _meaning = "0 (similar) or 1 (dissimilar), the DrLIM convention"

    delta = scratch("x1 - x2, one row per pair")
    distance = saved("D = ||x1 - x2|| of each pair in the last call")

    def __init__(self, margin: float = 1.0, size_average: bool = True) -> None:
        super().__init__(size_average)
        if not float(margin) > 0:
            raise ValueError(f"ContrastiveCriterion: margin must be > 0, got {margin!r}")
        self.margin = float(margin)

    def _terms(self, input: Array, target: Array):
        y = self._pair(input, target)
        xp = self.backend.xp
        x1, x2 = (x.reshape(y.size, -1) for x in input)
        delta = self.delta = self._fit(self.delta, x1.shape)
        xp.subtract(x1, x2, out=delta)
        d = xp.sqrt(xp.einsum("ij,ij->i", delta, delta))
        self.distance = d
        return y, delta, d, xp.maximum(0, self.margin - d)

    def update_output(self, input: Array, target: Array) -> Array:
        y, _, d, hinge = self._terms(input, target)
        self.output = float(((1 - y) * 0.5 * d * d + y * 0.5 * hinge * hinge).sum()) * self._norm(y.size)
        return self.output

    def update_grad_input(self, input: Array, target: Array) -> Array:
        y, delta, d, hinge = self._terms(input, target)
        xp = self.backend.xp
        coef = ((1 - y) - y * hinge / xp.where(d > 0, d, 1) * (d > 0)) * self._norm(y.size)
        g1, g2 = table_buffers(self.backend, self.grad_input, [x.shape for x in input])
        xp.multiply(delta, coef.reshape(-1, 1), out=g1.reshape(delta.shape))
        xp.negative(g1, out=g2)
        self.grad_input = [g1, g2]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"margin={self.margin:g}"
