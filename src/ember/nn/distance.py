"""Distances and similarities: between the two entries of a table (PairwiseDistance,
DotProduct, CosineDistance) or between the input and learned prototypes (Euclidean,
SquaredEuclidean, Cosine).

Two Euclidean modules, named so they cannot be confused:

- ``Euclidean`` (Torch7's): y_j = ||x - w_j||, **not squared**;
- ``SquaredEuclidean`` (the lecture's Euclidean module, LeNet-5's RBF output units):
  y_j = ||x - w_j||^2 = sum_i (x_i - w_ij)^2.

Table inputs are ``[x1, x2]`` with x1, x2 of shape (N, D) (a batch; output (N,)) or
(D,) (one pair; output a 0-d array).
"""

from __future__ import annotations

import math

from ..errors import check_positive, shape_error
from ._tables import check_float_table, table_buffers
from .init import uniform
from .module import Module, scratch
from .._typing import Array, RNG


class _PairModule(Module):
    """Base of the modules on a table [x1, x2] of vectors (D,) or batches (N, D)."""

    _input_kind = "any"

    def _pair(self, input: Array):
        """(x1, x2) as (N, D) views, and the output shape ((N,) or ())."""
        x1, x2 = check_float_table(self, input, 2)
        if x1.ndim not in (1, 2):
            raise shape_error(self, "entries of shape (N, D) or (D,)", x1)
        if x1.ndim == 1:
            return x1.reshape(1, -1), x2.reshape(1, -1), ()
        return x1, x2, (x1.shape[0],)

    def _out(self, shape, values):
        """Store the (n,) result in a reused buffer of the output shape."""
        out = self.output = self.backend.ensure(self.output, shape)
        out.reshape(-1)[...] = values
        return out

    def _go(self, grad_output: Array, shape):
        if getattr(grad_output, "shape", None) != shape:
            raise shape_error(self, f"grad_output of shape {shape}", grad_output)
        return grad_output.reshape(-1, 1)

    def _grads(self, input: Array):
        self.grad_input = table_buffers(self.backend, self.grad_input, [x.shape for x in input])
        return [g.reshape(-1, g.shape[-1]) for g in self.grad_input]


class PairwiseDistance(_PairModule):
    """p-norm distance between the two entries of a table (Torch7 ``PairwiseDistance``,
    not squared, no epsilon): y_n = ||x1_n - x2_n||_p = (sum_i |d_ni|^p)^(1/p), d = x1 - x2.

    bprop: dE/dx1_n = dE/dy_n sign(d_n) |d_n|^(p-1) / y_n^(p-1)  (= dE/dy_n d_n / y_n for
    p = 2, sign(d_n) for p = 1), dE/dx2 = -dE/dx1; defined as 0 where y_n = 0.
    """

    diff = scratch("d = x1 - x2, one row per pair")

    def __init__(self, p: int = 2) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p < math.inf:
            raise ValueError(f"PairwiseDistance: p must be a finite number > 0, got {p!r}")
        self.p = p

    def update_output(self, input: Array) -> Array:
        x1, x2, shape = self._pair(input)
        xp = self.backend.xp
        d = self.diff = self._fit(self.diff, x1.shape)
        xp.subtract(x1, x2, out=d)
        if self.p == 2:
            values = xp.sqrt(xp.einsum("ij,ij->i", d, d))
        else:
            values = (xp.abs(d) ** self.p).sum(axis=1) ** (1.0 / self.p)
        return self._out(shape, values)

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x1, x2, shape = self._pair(input)
        go = self._go(grad_output, shape)
        xp = self.backend.xp
        g1, g2 = self._grads(input)
        d = self.diff = self._fit(self.diff, x1.shape)
        xp.subtract(x1, x2, out=d)
        y = self.output.reshape(-1, 1)
        safe = xp.where(y > 0, y, 1)
        if self.p == 1:
            xp.sign(d, out=g1)
        elif self.p == 2:
            xp.divide(d, safe, out=g1)
        else:
            xp.multiply(xp.sign(d), xp.abs(d) ** (self.p - 1) / safe ** (self.p - 1), out=g1)
        g1 *= go * (y > 0)
        xp.negative(g1, out=g2)
        return self.grad_input

    def extra_repr(self) -> str:
        return f"p={self.p:g}"


