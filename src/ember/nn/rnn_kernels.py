"""The time loops of the fused recurrent layers: one layer, one direction, time-major.

Each kernel keeps its buffers across calls (no allocation in steady state) and works on
time-major arrays (T, N, ...), so every per-step slice is contiguous:

- forward: the input projection of all T steps is **one GEMM**, ``XP = X W_ih^T + b``
  over (T*N, F); each step then adds **one GEMM** for all gates, ``h_{t-1} W_hh^T``,
  and runs the cell's elementwise math (:mod:`ember.nn.cells`) in place.
- backward: the reverse loop computes dE/d(gates) for every step (one GEMM per step for
  dE/dh_{t-1}); afterwards dE/dX, dE/dW_ih and dE/dW_hh are **one GEMM each** over all
  steps, and the bias gradients one sum.

States are stored in ``Hs`` (T+1, N, H) indexed by time: the forward direction reads
``Hs[t]`` and writes ``Hs[t+1]``; the reverse direction reads ``Hs[t+1]`` and writes
``Hs[t]``, so ``h_{prev}`` of all steps is one contiguous block either way.
"""

from __future__ import annotations

from .. import _blas
from .cells import gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward, rnn_forward


class Kernel:
    """Forward/backward over time of one layer in one direction (subclasses: the cells)."""

    gates = 1
    parts = 1  # arrays in the state: 1 (h) or 2 (h, c)

    def __init__(self, backend, hidden_size, reverse):
        self.backend, self.hs, self.reverse = backend, hidden_size, reverse
        self.bufs = {}
        # BLAS accumulates C += A B in place; other paths need a persistent scratch array
        self.fallback = backend.name != "numpy" or not _blas.AVAILABLE

    def buf(self, name, shape):
        b = self.bufs[name] = self.backend.ensure(self.bufs.get(name), shape)
        return b

    def order(self, t_len):
        return range(t_len - 1, -1, -1) if self.reverse else range(t_len)

    def slots(self, t):
        """(index of the previous state, index of the new state) in Hs for step t."""
        return (t + 1, t) if self.reverse else (t, t + 1)

    # ------------------------------------------------------------------ fprop
    def forward(self, x, p, state0, keep):
        """x (T, N, F) time-major; p = dict of weights; state0 = [h0 (, c0)];
        keep (T, N, 1) bool, true at padded steps (state held), or None.
        Returns (outputs (T, N, H) view, final state list)."""
        backend = self.backend
        t_len, n, f = x.shape
        hs, gh = self.hs, self.gates * self.hs
        # contiguous W^T copies: BLAS runs x @ W^T faster as a plain (NN) product
        w_ih_t, self.w_hh_t = self.buf("w_ih_t", (f, gh)), self.buf("w_hh_t", (hs, gh))
        w_ih_t[...] = p["weight_ih"].T
        self.w_hh_t[...] = p["weight_hh"].T
        xp_all = self.buf("xp", (t_len, n, gh))
        bias = self.input_bias(p)
        if bias is not None:
            xp_all[...] = bias  # then accumulate the product onto it in one pass
        backend.gemm(x.reshape(t_len * n, f), w_ih_t, xp_all.reshape(t_len * n, gh), beta=0.0 if bias is None else 1.0,
                     scratch=self.buf("xp_scratch", (t_len * n, gh)) if bias is not None and self.fallback else None)
        states = [self.buf(f"s{i}", (t_len + 1, n, hs)) for i in range(self.parts)]
        start = t_len if self.reverse else 0
        for s, s0 in zip(states, state0):
            s[start] = s0
        xp = backend.xp
        for t in self.order(t_len):
            prev, new = self.slots(t)
            self.step(t, prev, new, p)
            if keep is not None:
                for s in states:
                    xp.copyto(s[new], s[prev], where=keep[t])
        self.x, self.t_len = x, t_len
        end = 0 if self.reverse else t_len
        out = states[0][:-1] if self.reverse else states[0][1:]
        return out, [s[end] for s in states]

    def input_bias(self, p):
        """The bias added to the input projection (b_ih + b_hh; the GRU keeps b_hh apart)."""
        if p["bias_ih"] is None:
            return None
        bias = self.buf("bias", p["bias_ih"].shape)
        self.backend.xp.add(p["bias_ih"], p["bias_hh"], out=bias)
        return bias

    def accumulate_hidden(self, h_prev, pre):
        """pre += h_prev W_hh^T: the one GEMM of a step, accumulated in place by BLAS."""
        scratch = self.buf("hh", pre.shape) if self.fallback else None
        self.backend.gemm(h_prev, self.w_hh_t, pre, beta=1.0, scratch=scratch)

    # ------------------------------------------------------------------ bprop
    def backward(self, dy, p, mask, keep):
        """dy (T, N, H): dE/d(outputs), already zero at padded steps. Fills the gate
        gradients for :meth:`grad_input` / :meth:`acc` and returns dE/d(state0) list."""
        xp = self.backend.xp
        t_len, n, hs = self.t_len, self.x.shape[1], self.hs
        self.dg = self.buf("dg", (t_len, n, self.gates * hs))
        dstate = [self.buf(f"d{i}", (n, hs)) for i in range(self.parts)]
        held = [self.buf(f"held{i}", (n, hs)) for i in range(self.parts)] if keep is not None else None
        for d in dstate:
            d.fill(0)
        for t in reversed(self.order(t_len)):
            prev, new = self.slots(t)
            dstate[0] += dy[t]
            if keep is not None:
                for a, b in zip(held, dstate):
                    a[...] = b
            # dE/d(gates) of step t, then dstate becomes dE/d(state before step t)
            self.step_back(t, prev, new, p, dstate, mask)
            if keep is not None:  # held rows pass their gradient straight to the previous state
                for a, b in zip(dstate, held):
                    xp.copyto(a, b, where=keep[t])
        return dstate

    def grad_input(self, p, dx, accumulate):
        """dx (T, N, F) = (or +=) dE/d(gates) W_ih over all steps in one GEMM."""
        t_len, n, f = dx.shape
        dg = self.dg.reshape(t_len * n, -1)
        out = dx.reshape(t_len * n, f)
        scratch = self.buf("dx_scratch", out.shape) if accumulate else None
        self.backend.gemm(dg, p["weight_ih"], out, beta=1.0 if accumulate else 0.0, scratch=scratch)

    def hidden_grads(self):
        """dE/d(W_hh h + b_hh) of all steps (the gate gradients, except for the GRU)."""
        return self.dg

    def acc(self, p, g, scale):
        """Accumulate scale * dE/dW_ih, dE/dW_hh, dE/db_ih, dE/db_hh (one GEMM / sum each)."""
        backend, xp = self.backend, self.backend.xp
        t_len, n, f = self.x.shape
        hs = self.hs
        h_prev = self.bufs["s0"][1:] if self.reverse else self.bufs["s0"][:-1]
        for key, grads, inputs in (
            ("weight_ih", self.dg, self.x.reshape(t_len * n, f)),
            ("weight_hh", self.hidden_grads(), h_prev.reshape(t_len * n, hs)),
        ):
            rows = grads.reshape(t_len * n, -1)
            target = g[key]
            backend.gemm(rows, inputs, target, trans_a=True, alpha=scale, beta=1.0,
                         scratch=self.buf("scratch_" + key, target.shape))
        if g["bias_ih"] is not None:
            for key, grads in (("bias_ih", self.dg), ("bias_hh", self.hidden_grads())):
                step = self.buf("scratch_" + key, g[key].shape)
                xp.sum(grads.reshape(t_len * n, -1), axis=0, out=step)
                if scale != 1:
                    step *= scale
                g[key] += step


