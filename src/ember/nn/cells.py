"""Recurrent cells: one time step of an Elman RNN, an LSTM and a GRU (PyTorch's equations).

A cell is a step module: its input is the table ``[x_t, state_{t-1}]`` and its output is
``state_t``; :class:`~ember.nn.Recurrent` unfolds it over a sequence with shared weights.
The per-step math lives in the ``*_forward`` / ``*_backward`` functions below; the fused
sequence layers (:mod:`ember.nn.rnn`) run the very same functions inside their time loop,
so a gradient check of a cell checks the layers' step too.

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

from ..errors import ShapeError, describe, shape_error
from .init import uniform
from .module import Module


# ---------------------------------------------------------------- step math (shared with rnn.py)
def sigmoid_via_tanh(xp, block):
    """In place: ``block = sigma(block) = (1 + tanh(block / 2)) / 2`` (stable for every x)."""
    block *= 0.5
    xp.tanh(block, out=block)
    block += 1
    block *= 0.5


def rnn_forward(xp, pre, h, relu):
    """``h' = act(pre)`` written into ``h`` (which may be ``pre`` itself)."""
    if relu:
        xp.maximum(pre, 0, out=h)
    else:
        xp.tanh(pre, out=h)


def rnn_backward(xp, h, dh, dpre, relu):
    """``dpre = dh * act'(pre)``, from the output h' = act(pre)."""
    if relu:
        xp.greater(h, 0, out=dpre)
    else:
        xp.multiply(h, h, out=dpre)
        xp.subtract(1, dpre, out=dpre)
    dpre *= dh


def lstm_forward(xp, gates, scale, shift, c_prev, c, tanh_c, h, tmp):
    """One LSTM step after the products.

    ``gates`` (N, 4H) holds the pre-activations [i, f, g, o] and is overwritten with the
    activations. ``scale``/``shift`` (4H,) are 0.5/0.5 on the sigmoid gates and 1/0 on g,
    so sigma and tanh run as one tanh over the whole block: sigma(x) = (1 + tanh(x/2)) / 2.
    Writes c', tanh(c') and h'. ``tmp`` is (N, H) scratch.
    """
    hs = c.shape[-1]
    gates *= scale
    xp.tanh(gates, out=gates)
    gates *= scale
    gates += shift
    i, f, g, o = gates[:, :hs], gates[:, hs : 2 * hs], gates[:, 2 * hs : 3 * hs], gates[:, 3 * hs :]
    xp.multiply(f, c_prev, out=c)
    xp.multiply(i, g, out=tmp)
    c += tmp
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)


def lstm_backward(xp, gates, c_prev, tanh_c, dh, dc, dgates, tmp):
    """bprop of one LSTM step (gates holds the activations i, f, g, o).

    In: dh = dE/dh' (total), dc = dE/dc' from later steps. Out: dgates = dE/d(pre-activations),
    and dc is overwritten with dE/dc_{t-1} = (dc + dh * o * (1 - tanh(c')^2)) * f::

        do = dh * tanh(c') * o (1 - o)
        dc_total = dc + dh * o * (1 - tanh(c')^2)
        di = dc_total * g * i (1 - i);  df = dc_total * c * f (1 - f);  dg = dc_total * i * (1 - g^2)
    """
    hs = dh.shape[-1]
    i, f, g, o = gates[:, :hs], gates[:, hs : 2 * hs], gates[:, 2 * hs : 3 * hs], gates[:, 3 * hs :]
    di, df, dg, do = dgates[:, :hs], dgates[:, hs : 2 * hs], dgates[:, 2 * hs : 3 * hs], dgates[:, 3 * hs :]
    xp.multiply(dh, o, out=tmp)  # dh * o
    xp.multiply(dh, tanh_c, out=do)  # dh * tanh(c')
    xp.subtract(1, o, out=dg)  # (1 - o) as scratch
    dg *= o
    do *= dg  # do = dh tanh(c') o (1 - o)
    xp.multiply(tanh_c, tanh_c, out=dg)
    xp.subtract(1, dg, out=dg)
    tmp *= dg
    dc += tmp  # dc_total
    xp.subtract(1, i, out=tmp)
    tmp *= i
    xp.multiply(dc, g, out=di)
    di *= tmp  # di = dc g i (1 - i)
    xp.subtract(1, f, out=tmp)
    tmp *= f
    xp.multiply(dc, c_prev, out=df)
    df *= tmp  # df = dc c f (1 - f)
    xp.multiply(g, g, out=tmp)
    xp.subtract(1, tmp, out=tmp)
    tmp *= i
    xp.multiply(dc, tmp, out=dg)  # dg = dc i (1 - g^2)
    dc *= f


