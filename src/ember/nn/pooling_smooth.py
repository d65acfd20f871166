"""Smooth poolings of the lecture: Lp pooling and log-sum-exp ("PROB") pooling.

Both interpolate between average-like pooling and max pooling: Lp with p = 1 sums,
p -> inf takes the max; log-sum-exp with beta -> 0 averages, beta -> inf takes the max.
"""

from __future__ import annotations

import math

from ..errors import check_positive
from ._pooling_base import WindowPooling
from .module import scratch


class SpatialLPPooling(WindowPooling):
    """Lp pooling: ``y = (sum_{window} |x|^p)^(1/p)`` (p = 2: L2 pooling, an energy).

    ``SpatialLPPooling(n_input_plane, p, kw, kh, dw=kw, dh=kh, use_abs=True)`` (Torch7 order).

    **|x| or x?** ember uses |x| by default, i.e. the p-norm of the window, defined for
    every input and every p >= 1. Torch7 (and PyTorch's LPPool2d) compute x^p without
    the absolute value: the same for even p or non-negative inputs (e.g. after a ReLU),
    NaN for negative inputs with odd or fractional p. ``use_abs=False`` gives that form.
    It is a **sum**, not a mean (Torch7's AveragePooling x kw*kh).

    fprop:  s = sum_{i,j} |x[p dh + i, q dw + j]|^p,  y = s^(1/p)
    bprop:  dE/dx_k += dE/dy * sign(x_k) |x_k|^(p-1) / y^(p-1) over the windows holding x_k,
            and 0 for windows where y = 0 (as Torch7's Sqrt, whose gradient at 0 is 0).
    """

    powered = scratch("|x|^p (x^p without abs), the input of the window sums")
    coef = scratch("dE/dy / y^(p-1), 0 where y == 0")
    zero = scratch("where y == 0 (bool)")
    factor = scratch("d|x|^p/dx / p = sign(x) |x|^(p-1)")
    sign = scratch("sign(x)")

    def __init__(self, n_input_plane, p, kw, kh, dw=None, dh=None, use_abs=True):
        super().__init__()
        check_positive("SpatialLPPooling", n_input_plane=n_input_plane)
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and p >= 1 and math.isfinite(p)):
            raise ValueError(f"SpatialLPPooling: p must be a finite number >= 1, got {p!r}")
        self.n_input_plane, self.p, self.use_abs = n_input_plane, float(p), bool(use_abs)
        self._init_window(kw, kh, kw if dw is None else dw, kh if dh is None else dh)

    def _powered(self, xp, x4, out):
        """|x|^p (or x^p) into ``out``."""
        if self.use_abs and self.p != 2:
            xp.abs(x4, out=out)
        else:
            xp.copyto(out, x4)
        if self.p == 2:
            xp.multiply(out, out, out=out)
        elif self.p != 1:
            xp.power(out, self.p, out=out)

    def update_output(self, input):
        x4, (oh, ow) = self._sized_batch(input)
        xp = self.backend.xp
        powered = self.powered = self._fit(self.powered, None, like=x4)
        self._powered(xp, x4, powered)
        out4 = self._reduce_taps(xp.add, self._gather(powered, oh, ow), self._output4(x4, oh, ow))
        if self.p == 2:
            xp.sqrt(out4, out=out4)
        elif self.p != 1:
            xp.power(out4, 1.0 / self.p, out=out4)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, g4, out4, (oh, ow) = self._grad_setup(input, grad_output)
        xp = self.backend.xp
        # coef = dE/dy / y^(p-1), 0 where y == 0
        coef = self.coef = self._fit(self.coef, None, like=out4)
        if self.p == 1:
            xp.copyto(coef, g4)
        else:
            xp.power(out4, self.p - 1, out=coef) if self.p != 2 else xp.copyto(coef, out4)
            zero = self.zero = self._fit(self.zero, None, like=out4, dtype=bool)
            xp.equal(coef, 0, out=zero)
            coef += zero
            xp.divide(g4, coef, out=coef)
            xp.copyto(coef, 0, where=zero)
        gx4 = self._spread(x4, oh, ow, lambda t, a, b: coef[:, a:b])
        # times d|x|^p/dx / p = sign(x) |x|^(p-1)   (x^(p-1) without abs; x for p = 2)
        if self.p == 2:
            gx4 *= x4
        elif self.p != 1 or self.use_abs:
            factor = self.factor = self._fit(self.factor, None, like=x4)
            if self.p == 1:
                xp.sign(x4, out=factor)
            elif self.use_abs:
                sign = self.sign = self._fit(self.sign, None, like=x4)
                xp.sign(x4, out=sign)
                xp.abs(x4, out=factor)
                xp.power(factor, self.p - 1, out=factor)
                factor *= sign
            else:
                xp.power(x4, self.p - 1, out=factor)
            gx4 *= factor
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input

    def extra_repr(self):
        return f"p={self.p:g}, " + super().extra_repr() + ("" if self.use_abs else ", without abs")


