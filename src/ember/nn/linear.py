"""Affine and parametrised elementwise layers: Linear, Add, Mul, CMul."""

from __future__ import annotations

import math

import numpy as np

from .. import _fast
from ..backend import axpby, unbuffered
from ..errors import check_positive, check_same_shape, shape_error
from . import _linear_fast
from ._fresh_grads import take_zero_mark
from .init import uniform
from .module import Module, scratch


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

    Inside a training step's ``zeroed_gradients`` (``nn._fresh_grads``) the first
    accumulation writes ``dE/dW = scale * ...`` instead of adding it onto zeros.
    """

    _param_names = ("weight", "bias")
    _writes_fresh_grads = True  # see _fresh_grads: the first accumulation may write
    output_free_for_next = True  # the backward reads x, W and dE/dy, never y
    bias_step = scratch("sum_n dE/dy_n, before it is scaled into grad_bias")
    scaled_dy = scratch("scale * dE/dy of one sample (the outer product's left factor)")

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
        self.output = self.backend.ensure(self.output, input.shape[:-1] + (self.out_features,))
        return self.backend.affine(input, self.weight, self.bias, self.output)  # y = x W^T + b

    def _check_backward(self, input, grad_output):
        self._check(input)
        if grad_output.shape != input.shape[:-1] + (self.out_features,):
            raise shape_error(self, f"grad_output of shape {input.shape[:-1] + (self.out_features,)}", grad_output)

    def update_grad_input(self, input, grad_output):
        self._check_backward(input, grad_output)
        return self._grad_input(input, grad_output)

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        self._check_backward(input, grad_output)  # also when update_grad_input was skipped
        self._accumulate_grads(input, grad_output, scale)

    def _backward(self, input, grad_output, scale):
        """Both halves after one check of the shapes (the public halves check each)."""
        cls = type(self)
        if (cls.update_grad_input, cls.acc_grad_parameters) != (Linear.update_grad_input, Linear.acc_grad_parameters):
            return super()._backward(input, grad_output, scale)  # a subclass changed a half: call it
        self._check_backward(input, grad_output)
        self.grad_input = self._grad_input(input, grad_output) if self.compute_grad_input else None
        self._accumulate_grads(input, grad_output, scale)
        return self.grad_input

    def _grad_input(self, input, grad_output):
        self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        return self.backend.gemm(grad_output, self.weight, self.grad_input)  # dE/dx = dE/dy W

    def _accumulate_grads(self, input, grad_output, scale):
        go, x = grad_output.reshape(-1, self.out_features), input.reshape(-1, self.in_features)
        if take_zero_mark(self):  # the gradients hold zeros: write them
            self._write_grads(go, x, scale)
            return
        self.backend.gemm(go, x, self.grad_weight, trans_a=True, alpha=scale, beta=1.0)  # dW += scale dy^T x
        if self.bias is not None:
            self.bias_step = self._fit(self.bias_step, self.bias.shape)
            self.backend.xp.sum(go, axis=0, out=self.bias_step)
            axpby(scale, self.bias_step, 1.0, self.grad_bias, self.bias_step)  # db += scale sum_n dy_n

    def _write_grads(self, go, x, scale):
        """dW = scale dy^T x and db = scale sum_n dy_n, written over the old contents."""
        xp, gw = self.backend.xp, self.grad_weight
        if go.shape[0] == 0:  # no sample (a product with k = 0 may leave the old contents)
            for _, _, grad in self._own_parameters():
                grad.fill(0)
            return
        if go.shape[0] != 1 or xp is not np or not gw.flags.c_contiguous:
            self.backend.gemm(go, x, gw, trans_a=True, alpha=scale, beta=0.0)  # BLAS zeroes as it goes
        elif _fast.use(_linear_fast.outer_write) and go.dtype == x.dtype == gw.dtype:
            _linear_fast.outer_write(gw.dtype.type(scale), go[0], x[0], gw)  # compiled: one pass
        else:  # one sample: the outer product, written
            dy = go[0]
            if scale != 1:
                dy = self.scaled_dy = self._fit(self.scaled_dy, dy.shape)
                xp.multiply(go[0], scale, out=dy)
            with unbuffered(xp):  # a broadcast product: no iterator buffers
                xp.multiply(dy.reshape(-1, 1), x, out=gw)
        if self.bias is not None:
            xp.sum(go, axis=0, out=self.grad_bias)
            if scale != 1:
                self.grad_bias *= scale

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

    param_step = scratch("the parameter gradient's step, before it is scaled in")

    def _accumulate(self, product, grad, scale):
        self.param_step = self._fit(self.param_step, grad.shape)
        reduce_to_shape(self.backend.xp, product, self.param_step)
        axpby(scale, self.param_step, 1.0, grad, self.param_step)


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
    product = scratch("dE/dy * x, before it is summed over the broadcast axes")

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
        self.product = self._fit(self.product, input.shape)
        self.backend.xp.multiply(grad_output, input, out=self.product)
        self._accumulate(self.product, self.grad_weight, scale)

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
