"""Dropout (Hinton et al. 2012), Torch7 semantics with v1 and v2 scaling."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._typing import RNG, Array
from ..errors import check_same_shape
from ._layout import ensure_like
from .init import get_rng
from .module import Module, saved


def dropout_setup(module: Any, p: float, v1: bool, rng: RNG) -> None:
    """Check and store the drop probability ``p``, the ``v1`` flag and the generator
    (shared by Dropout and SpatialDropout)."""
    if not 0 <= p < 1:
        raise ValueError(f"{type(module).__name__}: p (the drop probability) must be in [0, 1), got {p}")
    module.p, module.v1 = float(p), bool(v1)
    module.rng = get_rng(rng)


def fill_keep_mask(module: Any, mask: Array) -> Array:
    """Draw ``mask`` in place: 1 with probability 1 - p, else 0, scaled by 1 / (1 - p)
    unless ``module.v1`` (the training-mode multiplier of Dropout and SpatialDropout).
    On the CPU the noise comes from the module's seeded generator, with no temporary."""
    xp = module.backend.xp
    if xp.__name__ == "numpy":
        module.rng.random(out=mask, dtype=mask.dtype)
    else:  # CuPy draws on the GPU
        mask[...] = xp.random.random_sample(mask.shape, dtype=mask.dtype)
    xp.greater_equal(mask, module.p, out=mask)
    if not module.v1:
        mask *= 1.0 / (1.0 - module.p)
    return mask


class Dropout(Module):
    """Zero each input with probability ``p`` while training.

    A mask m_i ~ Bernoulli(1 - p) is drawn at every forward call in training mode.

    * v2 (default; Torch7's default and PyTorch's): train ``y = x * m / (1 - p)``,
      evaluate ``y = x``.
    * v1 (``v1=True``, the original paper): train ``y = x * m``, evaluate
      ``y = (1 - p) x``. A model trained with v1 must be evaluated with v1.

    bprop: dE/dx = dE/dy * (the same mask and scale as fprop).
    """

    p: float
    v1: bool

    mask = saved("m (times 1 / (1 - p) in v2) drawn by the last training forward, like the input")
    factor = saved("what the forward multiplied by: the mask, or a scalar in evaluation mode")

    def __init__(self, p: float = 0.5, v1: bool = False, rng: RNG = None) -> None:
        super().__init__()
        dropout_setup(self, p, v1, rng)

    def update_output(self, input: Array) -> Array:
        # outputs, gradients and the mask keep the input's memory layout (see _layout)
        out = self.output = ensure_like(self.backend, self.output, input)
        if self.train and self.p > 0:
            self.mask = self.factor = fill_keep_mask(self, ensure_like(self.backend, self.mask, input))
        else:
            self.factor = 1.0 - self.p if self.v1 else 1.0
        self.backend.xp.multiply(input, self.factor, out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        check_same_shape(self, "grad_output", grad_output, input)
        gx = self.grad_input = ensure_like(self.backend, self.grad_input, input)
        self.backend.xp.multiply(grad_output, self.factor, out=gx)  # what the forward pass used
        return gx

    def extra_repr(self) -> str:
        return f"p={self.p:g}" + (", v1" if self.v1 else "")
