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

import numpy as np

from . import _rnn_fast
from .module import saved, scratch
from .cell_steps import (
    blocks,
    gru_backward,
    gru_forward,
    lstm_activate,
    lstm_backward,
    lstm_forward,
    rnn_backward,
    rnn_forward,
)


class Kernel(_rnn_fast.BatchMajor):
    """Forward/backward over time of one layer in one direction (subclasses: the cells).

    Its buffers are declared below (``saved``: kept by the forward for the backward;
    ``scratch``: reused); the layer module keeps its kernels as declared scratch, so
    ``clear_state()`` drops them with every buffer.
    """

    gates = 1
    parts = 1  # arrays in the state: 1 (h) or 2 (h, c)

    x = saved("the layer's input, feature-major (F, T, N) (the module's buffer)")
    g = saved("gate activations of every step (T, G*H, N)")
    states = saved("[h (, c)]: the states of every step, each (T+1, H, N)")
    proj = scratch("input projection of all steps W_ih X + b, (G*H, T, N); on the compiled path "
                   "(T, N, G*H), and it becomes the gate activations (g is then the same array)")
    compiled = saved("True when the last forward ran the compiled loop (:mod:`ember.nn._rnn_fast`)")
    bias = scratch("b_ih + b_hh (G*H,)")
    tmp = scratch("elementwise scratch (H, N)")
    dy = scratch("dE/d(outputs) of this direction, time-major (T, H, N)")
    dg = scratch("dE/d(gate pre-activations) of every step (T, G*H, N)")
    dg_f = scratch("the same, feature-major (G*H, T, N), for the products over all steps")
    dstate = scratch("[dE/dh (, dE/dc)] flowing back through time, each (H, N)")
    held = scratch("dstate of a padded step, passed through unchanged")
    h_prev = scratch("the previous hidden state of every step, feature-major (H, T, N)")

    def __init__(self, backend, hidden_size, reverse):
        self.backend, self.hs, self.reverse = backend, hidden_size, reverse

    def fit(self, buffer, shape):
        """``buffer`` when it has ``shape`` (and the backend's dtype), else a new array."""
        return self.backend.ensure(buffer, shape)

    def fits(self, buffers, shapes):
        return [self.fit(b, s) for b, s in zip(buffers or [None] * len(shapes), shapes)]

    def order(self, t_len):
        return range(t_len - 1, -1, -1) if self.reverse else range(t_len)

    def slots(self, t):
        """(index of the previous state, index of the new state) in S for step t."""
        return (t + 1, t) if self.reverse else (t, t + 1)

    def gemm(self, a, b, out, beta=0.0, trans_b=False, alpha=1.0):
        """``out = alpha a op(b) + beta out`` through the backend (which accumulates in place
        with BLAS, or through its own work array). Next to the compiled loops, the product is
        split over two threads the same way (:func:`ember.nn._rnn_fast.split_gemm`)."""
        if self.compiled and _rnn_fast.split_gemm(self.backend, a, b.T if trans_b else b, out, alpha, beta):
            return
        self.backend.gemm(a, b, out, trans_b=trans_b, alpha=alpha, beta=beta)

    # ------------------------------------------------------------------ fprop
    def forward(self, x, p, state0, keep):
        """x (F, T, N); p = dict of weights; state0 = [h0 (, c0)], each (H, N) (views are
        fine); keep (T, 1, N) bool, true at padded steps (state held), or None.
        Returns (outputs (T, H, N), final states [(H, N), ...])."""
        f, t_len, n = x.shape
        hs, gh = self.hs, self.gates * self.hs
        was_compiled, self.compiled = self.compiled, self.compiled_ok(p, x)
        self.x = x
        start, end = (t_len, 0) if self.reverse else (0, t_len)
        if self.compiled:
            return self.forward_batch_major(x, p, state0, keep, start, end)
        proj = self.proj = self.fit(None if was_compiled else self.proj, (gh, t_len, n))
        bias = self.input_bias(p)
        if bias is not None:
            proj[...] = bias.reshape(gh, 1, 1)  # then accumulate the product onto it in one pass
        self.gemm(p["weight_ih"], x.reshape(f, t_len * n), proj.reshape(gh, t_len * n), beta=0.0 if bias is None else 1.0)
        states = self.states = self.fits(None if was_compiled else self.states, [(t_len + 1, hs, n)] * self.parts)
        for s, s0 in zip(states, state0):
            s[start] = s0
        out = states[0][:-1] if self.reverse else states[0][1:]
        self.g = self.fit(None if was_compiled else self.g, (t_len, gh, n))
        self.tmp = self.fit(self.tmp, (hs, n))
        self.prepare(t_len, n)
        xp = self.backend.xp
        for t in self.order(t_len):
            prev, new = self.slots(t)
            g_t = self.g[t]
            g_t[...] = proj[:, t]
            self.step(t, prev, new, p, g_t)
            if keep is not None:
                for s in states:
                    xp.copyto(s[new], s[prev], where=keep[t])
        return out, [s[end] for s in states]

    def compiled_ok(self, p, x):
        """Whether the compiled loop can run these arrays (subclasses that have one say so)."""
        return False

    def forward_compiled(self, p, keep):
        """The time loop of :meth:`forward`, compiled (:mod:`ember.nn._rnn_fast`)."""
        raise NotImplementedError

    def backward_compiled(self, p, keep):
        """The reverse loop of :meth:`backward`, compiled; fills dg (and the GRU's dhg), batch-major."""
        raise NotImplementedError

    def prepare(self, t_len, n):
        """Fit the subclass's own forward buffers."""

    def input_bias(self, p):
        """The bias added to the input projection (b_ih + b_hh; the GRU keeps b_hh apart)."""
        if p["bias_ih"] is None:
            return None
        bias = self.bias = self.fit(self.bias, p["bias_ih"].shape)
        self.backend.xp.add(p["bias_ih"], p["bias_hh"], out=bias)
        return bias

    # ------------------------------------------------------------------ bprop
    def dy_buffer(self):
        """dE/d(outputs) of this direction (T, H, N), for the layer to fill before :meth:`backward`."""
        t_len, n = self.x.shape[1:]
        if self.compiled:  # batch-major (T, N, H), seen as (T, H, N)
            self.dy = self.fit(self.dy, (t_len, n, self.hs))
            return self.dy.transpose(0, 2, 1)
        self.dy = self.fit(self.dy, (t_len, self.hs, n))
        return self.dy

    def backward(self, p, mask, keep):
        """From :meth:`dy_buffer` (zero at padded steps): the gate gradients of every step,
        for :meth:`grad_input` / :meth:`acc`; returns dE/d(state0) as [(H, N), ...]."""
        xp = self.backend.xp
        t_len, n = self.x.shape[1:]
        hs, dy_tm = self.hs, self.dy
        if self.compiled:  # the forward ran compiled: batch-major gates, so dg and dstate too
            self.dg = self.fit(self.dg, (t_len, n, self.gates * hs))
            dstate = self.dstate = self.fits(self.dstate, [(n, hs)] * self.parts)
            self.backward_compiled(p, keep)
            return [d.T for d in dstate]
        dstate = self.dstate = self.fits(self.dstate, [(hs, n)] * self.parts)
        self.dg = self.fit(self.dg if self.dg is not None and self.dg.flags.c_contiguous else None,
                           (t_len, self.gates * hs, n))
        if keep is not None:
            self.held = self.fits(self.held, [(hs, n)] * self.parts)
        self.prepare_back(t_len, n)
        for d in dstate:
            d.fill(0)
        for t in reversed(self.order(t_len)):
            prev, new = self.slots(t)
            dstate[0] += dy_tm[t]
            if keep is not None:
                for a, b in zip(self.held, dstate):
                    a[...] = b
            # dE/d(gates) of step t, then dstate becomes dE/d(state before step t)
            self.step_back(t, prev, new, p, dstate, mask)
            if keep is not None:  # held steps pass their gradient straight to the previous state
                for a, b in zip(dstate, self.held):
                    xp.copyto(a, b, where=keep[t])
        # feature-major copies for the products over all steps
        self.dg_f = self.fit(self.dg_f, (self.gates * hs, t_len, n))
        self.dg_f[...] = self.dg.transpose(1, 0, 2)
        self.finish_back()
        return dstate

    def prepare_back(self, t_len, n):
        """Fit the subclass's own backward buffers."""

    def finish_back(self):
        """Subclass work after the reverse loop."""

    def grad_input(self, p, dx, accumulate):
        """dx (F, T, N) = (or +=) W_ih^T dE/d(gates) over all steps in one GEMM."""
        f, t_len, n = dx.shape
        dg = self.dg.reshape(t_len * n, -1).T if self.compiled else self.dg_f.reshape(-1, t_len * n)
        self.gemm(p["weight_ih"].T, dg, dx.reshape(f, t_len * n), beta=1.0 if accumulate else 0.0)

    def hidden_grads(self):
        """dE/d(W_hh h + b_hh) of all steps, (G*H, T, N) (the compiled path: (T, N, G*H)):
        the gate gradients, except for the GRU."""
        return self.dg if self.compiled else self.dg_f

    def acc(self, p, g, scale):
        """Accumulate scale * dE/dW_ih, dE/dW_hh, dE/db_ih, dE/db_hh (one GEMM / sum each)."""
        xp = self.backend.xp
        t_len, n = self.x.shape[1:]
        tn, h = t_len * n, self.states[0]
        h_prev = h[1:] if self.reverse else h[:-1]
        if self.compiled:  # batch-major: (T*N, G*H) gradients, (T*N, H) states, no copy
            pairs = (("weight_ih", self.dg.reshape(tn, -1).T, self.x.reshape(-1, tn).T),
                     ("weight_hh", self.hidden_grads().reshape(tn, -1).T, h_prev.reshape(tn, -1)))
            sums = ()  # summed by the compiled loop (db)
            if g["bias_ih"] is not None:
                db, total = self.db, self.backend.work("rnn bias sum", g["bias_ih"].shape)
                for key, part in (("bias_ih", 0), ("bias_hh", -1)):  # [half, (dg, dhg of the GRU)]
                    xp.add(db[0, part], db[1, part], out=total)
                    if scale != 1:
                        total *= scale
                    g[key] += total
        else:
            self.h_prev = self.fit(self.h_prev, (self.hs, t_len, n))
            self.h_prev[...] = h_prev.transpose(1, 0, 2)
            pairs = (("weight_ih", self.dg_f.reshape(-1, tn), self.x.reshape(-1, tn).T),
                     ("weight_hh", self.hidden_grads().reshape(-1, tn), self.h_prev.reshape(-1, tn).T))
            sums = (("bias_ih", self.dg_f.reshape(-1, tn), 1), ("bias_hh", self.hidden_grads().reshape(-1, tn), 1))
        if self.compiled:  # both products in one hand-off to the helper thread, by rows of dW
            gemm = self.backend.gemm

            def rows(lo, hi):
                for key, grads, inputs in pairs:
                    gemm(grads[lo:hi], inputs, g[key][lo:hi], alpha=scale, beta=1.0)

            _rnn_fast.split_rows(rows, self.gates * self.hs)
        else:
            for key, grads, inputs in pairs:
                self.gemm(grads, inputs, g[key], alpha=scale, beta=1.0)
        if g["bias_ih"] is not None:
            for key, grads, axis in sums:  # the NumPy path
                step = self.backend.work("rnn bias sum", g[key].shape)
                xp.sum(grads, axis=axis, out=step)
                if scale != 1:
                    step *= scale
                g[key] += step


