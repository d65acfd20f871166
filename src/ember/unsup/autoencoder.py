"""Auto-encoders: a one-hidden-layer encoder/decoder pair, tied or untied, optionally denoising."""

from __future__ import annotations

import math

from ..backend import axpby
from ..errors import check_positive, check_same_shape, shape_error
from ..nn.init import get_rng, uniform
from ..nn.module import Composite, saved, scratch


class AutoEncoder(Composite):
    """``y = D tanh(W x~ + b) + c``: reconstruct x from a hidden code (Torch7 ``unsup.AutoEncoder``).

    ``AutoEncoder(input_size, hidden_size, tied=True, noise=0.0)``. W: ``weight``
    (hidden, input), b: ``bias``; the decoder D is W^T when ``tied`` (one matrix, its
    gradient gets both uses), else its own ``decoder_weight`` (input, hidden); c:
    ``decoder_bias``. ``noise`` > 0 makes it a denoising auto-encoder (Vincent et al.
    2008): while training, each input is zeroed with probability ``noise`` (x~ = m * x,
    a fresh mask per forward from ``rng``); in evaluation mode x~ = x. Train it against
    the clean input, e.g. ``MSECriterion()(ae.forward(x), x)``.

    fprop:            h = tanh(x~ W^T + b);  y = h D^T + c
    bprop to input:   dh = dE/dy D;  da = dh (1 - h^2);  dE/dx = m * (da W)
    bprop to weights: dE/dD += scale * dE/dy^T h  (tied: added to dE/dW transposed)
                      dE/dc += scale * sum_n dE/dy;  dE/dW += scale * da^T x~;  dE/db += scale * sum_n da
    Shapes: input (N, input_size), output (N, input_size), ``encode(x)``: (N, hidden_size).
    Init: U(+-1/sqrt(fan-in)) as Linear.
    """

    _param_names = ("weight", "bias", "decoder_weight", "decoder_bias")
    mask = saved("the masking noise m of the last training forward (denoising)")
    corrupted = saved("x~, the input the encoder saw")
    hidden = saved("h = tanh(x~ W^T + b)")
    grad_hidden = scratch("dE/dh, then dE/da")

    def __init__(self, input_size, hidden_size, tied=True, noise=0.0, rng=None):
        super().__init__()
        check_positive("AutoEncoder", input_size=input_size, hidden_size=hidden_size)
        if not isinstance(noise, int | float) or not 0 <= noise < 1:
            raise ValueError(f"AutoEncoder: noise (the masking probability) must be in [0, 1), got {noise!r}")
        self.input_size, self.hidden_size, self.tied, self.noise = input_size, hidden_size, bool(tied), float(noise)
        self.rng = get_rng(rng)
        self.weight = uniform(rng, (hidden_size, input_size), 1.0 / math.sqrt(input_size))
        self.bias = uniform(rng, (hidden_size,), 1.0 / math.sqrt(input_size))
        self.decoder_weight = None if tied else uniform(rng, (input_size, hidden_size), 1.0 / math.sqrt(hidden_size))
        self.decoder_bias = uniform(rng, (input_size,), 1.0 / math.sqrt(hidden_size))
        self.grad_weight, self.grad_bias, self.grad_decoder_bias = self.weight * 0, self.bias * 0, self.decoder_bias * 0
        self.grad_decoder_weight = None if tied else self.decoder_weight * 0

    def _check(self, input):
        if input.ndim != 2 or input.shape[1] != self.input_size:
            raise shape_error(self, f"input (N, {self.input_size})", input)

    def _decoder(self):
        """D as an (input, hidden) array (a transposed view of W when tied)."""
        return self.weight.T if self.tied else self.decoder_weight

    def encode(self, input):
        """h = tanh(x W^T + b) of the clean input (a new array)."""
        self._check(input)
        return self.backend.xp.tanh(input @ self.weight.T + self.bias)

    def update_output(self, input):
        self._check(input)
        xp, backend = self.backend.xp, self.backend
        if self.train and self.noise > 0:
            self.mask = self._fit(self.mask, input.shape)
            if xp.__name__ == "numpy":
                self.rng.random(out=self.mask, dtype=self.mask.dtype)
            else:
                self.mask[...] = xp.random.random_sample(input.shape, dtype=self.mask.dtype)
            xp.greater_equal(self.mask, self.noise, out=self.mask)
            self.corrupted = self._fit(self.corrupted, input.shape)
            xp.multiply(input, self.mask, out=self.corrupted)
        else:
            self.mask, self.corrupted = None, input
        self.hidden = self._fit(self.hidden, (input.shape[0], self.hidden_size))
        backend.affine(self.corrupted, self.weight, self.bias, self.hidden)
        xp.tanh(self.hidden, out=self.hidden)
        self.output = self._fit(self.output, input.shape)
        self.output[...] = self.decoder_bias
        backend.gemm(self.hidden, self._decoder(), self.output, trans_b=True, beta=1.0)  # y = h D^T + c
        return self.output

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        self._check(input)
        check_same_shape(self, "grad_output", grad_output, input)
        xp, backend = self.backend.xp, self.backend
        h = self.hidden
        da = self.grad_hidden = self._fit(self.grad_hidden, h.shape)
        backend.gemm(grad_output, self._decoder(), da)  # dE/dh = dE/dy D
        da *= 1 - h * h  # dE/da
        if need_params:
            if self.tied:  # dW += scale h^T dE/dy (the decoder's use of W)
                backend.gemm(h, grad_output, self.grad_weight, trans_a=True, alpha=scale, beta=1.0)
            else:
                backend.gemm(grad_output, h, self.grad_decoder_weight, trans_a=True, alpha=scale, beta=1.0)
            step = grad_output.sum(axis=0)
            axpby(scale, step, 1.0, self.grad_decoder_bias, step)
            backend.gemm(da, self.corrupted, self.grad_weight, trans_a=True, alpha=scale, beta=1.0)
            step = da.sum(axis=0)
            axpby(scale, step, 1.0, self.grad_bias, step)
        if need_input:
            gx = self.grad_input = self._fit(self.grad_input, input.shape)
            backend.gemm(da, self.weight, gx)
            if self.mask is not None:
                gx *= self.mask

    def extra_repr(self):
        return (f"{self.input_size} -> {self.hidden_size} -> {self.input_size}" + (", tied" if self.tied else "")
                + (f", noise={self.noise:g}" if self.noise else ""))  # fmt: skip


__all__ = ["AutoEncoder"]
