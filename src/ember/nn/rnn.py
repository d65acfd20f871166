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
from typing import Any

from ..errors import check_positive, check_same_shape
from .dropout import Dropout
from .init import get_rng, uniform
from ._tables import table_buffers
from .module import Composite, backprop, saved, scratch
from .recurrent import SequenceModule
from .rnn_kernels import KERNELS


class _Layers(Composite, SequenceModule):
    """Stacked, optionally bidirectional, fused recurrent layers (see the module doc)."""

    _kind = "LSTM"

    kernels = scratch("one time-loop kernel per layer and direction, holding their buffers")
    x_f = scratch("the input, feature-major (F, T, N)")
    layer_outputs = saved("the outputs of the layers below the top, feature-major (D*H, T, N) each")
    final = scratch("the final states [h_T (, c_T)], each (L*D, N, H)")
    grad_layer_inputs = scratch("dE/d(input of each layer), feature-major (width, T, N)")
    grad_state = scratch("dE/d(initial state), each (L*D, N, H)")
    grad_x = scratch("dE/dx (N, T, F)")

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
        kernels = self.kernels
        if kernels is None:
            make = KERNELS[self._kind]
            extra = {"relu": self.nonlinearity == "relu"} if self._kind == "RNN" else {}
            kernels = self.kernels = [make(self.backend, self.hidden_size, d == 1, **extra)
                                      for _ in range(self.num_layers) for d in range(self.directions)]
        return kernels

    # ---------------------------------------------------------------- fprop
    def update_output(self, input):
        x, given = self._split_input(input, self.input_size, self._state_text())
        n, t_len = x.shape[:2]
        hs, dirs, layers = self.hidden_size, self.directions, self.num_layers
        shapes = [(layers * dirs, n, hs)] * self.parts
        state0, self.state_given = self._start_state(given, shapes, self._state_text())
        mask_f, keep_f = self._mask_arrays(n, t_len, feature_major=True)
        kernels = self._kernels()
        layer_in = self.x_f = self._fit(self.x_f, (self.input_size, t_len, n))  # feature-major (F, T, N)
        for t in range(t_len):  # step by step: 2-D transposes stay in cache
            layer_in[:, t] = x[:, t].T
        final = self.final = table_buffers(self.backend, self.final, shapes)
        out = self.output = self._fit(self.output, (n, t_len, dirs * hs))
        self.layer_outputs = table_buffers(self.backend, self.layer_outputs, [(dirs * hs, t_len, n)] * (layers - 1))
        for layer in range(layers):
            top = layer == layers - 1
            y = None if top else self.layer_outputs[layer]
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
            layer_in = y
            if self._dropouts:
                layer_in = self._dropouts[layer].forward(y)
        if mask_f is not None:
            out *= mask_f.transpose(2, 0, 1)  # (N, T, 1)
        self.final_state = final[0] if self.parts == 1 else final
        self._carry(final)
        return out

    # ---------------------------------------------------------------- bprop
    def _backprop(self, input, grad_output, scale, need_input, need_params):
        """Back-propagation through time, layer by layer from the top: the gate gradients
        of every step (see :mod:`ember.nn.rnn_kernels`), then dE/d(layer input) (skipped
        for the first layer without ``need_input``) and, with ``need_params``, dE/dW:
        one GEMM per weight over all steps."""
        x, _ = self._split_input(input, self.input_size, self._state_text())
        n, t_len = x.shape[:2]
        check_same_shape(self, "grad_output", grad_output, self.output)
        hs, dirs = self.hidden_size, self.directions
        mask_f, keep_f = self._mask_arrays(n, t_len, feature_major=True)
        kernels = self._kernels()
        if need_input:
            self.grad_state = table_buffers(self.backend, self.grad_state, [(self.num_layers * dirs, n, hs)] * self.parts)
        widths = [self.input_size] + [dirs * hs] * (self.num_layers - 1)
        self.grad_layer_inputs = table_buffers(self.backend, self.grad_layer_inputs, [(w, t_len, n) for w in widths])
        d_above = None  # dE/d(input of the layer above), feature-major
        for layer in range(self.num_layers - 1, -1, -1):
            d_in = self.grad_layer_inputs[layer]
            for d in range(dirs):
                index = layer * dirs + d
                kernel, weights = kernels[index], self._weights(layer, d)
                dy = kernel.dy_buffer()  # time-major (T, H, N)
                if d_above is None:
                    for t in range(t_len):
                        dy[t] = grad_output[:, t, d * hs : (d + 1) * hs].T
                    if mask_f is not None:
                        dy *= mask_f
                else:
                    dy[...] = d_above[d * hs : (d + 1) * hs].transpose(1, 0, 2)
                d0 = kernel.backward(weights, mask_f, keep_f)
                if layer > 0 or need_input:
                    kernel.grad_input(weights, d_in, accumulate=d > 0)
                if need_params:
                    kernel.acc(weights, self._weights(layer, d, prefix="grad_"), scale)
                if need_input:
                    for target, value in zip(self.grad_state, d0):
                        target[index] = value.T
            d_above = d_in
            if layer > 0 and self._dropouts:
                d_above = backprop(self._dropouts[layer - 1], self.layer_outputs[layer - 1], d_in, scale, True, False)
        if not need_input:
            return
        gx = self.grad_x = self._fit(self.grad_x, x.shape)
        for t in range(t_len):
            gx[:, t] = d_above[:, t].T
        if self.state_given:
            self.grad_input = [gx, self.grad_state[0] if self.parts == 1 else self.grad_state]
        else:
            self.grad_input = gx

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

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, dropout: float = 0.0, bidirectional: bool = False, rng: Any = None) -> None:
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

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False, rng: Any = None) -> None:
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

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True, dropout: float = 0.0,
                 bidirectional: bool = False, rng: Any = None) -> None:
        super().__init__()
        self._setup(input_size, hidden_size, num_layers, bias, dropout, bidirectional, rng)


__all__ = ["RNN", "LSTM", "GRU"]
