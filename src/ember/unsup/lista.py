"""LISTA (Gregor & LeCun 2010): a few ISTA steps unrolled into a network whose matrices and
thresholds are learned, trained to predict the optimal sparse codes."""

from __future__ import annotations

import math

from ..backend import axpby
from ..errors import check_positive, shape_error
from ..nn.init import uniform
from ..nn.module import Composite, saved, scratch


class LISTA(Composite):
    """Learned ISTA: ``n_steps`` shrinkage steps with learned W_e, S and thresholds theta.

    ISTA on ``1/2 ||x - D z||^2 + lambda |z|_1`` with step 1/L is
    ``z <- h_{lambda/L}(D^T x / L + (I - D^T D / L) z)``; LISTA unrolls it and learns::

        b   = W_e x                       W_e: (code_size, input_size)  [D^T / L]
        c_1 = b,              z_1 = h_theta(c_1)
        c_k = b + S z_{k-1},  z_k = h_theta(c_k),   k = 2..n_steps
                                          S: (code_size, code_size)     [I - D^T D / L]
        output z_{n_steps}                theta: (code_size,)           [lambda / L]
        h_theta(c) = sign(c) max(|c| - theta, 0)   (per unit)

    ``n_steps`` counts shrinkages (layers): ``n_steps = k`` costs what k ISTA/FISTA
    iterations from z = 0 cost (the paper's "T iterations" is n_steps = T + 1).
    Init: random (Linear-like) or :meth:`init_from_dictionary` (exactly ISTA).

    ``tied=False`` ("untied LISTA", not the paper's model): each step has its own S_k and
    theta_k (W_e stays shared, so a step costs what a tied one costs):
    ``c_k = b + S_k z_{k-1}, z_k = h_{theta_k}(c_k)``; ``lateral`` is then
    (max(n_steps - 1, 1), code_size, code_size), row k - 2 holding S_k (unused when
    n_steps = 1), and ``threshold`` (n_steps, code_size), row k - 1 holding theta_k.

    bprop (through the unrolled steps; dc_k = dz_k * [|c_k| > theta]):
      dz_{k-1} = S^T dc_k;  dE/db = sum_k dc_k;  dE/dx = W_e^T dE/db
      dE/dW_e += scale * dE/db x^T;  dE/dS += scale * sum_{k>=2} dc_k z_{k-1}^T
      dE/dtheta += scale * sum_k -sign(c_k) dc_k
      (untied: the sums over k are not taken, dE/dS_k and dE/dtheta_k are each step's term)
    Shapes: input (N, input_size), output (N, code_size).
    """

    _param_names = ("weight", "lateral", "threshold")
    pre = saved("c_1..c_T, the pre-shrinkage values, (T, N, code_size)")
    codes = saved("z_1..z_T, (T, N, code_size)")
    grad_b = scratch("dE/db, summed over the steps")
    grad_c = scratch("dE/dc_k of one step")
    grad_z = scratch("dE/dz_k of one step (starts as grad_output)")
    sign_c = scratch("sign(c_k) of one step (then sign(c_k) dE/dc_k in the backward)")
    theta_step = scratch("-sum_k sign(c_k) dE/dc_k: dE/dtheta before scaling, like the threshold")
    theta_row = scratch("one step's -sum_n sign(c) dE/dc, (code_size,)")

    def __init__(self, input_size, code_size, n_steps=3, rng=None, tied=True):
        super().__init__()
        check_positive("LISTA", input_size=input_size, code_size=code_size, n_steps=n_steps)
        if not isinstance(tied, bool):
            raise TypeError(f"LISTA: tied must be a bool, got {tied!r}")
        self.input_size, self.code_size, self.n_steps, self.tied = input_size, code_size, n_steps, tied
        lead = () if tied else (max(n_steps - 1, 1),)
        self.weight = uniform(rng, (code_size, input_size), 1.0 / math.sqrt(input_size))
        self.lateral = uniform(rng, lead + (code_size, code_size), 1.0 / math.sqrt(code_size))
        self.threshold = uniform(rng, ((code_size,) if tied else (n_steps, code_size)), 0.1) + 0.1
        self.grad_weight, self.grad_lateral, self.grad_threshold = self.weight * 0, self.lateral * 0, self.threshold * 0

    def init_from_dictionary(self, dictionary, lambd: float, lipschitz: float | None = None):
        """Set W_e = D^T / L, S = I - D^T D / L, theta = lambd / L: LISTA then computes
        ``n_steps`` ISTA iterations from z = 0. ``dictionary`` D: (input_size, code_size);
        L defaults to ||D||_2^2. Returns self."""
        xp = self.backend.xp
        d = self.backend.asarray(dictionary)
        if d.shape != (self.input_size, self.code_size):
            raise ValueError(f"LISTA.init_from_dictionary: dictionary must be ({self.input_size}, {self.code_size}), got {d.shape}")
        L = float(xp.linalg.norm(d, 2)) ** 2 if lipschitz is None else float(lipschitz)
        if not L > 0:
            raise ValueError(f"LISTA.init_from_dictionary: lipschitz must be > 0, got {L}")
        self.weight[...] = d.T / L
        self.lateral[...] = xp.eye(self.code_size, dtype=self.backend.dtype) - (d.T @ d) / L
        self.threshold[...] = lambd / L
        return self

    def _theta(self, k):
        """theta of step k + 1 (k = 0..n_steps-1)."""
        return self.threshold if self.tied else self.threshold[k]

    def _lateral(self, k):
        """S of step k + 1 (k = 1..n_steps-1)."""
        return self.lateral if self.tied else self.lateral[k - 1]

    def _shrink(self, c, out, theta):
        """out = sign(c) max(|c| - theta, 0), written as the formula so that a threshold that
        training drove below 0 still matches the bprop (then out = c - theta sign(c))."""
        xp = self.backend.xp
        xp.abs(c, out=out)
        out -= theta
        xp.maximum(out, 0, out=out)
        sign = self.sign_c = self._fit(self.sign_c, c.shape)
        xp.sign(c, out=sign)
        out *= sign

    def _check(self, input):
        if input.ndim != 2 or input.shape[1] != self.input_size:
            raise shape_error(self, f"input (N, {self.input_size})", input)

    def update_output(self, input):
        self._check(input)
        backend, n, t = self.backend, input.shape[0], self.n_steps
        self.pre = self._fit(self.pre, (t, n, self.code_size))
        self.codes = self._fit(self.codes, (t, n, self.code_size))
        b = self.pre[0]
        backend.gemm(input, self.weight, b, trans_b=True)  # b = x W_e^T
        self._shrink(b, self.codes[0], self._theta(0))
        for k in range(1, t):
            c = self.pre[k]
            c[...] = b
            backend.gemm(self.codes[k - 1], self._lateral(k), c, trans_b=True, beta=1.0)  # c = b + z S^T
            self._shrink(c, self.codes[k], self._theta(k))
        self.output = self._fit(self.output, (n, self.code_size))
        self.output[...] = self.codes[t - 1]
        return self.output

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        self._check(input)
        if grad_output.shape != (input.shape[0], self.code_size):
            raise shape_error(self, f"grad_output of shape ({input.shape[0]}, {self.code_size})", grad_output)
        xp, backend = self.backend.xp, self.backend
        self.grad_b = self._fit(self.grad_b, grad_output.shape)
        self.grad_c = self._fit(self.grad_c, grad_output.shape)
        self.grad_b.fill(0)
        dz = self.grad_z = self._fit(self.grad_z, grad_output.shape)
        dz[...] = grad_output
        theta_step = self.theta_step = self._fit(self.theta_step, self.threshold.shape)
        theta_step.fill(0)
        sign = self.sign_c = self._fit(self.sign_c, grad_output.shape)
        row = self.theta_row = self._fit(self.theta_row, (self.code_size,))
        for k in range(self.n_steps - 1, -1, -1):
            c, dc = self.pre[k], self.grad_c
            xp.abs(c, out=dc)
            xp.greater(dc, self._theta(k), out=dc)
            dc *= dz  # dE/dc_k
            self.grad_b += dc
            if need_params:
                xp.sign(c, out=sign)
                sign *= dc
                xp.sum(sign, axis=0, out=row)
                (theta_step if self.tied else theta_step[k])[...] -= row
            if k > 0:
                if need_params:  # dS_k += scale dc_k^T z_{k-1}
                    grad_s = self.grad_lateral if self.tied else self.grad_lateral[k - 1]
                    backend.gemm(dc, self.codes[k - 1], grad_s, trans_a=True, alpha=scale, beta=1.0)
                backend.gemm(dc, self._lateral(k), dz)  # dz_{k-1} = dc_k S_k
        if need_params:
            backend.gemm(self.grad_b, input, self.grad_weight, trans_a=True, alpha=scale, beta=1.0)
            axpby(scale, theta_step, 1.0, self.grad_threshold, theta_step)
        if need_input:
            self.grad_input = self._fit(self.grad_input, input.shape)
            backend.gemm(self.grad_b, self.weight, self.grad_input)  # dE/dx = dE/db W_e

    def extra_repr(self):
        return f"{self.input_size} -> {self.code_size}, {self.n_steps} steps" + ("" if self.tied else ", untied")


__all__ = ["LISTA"]