def gru_forward(xp, xg, hg, h_prev, h):
    """One GRU step after the products.

    ``xg`` (N, 3H) = W_ih x + b_ih is overwritten with the activations [r, z, n];
    ``hg`` (N, 3H) = W_hh h + b_hh is kept (its n block is needed by bprop). Writes h'.
    """
    hs = h.shape[-1]
    rz = xg[:, : 2 * hs]
    rz += hg[:, : 2 * hs]
    sigmoid_via_tanh(xp, rz)
    r, z, n = xg[:, :hs], xg[:, hs : 2 * hs], xg[:, 2 * hs :]
    xp.multiply(r, hg[:, 2 * hs :], out=h)
    n += h
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)  # h' = n + z (h - n)
    h *= z
    h += n


def gru_backward(xp, gates, hg, h_prev, dh, dxg, dhg, dh_direct):
    """bprop of one GRU step (gates = [r, z, n] activations, hg = W_hh h + b_hh)::

        dn_pre = dh (1 - z) (1 - n^2);  dz_pre = dh (h - n) z (1 - z)
        dr_pre = dn_pre * hg_n * r (1 - r)
        dxg = [dr_pre, dz_pre, dn_pre];  dhg = [dr_pre, dz_pre, dn_pre * r]
        dh_direct = dh * z       (the part of dE/dh that skips the products)
    """
    hs = dh.shape[-1]
    r, z, n = gates[:, :hs], gates[:, hs : 2 * hs], gates[:, 2 * hs :]
    dr, dz, dn = dxg[:, :hs], dxg[:, hs : 2 * hs], dxg[:, 2 * hs :]
    xp.multiply(dh, z, out=dh_direct)
    xp.subtract(dh, dh_direct, out=dn)  # dh (1 - z)
    xp.multiply(n, n, out=dr)
    xp.subtract(1, dr, out=dr)
    dn *= dr  # dn_pre
    xp.subtract(h_prev, n, out=dz)
    dz *= dh
    xp.subtract(1, z, out=dr)
    dr *= z
    dz *= dr  # dz_pre
    xp.subtract(1, r, out=dr)
    dr *= r
    dr *= hg[:, 2 * hs :]
    dr *= dn  # dr_pre
    dhg[:, : 2 * hs] = dxg[:, : 2 * hs]
    xp.multiply(dn, r, out=dhg[:, 2 * hs :])


# ---------------------------------------------------------------- the cells
class _Cell(Module):
    """Shared parts of the cells: parameters W_ih (G*H, in), W_hh (G*H, H), b_ih, b_hh
    (PyTorch's names and layout), init U(-1/sqrt(H), 1/sqrt(H)), and input checks."""

    _input_kind = "any"
    _param_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    _gates = 1
    _state_parts = 1

    def __init__(self, input_size, hidden_size, bias=True, rng=None):
        super().__init__()
        name = type(self).__name__
        for label, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: {label} must be a positive int, got {value!r}")
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
        target = hidden_out if hidden_out is not None else self._scratch("hh", out.shape)
        backend.gemm(h, self.weight_hh, target, trans_b=True)
        if self.bias:
            target += self.bias_hh
        if hidden_out is None:
            out += target

    def _grad_input(self, x, dpre_x, dpre_h, dh_direct=None):
        """grad_input = [dpre_x W_ih, dpre_h W_hh (+ dh_direct)] (+ the c part for the LSTM)."""
        gx = self._scratch("gx", x.shape)
        gh = self._scratch("gh", (x.shape[0], self.hidden_size))
        self.backend.gemm(dpre_x, self.weight_ih, gx)
        self.backend.gemm(dpre_h, self.weight_hh, gh)
        if dh_direct is not None:
            gh += dh_direct
        return gx, gh

    def _acc(self, x, h, dpre_x, dpre_h, scale):
        backend, xp = self.backend, self.backend.xp
        for grad, dpre, inp, name in ((self.grad_weight_ih, dpre_x, x, "gwi"), (self.grad_weight_hh, dpre_h, h, "gwh")):
            backend.gemm(dpre, inp, grad, trans_a=True, alpha=scale, beta=1.0, scratch=self._scratch(name, grad.shape))
        if self.bias:
            for grad, dpre, name in ((self.grad_bias_ih, dpre_x, "gbi"), (self.grad_bias_hh, dpre_h, "gbh")):
                step = self._scratch(name, grad.shape)
                xp.sum(dpre, axis=0, out=step)
                if scale != 1:
                    step *= scale
                grad += step

    def update_grad_input(self, input, grad_output):
        x, states = self._split(input)
        dpre_x, dpre_h = self._step_grads(x, states, grad_output)
        gx, gh = self._grad_input(x, dpre_x, dpre_h, self._direct(states))
        self.grad_input = [gx, gh] if self._state_parts == 1 else [gx, [gh, self._scratch("dc", gh.shape)]]
        return self.grad_input

    def _direct(self, states):
        """The part of dE/dh_{t-1} that bypasses the products (the GRU's z * dE/dh')."""
        return None

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        x, states = self._split(input)
        dpre_x, dpre_h = self._step_grads(x, states, grad_output)
        self._acc(x, states[0], dpre_x, dpre_h, scale)

    def backward(self, input, grad_output, scale=1.0):
        """update_grad_input + acc_grad_parameters, computing the step's bprop once."""
        x, states = self._split(input)
        dpre_x, dpre_h = self._step_grads(x, states, grad_output)
        gx, gh = self._grad_input(x, dpre_x, dpre_h, self._direct(states))
        self.grad_input = [gx, gh] if self._state_parts == 1 else [gx, [gh, self._scratch("dc", gh.shape)]]
        self._acc(x, states[0], dpre_x, dpre_h, scale)
        return self.grad_input

    def extra_repr(self):
        return f"{self.input_size} -> {self.hidden_size}" + ("" if self.bias else ", without bias")


