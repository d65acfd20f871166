"""The Numba kernels of :mod:`ember.nn._rnn_fast` (imported by it on first use only, so
``import ember`` never imports Numba). See that module for the design."""

from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from .. import _fast

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_SGEMM, _DGEMM = "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"  # bound by name: the kernels cache


def _blas_sig(real):
    i64, i32 = types.int64, types.intc
    return types.void(i32, i32, i32, i64, i64, i64, real, i64, i64, i64, i64, real, i64, i64)

_sgemm = types.ExternalFunction(_SGEMM, _blas_sig(types.float32))
_dgemm = types.ExternalFunction(_DGEMM, _blas_sig(types.float64))

def _gemm(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):  # pragma: no cover - stub
    """C (m, n) += op(A) (m, k) B (k, n), row-major, each matrix given as an array and
    an element offset into it (a sub-matrix of a larger buffer) with its leading dimension."""

@overload(_gemm)
def _gemm_impl(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
    single = a.dtype == types.float32
    blas, one = (_sgemm, np.float32(1.0)) if single else (_dgemm, 1.0)
    i32, i64 = np.int32, np.int64

    def call(trans_a, m, n, k, a, a_off, lda, b, b_off, ldb, c, c_off, ldc):
        size = i64(a.itemsize)
        blas(i32(_ROW_MAJOR), i32(trans_a), i32(_NO_TRANS), i64(m), i64(n), i64(k), one,
             i64(a.ctypes.data) + i64(a_off) * size, i64(lda), i64(b.ctypes.data) + i64(b_off) * size, i64(ldb),
             one, i64(c.ctypes.data) + i64(c_off) * size, i64(ldc))  # fmt: skip

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

# The elementwise work of a step runs as several short passes over one row of N columns
# (in L1), each writing one array and reading at most three others: LLVM vectorises a
# loop only when its runtime alias checks stay few (the rows are views Numba cannot prove
# distinct); one fused loop over nine arrays ran scalar, 20x slower.


@_fast.kernel()
def lstm_forward(gates, w_hh, h, c, tanh_c, keep, use_keep, reverse, n0, n1):  # pragma: no cover - compiled
    """Columns n0:n1 of one LSTM layer's forward (see the module doc). gates (4H, T, N):
    W_ih x + b on entry, the activations [i, f, g, o] on exit; w_hh (4H, H) C-contiguous;
    h, c (T+1, H, N) (slot 0 or T holds the initial state); tanh_c (T, H, N) out;
    keep (T, N) uint8, nonzero at padded steps (state held), read when use_keep."""
    gh, t_len, n = gates.shape
    hs = h.shape[1]
    for step in range(t_len):
        t = t_len - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        new = t if reverse else t + 1
        _gemm(_NO_TRANS, gh, n1 - n0, hs, w_hh, 0, hs, h, prev * hs * n + n0, n, gates, t * n + n0, t_len * n)
        for j in range(hs):
            gi, gf = gates[j, t, n0:n1], gates[hs + j, t, n0:n1]
            gg, go = gates[2 * hs + j, t, n0:n1], gates[3 * hs + j, t, n0:n1]
            cp, cn, hn, tc = c[prev, j, n0:n1], c[new, j, n0:n1], h[new, j, n0:n1], tanh_c[t, j, n0:n1]
            m = n1 - n0
            for k in range(m):
                gi[k] = _sigmoid(gi[k])
            for k in range(m):
                gf[k] = _sigmoid(gf[k])
            for k in range(m):
                gg[k] = _tanh(gg[k])
            for k in range(m):
                go[k] = _sigmoid(go[k])
            for k in range(m):
                cn[k] = gf[k] * cp[k] + gi[k] * gg[k]
            for k in range(m):
                tc[k] = _tanh(cn[k])
            for k in range(m):
                hn[k] = go[k] * tc[k]
            if use_keep:
                hp = h[prev, j, n0:n1]
                for k in range(m):
                    if keep[t, n0 + k]:
                        cn[k] = cp[k]
                        hn[k] = hp[k]


@_fast.kernel()
def lstm_backward(gates, w_hh, c, tanh_c, dy, dg, dh, dc, keep, use_keep, reverse, n0, n1):  # pragma: no cover
    """Columns n0:n1 of one LSTM layer's BPTT. gates (4H, T, N) activations; c (T+1, H, N);
    tanh_c (T, H, N); dy (T, H, N) dE/d(outputs); dg (4H, T, N) out: dE/d(gate
    pre-activations) (zero at padded steps); dh, dc (H, N) out: dE/d(initial state)."""
    gh, t_len, n = gates.shape
    hs = dh.shape[0]
    m = n1 - n0
    dh[:, n0:n1] = 0
    dc[:, n0:n1] = 0
    for step in range(t_len):
        t = step if reverse else t_len - 1 - step
        prev = t + 1 if reverse else t
        for j in range(hs):
            gi, gf = gates[j, t, n0:n1], gates[hs + j, t, n0:n1]
            gg, go = gates[2 * hs + j, t, n0:n1], gates[3 * hs + j, t, n0:n1]
            di, df = dg[j, t, n0:n1], dg[hs + j, t, n0:n1]
            dgg, do = dg[2 * hs + j, t, n0:n1], dg[3 * hs + j, t, n0:n1]
            cp, tc, dyt = c[prev, j, n0:n1], tanh_c[t, j, n0:n1], dy[t, j, n0:n1]
            dhj, dcj = dh[j, n0:n1], dc[j, n0:n1]
            for k in range(m):
                dhj[k] += dyt[k]
            for k in range(m):  # do = dh tanh(c) o (1 - o)
                do[k] = dhj[k] * tc[k] * (go[k] * (1 - go[k]))
            if use_keep:  # padded columns keep dh (restored below) and dc: stash dh in do
                for k in range(m):
                    if keep[t, n0 + k]:
                        do[k] = dhj[k]
                        dhj[k] = 0
            for k in range(m):  # dc_total = dc + dh o (1 - tanh(c)^2)
                dcj[k] += dhj[k] * go[k] * (1 - tc[k] * tc[k])
            for k in range(m):
                di[k] = dcj[k] * gg[k] * (gi[k] * (1 - gi[k]))
            for k in range(m):
                df[k] = dcj[k] * cp[k] * (gf[k] * (1 - gf[k]))
            for k in range(m):
                dgg[k] = dcj[k] * gi[k] * (1 - gg[k] * gg[k])
            if use_keep:
                for k in range(m):
                    if keep[t, n0 + k]:
                        dhj[k] = do[k]
                        di[k] = df[k] = dgg[k] = do[k] = 0
                    else:
                        dcj[k] *= gf[k]
                        dhj[k] = 0
            else:
                for k in range(m):
                    dcj[k] *= gf[k]
                dhj[:] = 0
        # dh_{t-1} (+)= W_hh^T dgates (zero, or held at padded columns, before the product)
        _gemm(_TRANS, hs, m, gh, w_hh, 0, hs, dg, t * n + n0, t_len * n, dh, n0, n)


@_fast.kernel()
def gru_forward(gates, hg, w_hh, b_hh, h, keep, use_keep, reverse, n0, n1):  # pragma: no cover - compiled
    """Columns n0:n1 of one GRU layer's forward. gates (3H, T, N): W_ih x + b_ih on entry,
    the activations [r, z, n] on exit; hg (3H, T, N) out: W_hh h_{t-1} + b_hh (its n
    block feeds the backward); b_hh (3H,) (zeros without bias); h (T+1, H, N)."""
    gh, t_len, n = gates.shape
    hs = h.shape[1]
    m = n1 - n0
    for step in range(t_len):
        t = t_len - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        new = t if reverse else t + 1
        for row in range(gh):  # hg = b_hh, then += W_hh h
            hg[row, t, n0:n1] = b_hh[row]
        _gemm(_NO_TRANS, gh, m, hs, w_hh, 0, hs, h, prev * hs * n + n0, n, hg, t * n + n0, t_len * n)
        for j in range(hs):
            gr, gz, gn = gates[j, t, n0:n1], gates[hs + j, t, n0:n1], gates[2 * hs + j, t, n0:n1]
            hr, hz, hgn = hg[j, t, n0:n1], hg[hs + j, t, n0:n1], hg[2 * hs + j, t, n0:n1]
            hp, hn = h[prev, j, n0:n1], h[new, j, n0:n1]
            for k in range(m):
                gr[k] = _sigmoid(gr[k] + hr[k])
            for k in range(m):
                gz[k] = _sigmoid(gz[k] + hz[k])
            for k in range(m):
                gn[k] = _tanh(gn[k] + gr[k] * hgn[k])
            for k in range(m):
                hn[k] = gn[k] + gz[k] * (hp[k] - gn[k])
            if use_keep:
                for k in range(m):
                    if keep[t, n0 + k]:
                        hn[k] = hp[k]


@_fast.kernel()
def gru_backward(gates, hg, w_hh, h, dy, dg, dhg, dh, keep, use_keep, reverse, n0, n1):  # pragma: no cover
    """Columns n0:n1 of one GRU layer's BPTT. gates (3H, T, N) activations [r, z, n];
    hg (3H, T, N) from the forward; h (T+1, H, N); dy (T, H, N); out: dg (3H, T, N)
    dE/d(W_ih x + b_ih), dhg (3H, T, N) dE/d(W_hh h + b_hh), dh (H, N) dE/dh_0."""
    gh, t_len, n = gates.shape
    hs = dh.shape[0]
    m = n1 - n0
    dh[:, n0:n1] = 0
    for step in range(t_len):
        t = step if reverse else t_len - 1 - step
        prev = t + 1 if reverse else t
        for j in range(hs):
            gr, gz, gn, hgn = gates[j, t, n0:n1], gates[hs + j, t, n0:n1], gates[2 * hs + j, t, n0:n1], hg[2 * hs + j, t, n0:n1]
            dr, dz, dn = dg[j, t, n0:n1], dg[hs + j, t, n0:n1], dg[2 * hs + j, t, n0:n1]
            hr, hz, hn = dhg[j, t, n0:n1], dhg[hs + j, t, n0:n1], dhg[2 * hs + j, t, n0:n1]
            hp, dyt, dhj = h[prev, j, n0:n1], dy[t, j, n0:n1], dh[j, n0:n1]
            for k in range(m):
                dhj[k] += dyt[k]
            for k in range(m):  # dn_pre = dh (1 - z) (1 - n^2)
                dn[k] = dhj[k] * (1 - gz[k]) * (1 - gn[k] * gn[k])
            for k in range(m):  # dz_pre = dh (h - n) z (1 - z)
                dz[k] = dhj[k] * (hp[k] - gn[k]) * (gz[k] * (1 - gz[k]))
            for k in range(m):  # dr_pre = dn_pre hg_n r (1 - r)
                dr[k] = dn[k] * hgn[k] * (gr[k] * (1 - gr[k]))
            for k in range(m):
                hn[k] = dn[k] * gr[k]
            if use_keep:
                for k in range(m):
                    if keep[t, n0 + k]:  # padded: no gate gradient, dh passes unchanged
                        dr[k] = dz[k] = dn[k] = hn[k] = 0
                    else:
                        dhj[k] *= gz[k]
            else:
                for k in range(m):
                    dhj[k] *= gz[k]  # the part of dh_{t-1} that skips the product
            hr[:] = dr
            hz[:] = dz
        # dh_{t-1} += W_hh^T dE/d(W_hh h + b_hh)
        _gemm(_TRANS, hs, m, gh, w_hh, 0, hs, dhg, t * n + n0, t_len * n, dh, n0, n)
