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
            x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
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
            gi, gf, gg, go = gates[j, t], gates[hs + j, t], gates[2 * hs + j, t], gates[3 * hs + j, t]
            cp, cn, hn, tc = c[prev, j], c[new, j], h[new, j], tanh_c[t, j]
            for k in range(n0, n1):
                i = _sigmoid(gi[k])
                f = _sigmoid(gf[k])
                g = _tanh(gg[k])
                o = _sigmoid(go[k])
                gi[k], gf[k], gg[k], go[k] = i, f, g, o
                cv = f * cp[k] + i * g
                tcv = _tanh(cv)
                cn[k] = cv
                tc[k] = tcv
                hn[k] = o * tcv
            if use_keep:
                hp = h[prev, j]
                for k in range(n0, n1):
                    if keep[t, k]:
                        cn[k] = cp[k]
                        hn[k] = hp[k]

@_fast.kernel()
def lstm_backward(gates, w_hh, c, tanh_c, dy, dg, dh, dc, keep, use_keep, reverse, n0, n1):  # pragma: no cover
    """Columns n0:n1 of one LSTM layer's BPTT. gates (4H, T, N) activations; c (T+1, H, N);
    tanh_c (T, H, N); dy (T, H, N) dE/d(outputs); dg (4H, T, N) out: dE/d(gate
    pre-activations) (zero at padded steps); dh, dc (H, N) out: dE/d(initial state)."""
    gh, t_len, n = gates.shape
    hs = dh.shape[0]
    dh[:, n0:n1] = 0
    dc[:, n0:n1] = 0
    for step in range(t_len):
        t = step if reverse else t_len - 1 - step
        prev = t + 1 if reverse else t
        for j in range(hs):
            gi, gf, gg, go = gates[j, t], gates[hs + j, t], gates[2 * hs + j, t], gates[3 * hs + j, t]
            di, df, dgg, do = dg[j, t], dg[hs + j, t], dg[2 * hs + j, t], dg[3 * hs + j, t]
            cp, tc, dyt, dhj, dcj = c[prev, j], tanh_c[t, j], dy[t, j], dh[j], dc[j]
            if use_keep:
                for k in range(n0, n1):
                    dhv = dhj[k] + dyt[k]
                    if keep[t, k]:  # padded step: no gate gradient, the state's gradient passes
                        di[k] = df[k] = dgg[k] = do[k] = 0
                        dhj[k] = dhv
                        continue
                    i, f, g, o, tcv = gi[k], gf[k], gg[k], go[k], tc[k]
                    dct = dcj[k] + dhv * o * (1 - tcv * tcv)
                    do[k] = dhv * tcv * o * (1 - o)
                    di[k] = dct * g * i * (1 - i)
                    df[k] = dct * cp[k] * f * (1 - f)
                    dgg[k] = dct * i * (1 - g * g)
                    dcj[k] = dct * f
                    dhj[k] = 0
            else:
                for k in range(n0, n1):
                    i, f, g, o, tcv = gi[k], gf[k], gg[k], go[k], tc[k]
                    dhv = dhj[k] + dyt[k]
                    dct = dcj[k] + dhv * o * (1 - tcv * tcv)
                    do[k] = dhv * tcv * o * (1 - o)
                    di[k] = dct * g * i * (1 - i)
                    df[k] = dct * cp[k] * f * (1 - f)
                    dgg[k] = dct * i * (1 - g * g)
                    dcj[k] = dct * f
                    dhj[k] = 0
        # dh_{t-1} (+)= W_hh^T dgates (zero, or held at padded columns, before the product)
        _gemm(_TRANS, hs, n1 - n0, gh, w_hh, 0, hs, dg, t * n + n0, t_len * n, dh, n0, n)

