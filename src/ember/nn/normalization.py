"""Local contrast normalization (LCN) with Torch7's semantics: SpatialSubtractiveNormalization,
SpatialDivisiveNormalization, SpatialContrastiveNormalization.

The weighted local mean over a window *and over all input planes* uses one map per
image, shared by all planes (not one per channel). With kernel k (1-D kernels are used
separably, i.e. as outer(k, k); sizes must be odd), w = k / sum(k), C planes and zero
padding of floor(k/2):

    M(z)[n,y,x] = (1/C) sum_c sum_{p,q} w[p,q] z[n, c, y + p - rh, x + q - rw]
    coef[y,x]   = M(1)[y,x] = the kernel mass inside the image (1 inside, < 1 at borders)

    subtractive:  y = x - M(x) / coef                                   (every plane)
    divisive:     s = sqrt(M(x^2)) / coef;  s'' = s if s > threshold else thresval;  y = x / s''
    contrastive:  divisive(subtractive(x))

As in Torch7, coef divides sigma itself, not its square. ``mean_floor=True`` adds Jarrett
et al. (2009)'s floor: s is first replaced by max(s, mean of s over the image) (per
image), then thresholded as above. The maps are computed with GEMMs against banded
(Toeplitz) matrices, one per kernel row. PyTorch has no LCN module; the tests check these
against a direct evaluation of the formulas.
"""

from __future__ import annotations

import numpy as np

from ..errors import check_positive
from ._layout import axis_order
from ..backend import unbuffered
from ._spatial import SpatialModule
from .module import saved, scratch
from .._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..nn.module import Module


class _LocalNormalization(SpatialModule):
    """Kernel handling and the map operator M (see the module docstring)."""

    _constant_names = ("kernel",)
    operators = saved("coef, 1/(coef C) and the banded matrices of M and M^T for operators_size")
    operators_size = saved("the (H, W) the operators were built for")
    plane_sum4 = scratch("sum over the planes, (N, 1, H, W) in the input's layout")
    plane_sum = scratch("sum over the planes as a contiguous (N, H, W) map")
    row_product = scratch("one kernel row's banded product in M, (N, H, W)")
    spread4 = scratch("an (N, H, W) map copied to (N, 1, H, W) in the input's layout")
    out4 = scratch("the 4-D output, in the input's layout")
    grad_input4 = scratch("dE/dx, 4-D, in the input's layout")

    def _init_kernel(self, n_input_plane, kernel):
        owner = type(self).__name__
        check_positive(owner, n_input_plane=n_input_plane)
        k = np.ones((9, 9)) if kernel is None else np.asarray(kernel, dtype=np.float64)
        if k.ndim not in (1, 2) or k.size == 0 or any(s % 2 == 0 for s in k.shape):
            raise ValueError(f"{owner}: the kernel must be 1-D or 2-D with odd sizes, got shape {tuple(k.shape)}")
        if not np.isfinite(k).all() or k.sum() <= 0:
            raise ValueError(f"{owner}: the kernel must be finite with a positive sum, got sum {k.sum()!r}")
        self.n_input_plane = n_input_plane
        self.kernel = k

    def _operators(self, h, w):
        """(coef, inverse coef / C, Toeplitz matrices, flipped ones) for (h, w) images
        (kept while the image size stays)."""
        if self.operators_size == (h, w):
            return self.operators
        k = np.asarray(self.backend.to_numpy(self.kernel), dtype=np.float64)
        k2 = np.outer(k, k) if k.ndim == 1 else k
        weights = k2 / k2.sum()
        kh, kw = weights.shape
        cols = np.arange(w)
        shift = cols[:, None] - cols[None, :] + kw // 2  # T[x', x] = w_row[x' - x + rw]
        valid = (shift >= 0) & (shift < kw)

        def toeplitz(row):
            return self.backend.asarray(np.where(valid, row[np.clip(shift, 0, kw - 1)], 0.0))

        coef = _correlate_numpy(np.ones((1, h, w)), weights)[0]
        self.operators_size, self.operators = (h, w), {
            "coef": self.backend.asarray(coef),
            "scale": self.backend.asarray(1.0 / (coef * self.n_input_plane)),
            "rows": [toeplitz(weights[p]) for p in range(kh)],
            "flipped": [toeplitz(weights[::-1, ::-1][p]) for p in range(kh)],
        }
        return self.operators

    def _correlate(self, maps, out, flipped: bool=False):
        """out (N,H,W) = sum_{p,q} w[p,q] maps[:, y + p - rh, x + q - rw] (zero padded);
        with ``flipped`` the adjoint (the flipped kernel)."""
        xp = self.backend.xp
        n, h, w = maps.shape
        rows = self._operators(h, w)["flipped" if flipped else "rows"]
        rh = len(rows) // 2
        tmp = self.row_product = self._fit(self.row_product, maps.shape)
        out.fill(0)
        for p, matrix in enumerate(rows):
            d = p - rh
            if abs(d) >= h:
                continue
            self.backend.gemm(maps.reshape(n * h, w), matrix, tmp.reshape(n * h, w))
            with unbuffered(xp):
                if d >= 0:
                    xp.add(out[:, : h - d], tmp[:, d:], out=out[:, : h - d])
                else:
                    xp.add(out[:, -d:], tmp[:, : h + d], out=out[:, -d:])
        return out

    def _plane_sum(self, x4):
        """sum over the planes of x4 as a contiguous (N, H, W) map."""
        n, c, h, w = x4.shape
        m4 = self.plane_sum4 = self._fit(self.plane_sum4, (n, 1, h, w), order=axis_order(x4))
        self.backend.xp.sum(x4, axis=1, keepdims=True, out=m4)
        maps = self.plane_sum = self._fit(self.plane_sum, (n, h, w))
        self.backend.xp.copyto(maps, m4[:, 0])
        return maps

    def _spread(self, buffer, maps, x4):
        """``buffer`` fitted to (N, 1, H, W) in x4's memory layout, holding ``maps`` (to
        broadcast over planes)."""
        m4 = self._fit(buffer, (x4.shape[0], 1) + x4.shape[2:], order=axis_order(x4))
        self.backend.xp.copyto(m4[:, 0], maps)
        return m4

    def _check_planes(self, input: Array):
        return self._batch(input)

    def extra_repr(self) -> str:
        return f"{self.n_input_plane}, kernel {'x'.join(map(str, self.kernel.shape))}"


