"""SpatialFullConvolution: the transposed convolution ("deconvolution")."""

from __future__ import annotations

from ..errors import check_non_negative, shape_error
from ._im2col import col2im, im2col
from ._layout import CHWN, as_matrix_chwn
from ._spatial import SpatialModule
from .convolution import _Convolution
from .module import scratch


class SpatialFullConvolution(_Convolution):
    """Transposed convolution: the adjoint of SpatialConvolution's input -> output map.

    ``SpatialFullConvolution(n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0,
    pad_h=0, adj_w=0, adj_h=0)`` (Torch7 order, width first). ``adj`` (< stride) adds
    rows/columns at the bottom/right so that any output size can be reached.

    Shapes: input (N, C_in, H, W) or (C_in, H, W); weight (C_in, C_out, kh, kw) (Torch7's
    and PyTorch's layout); bias (C_out,); output (N, C_out, OH, OW) with
    OH = (H - 1) dh - 2 pad_h + kh + adj_h.

    fprop:            y_pad[n, o, p dh + i, q dw + j] += sum_c W[c,o,i,j] x[n,c,p,q];
                      y = (y_pad without its pad border) + b[o]
    bprop to input:   dE/dx[n,c,p,q] = sum_{o,i,j} W[c,o,i,j] dE/dy_pad[n,o,p dh + i,q dw + j]
                      (a strided correlation of the zero-padded dE/dy)
    bprop to weights: dE/dW[c,o,i,j] += scale * sum_{n,p,q} x[n,c,p,q] dE/dy_pad[n,o,p dh + i,q dw + j]
                      dE/db[o] += scale * sum_{n,p,q} dE/dy[n,o,p,q]

    Init (Torch7): U(+-1/sqrt(kw kh C_in)) for weight and bias.
    """

    def __init__(self, n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, adj_w=0, adj_h=0,
                 bias=True, rng=None):  # fmt: skip
        SpatialModule.__init__(self)
        self._init_geometry(n_input_plane, n_output_plane, kw, kh, dw, dh, pad_w, pad_h, 1, 1)
        check_non_negative("SpatialFullConvolution", adj_w=adj_w, adj_h=adj_h)
        if adj_w >= dw or adj_h >= dh:
            raise ValueError(f"SpatialFullConvolution: adj must be smaller than the stride, got adj {adj_w},{adj_h} "
                             f"with stride {dw},{dh}")  # fmt: skip
        self.adj_w, self.adj_h = adj_w, adj_h
        self._init_parameters((n_input_plane, n_output_plane, kh, kw), self._fan_in(), bias, rng)

    def _out_hw(self, input, x4):
        h, w = x4.shape[2:]
        oh = (h - 1) * self.dh - 2 * self.pad_h + self.kh + self.adj_h
        ow = (w - 1) * self.dw - 2 * self.pad_w + self.kw + self.adj_w
        if oh < 1 or ow < 1:
            raise shape_error(self, f"input {self._expected_input()} large enough for a positive output size "
                                    f"(this one gives {oh}x{ow})", input)  # fmt: skip
        return oh, ow

    cols = scratch("W^T x, the output's columns before col2im, (C_out*kh*kw, H*W*N)")
    input_chwn = scratch("the input copied into the CHWN layout (when it is not)")
    grad_cols = scratch("im2col of the zero-padded dE/dy over the input grid, (C_out*kh*kw, H*W*N)")
    out_padded = scratch("y_pad, the output with its padding border, CHWN")
    grad_weight_step = scratch("dE/dW of this call, before it is scaled in")
    grad_bias_step = scratch("dE/db of this call, before it is scaled in")

    def _input_matrix(self, x4):
        """x (N, C_in, H, W) as a (C_in, H*W*N) matrix (free if it is CHWN)."""
        matrix = as_matrix_chwn(x4)
        if matrix is None:
            self.input_chwn = self._chwn_copy(self.input_chwn, x4)
            matrix = as_matrix_chwn(self.input_chwn)
        return matrix

    def _grad_columns(self, g4, h, w):
        """im2col of the zero-padded grad_output over the (H, W) input grid."""
        n, o, oh, ow = g4.shape
        ph, pw = self.pad_h, self.pad_w
        src = self.padded = self._padded(self.padded, g4, ph, pw, (oh + 2 * ph, ow + 2 * pw), 0.0, order=CHWN)
        cols = self.grad_cols = self._fit(self.grad_cols, (o * self.kh * self.kw, h * w * n))
        im2col(self.backend.xp, src, cols.reshape(o, self.kh, self.kw, h, w, n), (self.kh, self.kw), (h, w),
               (self.dh, self.dw))  # fmt: skip
        return cols

    def update_output(self, input):
        x4, (oh, ow) = self._sized_batch(input)
        n, c, h, w = x4.shape
        xp = self.backend.xp
        o, k = self.n_output_plane, self.n_output_plane * self.kh * self.kw
        cols = self.cols = self._fit(self.cols, (k, h * w * n))
        self.backend.gemm(self.weight.reshape(c, k), self._input_matrix(x4), cols, trans_a=True)  # W^T x
        cols6 = cols.reshape(o, self.kh, self.kw, h, w, n)
        out4 = self.out4 = self._fit(self.out4, (n, o, oh, ow), order=CHWN)
        ph, pw = self.pad_h, self.pad_w
        if ph or pw:
            full = self.out_padded = self._fit(self.out_padded, (n, o, oh + 2 * ph, ow + 2 * pw), order=CHWN)
            col2im(xp, cols6, full, (self.kh, self.kw), (h, w), (self.dh, self.dw))
            xp.copyto(out4, full[:, :, ph : ph + oh, pw : pw + ow])
        else:
            col2im(xp, cols6, out4, (self.kh, self.kw), (h, w), (self.dh, self.dw))
        if self.bias is not None:
            out4 += self.bias.reshape(1, o, 1, 1)
        self.output = self._unbatch(out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, g4 = self._batch_pair(input, grad_output)
        n, c, h, w = x4.shape
        cols = self._grad_columns(g4, h, w)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, x4.shape, order=CHWN)
        self.backend.gemm(self.weight.reshape(c, -1), cols, as_matrix_chwn(gx4))  # dE/dx = W dE/dy_cols
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        x4, g4 = self._batch_pair(input, grad_output)
        n, c, h, w = x4.shape
        cols = self._grad_columns(g4, h, w)
        grad = self.grad_weight_step = self._fit(self.grad_weight_step, (c, cols.shape[0]))
        self.backend.gemm(self._input_matrix(x4), cols, grad, trans_b=True)  # x dE/dy_cols^T
        if scale != 1:
            grad *= scale
        self.grad_weight += grad.reshape(self.weight.shape)
        if self.bias is not None:
            step = self.grad_bias_step = self._fit(self.grad_bias_step, self.bias.shape)
            self.backend.xp.sum(self._grad_matrix(g4), axis=1, out=step)
            if scale != 1:
                step *= scale
            self.grad_bias += step

    def extra_repr(self):
        text = super().extra_repr()
        if self.adj_w or self.adj_h:
            text += f", adj {self.adj_w},{self.adj_h}"
        return text
