"""The math of one recurrent step (PyTorch's RNN / LSTM / GRU equations), in place, on any
array namespace ``xp``: shared by the cells (:mod:`ember.nn.cells`, gate blocks are column
slices of (N, G*H)) and the fused layers' NumPy time loop (:mod:`ember.nn.rnn_kernels`,
gate blocks are contiguous (H, N) rows). The compiled loops of ``ember[fast]``
(:mod:`ember.nn._rnn_jit`) compute the same formulas and are tested against these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._typing import Array

def sigmoid_via_tanh(xp: Any, block: Array) -> None:
    """In place: ``block = sigma(block) = (1 + tanh(block / 2)) / 2`` (stable for every x)."""
    block *= 0.5
    xp.tanh(block, out=block)
    block += 1
    block *= 0.5


def rnn_forward(xp: Any, pre: Array, h: Array, relu: bool) -> None:
    """``h' = act(pre)`` written into ``h`` (which may be ``pre`` itself)."""
    if relu:
        xp.maximum(pre, 0, out=h)
    else:
        xp.tanh(pre, out=h)


def rnn_backward(xp: Any, h: Array, dh: Array, dpre: Array, relu: bool) -> None:
    """``dpre = dh * act'(pre)``, from the output h' = act(pre)."""
    if relu:
        xp.greater(h, 0, out=dpre)
    else:
        xp.multiply(h, h, out=dpre)
        xp.subtract(1, dpre, out=dpre)
    dpre *= dh


def lstm_activate(xp: Any, sigmoid_blocks: Sequence[Array], g: Array) -> None:
    """In place: sigma on the i, f, o pre-activations (given as blocks) and tanh on g."""
    for block in sigmoid_blocks:
        sigmoid_via_tanh(xp, block)
    xp.tanh(g, out=g)


def lstm_forward(xp: Any, i: Array, f: Array, g: Array, o: Array, c_prev: Array, c: Array, tanh_c: Array, h: Array,
                 tmp: Array) -> None:
    """One LSTM step after the products and the activations: c' = f c + i g, h' = o tanh(c').

    The gate blocks i, f, g, o are views of one gate array (columns of (N, 4H) in a cell,
    contiguous rows of (4H, N) in the fused layers). ``tmp`` is scratch of c's shape.
    """
    xp.multiply(f, c_prev, out=c)
    xp.multiply(i, g, out=tmp)
    c += tmp
    xp.tanh(c, out=tanh_c)
    xp.multiply(o, tanh_c, out=h)


def lstm_backward(xp: Any, gates: Sequence[Array], c_prev: Array, tanh_c: Array, dh: Array, dc: Array,
                  dgates: Sequence[Array], tmp: Array) -> None:
    """bprop of one LSTM step; ``gates`` = (i, f, g, o) activations, ``dgates`` the four
    output blocks dE/d(pre-activations) in the same order.

    In: dh = dE/dh' (total), dc = dE/dc' from later steps. Out: dgates, and dc is
    overwritten with dE/dc_{t-1} = (dc + dh * o * (1 - tanh(c')^2)) * f::

        do = dh * tanh(c') * o (1 - o)
        dc_total = dc + dh * o * (1 - tanh(c')^2)
        di = dc_total * g * i (1 - i);  df = dc_total * c * f (1 - f);  dg = dc_total * i * (1 - g^2)
    """
    i, f, g, o = gates
    di, df, dg, do = dgates
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


def gru_forward(xp: Any, r: Array, z: Array, n: Array, hg_n: Array, h_prev: Array, h: Array) -> None:
    """One GRU step after the products: r, z hold sigma's arguments W_i x + b_i + W_h h + b_h
    and become the gates; n holds W_in x + b_in and becomes n = tanh(n + r * hg_n), with
    hg_n = W_hn h + b_hn (kept for bprop). Writes h' = n + z (h - n).
    """
    sigmoid_via_tanh(xp, r)
    sigmoid_via_tanh(xp, z)
    xp.multiply(r, hg_n, out=h)
    n += h
    xp.tanh(n, out=n)
    xp.subtract(h_prev, n, out=h)
    h *= z
    h += n


def gru_backward(xp: Any, gates: Sequence[Array], hg_n: Array, h_prev: Array, dh: Array, dxg: Sequence[Array],
                 dhg_n: Array, dh_direct: Array) -> None:
    """bprop of one GRU step (gates = (r, z, n) activations, hg_n = W_hn h + b_hn)::

        dn_pre = dh (1 - z) (1 - n^2);  dz_pre = dh (h - n) z (1 - z)
        dr_pre = dn_pre * hg_n * r (1 - r)
        dxg = (dr_pre, dz_pre, dn_pre);  dE/d(W_h h + b_h) = (dr_pre, dz_pre, dhg_n = dn_pre * r)
        dh_direct = dh * z       (the part of dE/dh that skips the products)
    """
    r, z, n = gates
    dr, dz, dn = dxg
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
    dr *= hg_n
    dr *= dn  # dr_pre
    xp.multiply(dn, r, out=dhg_n)


def blocks(array: Array, count: int, axis: int) -> list[Array]:
    """``count`` equal blocks of ``array`` along ``axis`` (views)."""
    size = array.shape[axis] // count
    if axis == 0:
        return [array[k * size : (k + 1) * size] for k in range(count)]
    return [array[:, k * size : (k + 1) * size] for k in range(count)]


__all__ = ["sigmoid_via_tanh", "rnn_forward", "rnn_backward", "lstm_activate", "lstm_forward", "lstm_backward",
           "gru_forward", "gru_backward", "blocks"]
