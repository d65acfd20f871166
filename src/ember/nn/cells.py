"""Recurrent cells: one time step of an Elman RNN, an LSTM and a GRU (PyTorch's equations).

A cell is a step module: its input is the table ``[x_t, state_{t-1}]`` and its output is
``state_t``; :class:`~ember.nn.Recurrent` unfolds it over a sequence with shared weights.
The per-step math lives in the ``*_forward`` / ``*_backward`` functions of
:mod:`ember.nn.cell_steps`; the fused sequence layers (:mod:`ember.nn.rnn`) run the very
same functions inside their NumPy time loop, so a gradient check of a cell checks the
layers' step too.

Gate equations (PyTorch's ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``; sigma = logistic sigmoid)::

    RNN   h' = act(W_ih x + b_ih + W_hh h + b_hh)              act = tanh or relu
    LSTM  [i, f, g, o] = W_ih x + b_ih + W_hh h + b_hh          (rows in that order)
          i, f, o = sigma(.);  g = tanh(.)
          c' = f * c + i * g;   h' = o * tanh(c')
    GRU   [r, z] = sigma(W_i[rz] x + b_i[rz] + W_h[rz] h + b_h[rz])
          n  = tanh(W_in x + b_in + r * (W_hn h + b_hn))        (reset gate AFTER the product)
          h' = (1 - z) * n + z * h

How Torch7's ``rnn`` package differed (weights are not interchangeable):
``nn.LSTM`` there had peephole terms (c_{t-1} feeding i and f, c_t feeding o; its
``FastLSTM`` had none, like these), and ``nn.GRU`` applied the reset gate *before* the
product, ``n = tanh(W x + U (r * h))``, with no separate hidden bias.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ShapeError, check_positive, check_same_shape, describe, shape_error
from .init import uniform
from .cell_steps import (blocks, gru_backward, gru_forward, lstm_activate, lstm_backward, lstm_forward, rnn_backward,
                         rnn_forward)
from .module import Composite, saved, scratch


# ---------------------------------------------------------------- the cells
class _Cell(Composite):
    """Shared parts of the cells: parameters W_ih (G*H, in), W_hh (G*H, H), b_ih, b_hh
    (PyTorch's names and layout), init U(-1/sqrt(H), 1/sqrt(H)), input checks, and the
    bprop (:meth:`_backprop`, shared by update_grad_input / acc_grad_parameters / backward)."""

    _input_kind = "any"
    _param_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    _gates = 1
    _state_parts = 1

    hidden_part = scratch("h W_hh^T + b_hh before it is added to the input part")
    grad_x = scratch("dE/dx (N, in)")
    grad_h = scratch("dE/dh (N, H)")

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, rng: Any = None) -> None:
        super().__init__()
        check_positive(type(self).__name__, input_size=input_size, hidden_size=hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        rows = self._gates * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = uniform(rng, (rows, input_size), bound)
        self.weight_hh = uniform(rng, (rows, hidden_size), bound)
        self.bias_ih = uniform(rng, (rows,), bound) if bias else None
        self.bias_hh = uniform(rng, (rows,), bound) if bias else None
        for pname in self._param_names:
            value = getattr(self, pname)
            setattr(self, "grad_" + pname, None if value is None else value * 0)

    @property
    def state_size(self):
        """The size of each state array: H, or [H, H] for the LSTM's (h, c)."""
        return self.hidden_size if self._state_parts == 1 else [self.hidden_size] * self._state_parts

    def reset(self, stdv=None, rng=None):
        """Re-draw every weight and bias from U(-stdv, stdv); default stdv = 1/sqrt(H)."""
        bound = stdv if stdv is not None else 1.0 / math.sqrt(self.hidden_size)
        for pname, param, _ in self._own_parameters():
            param[...] = self.backend.asarray(uniform(rng, param.shape, bound))
        return self

    def _split(self, input):
        """Validate ``[x (N, in), state]``; returns x and the state as a list of arrays."""
        xp = self.backend.xp
        n_in, hs = self.input_size, self.hidden_size
        parts = self._state_parts
        state_text = f"(N, {hs})" if parts == 1 else f"[h, c], each (N, {hs})"
        if not isinstance(input, (list, tuple)) or len(input) != 2:
            raise shape_error(self, f"the table [x (N, {n_in}), state {state_text}]", input)
        x, state = input
        states = [state] if parts == 1 else (list(state) if isinstance(state, (list, tuple)) else None)
        if not isinstance(x, xp.ndarray) or x.ndim != 2 or x.shape[1] != n_in:
            raise shape_error(self, f"x of shape (N, {n_in})", x)
        n = x.shape[0]
        if states is None or len(states) != parts or any(
            not isinstance(s, xp.ndarray) or s.shape != (n, hs) for s in states
        ):
            got = describe(state) if states is None else ", ".join(describe(s) for s in states)
            raise ShapeError(f"{self!r}: expected the hidden state {state_text} with N = {n}, got {got}")
        for a in [x] + states:
            if a.dtype != self.backend.dtype:
                raise ShapeError(f"{self!r}: expected arrays of dtype {self.backend.dtype}, got {a.dtype}")
        return x, states

    def _products(self, x, h, out, hidden_out=None):
        """out = x W_ih^T + b_ih (+ h W_hh^T + b_hh unless hidden_out receives that part)."""
        backend = self.backend
        backend.gemm(x, self.weight_ih, out, trans_b=True)
        if self.bias:
            out += self.bias_ih
        target = hidden_out
        if target is None:
            target = self.hidden_part = self._fit(self.hidden_part, out.shape)
        backend.gemm(h, self.weight_hh, target, trans_b=True)
        if self.bias:
            target += self.bias_hh
        if hidden_out is None:
            out += target

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        """The step's bprop computed once (:meth:`_step_grads`: dE/d(pre-activations) of
        the input and hidden products), then::

            dE/dx = dpre_x W_ih;  dE/dh = dpre_h W_hh (+ the direct part);
            dE/dW_ih += scale dpre_x^T x;  dE/dW_hh += scale dpre_h^T h;  dE/db += scale sum_n dpre
        """
        x, states = self._split(input)
        dpre_x, dpre_h = self._step_grads(x, states, grad_output)
        if need_input:
            backend = self.backend
            gx = self.grad_x = self._fit(self.grad_x, x.shape)
            gh = self.grad_h = self._fit(self.grad_h, states[0].shape)
            backend.gemm(dpre_x, self.weight_ih, gx)
            backend.gemm(dpre_h, self.weight_hh, gh)
            direct = self._direct()
            if direct is not None:
                gh += direct
            self.grad_input = [gx, gh] if self._state_parts == 1 else [gx, [gh, self.grad_c]]
        if need_params:
            self._acc(x, states[0], dpre_x, dpre_h, scale)

    def _acc(self, x, h, dpre_x, dpre_h, scale):
        backend, xp = self.backend, self.backend.xp
        for grad, dpre, inp in ((self.grad_weight_ih, dpre_x, x), (self.grad_weight_hh, dpre_h, h)):
            backend.gemm(dpre, inp, grad, trans_a=True, alpha=scale, beta=1.0)
        if self.bias:
            for grad, dpre in ((self.grad_bias_ih, dpre_x), (self.grad_bias_hh, dpre_h)):
                step = backend.work("cell bias sum", grad.shape)
                xp.sum(dpre, axis=0, out=step)
                if scale != 1:
                    step *= scale
                grad += step

    def _direct(self):
        """The part of dE/dh_{t-1} that bypasses the products (the GRU's z * dE/dh'); None here."""

    def extra_repr(self):
        return f"{self.input_size} -> {self.hidden_size}" + ("" if self.bias else ", without bias")


class RNNCell(_Cell):
    """One Elman step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act = tanh or relu.

    Input: the table ``[x (N, in), h (N, H)]``; output h' (N, H).
    bprop: d = dE/dh' * act'(.);  dE/dx = d W_ih;  dE/dh = d W_hh;
    dE/dW_ih += d^T x;  dE/dW_hh += d^T h;  dE/db_ih = dE/db_hh += sum_n d.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 rng: Any = None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, rng)
        self.nonlinearity = nonlinearity

    grad_pre = scratch("dE/d(pre-activation) (N, H)")

    def update_output(self, input):
        x, (h,) = self._split(input)
        out = self.output = self.backend.ensure(self.output, h.shape)
        self._products(x, h, out)
        rnn_forward(self.backend.xp, out, out, self.nonlinearity == "relu")
        return out

    def _step_grads(self, x, states, grad_output):
        check_same_shape(self, "grad_output", grad_output, self.output)
        dpre = self.grad_pre = self._fit(self.grad_pre, self.output.shape)
        rnn_backward(self.backend.xp, self.output, grad_output, dpre, self.nonlinearity == "relu")
        return dpre, dpre

    def extra_repr(self):
        return super().extra_repr() + (", relu" if self.nonlinearity == "relu" else "")


class LSTMCell(_Cell):
    """One LSTM step (PyTorch's equations, no peepholes; see the module docstring).

    Input: ``[x (N, in), [h (N, H), c (N, H)]]``; output ``[h', c']``.
    Weights W_ih (4H, in), W_hh (4H, H), rows in the gate order i, f, g, o.
    bprop: see :func:`lstm_backward`; then dE/dx = dgates W_ih, dE/dh = dgates W_hh,
    dE/dc = dE/dc_total * f, dE/dW_ih += dgates^T x, dE/dW_hh += dgates^T h.
    """

    _gates = 4
    _state_parts = 2

    gates = saved("the gate activations [i, f, g, o] (N, 4H)")
    tanh_c = saved("tanh(c') (N, H)")
    h_new = scratch("the output h' (N, H)")
    c_new = scratch("the output c' (N, H)")
    tmp = scratch("elementwise scratch (N, H)")
    grad_c = scratch("dE/dc, then dE/dc_{t-1} (N, H)")
    grad_gates = scratch("dE/d(gate pre-activations) (N, 4H)")

    def update_output(self, input):
        x, (h, c) = self._split(input)
        n, hs = h.shape
        gates = self.gates = self._fit(self.gates, (n, 4 * hs))
        self._products(x, h, gates)
        i, f, g, o = blocks(gates, 4, 1)
        xp = self.backend.xp
        lstm_activate(xp, (i, f, o), g)
        h_new = self.h_new = self._fit(self.h_new, h.shape)
        c_new = self.c_new = self._fit(self.c_new, c.shape)
        self.tanh_c = self._fit(self.tanh_c, c.shape)
        self.tmp = self._fit(self.tmp, h.shape)
        lstm_forward(xp, i, f, g, o, c, c_new, self.tanh_c, h_new, self.tmp)
        self.output = [h_new, c_new]
        return self.output

    def _step_grads(self, x, states, grad_output):
        h, c = states
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != 2 or any(
            getattr(g, "shape", None) != h.shape for g in grad_output
        ):
            raise shape_error(self, f"grad_output [dh, dc], each {h.shape}", grad_output)
        dh, dc_in = grad_output
        dc = self.grad_c = self._fit(self.grad_c, c.shape)
        dc[...] = dc_in
        dgates = self.grad_gates = self._fit(self.grad_gates, self.gates.shape)
        lstm_backward(self.backend.xp, blocks(self.gates, 4, 1), c, self.tanh_c, dh, dc, blocks(dgates, 4, 1), self.tmp)
        return dgates, dgates


class GRUCell(_Cell):
    """One GRU step (PyTorch's equations: the reset gate multiplies W_hn h + b_hn).

    Input: ``[x (N, in), h (N, H)]``; output h' (N, H). Weights W_ih (3H, in),
    W_hh (3H, H), rows in the gate order r, z, n. bprop: see :func:`gru_backward`;
    then dE/dx = dxg W_ih, dE/dh = dhg W_hh + dE/dh' * z, dE/dW_ih += dxg^T x,
    dE/dW_hh += dhg^T h, dE/db_ih += sum dxg, dE/db_hh += sum dhg.
    """

    _gates = 3

    input_part = saved("W_ih x + b_ih, then the gates [r, z, n] (N, 3H)")
    hidden_part = saved("W_hh h + b_hh (N, 3H); its n block feeds the bprop")
    grad_input_part = scratch("dE/d(W_ih x + b_ih) (N, 3H)")
    grad_hidden_part = scratch("dE/d(W_hh h + b_hh) (N, 3H)")
    grad_direct = scratch("z * dE/dh': the part of dE/dh that skips the products (N, H)")

    def update_output(self, input):
        x, (h,) = self._split(input)
        n, hs = h.shape
        xg = self.input_part = self._fit(self.input_part, (n, 3 * hs))
        hg = self.hidden_part = self._fit(self.hidden_part, (n, 3 * hs))
        self._products(x, h, xg, hidden_out=hg)
        out = self.output = self._fit(self.output, h.shape)
        r, z, n_gate = blocks(xg, 3, 1)
        r += hg[:, :hs]
        z += hg[:, hs : 2 * hs]
        gru_forward(self.backend.xp, r, z, n_gate, hg[:, 2 * hs :], h, out)
        return out

    def _step_grads(self, x, states, grad_output):
        (h,) = states
        check_same_shape(self, "grad_output", grad_output, h)
        hs = self.hidden_size
        dxg = self.grad_input_part = self._fit(self.grad_input_part, self.input_part.shape)
        dhg = self.grad_hidden_part = self._fit(self.grad_hidden_part, self.input_part.shape)
        direct = self.grad_direct = self._fit(self.grad_direct, h.shape)
        gru_backward(self.backend.xp, blocks(self.input_part, 3, 1), self.hidden_part[:, 2 * hs :], h, grad_output,
                     blocks(dxg, 3, 1), dhg[:, 2 * hs :], direct)
        dhg[:, : 2 * hs] = dxg[:, : 2 * hs]
        return dxg, dhg

    def _direct(self):
        return self.grad_direct


__all__ = ["RNNCell", "LSTMCell", "GRUCell"]
