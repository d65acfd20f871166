"""1-D filter banks and pooling over sequences: TemporalConvolution, TemporalMaxPooling.

Inputs are (T, F) -- T frames of F features -- or a batch (N, T, F), as in Torch7.
"""

from __future__ import annotations

import math

from ..errors import check_positive, check_same_shape, shape_error
from ._im2col import as_strided
from ._spatial import claim_first_max
from .init import uniform
from .module import Module, saved, scratch
from .._typing import Array, RNG

from typing import Any


class _Temporal(Module):
    out3 = saved("the 3-D output (N, T', F_out)")
    grad_input3 = scratch("dE/dx, 3-D")

    def _batch3(self, input: Array, frame_size, window):
        if input.ndim not in (2, 3) or (frame_size is not None and input.shape[-1] != frame_size) or input.shape[-2] < window:
            f = "F" if frame_size is None else frame_size
            raise shape_error(self, f"input (N, T, {f}) or (T, {f}) with T >= {window} frames", input)
        if input.ndim == 3 and input.shape[0] == 0:
            raise shape_error(self, "a batch of at least one sequence (N >= 1)", input)
        return input if input.ndim == 3 else input[None]

    def _check_grad_output(self, grad_output: Array, input: Array):
        check_same_shape(self, "grad_output", grad_output, self.output)
        return grad_output if input.ndim == 3 else grad_output[None]

    def _frames(self, x3, steps):
        """View (N, T', kw, F) of the windows of x3 (N, T, F)."""
        s_n, s_t, s_f = x3.strides
        n, _, f = x3.shape
        return as_strided(self.backend.xp, x3, (n, steps, self.kw, f), (s_n, self.dw * s_t, s_t, s_f))

    def _frame_taps(self, array3, steps):
        """The kw views array3[:, k + dw t, :] (t = 0..T'-1), one per tap k."""
        return [array3[:, k : k + self.dw * (steps - 1) + 1 : self.dw] for k in range(self.kw)]


class TemporalConvolution(_Temporal):
    """1-D convolution over time: a filter bank sliding over the frames of a sequence.

    ``TemporalConvolution(input_frame_size, output_frame_size, kw, dw=1)``.
    Shapes: input (N, T, F_in) or (T, F_in); weight (F_out, kw * F_in) (Torch7's layout:
    tap-major, i.e. W[o, k F_in + f]); bias (F_out,); output (N, T', F_out) with
    T' = floor((T - kw) / dw) + 1.

    fprop:            y[n,t,o] = b[o] + sum_{k,f} W[o, k F_in + f] x[n, t dw + k, f]
    bprop to input:   dE/dx[n, t dw + k, f] += sum_o W[o, k F_in + f] dE/dy[n,t,o]
    bprop to weights: dE/dW[o, k F_in + f] += scale * sum_{n,t} dE/dy[n,t,o] x[n, t dw + k, f]
                      dE/db[o] += scale * sum_{n,t} dE/dy[n,t,o]

    Init (Torch7): U(+-1/sqrt(kw F_in)). One GEMM per pass on the unfolded frames (whose
    last column is ones, so the bias rides along).
    """

    _param_names = ("weight", "bias")

    cols = saved("the unfolded frames with a last column of ones, (N*T', kw*F_in + 1)")
    weight_matrix = scratch("[W | b], (F_out, kw*F_in + 1)")
    dcols = scratch("dE/d(unfolded frames) = dE/dy W, (N, T', kw, F_in)")
    grad_weight_step = scratch("dE/d[W | b] of this call, before it is scaled in")

    def __init__(self, input_frame_size: int, output_frame_size: int, kw: int, dw: int = 1, rng: RNG = None) -> None:
        super().__init__()
        check_positive("TemporalConvolution", input_frame_size=input_frame_size,
                       output_frame_size=output_frame_size, kw=kw, dw=dw)  # fmt: skip
        self.input_frame_size, self.output_frame_size, self.kw, self.dw = input_frame_size, output_frame_size, kw, dw
        bound = 1.0 / math.sqrt(kw * input_frame_size)
        self.weight = uniform(rng, (output_frame_size, kw * input_frame_size), bound)
        self.grad_weight = self.weight * 0
        self.bias = uniform(rng, (output_frame_size,), bound)
        self.grad_bias = self.bias * 0

    def update_output(self, input: Array) -> Array:
        x3 = self._batch3(input, self.input_frame_size, self.kw)
        n, t, f = x3.shape
        steps = (t - self.kw) // self.dw + 1
        k = self.kw * f
        cols = self.cols = self._fit(self.cols, (n * steps, k + 1))
        cols[:, k] = 1  # multiplies the bias column of [W | b]
        self.backend.xp.copyto(cols[:, :k].reshape(n, steps, self.kw, f), self._frames(x3, steps))
        wmat = self.weight_matrix = self._fit(self.weight_matrix, (self.output_frame_size, k + 1))
        wmat[:, :k] = self.weight
        wmat[:, k] = self.bias
        out = self.out3 = self._fit(self.out3, (n, steps, self.output_frame_size))
        self.backend.gemm(cols, wmat, out.reshape(n * steps, -1), trans_b=True)  # y = cols [W | b]^T
        self.output = out if input.ndim == 3 else out[0]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x3 = self._batch3(input, self.input_frame_size, self.kw)
        g3 = self._check_grad_output(grad_output, input)
        n, t, f = x3.shape
        steps = g3.shape[1]
        xp = self.backend.xp
        dcols = self.dcols = self._fit(self.dcols, (n, steps, self.kw, f))
        self.backend.gemm(g3.reshape(n * steps, -1), self.weight, dcols.reshape(n * steps, -1))  # dE/dy W
        gx = self.grad_input3 = self._fit(self.grad_input3, x3.shape)
        gx.fill(0)
        for k, view in enumerate(self._frame_taps(gx, steps)):
            xp.add(view, dcols[:, :, k], out=view)
        self.grad_input = gx if input.ndim == 3 else gx[0]
        return self.grad_input

    def acc_grad_parameters(self, input: Array, grad_output: Array, scale: float = 1.0) -> None:
        self._batch3(input, self.input_frame_size, self.kw)
        g3 = self._check_grad_output(grad_output, input)
        cols = self.cols
        if cols is None:
            raise RuntimeError(f"{self!r}: acc_grad_parameters needs a forward pass first (it reuses its columns)")
        grad = self.grad_weight_step = self._fit(self.grad_weight_step, (self.output_frame_size, cols.shape[1]))
        self.backend.gemm(g3.reshape(-1, self.output_frame_size), cols, grad, trans_a=True)  # dE/dy^T cols
        if scale != 1:
            grad *= scale
        self.grad_weight += grad[:, :-1]
        self.grad_bias += grad[:, -1]

    def extra_repr(self) -> str:
        return f"{self.input_frame_size} -> {self.output_frame_size}, {self.kw}" + (f", {self.dw}" if self.dw != 1 else "")


