"""Regularization on the flat parameter vector: L1/L2 weight decay (switched on after a
few epochs, optionally sparing biases), max-norm constraints and gradient clipping.

The lecture: "use a bit of L1 or L2 regularization on the weights (or a combination);
but it's best to turn it on after a couple of epochs". :class:`WeightDecay` adds its
gradient inside ``feval`` (so it works with every optimizer), from ``start_epoch`` on,
and with ``skip_biases`` leaves 1-D parameters (biases, normalization gains) alone
through a 0/1 mask over the flat vector (:func:`parameter_mask`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import math

from ._validate import dot, namespace
from .._typing import Array


if TYPE_CHECKING:
    from ..nn.module import Module


def parameter_mask(module: Module, skip_biases: bool = True, dtype: Any = None) -> Any:
    """A 0/1 vector aligned with ``module.get_parameters()``'s flat vector: 0 on 1-D
    parameters (biases) when ``skip_biases``, 1 elsewhere."""
    params, _ = module.parameters()
    xp = module.backend.xp
    sizes = [int(p.size) for p in params]
    mask = xp.ones(sum(sizes), dtype=dtype or module.backend.dtype)
    offset = 0
    for param, n in zip(params, sizes):
        if skip_biases and param.ndim == 1:
            mask[offset : offset + n] = 0
        offset += n
    return mask


class WeightDecay:
    """Add ``l2 * m * x + l1 * m * sign(x)`` to the gradient, from ``start_epoch`` on.

    This is the gradient of the penalty ``l2/2 |m x|^2 + l1 |m x|_1`` (:meth:`penalty`),
    ``m`` the mask (all ones, or :func:`parameter_mask` to spare biases). ``epoch``
    counts completed epochs, so ``start_epoch=2`` switches the decay on for the third.
    ``apply`` works in place with one scratch vector (allocated once).
    """

    def __init__(self, l2: float = 0.0, l1: float = 0.0, start_epoch: int = 0, mask: Array | None = None) -> None:
        for name, value in (("l2", l2), ("l1", l1)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"WeightDecay: {name} must be a finite number >= 0, got {value!r}")
        if not isinstance(start_epoch, int) or start_epoch < 0:
            raise ValueError(f"WeightDecay: start_epoch must be an int >= 0, got {start_epoch!r}")
        self.l2, self.l1, self.start_epoch, self.mask = float(l2), float(l1), start_epoch, mask
        self._tmp: Any = None

    def active(self, epoch: int) -> bool:
        """Whether a penalty applies at ``epoch`` (0-based)."""
        return (self.l2 > 0 or self.l1 > 0) and epoch >= self.start_epoch

    def apply(self, x: Array, g: Array, epoch: int) -> Any:
        """``g += d penalty / dx`` when active at ``epoch``; returns g."""
        if not self.active(epoch):
            return g
        xp = namespace(x)
        if self.mask is not None and self.mask.shape != x.shape:
            raise ValueError(f"WeightDecay: mask of shape {self.mask.shape} does not match parameters {x.shape}")
        if self._tmp is None or self._tmp.shape != x.shape or self._tmp.dtype != x.dtype:
            self._tmp = xp.empty_like(x)
        tmp = self._tmp
        if self.l2:
            xp.multiply(x, self.l2, out=tmp)
            if self.mask is not None:
                tmp *= self.mask
            g += tmp
        if self.l1:
            xp.sign(x, out=tmp)
            tmp *= self.l1
            if self.mask is not None:
                tmp *= self.mask
            g += tmp
        return g

    def penalty(self, x: Array, epoch: int | None = None) -> float:
        """``l2/2 |m x|^2 + l1 |m x|_1`` (0 before ``start_epoch`` if epoch is given)."""
        if epoch is not None and not self.active(epoch):
            return 0.0
        xm = x if self.mask is None else x * self.mask
        return 0.5 * self.l2 * dot(xm, xm) + self.l1 * float(namespace(x).abs(xm).sum())

    def __repr__(self) -> str:
        masked = ", skip_biases" if self.mask is not None else ""
        return f"WeightDecay(l2={self.l2:g}, l1={self.l1:g}, start_epoch={self.start_epoch}{masked})"


class MaxNorm:
    """Max-norm constraint (Srivastava et al. 2014, used with dropout): after each step,
    rescale every unit's incoming weight vector to L2 norm at most ``max_norm``.

    The units are the rows of each parameter with 2 or more dimensions (Linear
    ``weight`` (out, in): a row per output unit; convolution kernels: one per output
    plane); 1-D parameters (biases) are left alone. ``w_i <- w_i * min(1, c / |w_i|)``.
    """

    def __init__(self, module: Module, max_norm: Any) -> None:
        if not isinstance(max_norm, int | float) or not math.isfinite(max_norm) or max_norm <= 0:
            raise ValueError(f"MaxNorm: max_norm must be a positive number, got {max_norm!r}")
        self.module, self.max_norm = module, float(max_norm)
        self._buffers: dict[str, Any] = {}

    def apply(self) -> Any:
        """Rescale in place (after ``get_parameters``, the rows are views into the flat
        vector, so the optimizer sees the change). Returns the largest norm found."""
        largest = 0.0
        for param in self.module.parameters()[0]:
            if param.ndim < 2:
                continue
            xp = namespace(param)
            rows = param.reshape(param.shape[0], -1)
            square, norms = self._work(id(param), rows, xp)
            xp.multiply(rows, rows, out=square)
            square.sum(axis=1, out=norms)
            xp.sqrt(norms, out=norms)
            largest = max(largest, float(norms.max()))
            # factor = c / max(norm, c) (1 for rows within the bound)
            xp.maximum(norms, self.max_norm, out=norms)
            xp.divide(self.max_norm, norms, out=norms)
            rows *= norms[:, None]
        return largest

    def _work(self, key, rows, xp):
        work = self._buffers.get(key)
        if work is None or work[0].shape != rows.shape or work[0].dtype != rows.dtype:
            work = self._buffers[key] = (xp.empty_like(rows), xp.empty(rows.shape[0], dtype=rows.dtype))
        return work

    def __repr__(self) -> str:
        return f"MaxNorm({self.max_norm:g})"


def clip_grad_norm(g: Array, max_norm: Any) -> float:
    """Scale the gradient vector in place so that ``|g| <= max_norm``; returns |g| before.

    ``g <- g * max_norm / |g|`` when ``|g| > max_norm`` (a non-finite norm is returned
    unchanged so the caller can stop on it).
    """
    if not isinstance(max_norm, int | float) or not max_norm > 0:
        raise ValueError(f"clip_grad_norm: max_norm must be a positive number, got {max_norm!r}")
    norm = math.sqrt(max(dot(g, g), 0.0))
    if math.isfinite(norm) and norm > max_norm:
        g *= max_norm / norm
    return norm


__all__ = ["parameter_mask", "WeightDecay", "MaxNorm", "clip_grad_norm"]