class RNNKernel(Kernel):
    """Elman: h_t = act(XP_t + h_{t-1} W_hh^T)."""

    def __init__(self, backend, hidden_size, reverse, relu=False):
        super().__init__(backend, hidden_size, reverse)
        self.relu = relu

    def step(self, t, prev, new, p):
        hs_all, pre = self.bufs["s0"], self.bufs["xp"][t]
        self.accumulate_hidden(hs_all[prev], pre)
        rnn_forward(self.backend.xp, pre, hs_all[new], self.relu)

    def step_back(self, t, prev, new, p, dstate, mask):
        dg_t = self.dg[t]
        rnn_backward(self.backend.xp, self.bufs["s0"][new], dstate[0], dg_t, self.relu)
        if mask is not None:
            dg_t *= mask[t]
        self.backend.gemm(dg_t, p["weight_hh"], dstate[0])


class LSTMKernel(Kernel):
    """LSTM: gates_t = XP_t + h_{t-1} W_hh^T (one GEMM for the four gates)."""

    gates, parts = 4, 2

    def forward(self, x, p, state0, keep):
        hs = self.hs
        scale, shift = self.buf("scale", (4 * hs,)), self.buf("shift", (4 * hs,))
        scale.fill(0.5)
        scale[2 * hs : 3 * hs] = 1
        shift.fill(0.5)
        shift[2 * hs : 3 * hs] = 0
        n = x.shape[1]
        self.buf("tanh_c", (x.shape[0], n, hs))
        self.buf("tmp", (n, hs))
        return super().forward(x, p, state0, keep)

    def step(self, t, prev, new, p):
        b = self.bufs
        gates = b["xp"][t]
        h_all, c_all = b["s0"], b["s1"]
        self.accumulate_hidden(h_all[prev], gates)
        lstm_forward(self.backend.xp, gates, b["scale"], b["shift"], c_all[prev], c_all[new], b["tanh_c"][t], h_all[new], b["tmp"])

    def step_back(self, t, prev, new, p, dstate, mask):
        b = self.bufs
        dg_t = self.dg[t]
        lstm_backward(self.backend.xp, b["xp"][t], b["s1"][prev], b["tanh_c"][t], dstate[0], dstate[1], dg_t, b["tmp"])
        if mask is not None:
            dg_t *= mask[t]
        self.backend.gemm(dg_t, p["weight_hh"], dstate[0])