class DotProduct(_PairModule):
    """Dot product of the two entries of a table: y_n = <x1_n, x2_n>.

    bprop: dE/dx1_n = dE/dy_n x2_n,  dE/dx2_n = dE/dy_n x1_n.
    """

    def update_output(self, input: Array) -> Array:
        x1, x2, shape = self._pair(input)
        return self._out(shape, self.backend.xp.einsum("ij,ij->i", x1, x2))

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x1, x2, shape = self._pair(input)
        go = self._go(grad_output, shape)
        g1, g2 = self._grads(input)
        self.backend.xp.multiply(go, x2, out=g1)
        self.backend.xp.multiply(go, x1, out=g2)
        return self.grad_input


class CosineDistance(_PairModule):
    """Cosine **similarity** of the two entries of a table (Torch7's name):
    y_n = <x1_n, x2_n> / sqrt((|x1_n|^2 + eps)(|x2_n|^2 + eps)), eps = 1e-12.

    bprop: dE/dx1_n = dE/dy_n (x2_n / (n1 n2) - y_n x1_n / n1^2), n_k = sqrt(|x_k|^2 + eps);
    symmetrically for x2.
    """

    eps = 1e-12

    def _parts(self, x1, x2):
        xp = self.backend.xp
        n11 = xp.einsum("ij,ij->i", x1, x1) + self.eps
        n22 = xp.einsum("ij,ij->i", x2, x2) + self.eps
        return xp.einsum("ij,ij->i", x1, x2), n11, n22

    def update_output(self, input: Array) -> Array:
        x1, x2, shape = self._pair(input)
        dot, n11, n22 = self._parts(x1, x2)
        return self._out(shape, dot / self.backend.xp.sqrt(n11 * n22))

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x1, x2, shape = self._pair(input)
        go = self._go(grad_output, shape)
        xp = self.backend.xp
        dot, n11, n22 = self._parts(x1, x2)
        y = (dot / xp.sqrt(n11 * n22)).reshape(-1, 1)
        inv = (1.0 / xp.sqrt(n11 * n22)).reshape(-1, 1)
        g1, g2 = self._grads(input)
        xp.multiply(x2, inv, out=g1)
        g1 -= x1 * (y / n11.reshape(-1, 1))
        g1 *= go
        xp.multiply(x1, inv, out=g2)
        g2 -= x2 * (y / n22.reshape(-1, 1))
        g2 *= go
        return self.grad_input


class _Prototypes(Module):
    """Base of the layers comparing the input with ``out`` learned prototypes w_j.

    Input (N, in) or (in,); output (N, out) or (out,); weight (in, out): column j is w_j
    (Torch7's layout, transposed relative to Linear). Init: U(-1/sqrt(in), 1/sqrt(in)).
    """

    step = scratch("dE/dW of this call, before it is scaled in")

    _param_names = ("weight",)

    def __init__(self, in_features: int, out_features: int, rng: RNG = None) -> None:
        super().__init__()
        check_positive(type(self).__name__, in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = uniform(rng, self._weight_shape(), 1.0 / math.sqrt(in_features))
        self.grad_weight = self.weight * 0

    def _weight_shape(self):
        return (self.in_features, self.out_features)

    def _batch(self, input: Array):
        if input.ndim not in (1, 2) or input.shape[-1] != self.in_features:
            raise shape_error(self, f"input (N, {self.in_features}) or ({self.in_features},)", input)
        return input.reshape(-1, self.in_features)

    def _go(self, input: Array, grad_output: Array):
        expected = input.shape[:-1] + (self.out_features,)
        if getattr(grad_output, "shape", None) != expected:
            raise shape_error(self, f"grad_output of shape {expected}", grad_output)
        return grad_output.reshape(-1, self.out_features)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}"


