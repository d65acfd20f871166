"""Batch normalization (Ioffe & Szegedy 2015): BatchNormalization, SpatialBatchNormalization."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import axpby
from ..errors import check_positive, check_same_shape, shape_error
from ._layout import ensure_like
from .module import Module, saved, scratch
from .._typing import Array


class BatchNormalization(Module):
    """Normalise each feature over the batch, then scale and shift.

    ``BatchNormalization(n_output, eps=1e-5, momentum=0.1, affine=True)``; input (N, D).

    training:   mu = mean_n x,  var = mean_n (x - mu)^2 (biased),  x^ = (x - mu) / sqrt(var + eps)
                y = gamma x^ + beta;
                running_mean = (1 - momentum) running_mean + momentum mu
                running_var  = (1 - momentum) running_var + momentum var * m / (m - 1)  (unbiased)
    evaluation: x^ = (x - running_mean) / sqrt(running_var + eps)   (see evaluate())
    bprop (training): dE/dx = gamma / (m sqrt(var + eps)) (m dE/dy - sum dE/dy - x^ sum(dE/dy x^))
    bprop (evaluation): dE/dx = gamma dE/dy / sqrt(running_var + eps)
    bprop to weights: dE/dgamma += scale sum dE/dy x^;  dE/dbeta += scale sum dE/dy
    (m = number of values averaged per feature; sums over the same axes.)

    gamma starts at 1 and beta at 0 (PyTorch's init; Torch7 drew gamma from U(0, 1)).
    running_mean / running_var are buffers: saved with the model, not trained.
    """

    _param_names = ("weight", "bias")
    _buffer_names = ("running_mean", "running_var")
    _dims = 2

    mean = saved("the mean used (the batch's, or the running one in evaluation), (1, C, 1...)")
    invstd = saved("1 / sqrt(var + eps) used, (1, C, 1...)")
    normalized = saved("x^ = (x - mean) * invstd, like the input")
    centered_sq = scratch("(x - mean)^2, for the batch variance")
    factor = scratch("invstd * weight")
    sum_g = scratch("sum of dE/dy over the statistics axes")
    sum_gx = scratch("sum of dE/dy * x^ over the statistics axes")
    product = scratch("dE/dy * x^")
    step = scratch("dE/dweight or dE/dbias of this call, before it is scaled in")

    def __init__(self, n_output: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True) -> None:
        super().__init__()
        owner = type(self).__name__
        check_positive(owner, n_output=n_output)
        if not eps > 0 or not 0 <= momentum <= 1:
            raise ValueError(f"{owner}: need eps > 0 and 0 <= momentum <= 1, got eps={eps}, momentum={momentum}")
        self.n_output, self.eps, self.momentum, self.affine = n_output, float(eps), float(momentum), bool(affine)
        self.weight: Any = None
        self.grad_weight: Any = None
        self.bias: Any = None
        self.grad_bias: Any = None
        if affine:
            self.weight = np.ones(n_output, dtype="float32")
            self.grad_weight = self.weight * 0
            self.bias = np.zeros(n_output, dtype="float32")
            self.grad_bias = self.bias * 0
        self.running_mean = np.zeros(n_output, dtype="float32")
        self.running_var = np.ones(n_output, dtype="float32")

    def _check(self, input: Array):
        if input.ndim != self._dims or input.shape[1] != self.n_output:
            expected = "(N, {0})" if self._dims == 2 else "(N, {0}, H, W)"
            raise shape_error(self, "input " + expected.format(self.n_output), input)
        return (0,) if self._dims == 2 else (0, 2, 3)

    def _stat_shape(self):
        return (1, self.n_output) + (1,) * (self._dims - 2)

    def update_output(self, input: Array) -> Array:
        axes = self._check(input)
        xp = self.backend.xp
        shape = self._stat_shape()
        mean = self.mean = self._fit(self.mean, shape)
        invstd = self.invstd = self._fit(self.invstd, shape)
        out = self.output = ensure_like(self.backend, self.output, input)
        if self.train:
            count = input.size // self.n_output
            if count < 2:
                raise shape_error(self, "more than one value per feature in training mode (or call evaluate())", input)
            xp.mean(input, axis=axes, keepdims=True, out=mean)
            xp.subtract(input, mean, out=out)
            self.centered_sq = self._fit(self.centered_sq, None, like=out)
            xp.multiply(out, out, out=self.centered_sq)
            xp.mean(self.centered_sq, axis=axes, keepdims=True, out=invstd)  # biased variance
            m = self.momentum  # running = (1 - m) running + m batch statistic (unbiased variance)
            axpby(m, mean.reshape(-1), 1 - m, self.running_mean)
            axpby(m * count / (count - 1), invstd.reshape(-1), 1 - m, self.running_var)
            invstd += self.eps
        else:
            mean[...] = self.running_mean.reshape(shape)
            xp.subtract(input, mean, out=out)
            invstd[...] = self.running_var.reshape(shape)
            invstd += self.eps
        return self._normalize(out)

    def _normalize(self, out):
        """With ``out`` = x - mean and ``self.invstd`` = var + eps: invstd becomes
        1 / sqrt(var + eps), x^ = out * invstd is kept for the backward, and ``out``
        becomes gamma x^ + beta (also used by ember.distributed's synced statistics)."""
        xp, shape, invstd = self.backend.xp, self._stat_shape(), self.invstd
        xp.sqrt(invstd, out=invstd)
        xp.divide(1.0, invstd, out=invstd)
        out *= invstd  # x^
        self.normalized = self._fit(self.normalized, None, like=out)
        xp.copyto(self.normalized, out)
        if self.affine:
            out *= self.weight.reshape(shape)
            out += self.bias.reshape(shape)
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        axes = self._check(input)
        check_same_shape(self, "grad_output", grad_output, input)
        xp = self.backend.xp
        shape = self._stat_shape()
        gx = self.grad_input = ensure_like(self.backend, self.grad_input, input)
        invstd = self.invstd
        factor = self.factor = self._fit(self.factor, shape)
        xp.multiply(invstd, self.weight.reshape(shape), out=factor) if self.affine else xp.copyto(factor, invstd)
        if not self.train:
            xp.multiply(grad_output, factor, out=gx)
            return gx
        normalized = self.normalized
        sum_g = self.sum_g = self._fit(self.sum_g, shape)
        sum_gx = self.sum_gx = self._fit(self.sum_gx, shape)
        xp.sum(grad_output, axis=axes, keepdims=True, out=sum_g)
        xp.multiply(grad_output, normalized, out=gx)
        xp.sum(gx, axis=axes, keepdims=True, out=sum_gx)
        count = input.size // self.n_output
        # gx = factor * (g - sum_g / m - x^ * sum_gx / m)
        xp.multiply(normalized, sum_gx, out=gx)
        gx *= -1.0 / count
        gx += grad_output
        sum_g *= 1.0 / count
        gx -= sum_g
        gx *= factor
        return gx

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        if not self.affine:
            return
        axes = self._check(input)
        xp = self.backend.xp
        shape = self._stat_shape()
        product = self.product = self._fit(self.product, None, like=grad_output)
        xp.multiply(grad_output, self.normalized, out=product)
        step = self.step = self._fit(self.step, shape)
        xp.sum(product, axis=axes, keepdims=True, out=step)
        if scale != 1:
            step *= scale
        self.grad_weight += step.reshape(-1)
        xp.sum(grad_output, axis=axes, keepdims=True, out=step)
        if scale != 1:
            step *= scale
        self.grad_bias += step.reshape(-1)

    def extra_repr(self) -> str:
        return f"{self.n_output}, eps={self.eps:g}, momentum={self.momentum:g}" + ("" if self.affine else ", affine=False")


class SpatialBatchNormalization(BatchNormalization):
    """Batch normalization of each plane of (N, C, H, W) images, statistics over (N, H, W).

    ``SpatialBatchNormalization(n_output, eps=1e-5, momentum=0.1, affine=True)``; the
    formulas of :class:`BatchNormalization` with m = N H W values per plane. The output
    keeps the input's memory layout.
    """

    _dims = 4
