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
from ._parallel import unbuffered
from ._spatial import SpatialModule


class _LocalNormalization(SpatialModule):
    """Kernel handling and the map operator M (see the module docstring)."""

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
        k2 = np.outer(k, k) if k.ndim == 1 else k
        self._weights = k2 / k2.sum()

    def _operators(self, h, w):
        """(coef, inverse coef / C, Toeplitz matrices, flipped ones) for (h, w) images (cached)."""
        key = (h, w, self.backend)
        if self.__dict__.get("_buf_ops_key") == key:
            return self.__dict__["_buf_ops"]
        weights = self._weights
        kh, kw = weights.shape
        cols = np.arange(w)
        shift = cols[:, None] - cols[None, :] + kw // 2  # T[x', x] = w_row[x' - x + rw]
        valid = (shift >= 0) & (shift < kw)

        def toeplitz(row):
            return self.backend.asarray(np.where(valid, row[np.clip(shift, 0, kw - 1)], 0.0))

        coef = _correlate_numpy(np.ones((1, h, w)), weights)[0]
        ops = {
            "coef": self.backend.asarray(coef),
            "scale": self.backend.asarray(1.0 / (coef * self.n_input_plane)),
            "rows": [toeplitz(weights[p]) for p in range(kh)],
            "flipped": [toeplitz(weights[::-1, ::-1][p]) for p in range(kh)],
        }
        self.__dict__["_buf_ops_key"], self.__dict__["_buf_ops"] = key, ops
        return ops

    def _correlate(self, name, maps, out, flipped=False):
        """out (N,H,W) = sum_{p,q} w[p,q] maps[:, y + p - rh, x + q - rw] (zero padded);
        with ``flipped`` the adjoint (the flipped kernel)."""
        xp = self.backend.xp
        n, h, w = maps.shape
        ops = self._operators(h, w)
        rows = ops["flipped" if flipped else "rows"]
        rh = len(rows) // 2
        tmp = self._scratch(name + "_rows", maps.shape)
        out.fill(0)
        for p, matrix in enumerate(rows):
            d = p - rh
            if abs(d) >= h:
                continue
            xp.matmul(maps.reshape(n * h, w), matrix, out=tmp.reshape(n * h, w))
            with unbuffered(xp):
                if d >= 0:
                    xp.add(out[:, : h - d], tmp[:, d:], out=out[:, : h - d])
                else:
                    xp.add(out[:, -d:], tmp[:, : h + d], out=out[:, -d:])
        return out

    def _plane_sum(self, name, x4):
        """sum over the planes of x4 as a contiguous (N, H, W) map."""
        n, c, h, w = x4.shape
        m4 = self._layout_scratch(name + "_4d", (n, 1, h, w), axis_order(x4))
        self.backend.xp.sum(x4, axis=1, keepdims=True, out=m4)
        maps = self._scratch(name, (n, h, w))
        self.backend.xp.copyto(maps, m4[:, 0])
        return maps

    def _spread(self, name, maps, x4):
        """A (N, 1, H, W) copy of ``maps`` in x4's memory layout (to broadcast over planes)."""
        m4 = self._layout_scratch(name, (x4.shape[0], 1) + x4.shape[2:], axis_order(x4))
        self.backend.xp.copyto(m4[:, 0], maps)
        return m4

    def _check_planes(self, input):
        return self._batch(input)

    def extra_repr(self):
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

    def __init__(self, n_input_plane=1, kernel=None):
        super().__init__()
        self._init_kernel(n_input_plane, kernel)

    def update_output(self, input):
        x4 = self._check_planes(input)
        n, c, h, w = x4.shape
        ops = self._operators(h, w)
        total = self._plane_sum("sum", x4)
        mean = self._correlate("mean", total, self._scratch("mean", total.shape))
        mean *= ops["scale"]
        out4 = self._scratch_like("output", x4)
        self.backend.xp.subtract(x4, self._spread("mean_4d", mean, x4), out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4 = self._check_planes(input)
        g4 = self._check_grad_output(grad_output, input)
        ops = self._operators(*x4.shape[2:])
        total = self._plane_sum("grad_sum", g4)
        total *= ops["scale"]
        back = self._correlate("grad_mean", total, self._scratch("grad_mean", total.shape), flipped=True)
        gx4 = self._scratch_like("grad_input", x4)
        self.backend.xp.subtract(g4, self._spread("grad_mean_4d", back, g4), out=gx4)
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

    def __init__(self, n_input_plane=1, kernel=None, threshold=1e-4, thresval=None, mean_floor=False):
        super().__init__()
        self._init_kernel(n_input_plane, kernel)
        self.threshold = float(threshold)
        self.thresval = self.threshold if thresval is None else float(thresval)
        if self.thresval <= 0:
            raise ValueError(f"SpatialDivisiveNormalization: thresval must be > 0 (it divides), got {self.thresval}")
        self.mean_floor = bool(mean_floor)

    def update_output(self, input):
        x4 = self._check_planes(input)
        n, c, h, w = x4.shape
        xp = self.backend.xp
        ops = self._operators(h, w)
        squares = self._scratch_like("squares", x4)
        xp.multiply(x4, x4, out=squares)
        total = self._plane_sum("sum", squares)
        sigma = self._correlate("sigma", total, self._scratch("sigma", total.shape))
        sigma *= 1.0 / c
        xp.maximum(sigma, 0, out=sigma)  # rounding can leave tiny negatives
        xp.sqrt(sigma, out=sigma)
        adjusted = self._scratch("adjusted", total.shape)
        xp.divide(sigma, ops["coef"], out=adjusted)
        floored = self._scratch("floored", total.shape)
        if self.mean_floor:
            level = self._scratch("level", (n, 1, 1))
            xp.mean(adjusted, axis=(1, 2), keepdims=True, out=level)
            xp.maximum(adjusted, level, out=floored)
        else:
            xp.copyto(floored, adjusted)
        above = self._scratch("above", total.shape, dtype=bool)
        xp.greater(floored, self.threshold, out=above)
        below = self._scratch("below", total.shape, dtype=bool)
        xp.logical_not(above, out=below)
        xp.copyto(floored, self.thresval, where=below)
        out4 = self._scratch_like("output", x4)
        xp.divide(x4, self._spread("floored_4d", floored, x4), out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4 = self._check_planes(input)
        g4 = self._check_grad_output(grad_output, input)
        n, c, h, w = x4.shape
        xp = self.backend.xp
        ops = self._operators(h, w)
        floored4 = self.__dict__["_buf_floored_4d"]
        gx4 = self._scratch_like("grad_input", x4)
        xp.divide(g4, floored4, out=gx4)  # direct path
        product = self._scratch_like("squares", x4)
        xp.multiply(gx4, x4, out=product)  # dE/dy * x / s''
        g_floor = self._plane_sum("grad_sum", product)
        floored = self.__dict__["_buf_floored"]
        xp.divide(g_floor, floored, out=g_floor)
        g_floor *= -1  # dE/ds''
        g_floor *= self.__dict__["_buf_above"]  # dE/du
        if self.mean_floor:
            adjusted, level = self.__dict__["_buf_adjusted"], self.__dict__["_buf_level"]
            chosen = self._scratch("chosen", g_floor.shape, dtype=bool)
            xp.greater_equal(adjusted, level, out=chosen)
            to_level = self._scratch("to_level", g_floor.shape)
            xp.multiply(g_floor, ~chosen, out=to_level)
            g_level = self._scratch("grad_level", (n, 1, 1))
            xp.sum(to_level, axis=(1, 2), keepdims=True, out=g_level)
            g_floor *= chosen
            g_floor += g_level * (1.0 / (h * w))
        sigma = self.__dict__["_buf_sigma"]
        positive = self._scratch("positive", g_floor.shape, dtype=bool)
        xp.greater(sigma, 0, out=positive)
        denominator = self._scratch("denominator", g_floor.shape)
        xp.multiply(sigma, ops["coef"], out=denominator)
        denominator *= 2 * c  # v = M(x^2) carries the 1/C
        xp.copyto(denominator, 1, where=~positive)
        xp.divide(g_floor, denominator, out=g_floor)
        g_floor *= positive
        back = self._correlate("grad_sigma", g_floor, self._scratch("grad_sigma", g_floor.shape), flipped=True)
        back *= 2
        spread = self._spread("grad_sigma_4d", back, x4)
        xp.multiply(x4, spread, out=product)
        gx4 += product
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input

    def extra_repr(self):
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

    def __init__(self, n_input_plane=1, kernel=None, threshold=1e-4, thresval=None, mean_floor=False):
        super().__init__()
        self._init_kernel(n_input_plane, kernel)
        self.subtractive = SpatialSubtractiveNormalization(n_input_plane, kernel)
        self.divisive = SpatialDivisiveNormalization(n_input_plane, kernel, threshold, thresval, mean_floor)

    def children(self):
        return [self.subtractive, self.divisive]

    def update_output(self, input):
        self._check_planes(input)
        self.output = self.divisive.update_output(self.subtractive.update_output(input))
        return self.output

    def update_grad_input(self, input, grad_output):
        self._check_planes(input)
        middle = self.divisive.update_grad_input(self.subtractive.output, grad_output)
        self.grad_input = self.subtractive.update_grad_input(input, middle)
        return self.grad_input

    def extra_repr(self):
        return self.divisive.extra_repr()