class GRUKernel(Kernel):
    """GRU: XP_t = x W_ih^T + b_ih; HG_t = h_{t-1} W_hh^T + b_hh (kept for bprop)."""

    gates = 3

    def input_bias(self, p):
        return p["bias_ih"]

    def forward(self, x, p, state0, keep):
        t_len, n = x.shape[:2]
        self.buf("hg", (t_len, n, 3 * self.hs))
        return super().forward(x, p, state0, keep)

    def step(self, t, prev, new, p):
        b = self.bufs
        hg = b["hg"][t]
        h_all = b["s0"]
        self.backend.gemm(h_all[prev], self.w_hh_t, hg)
        if p["bias_hh"] is not None:
            hg += p["bias_hh"]
        gru_forward(self.backend.xp, b["xp"][t], hg, h_all[prev], h_all[new])

    def backward(self, dy, p, mask, keep):
        self.buf("dhg", self.bufs["hg"].shape)
        self.buf("direct", dy.shape[1:])
        return super().backward(dy, p, mask, keep)

    def step_back(self, t, prev, new, p, dstate, mask):
        b = self.bufs
        dg_t, dhg_t, direct = self.dg[t], b["dhg"][t], b["direct"]
        gru_backward(self.backend.xp, b["xp"][t], b["hg"][t], b["s0"][prev], dstate[0], dg_t, dhg_t, direct)
        if mask is not None:
            dg_t *= mask[t]
            dhg_t *= mask[t]
        self.backend.gemm(dhg_t, p["weight_hh"], dstate[0])
        dstate[0] += direct

    def hidden_grads(self):
        return self.bufs["dhg"]


KERNELS = {"RNN": RNNKernel, "LSTM": LSTMKernel, "GRU": GRUKernel}