@_fast.kernel()
def gru_forward(gates, hg, w_hh, b_hh, h, keep, use_keep, reverse, n0, n1):  # pragma: no cover - compiled
    """Columns n0:n1 of one GRU layer's forward. gates (3H, T, N): W_ih x + b_ih on entry,
    the activations [r, z, n] on exit; hg (3H, T, N) out: W_hh h_{t-1} + b_hh (its n
    block feeds the backward); b_hh (3H,) (zeros without bias); h (T+1, H, N)."""
    gh, t_len, n = gates.shape
    hs = h.shape[1]
    for step in range(t_len):
        t = t_len - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        new = t if reverse else t + 1
        hg[:, t, n0:n1] = 0
        _gemm(_NO_TRANS, gh, n1 - n0, hs, w_hh, 0, hs, h, prev * hs * n + n0, n, hg, t * n + n0, t_len * n)
        for j in range(hs):
            gr, gz, gn = gates[j, t], gates[hs + j, t], gates[2 * hs + j, t]
            hr, hz, hn_ = hg[j, t], hg[hs + j, t], hg[2 * hs + j, t]
            br, bz, bn = b_hh[j], b_hh[hs + j], b_hh[2 * hs + j]
            hp, hn = h[prev, j], h[new, j]
            for k in range(n0, n1):
                a_r, a_z, a_n = hr[k] + br, hz[k] + bz, hn_[k] + bn
                hr[k], hz[k], hn_[k] = a_r, a_z, a_n
                r = _sigmoid(gr[k] + a_r)
                z = _sigmoid(gz[k] + a_z)
                nv = _tanh(gn[k] + r * a_n)
                gr[k], gz[k], gn[k] = r, z, nv
                hn[k] = nv + z * (hp[k] - nv)
            if use_keep:
                for k in range(n0, n1):
                    if keep[t, k]:
                        hn[k] = hp[k]

@_fast.kernel()
def gru_backward(gates, hg, w_hh, h, dy, dg, dhg, dh, keep, use_keep, reverse, n0, n1):  # pragma: no cover
    """Columns n0:n1 of one GRU layer's BPTT. gates (3H, T, N) activations [r, z, n];
    hg (3H, T, N) from the forward; h (T+1, H, N); dy (T, H, N); out: dg (3H, T, N)
    dE/d(W_ih x + b_ih), dhg (3H, T, N) dE/d(W_hh h + b_hh), dh (H, N) dE/dh_0."""
    gh, t_len, n = gates.shape
    hs = dh.shape[0]
    dh[:, n0:n1] = 0
    for step in range(t_len):
        t = step if reverse else t_len - 1 - step
        prev = t + 1 if reverse else t
        for j in range(hs):
            gr, gz, gn, hgn = gates[j, t], gates[hs + j, t], gates[2 * hs + j, t], hg[2 * hs + j, t]
            dr, dz, dn = dg[j, t], dg[hs + j, t], dg[2 * hs + j, t]
            hr, hz, hn = dhg[j, t], dhg[hs + j, t], dhg[2 * hs + j, t]
            hp, dyt, dhj = h[prev, j], dy[t, j], dh[j]
            if use_keep:
                for k in range(n0, n1):
                    dhv = dhj[k] + dyt[k]
                    if keep[t, k]:
                        dr[k] = dz[k] = dn[k] = hr[k] = hz[k] = hn[k] = 0
                        dhj[k] = dhv
                        continue
                    r, z, nv = gr[k], gz[k], gn[k]
                    dnv = dhv * (1 - z) * (1 - nv * nv)
                    dzv = dhv * (hp[k] - nv) * z * (1 - z)
                    drv = dnv * hgn[k] * r * (1 - r)
                    dr[k], dz[k], dn[k] = drv, dzv, dnv
                    hr[k], hz[k], hn[k] = drv, dzv, dnv * r
                    dhj[k] = dhv * z
            else:
                for k in range(n0, n1):
                    dhv = dhj[k] + dyt[k]
                    r, z, nv = gr[k], gz[k], gn[k]
                    dnv = dhv * (1 - z) * (1 - nv * nv)
                    dzv = dhv * (hp[k] - nv) * z * (1 - z)
                    drv = dnv * hgn[k] * r * (1 - r)
                    dr[k], dz[k], dn[k] = drv, dzv, dnv
                    hr[k], hz[k], hn[k] = drv, dzv, dnv * r
                    dhj[k] = dhv * z
        _gemm(_TRANS, hs, n1 - n0, gh, w_hh, 0, hs, dhg, t * n + n0, t_len * n, dh, n0, n)