class TemporalMaxPooling(_Temporal):
    """Max over windows of ``kw`` frames, per feature: y[n,t,f] = max_k x[n, t dw + k, f].

    ``TemporalMaxPooling(kw, dw=kw)``; input (N, T, F) or (T, F); output (N, T', F),
    T' = floor((T - kw) / dw) + 1. bprop: the gradient goes to the first maximum of each
    window (earliest frame), as in Torch7 and PyTorch.
    """

    taken = scratch("whether an earlier frame of the window held its maximum (bool)")
    first = scratch("whether this frame holds the window's first maximum (bool)")
    routed = scratch("dE/dy where this frame holds the first maximum, else 0")

    def __init__(self, kw: int, dw: int | None = None) -> None:
        super().__init__()
        dw = kw if dw is None else dw
        check_positive("TemporalMaxPooling", kw=kw, dw=dw)
        self.kw, self.dw = kw, dw

    def update_output(self, input: Array) -> Array:
        x3 = self._batch3(input, None, self.kw)
        n, t, f = x3.shape
        steps = (t - self.kw) // self.dw + 1
        xp = self.backend.xp
        out = self.out3 = self._fit(self.out3, (n, steps, f))
        taps = self._frame_taps(x3, steps)
        xp.copyto(out, taps[0])
        for view in taps[1:]:
            xp.maximum(out, view, out=out)
        self.output = out if input.ndim == 3 else out[0]
        return self.output

    def update_grad_input(self, input: Array, grad_output: Array) -> Array:
        x3 = self._batch3(input, None, self.kw)
        g3 = self._check_grad_output(grad_output, input)
        steps = g3.shape[1]
        xp = self.backend.xp
        out = self.out3
        gx = self.grad_input3 = self._fit(self.grad_input3, x3.shape)
        gx.fill(0)
        taken = self.taken = self._fit(self.taken, out.shape, dtype=bool)
        mask = self.first = self._fit(self.first, out.shape, dtype=bool)
        product = self.routed = self._fit(self.routed, out.shape)
        taken.fill(False)
        for view, gview in zip(self._frame_taps(x3, steps), self._frame_taps(gx, steps)):
            xp.multiply(g3, claim_first_max(xp, view, out, taken, mask), out=product)
            xp.add(gview, product, out=gview)
        self.grad_input = gx if input.ndim == 3 else gx[0]
        return self.grad_input

    def extra_repr(self) -> str:
        return f"{self.kw}, {self.dw}"
