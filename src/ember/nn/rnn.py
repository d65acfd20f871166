"""Fused recurrent layers over whole sequences: RNN, LSTM, GRU (PyTorch-compatible).

Input (N, T, F) batch-first, output (N, T, D*H) with D = 2 when bidirectional. The
equations are those of the cells (:mod:`ember.nn.cells`, PyTorch's); the parameters
have PyTorch's names and layouts (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, ``..._reverse``), so weights copy one to one from ``torch.nn.LSTM``.

Differences from PyTorch: arrays are always batch-first (no ``batch_first`` flag); the
initial state is passed as the table ``[x, h0]`` (``[x, [h0, c0]]`` for the LSTM), with
h0 (L*D, N, H) as in PyTorch; the final state is ``module.final_state``; padded steps
are masked with ``set_mask`` instead of packed sequences (same results).
"""

from __future__ import annotations

import math

from ..errors import check_positive, check_same_shape
from .dropout import Dropout
from .init import get_rng, uniform
from .recurrent import SequenceModule
from .rnn_kernels import KERNELS


class _Layers(SequenceModule):
    """Stacked, optionally bidirectional, fused recurrent layers (see the module doc)."""

    _kind = "LSTM"
    _grad_input_optional = True

    def _setup(self, input_size, hidden_size, num_layers, bias, dropout, bidirectional, rng, nonlinearity="tanh"):
        name = type(self).__name__
        check_positive(name, input_size=input_size, hidden_size=hidden_size, num_layers=num_layers)
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.dropout, self.bidirectional = bool(bias), float(dropout), bool(bidirectional)
        self.nonlinearity = nonlinearity
        self.directions = 2 if bidirectional else 1
        kernel = KERNELS[self._kind]
        self.parts, rows = kernel.parts, kernel.gates * hidden_size
        rng = get_rng(rng)
        bound = 1.0 / math.sqrt(hidden_size)
        names = []
        for layer in range(num_layers):
            width = input_size if layer == 0 else self.directions * hidden_size
            for d in range(self.directions):
                suffix = self._suffix(layer, d)
                for base, shape in (("weight_ih", (rows, width)), ("weight_hh", (rows, hidden_size)),
                                    ("bias_ih", (rows,)), ("bias_hh", (rows,))):
                    if base.startswith("bias") and not bias:
                        continue
                    value = uniform(rng, shape, bound)
                    setattr(self, base + suffix, value)
                    setattr(self, "grad_" + base + suffix, value * 0)
                    names.append(base + suffix)
        self._param_names = tuple(names)
        self._dropouts = [Dropout(dropout, rng=rng) for _ in range(num_layers - 1)] if dropout > 0 else []

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _weights(self, layer, direction, prefix=""):
        suffix = self._suffix(layer, direction)
        return {base: getattr(self, prefix + base + suffix, None) for base in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}

    def reset(self, stdv=None, rng=None):
        """Re-draw every weight and bias from U(-stdv, stdv); default stdv = 1/sqrt(H)."""
        bound = stdv if stdv is not None else 1.0 / math.sqrt(self.hidden_size)
        for _, param, _ in self._own_parameters():
            param[...] = self.backend.asarray(uniform(rng, param.shape, bound))
        return self

    def children(self):
        """The Dropout modules between layers (``dropout > 0``): part of the tree, so mode
        switches, ``to()``, ``clear_state`` and checkpoints (their generators) reach them."""
        return list(self._dropouts)

    def _state_text(self):
        shape = f"(L*D, N, H) = ({self.num_layers * self.directions}, N, {self.hidden_size})"
        return shape if self.parts == 1 else f"[h0, c0], each {shape}"

    def _kernels(self):
        kernels = self.__dict__.get("_buf_kernels")
        if kernels is None or kernels[0].backend != self.backend:
            make = KERNELS[self._kind]
            extra = {"relu": self.nonlinearity == "relu"} if self._kind == "RNN" else {}
            kernels = [make(self.backend, self.hidden_size, d == 1, **extra)
                       for _ in range(self.num_layers) for d in range(self.directions)]
            self.__dict__["_buf_kernels"] = kernels
        return kernels

    # ---------------------------------------------------------------- fprop
    def update_output(self, input):
        x, given = self._split_input(input, self.input_size, self._state_text())
        n, t_len = x.shape[:2]
        hs, dirs, layers = self.hidden_size, self.directions, self.num_layers
        shapes = [(layers * dirs, n, hs)] * self.parts
        state0, self._from_input = self._start_state(given, shapes, self._state_text())
        mask_f, keep_f = self._mask_arrays(n, t_len, feature_major=True)
        kernels = self._kernels()
        layer_in = self._scratch("x_f", (self.input_size, t_len, n))  # feature-major (F, T, N)
        for t in range(t_len):  # step by step: 2-D transposes stay in cache
            layer_in[:, t] = x[:, t].T
        final = [self._scratch(f"final{i}", shapes[0]) for i in range(self.parts)]
        out = self.output = self.backend.ensure(self.output, (n, t_len, dirs * hs))
        self._layer_outputs = []
        for layer in range(layers):
            top = layer == layers - 1
            y = None if top else self._scratch(f"y{layer}", (dirs * hs, t_len, n))
            for d in range(dirs):
                index = layer * dirs + d
                states, fin = kernels[index].forward(layer_in, self._weights(layer, d), [s[index].T for s in state0], keep_f)
                if top:  # (T, H, N) states -> (N, T, H) output columns
                    for t in range(t_len):
                        out[:, t, d * hs : (d + 1) * hs] = states[t].T
                else:
                    y[d * hs : (d + 1) * hs] = states.transpose(1, 0, 2)
                for f, last in zip(final, fin):
                    f[index] = last.T
            if top:
                break
            if mask_f is not None:
                y *= mask_f.reshape(1, t_len, n)
            self._layer_outputs.append(y)
            layer_in = y
            if self._dropouts:
                layer_in = self._dropouts[layer].forward(y)
        if mask_f is not None:
            out *= mask_f.transpose(2, 0, 1)  # (N, T, 1)
        self.final_state = final[0] if self.parts == 1 else final
        self._carry(final)
        self._bptt_done = False
        return out

    # ---------------------------------------------------------------- bprop
    def update_grad_input(self, input, grad_output):
        return self._bptt(input, grad_output, want_input=True)

    def _bptt(self, input, grad_output, want_input):
        """Back-propagation through time: the gate gradients of every layer and step, and
        (when ``want_input``) dE/dx. Without it, the first layer's dE/dx GEMM is skipped."""
        x, _ = self._split_input(input, self.input_size, self._state_text())
        n, t_len = x.shape[:2]
        check_same_shape(self, "grad_output", grad_output, self.output)
        hs, dirs = self.hidden_size, self.directions
        mask_f, keep_f = self._mask_arrays(n, t_len, feature_major=True)
        kernels = self._kernels()
        dstate = [self._scratch(f"dstate{i}", (self.num_layers * dirs, n, hs)) for i in range(self.parts)]
        d_above = None  # dE/d(input of the layer above), feature-major
        for layer in range(self.num_layers - 1, -1, -1):
            width = self.input_size if layer == 0 else dirs * hs
            d_in = self._scratch(f"din{layer}", (width, t_len, n))
            for d in range(dirs):
                index = layer * dirs + d
                weights = self._weights(layer, d)
                dy = kernels[index].buf("dy", (t_len, hs, n))  # time-major (T, H, N)
                if d_above is None:
                    for t in range(t_len):
                        dy[t] = grad_output[:, t, d * hs : (d + 1) * hs].T
                    if mask_f is not None:
                        dy *= mask_f
                else:
                    dy[...] = d_above[d * hs : (d + 1) * hs].transpose(1, 0, 2)
                d0 = kernels[index].backward(dy, weights, mask_f, keep_f)
                if layer > 0 or want_input:
                    kernels[index].grad_input(weights, d_in, accumulate=d > 0)
                for target, value in zip(dstate, d0):
                    target[index] = value.T
            d_above = d_in
            if layer > 0 and self._dropouts:
                d_above = self._dropouts[layer - 1].update_grad_input(self._layer_outputs[layer - 1], d_in)
        self._bptt_done = True
        if not want_input:
            return None
        gx = self._scratch("gx", x.shape)
        for t in range(t_len):
            gx[:, t] = d_above[:, t].T
        if self._from_input:
            self.grad_input = [gx, dstate[0] if self.parts == 1 else dstate]
        else:
            self.grad_input = gx
        return self.grad_input

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        """dE/dW for every layer: one GEMM per weight over all steps.

        Reuses the gate gradients of :meth:`update_grad_input` when it ran since the
        last forward (so call both with the same grad_output, as ``backward`` does);
        otherwise runs BPTT itself without the input gradient (a container that does
        not need dE/dx calls only this, see ``compute_grad_input``).
        """
        if not getattr(self, "_bptt_done", False):
            self._bptt(input, grad_output, want_input=False)
        kernels = self._kernels()
        for layer in range(self.num_layers):
            for d in range(self.directions):
                kernels[layer * self.directions + d].acc(
                    self._weights(layer, d), self._weights(layer, d, prefix="grad_"), scale)

    def extra_repr(self):
        parts = [f"{self.input_size} -> {self.hidden_size}"]
        if self.num_layers > 1:
            parts.append(f"num_layers={self.num_layers}")
        if self._kind == "RNN" and self.nonlinearity != "tanh":
            parts.append(self.nonlinearity)
        if not self.bias:
            parts.append("without bias")
        if self.dropout:
            parts.append(f"dropout={self.dropout:g}")
        if self.bidirectional:
            parts.append("bidirectional")
        return ", ".join(parts)


