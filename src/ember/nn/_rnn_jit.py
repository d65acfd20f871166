"""The Numba kernels of :mod:`ember.nn._rnn_fast` (imported by it on first use only, so
``import ember`` never imports Numba). See that module for the design."""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from .. import _fast

from .._blas_jit import dgemm as _dgemm, sgemm as _sgemm  # bound by name: the kernels cache

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

def _gemm(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):  # pragma: no cover - stub
    """C (m, n) = op(A) (m, k) op(B) (k, n) + beta C, row-major, each matrix given as an
    array and an element offset into it (a sub-matrix of a larger buffer) with its leading
    dimension."""

@overload(_gemm)
def _gemm_impl(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    single = a.dtype == types.float32
    blas, real = (_sgemm, np.float32) if single else (_dgemm, np.float64)
    i32, i64 = np.int32, np.int64

    def call(trans_a, trans_b, m, n, k, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
        size = i64(a.itemsize)
        blas(i32(_ROW_MAJOR), i32(trans_a), i32(trans_b), i64(m), i64(n), i64(k), real(1.0),
             i64(a.ctypes.data) + i64(a_off) * size, i64(lda), i64(b.ctypes.data) + i64(b_off) * size, i64(ldb),
             real(beta), i64(c.ctypes.data) + i64(c_off) * size, i64(ldc))  # fmt: skip

    return call

def _tanh(x):  # pragma: no cover - typing stub
    """tanh: rational approximation in float32, exact in float64."""

@overload(_tanh)
def _tanh_impl(x):
    if x == types.float32:

        def fast(x):
            # Eigen's float tanh: odd rational function on [-7.9053, 7.9053], |rel err| < 4e-7
            bound = np.float32(7.90531110763549805)
            x = bound if x > bound else x  # comparisons (not min/max): a NaN stays NaN
            x = -bound if x < -bound else x
            x2 = x * x
            p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
            p = x2 * p + np.float32(-8.60467152213735e-11)
            p = x2 * p + np.float32(5.12229709037114e-08)
            p = x2 * p + np.float32(1.48572235717979e-05)
            p = x2 * p + np.float32(6.37261928875436e-04)
            p = x2 * p + np.float32(4.89352455891786e-03)
            q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
            q = x2 * q + np.float32(2.26843463243900e-03)
            q = x2 * q + np.float32(4.89352518554385e-03)
            return x * p / q

        return fast
    return lambda x: math.tanh(x)

def _sigmoid(x):  # pragma: no cover - typing stub
    """sigma(x) = (1 + tanh(x / 2)) / 2, as the NumPy path computes it."""

@overload(_sigmoid)
def _sigmoid_impl(x):
    half = np.float32(0.5) if x == types.float32 else 0.5

    def sig(x):
        return half + half * _tanh(half * x)

    return sig


# Layout: every per-step array is batch-major, (N, features), so one sequence's row of a
# step is contiguous (gates (T, N, G*H), states (T+1, N, H)): a thread's half of the
# batch is a block of whole rows, the per-step products need no strided access and the
# gate math runs over rows of H elements. The elementwise work of a row is several short
# passes (in L1), each writing one array and reading a few others: LLVM vectorises a loop
# only when its runtime alias checks stay few (the rows are views Numba cannot prove
# distinct); one fused loop over nine arrays ran scalar, 20x slower.


@_fast.kernel()
def transpose(src, dst):  # pragma: no cover - compiled
    """dst (n, m) = src (m, n)^T in 32 x 32 blocks (NumPy's strided copy of a 4 MB W_hh^T
    took 5 ms here, 10x longer)."""
    rows, cols = src.shape
    for i0 in range(0, rows, 32):
        for j0 in range(0, cols, 32):
            for j in range(j0, min(j0 + 32, cols)):
                for i in range(i0, min(i0 + 32, rows)):
                    dst[j, i] = src[i, j]


@_fast.kernel()
def lstm_forward(gates, bias, w_t, h, c, tanh_c, keep, use_keep, reverse, n0, n1):  # pragma: no cover - compiled
    """Rows n0:n1 of one LSTM layer's forward (see the module doc). gates (T, N, 4H):
    W_ih x on entry, the activations [i, f, g, o] on exit; bias (4H,) b_ih + b_hh (zeros
    without bias), added here (no pass over the whole buffer); w_t = W_hh^T (H, 4H) C-contiguous
    (:func:`transpose`: OpenBLAS runs h W_hh^T up to 9% faster from it than from W_hh);
    h, c (T+1, N, H) (slot 0 or T holds the initial state); tanh_c (T, N, H) out;
    keep (T, N) uint8, nonzero at padded steps (state held), read when use_keep."""
    t_len, n, gh = gates.shape
    hs = h.shape[2]
    for step in range(t_len):
        t = t_len - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        new = t if reverse else t + 1
        # gates[t, rows] += h_prev[rows] W_hh^T
        _gemm(_NO_TRANS, _NO_TRANS, n1 - n0, gh, hs, h, (prev * n + n0) * hs, hs, w_t, 0, gh, 1.0, gates,
              (t * n + n0) * gh, gh)  # fmt: skip
        for r in range(n0, n1):
            g, cp, cn, hn, tc = gates[t, r], c[prev, r], c[new, r], h[new, r], tanh_c[t, r]
            gi, gf, gg, go = g[:hs], g[hs : 2 * hs], g[2 * hs : 3 * hs], g[3 * hs :]
            bi, bg, bo = bias[: 2 * hs], bias[2 * hs : 3 * hs], bias[3 * hs :]
            for k in range(2 * hs):  # loops from 0: LLVM vectorises them (no wraparound check)
                g[k] = _sigmoid(g[k] + bi[k])
            for k in range(hs):
                gg[k] = _tanh(gg[k] + bg[k])
            for k in range(hs):
                go[k] = _sigmoid(go[k] + bo[k])
            for k in range(hs):
                cn[k] = gf[k] * cp[k] + gi[k] * gg[k]
            for k in range(hs):
                tc[k] = _tanh(cn[k])
            for k in range(hs):
                hn[k] = go[k] * tc[k]
            if use_keep and keep[t, r]:
                cn[:] = cp
                hn[:] = h[prev, r]


@_fast.kernel()
def lstm_backward(gates, w_hh, c, tanh_c, dy, dg, db, dh, dc, keep, use_keep, reverse, n0, n1):  # pragma: no cover
    """Rows n0:n1 of one LSTM layer's BPTT. gates (T, N, 4H) activations; c (T+1, N, H);
    tanh_c (T, N, H); dy (T, N, H) dE/d(outputs); dg (T, N, 4H) out: dE/d(gate
    pre-activations) (zero at padded steps); db (2, 4H) += the sum of dg over these rows
    and all steps (row 0 for the call with n0 = 0, row 1 for the other half: the bias
    gradient without another pass over dg); dh, dc (N, H) out: dE/d(initial state)."""
    t_len, n, gh = gates.shape
    hs = dh.shape[1]
    acc = db[0 if n0 == 0 else 1]
    dh[n0:n1] = 0
    dc[n0:n1] = 0
    for step in range(t_len):
        t = step if reverse else t_len - 1 - step
        prev = t + 1 if reverse else t
        for r in range(n0, n1):
            g, d, dhr, dcr, dyt = gates[t, r], dg[t, r], dh[r], dc[r], dy[t, r]
            for k in range(hs):
                dhr[k] += dyt[k]
            if use_keep and keep[t, r]:  # padded: dh and dc pass unchanged, no gate gradient
                d[:] = 0
                continue
            cp, tc = c[prev, r], tanh_c[t, r]
            gi, gf, gg, go = g[:hs], g[hs : 2 * hs], g[2 * hs : 3 * hs], g[3 * hs :]
            di, df, dgg, do = d[:hs], d[hs : 2 * hs], d[2 * hs : 3 * hs], d[3 * hs :]
            for k in range(hs):  # do = dh tanh(c) o (1 - o)
                do[k] = dhr[k] * tc[k] * (go[k] * (1 - go[k]))
            for k in range(hs):  # dc_total = dc + dh o (1 - tanh(c)^2)
                dcr[k] += dhr[k] * go[k] * (1 - tc[k] * tc[k])
            for k in range(hs):
                di[k] = dcr[k] * gg[k] * (gi[k] * (1 - gi[k]))
            for k in range(hs):
                df[k] = dcr[k] * cp[k] * (gf[k] * (1 - gf[k]))
            for k in range(hs):
                dgg[k] = dcr[k] * gi[k] * (1 - gg[k] * gg[k])
            for k in range(hs):
                dcr[k] *= gf[k]
            dhr[:] = 0
            for k in range(gh):
                acc[k] += d[k]
        # dh_{t-1}[rows] (+)= dg[t, rows] W_hh (zero, or held at padded rows, before the product)
        _gemm(_NO_TRANS, _NO_TRANS, n1 - n0, hs, gh, dg, (t * n + n0) * gh, gh, w_hh, 0, hs, 1.0, dh, n0 * hs, hs)


@_fast.kernel()
def gru_forward(gates, b_ih, hg, w_t, b_hh, h, keep, use_keep, reverse, n0, n1):  # pragma: no cover - compiled
    """Rows n0:n1 of one GRU layer's forward. gates (T, N, 3H): W_ih x on entry (b_ih is
    added here), the activations [r, z, n] on exit; hg (T, N, 3H) out: W_hh h_{t-1} + b_hh
    (its n block feeds the backward); b_ih, b_hh (3H,) (zeros without bias); w_t = W_hh^T
    (H, 3H) C-contiguous; h (T+1, N, H)."""
    t_len, n, gh = gates.shape
    hs = h.shape[2]
    for step in range(t_len):
        t = t_len - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        new = t if reverse else t + 1
        for r in range(n0, n1):  # hg = b_hh, then += h_prev W_hh^T
            hg[t, r] = b_hh
        _gemm(_NO_TRANS, _NO_TRANS, n1 - n0, gh, hs, h, (prev * n + n0) * hs, hs, w_t, 0, gh, 1.0, hg,
              (t * n + n0) * gh, gh)  # fmt: skip
        for r in range(n0, n1):
            g, q, hp, hn = gates[t, r], hg[t, r], h[prev, r], h[new, r]
            for k in range(2 * hs):
                g[k] = _sigmoid(g[k] + b_ih[k] + q[k])
            gr, gz, gn, qn, bn = g[:hs], g[hs : 2 * hs], g[2 * hs :], q[2 * hs :], b_ih[2 * hs :]
            for k in range(hs):
                gn[k] = _tanh(gn[k] + bn[k] + gr[k] * qn[k])
            for k in range(hs):
                hn[k] = gn[k] + gz[k] * (hp[k] - gn[k])
            if use_keep and keep[t, r]:
                hn[:] = hp


@_fast.kernel()
def gru_backward(gates, hg, w_hh, h, dy, dg, dhg, db, dh, keep, use_keep, reverse, n0, n1):  # pragma: no cover
    """Rows n0:n1 of one GRU layer's BPTT. gates (T, N, 3H) activations [r, z, n];
    hg (T, N, 3H) from the forward; h (T+1, N, H); dy (T, N, H); out: dg (T, N, 3H)
    dE/d(W_ih x + b_ih), dhg (T, N, 3H) dE/d(W_hh h + b_hh), db (2, 2, 3H) += the sums of
    dg (db[., 0]) and dhg (db[., 1]) over these rows (first index as in :func:`lstm_backward`),
    dh (N, H) dE/dh_0."""
    t_len, n, gh = gates.shape
    hs = dh.shape[1]
    acc_i, acc_h = db[0 if n0 == 0 else 1, 0], db[0 if n0 == 0 else 1, 1]
    dh[n0:n1] = 0
    for step in range(t_len):
        t = step if reverse else t_len - 1 - step
        prev = t + 1 if reverse else t
        for r in range(n0, n1):
            d, e, dhr, dyt = dg[t, r], dhg[t, r], dh[r], dy[t, r]
            for k in range(hs):
                dhr[k] += dyt[k]
            if use_keep and keep[t, r]:  # padded: no gate gradient, dh passes unchanged
                d[:] = 0
                e[:] = 0
                continue
            g, q, hp = gates[t, r], hg[t, r], h[prev, r]
            gr, gz, gn, qn = g[:hs], g[hs : 2 * hs], g[2 * hs :], q[2 * hs :]
            dr, dz, dn, en = d[:hs], d[hs : 2 * hs], d[2 * hs :], e[2 * hs :]
            for k in range(hs):  # dn_pre = dh (1 - z) (1 - n^2)
                dn[k] = dhr[k] * (1 - gz[k]) * (1 - gn[k] * gn[k])
            for k in range(hs):  # dz_pre = dh (h - n) z (1 - z)
                dz[k] = dhr[k] * (hp[k] - gn[k]) * (gz[k] * (1 - gz[k]))
            for k in range(hs):  # dr_pre = dn_pre hg_n r (1 - r)
                dr[k] = dn[k] * qn[k] * (gr[k] * (1 - gr[k]))
            for k in range(hs):
                en[k] = dn[k] * gr[k]
            e[: 2 * hs] = d[: 2 * hs]
            for k in range(hs):
                dhr[k] *= gz[k]  # the part of dh_{t-1} that skips the product
            for k in range(gh):
                acc_i[k] += d[k]
            for k in range(gh):
                acc_h[k] += e[k]
        # dh_{t-1}[rows] += dE/d(W_hh h + b_hh)[t, rows] W_hh
        _gemm(_NO_TRANS, _NO_TRANS, n1 - n0, hs, gh, dhg, (t * n + n0) * gh, gh, w_hh, 0, hs, 1.0, dh, n0 * hs, hs)
