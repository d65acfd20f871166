"""The time loops of the fused recurrent layers: one layer, one direction.

Layout. Inside a kernel every per-step matrix is **feature-major**, (features, N): the
gates of step t are ``G[t]`` (G*H, N) and each gate block (rows k*H to (k+1)*H) is a
contiguous (H, N) array, so NumPy's elementwise loops run on contiguous memory (strided
column slices of an (N, 4H) array would make it buffer every operation: slower, and
allocating). Sequences between layers are (features, T, N), so that the products over
all steps are plain matrices (features, T*N).

- forward: the input projection of all T steps is **one GEMM**,
  ``XP = W_ih X + b`` over (F, T*N); each step copies its slice of XP into ``G[t]``,
  adds **one GEMM** for all gates, ``W_hh h_{t-1}`` (BLAS accumulates in place), and runs
  the cell's elementwise math (:mod:`ember.nn.cells`) in place.
- backward: the reverse loop computes dE/d(gates) of every step (one GEMM per step for
  dE/dh_{t-1} = W_hh^T dG_t); then dE/dX, dE/dW_ih and dE/dW_hh are **one GEMM each** over
  all steps, and the bias gradients one row sum.

States are kept in ``S`` (T+1, H, N) indexed by time: the forward direction reads
``S[t]`` and writes ``S[t+1]``; the reverse direction reads ``S[t+1]`` and writes
``S[t]``. All buffers persist across calls: a warm step allocates nothing.
"""

from __future__ import annotations

from .. import _blas
from .cells import (
    blocks,
    gru_backward,
    gru_forward,
    lstm_activate,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)


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
        """(index of the previous state, index of the new state) in S for step t."""
        return (t + 1, t) if self.reverse else (t, t + 1)

    def gemm(self, a, b, out, beta=0.0, name="scratch"):
        scratch = self.buf(name, out.shape) if beta and self.fallback else None
        self.backend.gemm(a, b, out, beta=beta, scratch=scratch)

    # ------------------------------------------------------------------ fprop
    def forward(self, x, p, state0, keep):
        """x (F, T, N); p = dict of weights; state0 = [h0 (, c0)], each (H, N) (views are
        fine); keep (T, 1, N) bool, true at padded steps (state held), or None.
        Returns (outputs (T, H, N), final states [(H, N), ...])."""
        f, t_len, n = x.shape
        hs, gh = self.hs, self.gates * self.hs
        xp_all = self.buf("xp", (gh, t_len, n))
        bias = self.input_bias(p)
        if bias is not None:
            xp_all[...] = bias.reshape(gh, 1, 1)  # then accumulate the product onto it in one pass
        self.gemm(p["weight_ih"], x.reshape(f, t_len * n), xp_all.reshape(gh, t_len * n), beta=0.0 if bias is None else 1.0)
        self.g = self.buf("g", (t_len, gh, n))
        states = [self.buf(f"s{i}", (t_len + 1, hs, n)) for i in range(self.parts)]
        start = t_len if self.reverse else 0
        for s, s0 in zip(states, state0):
            s[start] = s0
        xp = self.backend.xp
        for t in self.order(t_len):
            prev, new = self.slots(t)
            g_t = self.g[t]
            g_t[...] = xp_all[:, t]
            self.step(t, prev, new, p, g_t)
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

    # ------------------------------------------------------------------ bprop
    def backward(self, dy_tm, p, mask, keep):
        """dy_tm (T, H, N): dE/d(outputs), zero at padded steps. Fills the gate gradients for
        :meth:`grad_input` / :meth:`acc` and returns dE/d(state0) as [(H, N), ...]."""
        xp = self.backend.xp
        t_len, n, hs = self.t_len, self.x.shape[2], self.hs
        self.dg = self.buf("dg", (t_len, self.gates * hs, n))
        dstate = [self.buf(f"d{i}", (hs, n)) for i in range(self.parts)]
        held = [self.buf(f"held{i}", (hs, n)) for i in range(self.parts)] if keep is not None else None
        for d in dstate:
            d.fill(0)
        for t in reversed(self.order(t_len)):
            prev, new = self.slots(t)
            dstate[0] += dy_tm[t]
            if keep is not None:
                for a, b in zip(held, dstate):
                    a[...] = b
            # dE/d(gates) of step t, then dstate becomes dE/d(state before step t)
            self.step_back(t, prev, new, p, dstate, mask)
            if keep is not None:  # held steps pass their gradient straight to the previous state
                for a, b in zip(dstate, held):
                    xp.copyto(a, b, where=keep[t])
        # feature-major copies for the products over all steps
        self.dg_f = self.buf("dg_f", (self.gates * hs, t_len, n))
        self.dg_f[...] = self.dg.transpose(1, 0, 2)
        return dstate

    def grad_input(self, p, dx, accumulate):
        """dx (F, T, N) = (or +=) W_ih^T dE/d(gates) over all steps in one GEMM."""
        f, t_len, n = dx.shape
        self.gemm(p["weight_ih"].T, self.dg_f.reshape(-1, t_len * n), dx.reshape(f, t_len * n),
                  beta=1.0 if accumulate else 0.0, name="dx_scratch")

    def hidden_grads(self):
        """dE/d(W_hh h + b_hh) of all steps, feature-major (the gate gradients, except for the GRU)."""
        return self.dg_f

    def acc(self, p, g, scale):
        """Accumulate scale * dE/dW_ih, dE/dW_hh, dE/db_ih, dE/db_hh (one GEMM / sum each)."""
        xp = self.backend.xp
        t_len, n = self.x.shape[1:]
        hs = self.hs
        h_prev = self.buf("h_prev", (hs, t_len, n))
        h_prev[...] = (self.bufs["s0"][1:] if self.reverse else self.bufs["s0"][:-1]).transpose(1, 0, 2)
        for key, grads, inputs in (("weight_ih", self.dg_f, self.x), ("weight_hh", self.hidden_grads(), h_prev)):
            target = g[key]
            scratch = self.buf("scratch_" + key, target.shape) if self.fallback else None
            self.backend.gemm(grads.reshape(-1, t_len * n), inputs.reshape(-1, t_len * n), target, trans_b=True,
                              alpha=scale, beta=1.0, scratch=scratch)
        if g["bias_ih"] is not None:
            for key, grads in (("bias_ih", self.dg_f), ("bias_hh", self.hidden_grads())):
                step = self.buf("scratch_" + key, g[key].shape)
                xp.sum(grads.reshape(-1, t_len * n), axis=1, out=step)
                if scale != 1:
                    step *= scale
                g[key] += step