class SquaredEuclidean(_Prototypes):
    """Squared distance to learned prototypes: the lecture's Euclidean module and
    LeNet-5's RBF output units.

    fprop:            y_j = ||x - w_j||^2 = sum_i (x_i - w_ij)^2
                      (computed as |x|^2 - 2 x.W + |w_j|^2, clamped at 0)
    bprop to input:   dE/dx = sum_j dE/dy_j 2 (x - w_j)
    bprop to weights: dE/dw_j += scale * sum_n dE/dy_nj 2 (w_j - x_n)
    No singularity at x = w_j (unlike ``Euclidean``).
    """

    squared = scratch("||x_n - w_j||^2, (N, out)")

    def _squared(self, x: Array):
        xp = self.backend.xp
        d2 = self.squared = self._fit(self.squared, (x.shape[0], self.out_features))
        self.backend.gemm(x, self.weight, d2)
        d2 *= -2
        d2 += xp.einsum("ij,ij->i", x, x).reshape(-1, 1)
        d2 += xp.einsum("ij,ij->j", self.weight, self.weight)
        xp.maximum(d2, 0, out=d2)
        return d2

    def update_output(self, input: Array) -> Array:
        x = self._batch(input)
        d2 = self._squared(x)
        out = self.output = self.backend.ensure(self.output, input.shape[:-1] + (self.out_features,))
        self._finish(d2, out.reshape(d2.shape))
        return out

    def _finish(self, d2, out) -> None:
        out[...] = d2

    def _rate(self, go):
        """r_nj = dE/dy_nj . dy_nj/d(|x_n - w_j|^2) / (1/2), so that dE/dx_n = sum_j r_nj (x_n - w_j)."""
        return 2 * go

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x = self._batch(input)
        r = self._rate(self._go(input, grad_output))
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        g = gx.reshape(x.shape)
        self.backend.gemm(r, self.weight, g, trans_b=True)
        g *= -1
        g += x * r.sum(axis=1, keepdims=True)
        return gx

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        x = self._batch(input)
        r = self._rate(self._go(input, grad_output))
        step = self.step = self._fit(self.step, self.weight.shape)
        self.backend.gemm(x, r, step, trans_a=True)
        step *= -1
        step += self.weight * r.sum(axis=0)
        if scale != 1:
            step *= scale
        self.grad_weight += step


class Euclidean(SquaredEuclidean):
    """Distance to learned prototypes, **not squared** (Torch7 ``Euclidean``):
    y_j = ||x - w_j|| = sqrt(sum_i (x_i - w_ij)^2).

    bprop to input:   dE/dx = sum_j dE/dy_j (x - w_j) / y_j
    bprop to weights: dE/dw_j += scale * sum_n dE/dy_nj (w_j - x_n) / y_nj
    (terms with y = 0, where the norm has no derivative, are taken as 0).
    For the lecture's squared version see ``SquaredEuclidean``.
    """

    def _finish(self, d2, out) -> None:
        self.backend.xp.sqrt(d2, out=out)

    def _rate(self, go):
        xp = self.backend.xp
        y = self.output.reshape(go.shape)
        return xp.where(y > 0, go / xp.where(y > 0, y, 1), 0)


class Cosine(_Prototypes):
    """Cosine similarity to learned prototypes (Torch7 ``Cosine``), weight (out, in):
    y_j = <w_j, x> / (a b_j),  a = |x| + eps,  b_j = |w_j| + eps,  eps = 1e-12.

    bprop to input:   dE/dx = sum_j dE/dy_j (w_j / (a b_j) - y_j x / (a |x|))
    bprop to weights: dE/dw_j += scale * sum_n dE/dy_nj (x_n / (a_n b_j) - y_nj w_j / (b_j |w_j|))
    """

    eps = 1e-12

    def _weight_shape(self):
        return (self.out_features, self.in_features)

    def _norms(self, x: Array):
        xp = self.backend.xp
        xn = xp.sqrt(xp.einsum("ij,ij->i", x, x)).reshape(-1, 1)
        wn = xp.sqrt(xp.einsum("ij,ij->i", self.weight, self.weight))
        return xn, wn

    def update_output(self, input: Array) -> Array:
        x = self._batch(input)
        xn, wn = self._norms(x)
        out = self.output = self.backend.ensure(self.output, input.shape[:-1] + (self.out_features,))
        y = out.reshape(x.shape[0], self.out_features)
        self.backend.gemm(x, self.weight, y, trans_b=True)
        y /= xn + self.eps
        y /= wn + self.eps
        return out

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        xp = self.backend.xp
        x = self._batch(input)
        go = self._go(input, grad_output)
        xn, wn = self._norms(x)
        y = self.output.reshape(go.shape)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        g = gx.reshape(x.shape)
        self.backend.gemm(go / (wn + self.eps), self.weight, g)
        g /= xn + self.eps
        g -= x * ((go * y).sum(axis=1, keepdims=True) / ((xn + self.eps) * xp.where(xn > 0, xn, 1)))
        return gx

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        xp = self.backend.xp
        x = self._batch(input)
        go = self._go(input, grad_output)
        xn, wn = self._norms(x)
        y = self.output.reshape(go.shape)
        step = self.step = self._fit(self.step, self.weight.shape)
        self.backend.gemm(go / (xn + self.eps), x, step, trans_a=True)
        step /= (wn + self.eps).reshape(-1, 1)
        coef = (go * y).sum(axis=0) / ((wn + self.eps) * xp.where(wn > 0, wn, 1))
        step -= self.weight * coef.reshape(-1, 1)
        if scale != 1:
            step *= scale
        self.grad_weight += step