class SpatialLogSumExpPooling(WindowPooling):
    """Log-sum-exp ("PROB") pooling of the lecture, in its **mean** form by default:

        y = (1/beta) log( (1/|N|) sum_{i in window} exp(beta x_i) ),   |N| = kw kh

    ``SpatialLogSumExpPooling(kw, kh, dw=kw, dh=kh, beta=1.0, mean=True)``.

    **Sum vs mean.** The lecture's slide writes (1/beta) log sum exp(beta x); that is
    ``mean=False``, which is the mean form plus the constant log(|N|)/beta. The mean form
    (the default) goes from average pooling (beta -> 0) to max pooling (beta -> inf) and
    stays between the window's mean and max.

    Computed stably with the window max m: y = m + (1/beta) log sum exp(beta (x_i - m)) [- log|N| / beta].
    bprop:  dE/dx_i += dE/dy * exp(beta (x_i - y)) [/ |N|] = dE/dy * softmax(beta x)_i,
            summed over the windows that hold x_i.
    """

    _pad_fill = -math.inf  # windows cut by ceil mode: outside pixels weigh exp(-inf) = 0

    window_max = scratch("m, the max of each window (like the output)")
    term = scratch("exp(beta (x_t - m)) for one tap t, then the tap's share of dE/dy")

    def __init__(self, kw, kh, dw=None, dh=None, beta=1.0, mean=True):
        super().__init__()
        if not (isinstance(beta, (int, float)) and not isinstance(beta, bool) and beta > 0 and math.isfinite(beta)):
            raise ValueError(f"SpatialLogSumExpPooling: beta must be a positive number, got {beta!r}")
        self.beta, self.mean = float(beta), bool(mean)
        self._init_window(kw, kh, kw if dw is None else dw, kh if dh is None else dh)

    def update_output(self, input):
        x4, (oh, ow) = self._sized_batch(input)
        xp = self.backend.xp
        out4 = self._output4(x4, oh, ow)
        taps = self._gather(x4, oh, ow)
        top = self.window_max = self._reduce_taps(xp.maximum, taps, self._fit(self.window_max, None, like=out4))
        term4 = self.term = self._fit(self.term, None, like=out4)

        def work(a, b):  # out = log sum exp(beta (x - top)) over the window, planes a..b-1
            out, term = out4[:, a:b], term4[:, a:b]
            out.fill(0)
            for tap in taps:
                xp.subtract(tap[:, a:b], top[:, a:b], out=term)
                term *= self.beta
                xp.exp(term, out=term)
                out += term
            xp.log(out, out=out)

        self._split(work, x4)
        if self.mean:
            out4 -= math.log(self.kw * self.kh)
        out4 /= self.beta
        out4 += top
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, g4, out4, (oh, ow) = self._grad_setup(input, grad_output)
        xp = self.backend.xp
        scale = 1.0 / (self.kw * self.kh) if self.mean else 1.0
        taps, term4 = self.taps, self._fit(self.term, None, like=out4)
        self.term = term4

        def softmax_weight(t, a, b):  # dE/dy * exp(beta (x_t - y)) [/ |N|]
            term = term4[:, a:b]
            xp.subtract(taps[t][:, a:b], out4[:, a:b], out=term)
            term *= self.beta
            xp.exp(term, out=term)
            term *= g4[:, a:b]
            if scale != 1:
                term *= scale
            return term

        self.grad_input = self._unbatch(self._spread(x4, oh, ow, softmax_weight), input)
        return self.grad_input

    def extra_repr(self):
        return super().extra_repr() + f", beta={self.beta:g}" + ("" if self.mean else ", sum")