class RNN(_Layers):
    """Elman network over a sequence: ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``.

    Input (N, T, input_size) (or ``[x, h0]``, h0 (L*D, N, H)); output (N, T, D*H): the
    top layer's h_t (both directions concatenated). ``nonlinearity`` "tanh" or "relu".
    Layer l > 0 reads the output of layer l-1 (through dropout when ``dropout`` > 0, in
    training mode). bprop: back-propagation through time, see :mod:`ember.nn.rnn_kernels`.
    Init U(-1/sqrt(H), 1/sqrt(H)) like PyTorch.
    """

    _kind = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, dropout=0.0,
                 bidirectional=False, rng=None):
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._setup(input_size, hidden_size, num_layers, bias, dropout, bidirectional, rng, nonlinearity)


class LSTM(_Layers):
    """Long short-term memory over a sequence (PyTorch's equations, no peepholes)::

        [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
        c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(g);   h_t = sigma(o) * tanh(c_t)

    Input (N, T, input_size) (or ``[x, [h0, c0]]``, each (L*D, N, H)); output (N, T, D*H);
    ``final_state`` = [h_T, c_T]. Per step: one GEMM for the four gates; the input
    projection of all steps is one GEMM. Torch7's rnn ``nn.LSTM`` (a step module) added
    peepholes; its ``SeqLSTM``/``FastLSTM`` are the closest relatives of this layer.
    """

    _kind = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0, bidirectional=False, rng=None):
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, bias, dropout, bidirectional, rng)


class GRU(_Layers):
    """Gated recurrent unit over a sequence (PyTorch's equations)::

        [r, z] = sigma(W_i[rz] x_t + b_i[rz] + W_h[rz] h_{t-1} + b_h[rz])
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn));   h_t = (1 - z) n + z h_{t-1}

    Input (N, T, input_size) (or ``[x, h0]``); output (N, T, D*H). Torch7's rnn ``GRU``
    put the reset gate before the product (``U (r * h)``), so its weights differ.
    """

    _kind = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, dropout=0.0, bidirectional=False, rng=None):
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, bias, dropout, bidirectional, rng)


__all__ = ["RNN", "LSTM", "GRU"]