class RNNKernel(Kernel):
    """Elman: h_t = act(XP_t + W_hh h_{t-1})."""

    def __init__(self, backend, hidden_size, reverse, relu=False):
        super().__init__(backend, hidden_size, reverse)
        self.relu = relu

    def step(self, t, prev, new, p, g_t):
        s = self.states[0]
        self.gemm(p["weight_hh"], s[prev], g_t, beta=1.0)
        rnn_forward(self.backend.xp, g_t, s[new], self.relu)

    def step_back(self, t, prev, new, p, dstate, mask):
        dg_t = self.dg[t]
        rnn_backward(self.backend.xp, self.states[0][new], dstate[0], dg_t, self.relu)
        if mask is not None:
            dg_t *= mask[t]
        self.gemm(p["weight_hh"].T, dg_t, dstate[0])


class LSTMKernel(Kernel):
    """LSTM: G_t = XP_t + W_hh h_{t-1} (one GEMM for the four gates)."""

    gates, parts = 4, 2
    tanh_c = saved("tanh(c_t) of every step (T, H, N)")

    def prepare(self, t_len, n):
        self.tanh_c = self.fit(self.tanh_c, (t_len, self.hs, n))

    def compiled_ok(self, p, x):
        return _rnn_fast.usable(x, p["weight_hh"]) and p["weight_hh"].flags.c_contiguous

    def forward_compiled(self, p, keep):
        t_len, n = self.x.shape[1:]
        self.tanh_c = self.fit(self.tanh_c, (t_len, n, self.hs))
        h, c = self.states
        keep_u8, masked = self.keep_bytes(keep, t_len, n)
        bias = self.input_bias(p)
        _rnn_fast.run(_rnn_fast.kernel("lstm_forward"), (self.proj, self.zeros() if bias is None else bias, self.w_t(p),
                                               h, c, self.tanh_c, keep_u8, masked, self.reverse), n)  # fmt: skip

    def backward_compiled(self, p, keep):
        t_len, n = self.x.shape[1:]
        keep_u8, masked = self.keep_bytes(keep, t_len, n)
        dh, dc = self.dstate
        db = self.bias_sums(1).reshape(2, -1)
        _rnn_fast.run(_rnn_fast.kernel("lstm_backward"), (self.proj, p["weight_hh"], self.states[1], self.tanh_c, self.dy,
                                                self.dg, db, dh, dc, keep_u8, masked, self.reverse), n)  # fmt: skip

    def step(self, t, prev, new, p, g_t):
        hs = self.hs
        h, c = self.states
        self.gemm(p["weight_hh"], h[prev], g_t, beta=1.0)
        i, f, g, o = blocks(g_t, 4, 0)
        lstm_activate(self.backend.xp, (g_t[: 2 * hs], o), g)
        lstm_forward(self.backend.xp, i, f, g, o, c[prev], c[new], self.tanh_c[t], h[new], self.tmp)

    def step_back(self, t, prev, new, p, dstate, mask):
        dg_t = self.dg[t]
        lstm_backward(self.backend.xp, blocks(self.g[t], 4, 0), self.states[1][prev], self.tanh_c[t], dstate[0],
                      dstate[1], blocks(dg_t, 4, 0), self.tmp)
        if mask is not None:
            dg_t *= mask[t]
        self.gemm(p["weight_hh"].T, dg_t, dstate[0])


