"""Filter banks: SpatialConvolution, SpatialDilatedConvolution, SpatialFullConvolution.

Argument order is Torch7's: **width before height** everywhere
(``kw, kh, dw, dh, pad_w, pad_h``), while arrays are (N, C, H, W) and the weight is
(n_output_plane, n_input_plane, kh, kw) as in Torch7 and PyTorch. So PyTorch's
``Conv2d(3, 16, (5, 7))`` (kernel height 5, width 7) is ``SpatialConvolution(3, 16, 7, 5)``.

Implementation (see ``_im2col`` and ``_layout``): the input windows are copied once into
a (C*kh*kw + 1, OH*OW*N) column matrix whose last row is ones, so one GEMM with
[W | b] computes the output, bias included, straight into the CHWN layout; the weight
gradient (bias column included) is one GEMM with the same columns, and the input
gradient is one GEMM followed by col2im.
"""

from __future__ import annotations

import math

from ..errors import check_non_negative, check_positive, shape_error
from ._im2col import col2im, im2col, out_size
from ._layout import CHWN, as_matrix_chwn, axis_order
from ._spatial import SpatialModule
from .init import uniform
from .module import saved, scratch

class _Convolution(SpatialModule):
    """Shared machinery of the GEMM convolutions (see the module docstring)."""

    _param_names = ("weight", "bias")

    grad_output_chwn = scratch("grad_output copied into the CHWN layout (when it is not)")
    grad_input4 = scratch("dE/dx, 4-D, CHWN")

    def _init_geometry(self, n_input_plane, n_output_plane, kw, kh, dw, dh, pad_w, pad_h, dilation_w, dilation_h):
        owner = type(self).__name__
        check_positive(owner, n_input_plane=n_input_plane, n_output_plane=n_output_plane, kw=kw, kh=kh, dw=dw, dh=dh,
                       dilation_w=dilation_w, dilation_h=dilation_h)  # fmt: skip
        check_non_negative(owner, pad_w=pad_w, pad_h=pad_h)
        self.n_input_plane, self.n_output_plane = n_input_plane, n_output_plane
        self.kw, self.kh, self.dw, self.dh = kw, kh, dw, dh
        self.pad_w, self.pad_h = pad_w, pad_h
        self.dilation_w, self.dilation_h = dilation_w, dilation_h

    def _init_parameters(self, weight_shape, fan_in, bias, rng):
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = uniform(rng, weight_shape, bound)
        self.grad_weight = self.weight * 0
        self.bias = uniform(rng, (self.n_output_plane,), bound) if bias else None
        self.grad_bias = self.bias * 0 if bias else None

    def reset(self, stdv=None, rng=None):
        """Re-draw the weight and bias from U(-stdv, stdv) (default Torch7's 1/sqrt(fan-in))."""
        bound = stdv if stdv is not None else 1.0 / math.sqrt(self._fan_in())
        self.weight[...] = self.backend.asarray(uniform(rng, self.weight.shape, bound))
        if self.bias is not None:
            self.bias[...] = self.backend.asarray(uniform(rng, self.bias.shape, bound))
        return self

    def _fan_in(self):
        return self.n_input_plane * self.kh * self.kw

    # ---------------------------------------------------------------- geometry
    def _effective(self):
        return self.dilation_h * (self.kh - 1) + 1, self.dilation_w * (self.kw - 1) + 1

    def _out_hw(self, input, x4):
        eff_h, eff_w = self._effective()
        h, w = x4.shape[2:]
        if h + 2 * self.pad_h < eff_h or w + 2 * self.pad_w < eff_w:
            min_h, min_w = max(eff_h - 2 * self.pad_h, 1), max(eff_w - 2 * self.pad_w, 1)
            raise shape_error(self, f"input {self._expected_input()} with H >= {min_h} and W >= {min_w} "
                                    f"(the {eff_h}x{eff_w} kernel must fit in the padded image)", input)  # fmt: skip
        return (out_size(h, self.kh, self.dh, self.pad_h, self.dilation_h),
                out_size(w, self.kw, self.dw, self.pad_w, self.dilation_w))  # fmt: skip

    def _geometry(self):
        return (self.kh, self.kw), (self.dh, self.dw), (self.dilation_h, self.dilation_w)

    # ---------------------------------------------------------------- helpers
    def _chwn_copy(self, buffer, array4):
        """``buffer`` fitted to ``array4``'s shape in the CHWN layout, holding a copy of it."""
        buffer = self._fit(buffer, array4.shape, order=CHWN)
        self.backend.xp.copyto(buffer, array4)
        return buffer

    def _grad_matrix(self, g4):
        """dE/dy (N, C_out, OH, OW) as a (C_out, OH*OW*N) matrix (free if it is CHWN)."""
        matrix = as_matrix_chwn(g4)
        if matrix is None:
            self.grad_output_chwn = self._chwn_copy(self.grad_output_chwn, g4)
            matrix = as_matrix_chwn(self.grad_output_chwn)
        return matrix

    def extra_repr(self):
        text = f"{self.n_input_plane} -> {self.n_output_plane}, {self.kw}x{self.kh}"
        if (self.dw, self.dh) != (1, 1) or self.pad_w or self.pad_h:
            text += f", {self.dw},{self.dh}"
        if self.pad_w or self.pad_h:
            text += f", {self.pad_w},{self.pad_h}"
        if (self.dilation_w, self.dilation_h) != (1, 1):
            text += f", dilation {self.dilation_w},{self.dilation_h}"
        if self.bias is None:
            text += ", without bias"
        return text