def _correlate_numpy(maps, weights):
    """Plain zero-padded 'same' correlation of (N, H, W) maps (float64, for coefficients)."""
    kh, kw = weights.shape
    n, h, w = maps.shape
    padded = np.zeros((n, h + kh - 1, w + kw - 1))
    padded[:, kh // 2 : kh // 2 + h, kw // 2 : kw // 2 + w] = maps
    out = np.zeros((n, h, w))
    for p in range(kh):
        for q in range(kw):
            out += weights[p, q] * padded[:, p : p + h, q : q + w]
    return out


class SpatialSubtractiveNormalization(_LocalNormalization):
    """Subtract the local weighted mean over a window and all planes (Torch7 semantics).

    ``SpatialSubtractiveNormalization(n_input_plane=1, kernel=ones(9, 9))``; the kernel is
    1-D (used separably) or 2-D, odd-sized, and normalised here (its scale is irrelevant).

    fprop:  y[n,c] = x[n,c] - m[n],   m = M(x) / coef   (one map per image, see module doc)
    bprop:  dE/dx[n,c] = dE/dy[n,c] - M^T((sum_c' dE/dy[n,c']) / coef)
            where M^T is the correlation with the flipped kernel (the adjoint of M).
    """

    local_mean = scratch("m = M(x) / coef, (N, H, W)")
    grad_mean = scratch("M^T((sum_c dE/dy_c) / coef), (N, H, W)")

    def __init__(self, n_input_plane: int = 1, kernel: Any = None) -> None:
        super().__init__()
        self._init_kernel(n_input_plane, kernel)

    def update_output(self, input: Array) -> Array:
        x4 = self._check_planes(input)
        n, c, h, w = x4.shape
        ops = self._operators(h, w)
        total = self._plane_sum(x4)
        self.local_mean = self._fit(self.local_mean, total.shape)
        mean = self._correlate(total, self.local_mean)
        mean *= ops["scale"]
        out4 = self.out4 = self._fit(self.out4, None, like=x4)
        self.spread4 = self._spread(self.spread4, mean, x4)
        self.backend.xp.subtract(x4, self.spread4, out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x4 = self._check_planes(input)
        g4 = self._check_grad_output(grad_output, input)
        ops = self._operators(*x4.shape[2:])
        total = self._plane_sum(g4)
        total *= ops["scale"]
        self.grad_mean = self._fit(self.grad_mean, total.shape)
        back = self._correlate(total, self.grad_mean, flipped=True)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        self.spread4 = self._spread(self.spread4, back, g4)
        self.backend.xp.subtract(g4, self.spread4, out=gx4)
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input


class SpatialDivisiveNormalization(_LocalNormalization):
    """Divide by the local weighted standard deviation over a window and all planes.

    ``SpatialDivisiveNormalization(n_input_plane=1, kernel=ones(9, 9), threshold=1e-4,
    thresval=threshold, mean_floor=False)`` (Torch7 semantics; no mean is removed here:
    :class:`SpatialContrastiveNormalization` subtracts it first).

    fprop:  v = M(x^2),  s = sqrt(v),  s' = s / coef   (coef divides s, not v: Torch7's rule)
            u = max(s', mean_{y,x} s')  with mean_floor (Jarrett et al. 2009), else u = s'
            s'' = u if u > threshold else thresval;   y[n,c] = x[n,c] / s''[n]
    bprop:  dE/ds'' = -sum_c dE/dy_c x_c / s''^2;  dE/du = dE/ds'' [u > threshold]
            (mean_floor: dE/ds' = dE/du [s' >= mean] + (1/HW) sum_{y,x} dE/du [s' < mean])
            dE/dv = dE/ds' / (2 s coef) (0 where s = 0)
            dE/dx_c = dE/dy_c / s'' + 2 x_c M^T(dE/dv)
    """

    squares = scratch("x^2 in the forward, dE/dy x / s'' and then x M^T(dE/dv) in the backward")
    sigma = saved("s = sqrt(M(x^2)), (N, H, W)")
    adjusted = saved("s' = s / coef")
    level = saved("mean of s' over each image, (N, 1, 1) (mean_floor only)")
    floored = saved("s'', the divisor, (N, H, W)")
    above = saved("where u > threshold (bool)")
    below = scratch("where u <= threshold (bool)")
    floored4 = saved("s'' as (N, 1, H, W) in the input's layout")
    chosen = scratch("where s' >= its image mean (bool, mean_floor only)")
    to_level = scratch("dE/du where the floor came from the image mean")
    grad_level = scratch("dE/d(image mean of s'), (N, 1, 1)")
    positive = scratch("where s > 0 (bool)")
    denominator = scratch("2 s coef C (1 where s = 0)")
    grad_sigma = scratch("M^T(dE/dv), (N, H, W)")

    def __init__(self, n_input_plane: int = 1, kernel: Any = None, threshold: float = 1e-4, thresval: Any = None,
                 mean_floor: bool = False) -> None:
        super().__init__()
        self._init_kernel(n_input_plane, kernel)
        self.threshold = float(threshold)
        self.thresval = self.threshold if thresval is None else float(thresval)
        if self.thresval <= 0:
            raise ValueError(f"SpatialDivisiveNormalization: thresval must be > 0 (it divides), got {self.thresval}")
        self.mean_floor = bool(mean_floor)

    def update_output(self, input: Array) -> Array:
        x4 = self._check_planes(input)
        n, c, h, w = x4.shape
        xp = self.backend.xp
        ops = self._operators(h, w)
        squares = self.squares = self._fit(self.squares, None, like=x4)
        xp.multiply(x4, x4, out=squares)
        total = self._plane_sum(squares)
        sigma = self.sigma = self._correlate(total, self._fit(self.sigma, total.shape))
        sigma *= 1.0 / c
        xp.maximum(sigma, 0, out=sigma)  # rounding can leave tiny negatives
        xp.sqrt(sigma, out=sigma)
        adjusted = self.adjusted = self._fit(self.adjusted, total.shape)
        xp.divide(sigma, ops["coef"], out=adjusted)
        floored = self.floored = self._fit(self.floored, total.shape)
        if self.mean_floor:
            level = self.level = self._fit(self.level, (n, 1, 1))
            xp.mean(adjusted, axis=(1, 2), keepdims=True, out=level)
            xp.maximum(adjusted, level, out=floored)
        else:
            xp.copyto(floored, adjusted)
        above = self.above = self._fit(self.above, total.shape, dtype=bool)
        xp.greater(floored, self.threshold, out=above)
        below = self.below = self._fit(self.below, total.shape, dtype=bool)
        xp.logical_not(above, out=below)
        xp.copyto(floored, self.thresval, where=below)
        out4 = self.out4 = self._fit(self.out4, None, like=x4)
        self.floored4 = self._spread(self.floored4, floored, x4)
        xp.divide(x4, self.floored4, out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x4 = self._check_planes(input)
        g4 = self._check_grad_output(grad_output, input)
        n, c, h, w = x4.shape
        xp = self.backend.xp
        ops = self._operators(h, w)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        xp.divide(g4, self.floored4, out=gx4)  # direct path
        product = self.squares = self._fit(self.squares, None, like=x4)
        xp.multiply(gx4, x4, out=product)  # dE/dy * x / s''
        g_floor = self._plane_sum(product)
        xp.divide(g_floor, self.floored, out=g_floor)
        g_floor *= -1  # dE/ds''
        g_floor *= self.above  # dE/du
        if self.mean_floor:
            chosen = self.chosen = self._fit(self.chosen, g_floor.shape, dtype=bool)
            xp.greater_equal(self.adjusted, self.level, out=chosen)
            to_level = self.to_level = self._fit(self.to_level, g_floor.shape)
            xp.multiply(g_floor, ~chosen, out=to_level)
            g_level = self.grad_level = self._fit(self.grad_level, (n, 1, 1))
            xp.sum(to_level, axis=(1, 2), keepdims=True, out=g_level)
            g_floor *= chosen
            g_floor += g_level * (1.0 / (h * w))
        sigma = self.sigma
        positive = self.positive = self._fit(self.positive, g_floor.shape, dtype=bool)
        xp.greater(sigma, 0, out=positive)
        denominator = self.denominator = self._fit(self.denominator, g_floor.shape)
        xp.multiply(sigma, ops["coef"], out=denominator)
        denominator *= 2 * c  # v = M(x^2) carries the 1/C
        xp.copyto(denominator, 1, where=~positive)
        xp.divide(g_floor, denominator, out=g_floor)
        g_floor *= positive
        back = self.grad_sigma = self._correlate(g_floor, self._fit(self.grad_sigma, g_floor.shape), flipped=True)
        back *= 2
        self.spread4 = self._spread(self.spread4, back, x4)
        xp.multiply(x4, self.spread4, out=product)
        gx4 += product
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input

    def extra_repr(self) -> str:
        text = super().extra_repr() + f", threshold={self.threshold:g}"
        if self.thresval != self.threshold:
            text += f", thresval={self.thresval:g}"
        return text + (", mean floor" if self.mean_floor else "")


class SpatialContrastiveNormalization(_LocalNormalization):
    """Subtractive then divisive normalization (Torch7's ``SpatialContrastiveNormalization``).

    ``SpatialContrastiveNormalization(n_input_plane=1, kernel=ones(9, 9), threshold=1e-4,
    thresval=threshold, mean_floor=False)``:  y = Divisive(Subtractive(x)), both with the
    same kernel. bprop chains the two (see their docstrings). ``mean_floor=True`` gives
    the per-image floor of Jarrett et al. (2009) instead of Torch7's fixed threshold alone.
    """

    def __init__(self, n_input_plane: int = 1, kernel: Any = None, threshold: float = 1e-4, thresval: Any = None,
                 mean_floor: bool = False) -> None:
        super().__init__()
        self._init_kernel(n_input_plane, kernel)
        self.subtractive = SpatialSubtractiveNormalization(n_input_plane, kernel)
        self.divisive = SpatialDivisiveNormalization(n_input_plane, kernel, threshold, thresval, mean_floor)

    def children(self) -> list[Module]:
        return [self.subtractive, self.divisive]

    def update_output(self, input: Array) -> Array:
        self._check_planes(input)
        self.output = self.divisive.update_output(self.subtractive.update_output(input))
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        self._check_planes(input)
        middle = self.divisive.update_grad_input(self.subtractive.output, grad_output)
        self.grad_input = self.subtractive.update_grad_input(input, middle)
        return self.grad_input

    def extra_repr(self) -> str:
        return self.divisive.extra_repr()