class GRUKernel(Kernel):
    """GRU: XP_t = W_ih x + b_ih; HG_t = W_hh h_{t-1} + b_hh (its n block is kept for bprop)."""

    gates = 3
    hg = saved("W_hh h_{t-1} + b_hh of every step (T, 3H, N)")
    dhg = scratch("dE/d(W_hh h_{t-1} + b_hh) of every step (T, 3H, N)")
    dhg_f = scratch("the same, feature-major (3H, T, N)")
    direct = scratch("the part of dE/dh_{t-1} that skips the products, z * dE/dh_t (H, N)")

    def input_bias(self, p):
        return p["bias_ih"]

    def prepare(self, t_len, n):
        self.hg = self.fit(self.hg if self.hg is not None and self.hg.flags.c_contiguous else None,
                           (t_len, 3 * self.hs, n))

    def compiled_ok(self, p, x):
        return _rnn_fast.usable(x, p["weight_hh"]) and p["weight_hh"].flags.c_contiguous

    def forward_compiled(self, p, keep):  # hg and dhg batch-major (T, N, 3H) here
        t_len, n = self.x.shape[1:]
        self.hg = self.fit(self.hg, (t_len, n, 3 * self.hs))
        b_ih, b_hh = (self.zeros() if b is None else b for b in (p["bias_ih"], p["bias_hh"]))
        keep_u8, masked = self.keep_bytes(keep, t_len, n)
        _rnn_fast.run(_rnn_fast.kernel("gru_forward"), (self.proj, b_ih, self.hg, self.w_t(p), b_hh, self.states[0],
                                              keep_u8, masked, self.reverse), n)  # fmt: skip

    def backward_compiled(self, p, keep):
        t_len, n = self.x.shape[1:]
        self.dhg = self.fit(self.dhg, self.dg.shape)
        keep_u8, masked = self.keep_bytes(keep, t_len, n)
        _rnn_fast.run(_rnn_fast.kernel("gru_backward"), (self.proj, self.hg, p["weight_hh"], self.states[0], self.dy,
                                               self.dg, self.dhg, self.bias_sums(2), self.dstate[0], keep_u8, masked,
                                               self.reverse), n)  # fmt: skip

    def step(self, t, prev, new, p, g_t):
        hs = self.hs
        hg = self.hg[t]
        s = self.states[0]
        if p["bias_hh"] is not None:
            hg[...] = p["bias_hh"].reshape(-1, 1)
        self.gemm(p["weight_hh"], s[prev], hg, beta=0.0 if p["bias_hh"] is None else 1.0)
        g_t[: 2 * hs] += hg[: 2 * hs]
        r, z, n = blocks(g_t, 3, 0)
        gru_forward(self.backend.xp, r, z, n, hg[2 * hs :], s[prev], s[new])

    def prepare_back(self, t_len, n):
        self.dhg = self.fit(self.dhg if self.dhg is not None and self.dhg.flags.c_contiguous else None,
                            (t_len, 3 * self.hs, n))
        self.direct = self.fit(self.direct, (self.hs, n))

    def finish_back(self):
        self.dhg_f = self.fit(self.dhg_f, self.dg_f.shape)
        self.dhg_f[...] = self.dhg.transpose(1, 0, 2)

    def step_back(self, t, prev, new, p, dstate, mask):
        hs = self.hs
        dg_t, dhg_t, direct = self.dg[t], self.dhg[t], self.direct
        gru_backward(self.backend.xp, blocks(self.g[t], 3, 0), self.hg[t][2 * hs :], self.states[0][prev], dstate[0],
                     blocks(dg_t, 3, 0), dhg_t[2 * hs :], direct)
        dhg_t[: 2 * hs] = dg_t[: 2 * hs]
        if mask is not None:
            dg_t *= mask[t]
            dhg_t *= mask[t]
        self.gemm(p["weight_hh"].T, dhg_t, dstate[0])
        dstate[0] += direct

    def hidden_grads(self):
        return self.dhg if self.compiled else self.dhg_f


KERNELS = {"RNN": RNNKernel, "LSTM": LSTMKernel, "GRU": GRUKernel}