class SpatialConvolution(_Convolution):
    """2-D convolution (a filter bank), Torch7 argument order: width before height.

    ``SpatialConvolution(n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0)``

    Shapes: input (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in, kh, kw); bias (C_out,);
    output (N, C_out, OH, OW) with OH = floor((H + 2 pad_h - kh) / dh) + 1 (same for W).

    fprop:            y[n,o,p,q] = b[o] + sum_{c,i,j} W[o,c,i,j] x_pad[n, c, p dh + i, q dw + j]
    bprop to input:   dE/dx_pad[n,c,p dh + i, q dw + j] += sum_o W[o,c,i,j] dE/dy[n,o,p,q]
                      (the padding border of dE/dx_pad is dropped)
    bprop to weights: dE/dW[o,c,i,j] += scale * sum_{n,p,q} dE/dy[n,o,p,q] x_pad[n,c,p dh + i,q dw + j]
                      dE/db[o] += scale * sum_{n,p,q} dE/dy[n,o,p,q]

    Init (Torch7): W, b ~ U(-1/sqrt(kw kh C_in), +1/sqrt(kw kh C_in)). ``bias=False`` drops b.
    A ``Sequential`` with ``compute_grad_input = False`` skips this module's input
    gradient when it is the first layer with parameters (its input is data).
    The output is laid out CHWN in memory (a transposed view); :meth:`acc_grad_parameters`
    reuses the columns of the last forward call, which must be on the same input.
    """

    output_free_for_next = True  # the backward reads the columns, W and dE/dy, never y

    def __init__(self, n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0, bias=True, rng=None):
        super().__init__()
        self._init_geometry(n_input_plane, n_output_plane, kw, kh, dw, dh, pad_w, pad_h, 1, 1)
        self._init_parameters((n_output_plane, n_input_plane, kh, kw), self._fan_in(), bias, rng)

    cols = saved("im2col columns of the (padded) input, a last row of ones when there is a "
                 "bias: (C_in*kh*kw (+1), OH*OW*N)")
    weight_matrix = scratch("[W | b] as one (C_out, C_in*kh*kw + 1) matrix")
    dcols = scratch("dE/d(cols) = W^T dE/dy, (C_in*kh*kw, OH*OW*N)")
    grad_padded = scratch("dE/dx_pad, the input gradient with its padding border")
    grad_weight_step = scratch("dE/d[W | b] of this call, before it is scaled in")

    # hooks for SpatialConvolutionMap (which stores a sparse weight)
    def _dense_weight(self):
        return self.weight

    def _accumulate_dense_grad(self, grad_dense):
        self.grad_weight += grad_dense

    def _weight_matrix(self, k):
        """[W | b] as an (n_out, k (+1)) matrix (b last, matching the ones row of the columns)."""
        dense = self._dense_weight().reshape(self.n_output_plane, k)
        if self.bias is None:
            return dense
        wmat = self.weight_matrix = self._fit(self.weight_matrix, (self.n_output_plane, k + 1))
        wmat[:, :k] = dense
        wmat[:, k] = self.bias
        return wmat

    def update_output(self, input):
        x4, (oh, ow) = self._sized_batch(input)
        n, c, h, w = x4.shape
        k = c * self.kh * self.kw
        old = self.cols
        cols = self.cols = self._fit(self.cols, (k + (self.bias is not None), oh * ow * n))
        if cols is not old:  # the ones row that multiplies the bias column (nothing else writes it)
            cols[k:] = 1
        src = x4
        if self.pad_h or self.pad_w or (n > 1 and axis_order(x4) != CHWN):
            ph, pw = self.pad_h, self.pad_w
            src = self.padded = self._padded(self.padded, x4, ph, pw, (h + 2 * ph, w + 2 * pw), 0.0, order=CHWN)
        kernel, stride, dilation = self._geometry()
        im2col(self.backend.xp, src, cols[:k].reshape(c, self.kh, self.kw, oh, ow, n), kernel, (oh, ow), stride, dilation)
        self.out4 = self._fit(self.out4, (n, self.n_output_plane, oh, ow), order=CHWN)
        self.backend.gemm_columns(self._weight_matrix(k), cols, as_matrix_chwn(self.out4))  # y = [W | b] cols
        self.output = self._unbatch(self.out4, input)
        return self.output

    def update_grad_input(self, input, grad_output):
        x4, g4 = self._batch_pair(input, grad_output)
        n, c, h, w = x4.shape
        oh, ow = g4.shape[2:]
        xp = self.backend.xp
        k = c * self.kh * self.kw
        dcols = self.dcols = self._fit(self.dcols, (k, oh * ow * n))
        weight = self._dense_weight().reshape(self.n_output_plane, k)
        self.backend.gemm(weight, self._grad_matrix(g4), dcols, trans_a=True)  # dE/dcols = W^T dE/dy
        kernel, stride, dilation = self._geometry()
        dcols6 = dcols.reshape(c, self.kh, self.kw, oh, ow, n)
        gx4 = self.grad_input4 = self._fit(self.grad_input4, (n, c, h, w), order=CHWN)
        if self.pad_h or self.pad_w:
            ph, pw = self.pad_h, self.pad_w
            gpad = self.grad_padded = self._fit(self.grad_padded, (n, c, h + 2 * ph, w + 2 * pw), order=CHWN)
            col2im(xp, dcols6, gpad, kernel, (oh, ow), stride, dilation)
            xp.copyto(gx4, gpad[:, :, ph : ph + h, pw : pw + w])
        else:
            col2im(xp, dcols6, gx4, kernel, (oh, ow), stride, dilation)
        self.grad_input = self._unbatch(gx4, input)
        return self.grad_input

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        x4, g4 = self._batch_pair(input, grad_output)
        k = x4.shape[1] * self.kh * self.kw
        if self.cols is None:
            raise RuntimeError(f"{self!r}: acc_grad_parameters needs a forward pass first (it reuses its columns)")
        grad = self.grad_weight_step = self._fit(self.grad_weight_step, (self.n_output_plane, self.cols.shape[0]))
        self.backend.gemm_columns(self._grad_matrix(g4), self.cols, grad, trans_cols=True)  # dE/dy cols^T
        if scale != 1:
            grad *= scale
        self._accumulate_dense_grad(grad[:, :k].reshape(self.n_output_plane, x4.shape[1], self.kh, self.kw))
        if self.bias is not None:
            self.grad_bias += grad[:, k]


class SpatialDilatedConvolution(SpatialConvolution):
    """:class:`SpatialConvolution` with holes: tap (i, j) reads x_pad[p dh + i dil_h, q dw + j dil_w].

    ``SpatialDilatedConvolution(n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0,
    pad_h=0, dilation_w=1, dilation_h=1)`` (Torch7 order). The effective kernel is
    dil*(k - 1) + 1 wide, so OH = floor((H + 2 pad_h - dil_h (kh - 1) - 1) / dh) + 1.
    fprop / bprop are those of SpatialConvolution with the dilated tap positions.
    """

    def __init__(self, n_input_plane, n_output_plane, kw, kh, dw=1, dh=1, pad_w=0, pad_h=0,
                 dilation_w=1, dilation_h=1, bias=True, rng=None):  # fmt: skip
        SpatialModule.__init__(self)
        self._init_geometry(n_input_plane, n_output_plane, kw, kh, dw, dh, pad_w, pad_h, dilation_w, dilation_h)
        self._init_parameters((n_output_plane, n_input_plane, kh, kw), self._fan_in(), bias, rng)
