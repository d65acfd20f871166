"""Non-linearities across feature maps: SpatialSoftMax, SpatialLogSoftMax, SpatialWTA
(winner-takes-all), SpatialMaxout, and SpatialDropout (drops whole planes)."""

from __future__ import annotations

from ..errors import check_positive, check_same_shape, shape_error
from ._layout import axis_order, ensure_like
from ._spatial import SpatialModule, claim_first_max
from .activation import LogSoftMax, SoftMax
from .dropout import dropout_setup, fill_keep_mask
from .module import saved, scratch
from .._typing import Array, RNG

from typing import Any


class SpatialSoftMax(SoftMax):
    """Softmax over the planes at every pixel: y[n,c,i,j] = exp(x[n,c,i,j]) / sum_k exp(x[n,k,i,j]).

    Input (N, C, H, W) or (C, H, W). bprop: dE/dx_c = y_c (dE/dy_c - sum_k y_k dE/dy_k).
    (PyTorch ``Softmax2d`` / ``softmax(x, dim=1)``.)
    """

    def _axis(self, input: Array):
        if input.ndim not in (3, 4):
            raise shape_error(self, "input (N, C, H, W) or (C, H, W)", input)
        return input.ndim - 3


class SpatialLogSoftMax(LogSoftMax):
    """Log-softmax over the planes at every pixel (input (N, C, H, W) or (C, H, W)).

    y_c = x_c - log sum_k exp(x_k);  bprop: dE/dx_c = dE/dy_c - exp(y_c) sum_k dE/dy_k.
    """

    _axis = SpatialSoftMax._axis


class _Groups(SpatialModule):
    winner = saved("(N, G, S, H, W) bool: the first plane of each group holding the group max")
    taken = scratch("(N, G, H, W) bool: whether an earlier plane of the group held the max")
    grad_input4 = scratch("dE/dx, 4-D, in the input's layout")

    def _init_groups(self, group_size) -> None:
        if group_size is not None:
            check_positive(type(self).__name__, group_size=group_size)
        self.group_size = group_size

    def _grouped(self, x4):
        """x4 viewed as (N, G, S, H, W): G groups of S consecutive planes."""
        n, c, h, w = x4.shape
        size = c if self.group_size is None else self.group_size
        if c % size:
            raise shape_error(self, f"input whose plane count is a multiple of group_size={size}", x4)
        return x4.reshape(n, c // size, size, h, w), size

    def _first_winner(self, grouped, top):
        """Boolean mask (N, G, S, H, W): the first plane of each group equal to the group max."""
        xp = self.backend.xp
        mask = self.winner = self._fit(self.winner, None, like=grouped, dtype=bool)
        taken = self.taken = self._fit(self.taken, None, like=top, dtype=bool)
        taken.fill(False)
        for s in range(grouped.shape[2]):
            claim_first_max(xp, grouped[:, :, s], top, taken, mask[:, :, s])
        return mask

    def extra_repr(self):
        return "" if self.group_size is None else f"group_size={self.group_size}"


class SpatialWTA(_Groups):
    """Winner-takes-all across feature maps: at every pixel, within each group of
    ``group_size`` consecutive planes (default: all planes), keep the largest value and
    set the others to 0.

    ``SpatialWTA(group_size=None)``; input (N, C, H, W) or (C, H, W), output the same shape.
    fprop:  y_c = x_c if c is the (first, in plane order) argmax of its group, else 0
    bprop:  dE/dx_c = dE/dy_c for the winner, 0 for the others.
    """

    top = scratch("the max of each group, (N, G, H, W)")

    def __init__(self, group_size: int | None = None) -> None:
        super().__init__()
        self._init_groups(group_size)

    def update_output(self, input: Array) -> Array:
        x4 = self._batch(input)
        grouped, _ = self._grouped(x4)
        xp = self.backend.xp
        top = self.top = self._fit(self.top, None, like=grouped[:, :, 0])
        xp.max(grouped, axis=2, out=top)
        winner = self._first_winner(grouped, top)
        out4 = self.out4 = self._fit(self.out4, None, like=x4)
        xp.multiply(x4, winner.reshape(x4.shape), out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x4, g4 = self._batch_pair(input, grad_output)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        self.backend.xp.multiply(g4, self.winner.reshape(x4.shape), out=gx4)
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input


class SpatialMaxout(_Groups):
    """Maxout across feature maps: y[n,g,i,j] = max of planes g S .. g S + S - 1 (S = group_size).

    ``SpatialMaxout(group_size)``; input (N, C, H, W) or (C, H, W) with C a multiple of S;
    output (N, C / S, H, W). bprop: the gradient goes to the first maximal plane.
    """

    def __init__(self, group_size: int) -> None:
        super().__init__()
        check_positive("SpatialMaxout", group_size=group_size)
        self._init_groups(group_size)

    def update_output(self, input: Array) -> Array:
        x4 = self._batch(input)
        grouped, _ = self._grouped(x4)
        out = self.out4 = self._fit(self.out4, None, like=grouped[:, :, 0])
        self.backend.xp.max(grouped, axis=2, out=out)
        self.output = self._unbatch(out, input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x4, g4 = self._batch_pair(input, grad_output)
        grouped, size = self._grouped(x4)
        mask = self._first_winner(grouped, self.out4)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        self.backend.xp.multiply(g4[:, :, None], mask, out=gx4.reshape(grouped.shape))
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input


class SpatialDropout(SpatialModule):
    """Dropout of whole feature maps (Tompson et al. 2015): plane c of image n is kept
    with probability 1 - p, and then entirely, because neighbouring pixels are correlated.

    ``SpatialDropout(p=0.5, v1=False)``; input (N, C, H, W) or (C, H, W).
    v2 (default, like ember's Dropout and PyTorch's Dropout2d): train y = x m / (1 - p),
    evaluate y = x. v1 (Torch7's SpatialDropout): train y = x m, evaluate y = (1 - p) x.
    m[n, c] ~ Bernoulli(1 - p), drawn at every training forward. bprop: the same mask/scale.
    """

    p: float
    v1: bool

    mask = saved("the (N, C, 1, 1) plane mask (times 1 / (1 - p) in v2) of the last training forward")
    factor = saved("what the forward multiplied by: the mask, or a scalar in evaluation mode")

    def __init__(self, p: float = 0.5, v1: bool = False, rng: RNG = None) -> None:
        super().__init__()
        dropout_setup(self, p, v1, rng)

    def _factor(self, x4):
        """The per-plane multiplier (N, C, 1, 1) array, or a scalar."""
        if self.train and self.p > 0:
            # laid out like the input: a C-ordered mask against CHWN images made the multiply strided (~9x slower)
            self.mask = self._fit(self.mask, x4.shape[:2] + (1, 1), order=axis_order(x4))
            return fill_keep_mask(self, self.mask)
        return 1.0 - self.p if self.v1 else 1.0

    def update_output(self, input: Array) -> Array:
        factor = self._factor(self._batch(input))
        # (C, 1, 1) for a single image; a scalar in evaluation mode
        self.factor = factor if input.ndim == 4 or not hasattr(factor, "shape") else factor[0]
        out = self.output = ensure_like(self.backend, self.output, input)
        self.backend.xp.multiply(input, self.factor, out=out)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        check_same_shape(self, "grad_output", grad_output, input)
        gx = self.grad_input = ensure_like(self.backend, self.grad_input, input)
        self.backend.xp.multiply(grad_output, self.factor, out=gx)
        return gx

    def extra_repr(self) -> str:
        return f"p={self.p:g}" + (", v1" if self.v1 else "")
