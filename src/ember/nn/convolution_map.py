"""SpatialConvolutionMap: a filter bank with an explicit connection table."""

from __future__ import annotations

import math

import numpy as np

from ._spatial import SpatialModule
from .convolution import SpatialConvolution
from .init import get_rng
from .module import scratch


class SpatialConvolutionMap(SpatialConvolution):
    """Convolution in which output plane o sees only the input planes the table lists.

    ``SpatialConvolutionMap(conn_table, kw, kh, dw=1, dh=1)``: ``conn_table`` is an integer
    array (n_connections, 2) of 0-based ``[input_plane, output_plane]`` rows, e.g. from
    ``nn.tables.full``, ``one_to_one``, ``random`` or ``lenet5_c3`` (the partial
    connections of LeNet-5). Planes: n_input = 1 + max input, n_output = 1 + max output.

    Shapes: weight (n_connections, kh, kw) -- one kernel per connection; bias (n_output,).

    fprop:            y[n,o] = b[o] + sum_{k: table[k] = (c, o)} W[k] (*) x[n,c]
                      (correlation, stride dh x dw, as in SpatialConvolution)
    bprop to input:   dE/dx[n,c] = sum_{k: table[k] = (c, o)} W[k] (*)^T dE/dy[n,o]
    bprop to weights: dE/dW[k] += scale * sum_{n,p,q} dE/dy[n,o,p,q] x[n,c,p dh + i,q dw + j]

    Init (Torch7): weight and bias of output o ~ U(+-1/sqrt(kw kh fan_in(o))), fan_in(o) =
    number of connections into o. Computed as a dense convolution whose weight is zero
    off the table (the dense weight is rebuilt from the table at every call).
    """

    _constant_names = ("conn_table", "flat_index")
    dense_weight = scratch("the (C_out*C_in, kh, kw) dense weight, zero off the table")
    dense_grad = scratch("dE/d(dense weight) of this call")
    picked_grad = scratch("the table's rows of dense_grad, before they are added in")

    def __init__(self, conn_table, kw, kh, dw=1, dh=1, rng=None):
        SpatialModule.__init__(self)
        table = np.asarray(conn_table)
        if table.ndim != 2 or table.shape[1] != 2 or table.shape[0] == 0 or table.dtype.kind not in "iu" or (table < 0).any():
            raise ValueError(f"SpatialConvolutionMap: conn_table must be a non-empty (n, 2) array of non-negative "
                             f"ints [input_plane, output_plane], got {np.asarray(conn_table).tolist()!r:.80}")  # fmt: skip
        if len({tuple(row) for row in table.tolist()}) != len(table):
            raise ValueError("SpatialConvolutionMap: conn_table lists a connection twice")
        table = table.astype(np.int64)
        n_in, n_out = int(table[:, 0].max()) + 1, int(table[:, 1].max()) + 1
        self._init_geometry(n_in, n_out, kw, kh, dw, dh, 0, 0, 1, 1)
        self.conn_table = table
        rng = get_rng(rng)
        fan = np.bincount(table[:, 1], minlength=n_out)
        self.weight = np.empty((len(table), kh, kw), dtype="float32")
        for k, (_, out) in enumerate(table.tolist()):
            bound = 1.0 / math.sqrt(kw * kh * fan[out])
            self.weight[k] = rng.uniform(-bound, bound, size=(kh, kw))
        self.grad_weight = self.weight * 0
        self.bias = np.asarray([rng.uniform(-1, 1) / math.sqrt(kw * kh * max(f, 1)) for f in fan], dtype="float32")
        self.grad_bias = self.bias * 0
        self.flat_index = table[:, 1] * n_in + table[:, 0]  # row of each connection in the dense weight

    def _dense_weight(self):
        shape = (self.n_output_plane * self.n_input_plane, self.kh, self.kw)
        dense = self.dense_weight = self._fit(self.dense_weight, shape)
        dense.fill(0)
        dense[self.flat_index] = self.weight
        return dense.reshape(self.n_output_plane, self.n_input_plane, self.kh, self.kw)

    def _accumulate_dense_grad(self, grad_dense):
        xp = self.backend.xp
        shape = (self.n_output_plane * self.n_input_plane, self.kh, self.kw)
        flat = self.dense_grad = self._fit(self.dense_grad, shape)
        xp.copyto(flat.reshape(grad_dense.shape), grad_dense)
        picked = self.picked_grad = self._fit(self.picked_grad, self.weight.shape)
        xp.take(flat, self.flat_index, axis=0, out=picked)
        self.grad_weight += picked

    def reset(self, stdv=None, rng=None):
        """Re-draw weights: U(-stdv, stdv) if given, else Torch7's per-output fan-in rule."""
        fresh = SpatialConvolutionMap(self.backend.to_numpy(self.conn_table), self.kw, self.kh, self.dw, self.dh, rng=rng)
        if stdv is not None:
            fresh.weight[...] = get_rng(rng).uniform(-stdv, stdv, size=fresh.weight.shape)
            fresh.bias[...] = get_rng(rng).uniform(-stdv, stdv, size=fresh.bias.shape)
        self.weight[...] = self.backend.asarray(fresh.weight)
        self.bias[...] = self.backend.asarray(fresh.bias)
        return self

    def _fan_in(self):
        return self.kh * self.kw

    def extra_repr(self):
        return (f"{self.n_input_plane} -> {self.n_output_plane}, {self.kw}x{self.kh}"
                + (f", {self.dw},{self.dh}" if (self.dw, self.dh) != (1, 1) else "")
                + f", {len(self.conn_table)} connections")  # fmt: skip