class RNNKernel(Kernel):
    """Elman: h_t = act(XP_t + W_hh h_{t-1})."""

    def __init__(self, backend, hidden_size, reverse, relu=False):
        super().__init__(backend, hidden_size, reverse)
        self.relu = relu

    def step(self, t, prev, new, p, g_t):
        s = self.bufs["s0"]
        self.gemm(p["weight_hh"], s[prev], g_t, beta=1.0)
        rnn_forward(self.backend.xp, g_t, s[new], self.relu)

    def step_back(self, t, prev, new, p, dstate, mask):
        dg_t = self.dg[t]
        rnn_backward(self.backend.xp, self.bufs["s0"][new], dstate[0], dg_t, self.relu)
        if mask is not None:
            dg_t *= mask[t]
        self.gemm(p["weight_hh"].T, dg_t, dstate[0])


class LSTMKernel(Kernel):
    """LSTM: G_t = XP_t + W_hh h_{t-1} (one GEMM for the four gates)."""

    gates, parts = 4, 2

    def forward(self, x, p, state0, keep):
        self.buf("tanh_c", (x.shape[1], self.hs, x.shape[2]))
        self.buf("tmp", (self.hs, x.shape[2]))
        return super().forward(x, p, state0, keep)

    def step(self, t, prev, new, p, g_t):
        b, hs = self.bufs, self.hs
        h, c = b["s0"], b["s1"]
        self.gemm(p["weight_hh"], h[prev], g_t, beta=1.0)
        i, f, g, o = blocks(g_t, 4, 0)
        lstm_activate(self.backend.xp, (g_t[: 2 * hs], o), g)
        lstm_forward(self.backend.xp, i, f, g, o, c[prev], c[new], b["tanh_c"][t], h[new], b["tmp"])

    def step_back(self, t, prev, new, p, dstate, mask):
        b = self.bufs
        dg_t = self.dg[t]
        lstm_backward(self.backend.xp, blocks(self.g[t], 4, 0), b["s1"][prev], b["tanh_c"][t], dstate[0], dstate[1],
                      blocks(dg_t, 4, 0), b["tmp"])
        if mask is not None:
            dg_t *= mask[t]
        self.gemm(p["weight_hh"].T, dg_t, dstate[0])


class GRUKernel(Kernel):
    """GRU: XP_t = W_ih x + b_ih; HG_t = W_hh h_{t-1} + b_hh (its n block is kept for bprop)."""

    gates = 3

    def input_bias(self, p):
        return p["bias_ih"]

    def forward(self, x, p, state0, keep):
        t_len, n = x.shape[1:]
        self.buf("hg", (t_len, 3 * self.hs, n))
        return super().forward(x, p, state0, keep)

    def step(self, t, prev, new, p, g_t):
        b, hs = self.bufs, self.hs
        hg = b["hg"][t]
        s = b["s0"]
        if p["bias_hh"] is not None:
            hg[...] = p["bias_hh"].reshape(-1, 1)
        self.gemm(p["weight_hh"], s[prev], hg, beta=0.0 if p["bias_hh"] is None else 1.0)
        g_t[: 2 * hs] += hg[: 2 * hs]
        r, z, n = blocks(g_t, 3, 0)
        gru_forward(self.backend.xp, r, z, n, hg[2 * hs :], s[prev], s[new])

    def backward(self, dy, p, mask, keep):
        t_len, n = self.x.shape[1:]
        self.buf("dhg", (t_len, 3 * self.hs, n))
        self.buf("direct", (self.hs, n))
        dstate = super().backward(dy, p, mask, keep)
        self.dhg_f = self.buf("dhg_f", (3 * self.hs, t_len, n))
        self.dhg_f[...] = self.bufs["dhg"].transpose(1, 0, 2)
        return dstate

    def step_back(self, t, prev, new, p, dstate, mask):
        b, hs = self.bufs, self.hs
        dg_t, dhg_t, direct = self.dg[t], b["dhg"][t], b["direct"]
        gru_backward(self.backend.xp, blocks(self.g[t], 3, 0), b["hg"][t][2 * hs :], b["s0"][prev], dstate[0],
                     blocks(dg_t, 3, 0), dhg_t[2 * hs :], direct)
        dhg_t[: 2 * hs] = dg_t[: 2 * hs]
        if mask is not None:
            dg_t *= mask[t]
            dhg_t *= mask[t]
        self.gemm(p["weight_hh"].T, dhg_t, dstate[0])
        dstate[0] += direct

    def hidden_grads(self):
        return self.dhg_f


KERNELS = {"RNN": RNNKernel, "LSTM": LSTMKernel, "GRU": GRUKernel}