class RNNCell(_Cell):
    """One Elman step: ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``, act = tanh or relu.

    Input: the table ``[x (N, in), h (N, H)]``; output h' (N, H).
    bprop: d = dE/dh' * act'(.);  dE/dx = d W_ih;  dE/dh = d W_hh;
    dE/dW_ih += d^T x;  dE/dW_hh += d^T h;  dE/db_ih = dE/db_hh += sum_n d.
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, rng)
        self.nonlinearity = nonlinearity

    def update_output(self, input):
        x, (h,) = self._split(input)
        out = self.output = self.backend.ensure(self.output, h.shape)
        self._products(x, h, out)
        rnn_forward(self.backend.xp, out, out, self.nonlinearity == "relu")
        return out

    def _step_grads(self, x, states, grad_output):
        if getattr(grad_output, "shape", None) != self.output.shape:
            raise shape_error(self, f"grad_output of shape {self.output.shape}", grad_output)
        dpre = self._scratch("dpre", self.output.shape)
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

    def _constants(self):
        xp, hs = self.backend.xp, self.hidden_size
        scale = self._scratch("gate_scale", (4 * hs,))
        shift = self._scratch("gate_shift", (4 * hs,))
        scale.fill(0.5)
        scale[2 * hs : 3 * hs] = 1
        shift.fill(0.5)
        shift[2 * hs : 3 * hs] = 0
        return xp, scale, shift

    def update_output(self, input):
        x, (h, c) = self._split(input)
        n, hs = h.shape
        gates = self._scratch("gates", (n, 4 * hs))
        self._products(x, h, gates)
        h_new, c_new = self._scratch("h", h.shape), self._scratch("c", c.shape)
        self._tanh_c = self._scratch("tanh_c", c.shape)
        xp, scale, shift = self._constants()
        lstm_forward(xp, gates, scale, shift, c, c_new, self._tanh_c, h_new, self._scratch("tmp", h.shape))
        self.output = [h_new, c_new]
        return self.output

    def _step_grads(self, x, states, grad_output):
        h, c = states
        if not isinstance(grad_output, (list, tuple)) or len(grad_output) != 2 or any(
            getattr(g, "shape", None) != h.shape for g in grad_output
        ):
            raise shape_error(self, f"grad_output [dh, dc], each {h.shape}", grad_output)
        dh, dc_in = grad_output
        dc = self._scratch("dc", c.shape)
        dc[...] = dc_in
        dgates = self._scratch("dgates", (h.shape[0], 4 * self.hidden_size))
        gates = self._scratch("gates", dgates.shape)
        lstm_backward(self.backend.xp, gates, c, self._tanh_c, dh, dc, dgates, self._scratch("tmp", h.shape))
        return dgates, dgates



class GRUCell(_Cell):
    """One GRU step (PyTorch's equations: the reset gate multiplies W_hn h + b_hn).

    Input: ``[x (N, in), h (N, H)]``; output h' (N, H). Weights W_ih (3H, in),
    W_hh (3H, H), rows in the gate order r, z, n. bprop: see :func:`gru_backward`;
    then dE/dx = dxg W_ih, dE/dh = dhg W_hh + dE/dh' * z, dE/dW_ih += dxg^T x,
    dE/dW_hh += dhg^T h, dE/db_ih += sum dxg, dE/db_hh += sum dhg.
    """

    _gates = 3

    def update_output(self, input):
        x, (h,) = self._split(input)
        n, hs = h.shape
        xg, hg = self._scratch("xg", (n, 3 * hs)), self._scratch("hg", (n, 3 * hs))
        self._products(x, h, xg, hidden_out=hg)
        out = self.output = self.backend.ensure(self.output, h.shape)
        gru_forward(self.backend.xp, xg, hg, h, out)
        return out

    def _step_grads(self, x, states, grad_output):
        (h,) = states
        if getattr(grad_output, "shape", None) != h.shape:
            raise shape_error(self, f"grad_output of shape {h.shape}", grad_output)
        shape = (h.shape[0], 3 * self.hidden_size)
        dxg, dhg = self._scratch("dxg", shape), self._scratch("dhg", shape)
        direct = self._scratch("direct", h.shape)
        gru_backward(self.backend.xp, self._scratch("xg", shape), self._scratch("hg", shape), h, grad_output, dxg, dhg, direct)
        return dxg, dhg

    def _direct(self, states):
        return self._scratch("direct", states[0].shape)


__all__ = ["RNNCell", "LSTMCell", "GRUCell"]
