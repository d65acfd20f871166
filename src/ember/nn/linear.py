"""Affine and parametrised elementwise layers: Linear, Add, Mul, CMul."""

from __future__ import annotations

import math

import numpy as np

from .. import _blas
from ..backend import axpby
from ..errors import check_positive, check_same_shape, shape_error
from ._parallel import unbuffered
from .init import uniform
from .module import Module


def reduce_to_shape(xp, source, out, scratch_shape_owner=None):
    """Sum ``source`` over its broadcast axes into ``out`` (whose shape broadcasts to it).

    Leading axes that ``out`` lacks are summed, and so are axes where ``out`` has size 1.
    Writes into ``out`` without allocating; returns ``out``.
    """
    shape = out.shape
    lead = source.ndim - len(shape)
    keep = tuple(1 + i for i, size in enumerate(shape) if size == 1 and source.shape[lead + i] != 1)
    viewed = source.reshape((-1,) + source.shape[lead:])
    xp.sum(viewed, axis=(0,) + keep, keepdims=True, out=out.reshape((1,) + shape))
    return out


class Linear(Module):
    """Affine map ``y = W x + b``.

    Shapes: input (N, in) or (in,); weight (out, in); bias (out,); output (N, out) or (out,).

    fprop:            y = x W^T + b
    bprop to input:   dE/dx = dE/dy . W
    bprop to weights: dE/dW += scale * (dE/dy)^T . x   (an outer product for one sample)
                      dE/db += scale * sum_n dE/dy_n

    Initialisation (Torch7): W, b ~ U(-1/sqrt(in), 1/sqrt(in)). ``bias=False`` drops b.
    """

    _param_names = ("weight", "bias")
    _grad_input_optional = True

    def __init__(self, in_features, out_features, bias=True, rng=None):
        super().__init__()
        check_positive("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = uniform(rng, (out_features, in_features), bound)
        self.grad_weight = self.weight * 0
        self.bias = uniform(rng, (out_features,), bound) if bias else None
        self.grad_bias = self.bias * 0 if bias else None

    def reset(self, stdv=None, rng=None):
        """Re-draw W and b from U(-stdv, stdv); default stdv = 1/sqrt(in)."""
        bound = stdv if stdv is not None else 1.0 / math.sqrt(self.in_features)
        self.weight[...] = self.backend.asarray(uniform(rng, self.weight.shape, bound))
        if self.bias is not None:
            self.bias[...] = self.backend.asarray(uniform(rng, self.bias.shape, bound))
        return self

    def _check(self, input):
        if input.ndim not in (1, 2) or input.shape[-1] != self.in_features:
            raise shape_error(self, f"input (N, {self.in_features}) or ({self.in_features},)", input)

    def update_output(self, input):
        self._check(input)
        xp = self.backend.xp
        out = self.output = self.backend.ensure(self.output, input.shape[:-1] + (self.out_features,))
        if input.ndim == 2 and xp is np and _blas.AVAILABLE and self._product_transposed(input.shape[0]):
            # y^T = W x^T, then y = y^T transposed (+ b) in one pass: for a few samples
            # OpenBLAS runs this form 1.3-2.8x faster (benchmarks/bench_linear_forward.py)
            out_t = self._scratch("output_t", (self.out_features, input.shape[0]))
            self.backend.gemm(self.weight, input, out_t, trans_b=True)
            with unbuffered(xp):  # a transposed operand would otherwise get 64 KB of iterator buffers
                if self.bias is None:
                    xp.copyto(out, out_t.T)
                else:
                    xp.add(out_t.T, self.bias, out=out)
        elif self.bias is None:
            xp.matmul(input, self.weight.T, out=out)
        elif input.ndim == 2 and xp is np and _blas.AVAILABLE:
            # y = b, then y += x W^T in one BLAS call (a broadcast add would need a buffer)
            xp.copyto(out, self.bias)
            self.backend.gemm(input, self.weight, out, trans_b=True, beta=1.0)
        elif input.ndim == 1:
            xp.matmul(input, self.weight.T, out=out)
            out += self.bias
        else:
            xp.matmul(input, self.weight.T, out=out)
            with unbuffered(xp):  # a broadcast add: no iterator buffers
                out += self.bias
        return out

    def _product_transposed(self, batch):
        """Whether the forward product runs as y^T = W x^T: for 2-48 samples through a
        layer at least 256 wide on both sides (measured crossover; narrower layers and
        larger batches are faster as y = x W^T)."""
        return 2 <= batch <= 48 and self.in_features >= 256 and self.out_features >= 256

    def _check_backward(self, input, grad_output):
        self._check(input)
        if grad_output.shape != input.shape[:-1] + (self.out_features,):
            raise shape_error(self, f"grad_output of shape {input.shape[:-1] + (self.out_features,)}", grad_output)

    def update_grad_input(self, input, grad_output):
        self._check_backward(input, grad_output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.matmul(grad_output, self.weight, out=gx)
        return gx

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        self._check_backward(input, grad_output)  # also when update_grad_input was skipped
        xp = self.backend.xp
        if input.ndim == 1 or input.shape[0] == 1:
            # One sample: an outer product added in place (BLAS ger). BLAS runs a K=1
            # GEMM very slowly (OpenBLAS about 1 GFLOP/s); ger streams at memory speed.
            go, x = grad_output.reshape(-1), input.reshape(-1)
            if not (xp is np and _blas.ger(scale, go, x, self.grad_weight)):
                scratch = self._scratch("grad_weight", self.weight.shape)
                with unbuffered(xp):  # a broadcast product: no iterator buffers
                    xp.multiply(go.reshape(-1, 1), x.reshape(1, -1), out=scratch)
                axpby(scale, scratch, 1.0, self.grad_weight, scratch)
        else:
            scratch = None if xp is np and _blas.AVAILABLE else self._scratch("grad_weight", self.weight.shape)
            self.backend.gemm(grad_output, input, self.grad_weight, trans_a=True, alpha=scale, beta=1.0, scratch=scratch)
        if self.bias is not None:
            scratch = self._scratch("grad_bias", self.bias.shape)
            bias_step = grad_output if input.ndim == 1 else xp.sum(grad_output, axis=0, out=scratch)
            axpby(scale, bias_step, 1.0, self.grad_bias, scratch)

    def extra_repr(self):
        return f"{self.in_features} -> {self.out_features}" + ("" if self.bias is not None else ", without bias")


class _Elementwise(Module):
    """Shared checks for modules with a parameter that broadcasts against the input."""

    _param_name = "weight"

    def _check(self, input):
        param = getattr(self, self._param_name)
        ok = input.ndim >= param.ndim and input.shape[input.ndim - param.ndim :] == param.shape
        if not ok and param.size == 1:
            ok = True
        if not ok:
            try:
                ok = self.backend.xp.broadcast_shapes(input.shape, param.shape) == input.shape
            except ValueError:
                ok = False
        if not ok:
            raise shape_error(self, f"input whose trailing shape broadcasts with {param.shape}", input)

    def _check_backward(self, input, grad_output):
        self._check(input)
        check_same_shape(self, "grad_output", grad_output, input)

    def _accumulate(self, product, grad, scale):
        step = self._scratch("param_step", grad.shape)
        reduce_to_shape(self.backend.xp, product, step)
        axpby(scale, step, 1.0, grad, step)


class Add(_Elementwise):
    """Learned bias (not a sum of two inputs; that is ``CAddTable``): ``y = x + b``.

    ``b`` has shape ``size`` (an int or tuple; ``scalar=True`` gives one shared bias) and
    broadcasts over the input's leading (batch) axes.

    bprop to input: dE/dx = dE/dy;  bprop to b: dE/db += scale * sum over broadcast axes.
    Init (Torch7): U(-1/sqrt(n), 1/sqrt(n)), n = number of elements of b.
    """

    _param_names = ("bias",)
    _param_name = "bias"

    def __init__(self, size, scalar=False, rng=None):
        super().__init__()
        shape = (1,) if scalar else ((size,) if isinstance(size, int) else tuple(size))
        if any((not isinstance(s, int)) or s <= 0 for s in shape):
            raise ValueError(f"Add: size must be a positive int or tuple of them, got {size!r}")
        self.size = shape
        self.bias = uniform(rng, shape, 1.0 / math.sqrt(math.prod(shape)))
        self.grad_bias = self.bias * 0

    def update_output(self, input):
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input.shape)
        self.backend.xp.add(input, self.bias, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        self._check_backward(input, grad_output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        gx[...] = grad_output
        return gx

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        self._check_backward(input, grad_output)
        self._accumulate(grad_output, self.grad_bias, scale)

    def extra_repr(self):
        return "x".join(map(str, self.size))


class CMul(_Elementwise):
    """Learned elementwise scale: ``y = w * x`` with ``w`` of shape ``size``, broadcast.

    bprop to input: dE/dx = w * dE/dy;  bprop to w: dE/dw += scale * sum over broadcast axes
    of (dE/dy * x). Init (Torch7): U(-1/sqrt(n), 1/sqrt(n)), n = number of elements of w.
    """

    _param_names = ("weight",)

    def __init__(self, *size, rng=None):
        super().__init__()
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
        if not shape or any((not isinstance(s, int)) or s <= 0 for s in shape):
            raise ValueError(f"CMul: size must be positive ints, got {size!r}")
        self.size = shape
        self.weight = uniform(rng, shape, 1.0 / math.sqrt(math.prod(shape)))
        self.grad_weight = self.weight * 0

    def spec(self):
        return {"type": "CMul", "args": {"*size": list(self.size)}}

    def update_output(self, input):
        self._check(input)
        out = self.output = self.backend.ensure(self.output, input.shape)
        self.backend.xp.multiply(input, self.weight, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        self._check_backward(input, grad_output)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.multiply(grad_output, self.weight, out=gx)
        return gx

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        self._check_backward(input, grad_output)
        product = self._scratch("product", input.shape)
        self.backend.xp.multiply(grad_output, input, out=product)
        self._accumulate(product, self.grad_weight, scale)

    def extra_repr(self):
        return "x".join(map(str, self.size))


class Mul(CMul):
    """One learned scalar gain: ``y = w x``.

    bprop to input: dE/dx = w dE/dy;  bprop to w: dE/dw += scale * sum(dE/dy * x).
    Init (Torch7): U(-1, 1).
    """

    def __init__(self, rng=None):
        super().__init__(1, rng=rng)

    def spec(self):
        return Module.spec(self)

    def extra_repr(self):
        return ""
