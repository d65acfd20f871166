"""Transfer functions (non-linearities), applied elementwise or over the feature axis.

Pointwise modules share :class:`Pointwise`: a subclass writes ``fprop`` and ``bprop``
with ``out=`` arguments; the base class handles buffers and shape checks.
"""

from __future__ import annotations

from .. import _fast
from ..errors import check_same_shape, shape_error
from . import _pointwise_fast, _softmax_fast
from ._layout import ensure_like
from .module import Module, scratch


class Pointwise(Module):
    """Base of elementwise modules ``y_i = f(x_i)``; any input shape.

    Subclasses implement ``fprop(xp, x, y)`` (write f(x) into y) and
    ``bprop(xp, x, y, grad_output, grad_input)`` (write dE/dx into grad_input).
    """

    def fprop(self, xp, x, y):
        """Write f(x) into ``y`` (same shape), elementwise, with ``xp`` ufuncs and ``out=``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement fprop")

    def bprop(self, xp, x, y, go, gx):
        """Write dE/dx = f'(x) * dE/dy into ``gx``, from x, y = f(x) and ``go`` = dE/dy."""
        raise NotImplementedError(f"{type(self).__name__} does not implement bprop")

    def update_output(self, input):
        # the output keeps the input's memory layout (e.g. CHWN images, see _layout)
        out = self.output = ensure_like(self.backend, self.output, input)
        self.fprop(self.backend.xp, input, out)
        return out

    def update_grad_input(self, input, grad_output):
        check_same_shape(self, "grad_output", grad_output, input)
        gx = self.grad_input = ensure_like(self.backend, self.grad_input, input)
        self.bprop(self.backend.xp, input, self.output, grad_output, gx)
        return gx


class Threshold(Pointwise):
    """``y = x if x > threshold else value`` (Torch7 default threshold 1e-6, value 0).

    bprop: dE/dx = dE/dy where x > threshold, else 0.
    """

    above = scratch("where x > threshold (bool; only when value != 0)")

    def __init__(self, threshold=1e-6, value=0.0):
        super().__init__()
        self.threshold, self.value = float(threshold), float(value)

    def fprop(self, xp, x, y):
        if self.value == 0:
            xp.greater(x, self.threshold, out=y)
            y *= x
        else:
            above = self.above = self._fit(self.above, None, like=x, dtype=bool)
            xp.greater(x, self.threshold, out=above)
            xp.copyto(y, self.value)
            xp.copyto(y, x, where=above)

    def bprop(self, xp, x, y, go, gx):
        xp.greater(x, self.threshold, out=gx)
        gx *= go

    def extra_repr(self):
        return f"threshold={self.threshold:g}, value={self.value:g}"


class ReLU(Pointwise):
    """Rectified linear unit ``y = max(0, x)`` (= ``Threshold(0, 0)``).

    bprop: dE/dx = dE/dy where x > 0, else 0 (computed from the stored output).

    ``inplace=True`` (Torch7's ``nn.ReLU(true)``, PyTorch's ``inplace=True``) writes y over
    x where no result can change: when x is the output of the module just before this one
    in a :class:`Sequential` and that module's class says nothing reads its output again
    (``output_free_for_next``: Linear, SpatialConvolution). That module's ``output`` then
    holds y. Anywhere else (the first module, a table container's branch, after a Tanh whose
    backward reads its own output) y goes to the ReLU's own buffer as with ``inplace=False``:
    the numbers never depend on the switch, only the memory traffic does (a 128 x 1000
    activation less to write and read back: ~2% of an MNIST MLP training step on AMD Zen 3,
    OpenBLAS Haswell kernel, 2026-12-03; docs/benchmarks.md).
    """

    own_output = scratch("y when not written over the input: the ReLU's own buffer (the output "
                         "after an in-place call is another module's buffer, never written here)")

    def __init__(self, inplace=False):
        super().__init__()
        if not isinstance(inplace, bool):
            raise TypeError(f"ReLU: inplace must be a bool, got {inplace!r}")
        self.inplace = inplace

    def update_output(self, input):
        if self.inplace and self.overwrite_input:  # set by a Sequential: a free buffer (class doc)
            out = input
        else:
            out = self.own_output = ensure_like(self.backend, self.own_output, input)
        self.fprop(self.backend.xp, input, out)
        self.output = out
        return out

    def extra_repr(self):
        return "inplace" if self.inplace else ""

    def fprop(self, xp, x, y):
        xp.maximum(x, 0, out=y)

    def bprop(self, xp, x, y, go, gx):
        if _fast.use(_pointwise_fast.relu_backward) and xp.__name__ == "numpy":
            flat = _pointwise_fast.flat_views(y, go, gx)
            if flat is not None:  # compiled (ember[fast]): one pass
                _pointwise_fast.relu_backward(*flat)
                return
        xp.greater(y, 0, out=gx)  # the 0/1 mask, written straight as floats
        gx *= go


class Tanh(Pointwise):
    """``y = tanh(x)``.  bprop: dE/dx = dE/dy * (1 - y^2), from the stored output."""

    def fprop(self, xp, x, y):
        xp.tanh(x, out=y)

    def bprop(self, xp, x, y, go, gx):
        xp.multiply(y, y, out=gx)
        xp.subtract(1, gx, out=gx)
        gx *= go


class Sigmoid(Pointwise):
    """Logistic ``y = 1 / (1 + exp(-x))``.  bprop: dE/dx = dE/dy * y * (1 - y)."""

    def fprop(self, xp, x, y):
        # tanh form: 1/(1+e^-x) = (1 + tanh(x/2)) / 2, stable for every x
        xp.multiply(x, 0.5, out=y)
        xp.tanh(y, out=y)
        y += 1
        y *= 0.5

    def bprop(self, xp, x, y, go, gx):
        xp.subtract(1, y, out=gx)
        gx *= y
        gx *= go


class HardTanh(Pointwise):
    """Clip to ``[min_value, max_value]`` (default [-1, 1]).

    bprop: dE/dx = dE/dy strictly inside the interval, else 0.
    """

    beyond = scratch("where x >= max_value (bool)")

    def __init__(self, min_value=-1.0, max_value=1.0):
        super().__init__()
        if not min_value < max_value:
            raise ValueError(f"HardTanh: min_value must be < max_value, got {min_value}, {max_value}")
        self.min_value, self.max_value = float(min_value), float(max_value)

    def fprop(self, xp, x, y):
        xp.clip(x, self.min_value, self.max_value, out=y)

    def bprop(self, xp, x, y, go, gx):
        xp.greater(x, self.min_value, out=gx)  # 0/1 floats: above the lower bound
        beyond = self.beyond = self._fit(self.beyond, None, like=x, dtype=bool)
        xp.greater_equal(x, self.max_value, out=beyond)
        xp.copyto(gx, 0, where=beyond)
        gx *= go

    def extra_repr(self):
        return f"{self.min_value:g}, {self.max_value:g}"


class SoftPlus(Pointwise):
    """``y = (1/beta) log(1 + exp(beta x))``, and ``y = x`` where ``beta x > threshold``.

    bprop: dE/dx = dE/dy * sigmoid(beta x) (1 above the threshold). Defaults beta=1,
    threshold=20 (Torch7 and PyTorch).
    """

    linear = scratch("where beta x > threshold (bool): y = x there")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"SoftPlus: beta must be > 0, got {beta}")
        self.beta, self.threshold = float(beta), float(threshold)

    def fprop(self, xp, x, y):
        xp.multiply(x, self.beta, out=y)
        xp.logaddexp(0, y, out=y)
        y /= self.beta
        xp.copyto(y, x, where=self._linear_part(xp, x))

    def bprop(self, xp, x, y, go, gx):
        # sigmoid(beta x) = 1 - exp(-beta y)
        xp.multiply(y, -self.beta, out=gx)
        xp.exp(gx, out=gx)
        xp.subtract(1, gx, out=gx)
        xp.copyto(gx, 1, where=self._linear_part(xp, x))
        gx *= go

    def _linear_part(self, xp, x):
        """Where beta x > threshold (y = x there), in a reused mask."""
        self.linear = self._fit(self.linear, None, like=x, dtype=bool)
        return xp.greater(x, self.threshold / self.beta, out=self.linear)

    def extra_repr(self):
        return f"beta={self.beta:g}" if self.beta != 1 else ""


class _Shrink(Pointwise):
    """Shrinkage with threshold ``lambd`` >= 0; the gradient passes where |x| > lambd."""

    def __init__(self, lambd=0.5):
        super().__init__()
        if lambd < 0:
            raise ValueError(f"{type(self).__name__}: lambd must be >= 0, got {lambd}")
        self.lambd = float(lambd)

    def bprop(self, xp, x, y, go, gx):
        xp.abs(x, out=gx)
        xp.greater(gx, self.lambd, out=gx)
        gx *= go

    def extra_repr(self):
        return f"{self.lambd:g}"


class SoftShrink(_Shrink):
    """Soft shrinkage: ``y = x - l`` if ``x > l``, ``x + l`` if ``x < -l``, else 0 (l=0.5).

    bprop: dE/dx = dE/dy where |x| > l (strict), else 0.
    """

    def fprop(self, xp, x, y):
        xp.clip(x, -self.lambd, self.lambd, out=y)
        xp.subtract(x, y, out=y)


class HardShrink(_Shrink):
    """Hard shrinkage: ``y = x`` if ``|x| > l``, else 0 (l = 0.5).

    bprop: dE/dx = dE/dy where |x| > l, else 0.
    """

    def fprop(self, xp, x, y):
        xp.abs(x, out=y)
        xp.greater(y, self.lambd, out=y)
        y *= x


class Abs(Pointwise):
    """``y = |x|`` (the "abs" rectification of Jarrett et al. 2009).

    bprop: dE/dx = sign(x) dE/dy (0 at x = 0).
    """

    def fprop(self, xp, x, y):
        xp.abs(x, out=y)

    def bprop(self, xp, x, y, go, gx):
        xp.sign(x, out=gx)
        gx *= go


def feature_axis(ndim, dim):
    """The softmax axis: ``dim`` if given, else 0 for 1-D/3-D input and 1 otherwise
    (Torch7's rule: a single sample (C,) or (C, H, W), or a batch (N, C) or (N, C, H, W))."""
    if dim is not None:
        return dim % ndim
    return 0 if ndim in (1, 3) else 1


class _OverFeatures(Module):
    """Modules that normalise over the feature axis (see :func:`feature_axis`)."""

    lse = scratch("log sum exp over the feature axis (kept as a length-1 axis)")
    shifted = scratch("exp(x - max), like the input")
    total = scratch("a sum over the feature axis (kept as a length-1 axis)")

    def __init__(self, dim=None):
        super().__init__()
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise ValueError(f"{type(self).__name__}: dim must be an int axis or None, got {dim!r}")
        self.dim = dim

    def _axis(self, input):
        if input.ndim == 0 or (self.dim is not None and not -input.ndim <= self.dim < input.ndim):
            raise shape_error(self, f"input with axis {self.dim}", input)
        return feature_axis(input.ndim, self.dim)

    def _reduced_shape(self, input, axis):
        return input.shape[:axis] + (1,) + input.shape[axis + 1 :]

    def _log_sum_exp(self, input, axis, out):
        """out (keepdims) = m + log sum exp(x - m), m = max over the axis (no overflow)."""
        xp = self.backend.xp
        shifted = self.shifted = self._fit(self.shifted, input.shape)
        xp.max(input, axis=axis, keepdims=True, out=out)
        xp.subtract(input, out, out=shifted)
        xp.exp(shifted, out=shifted)
        total = self.total = self._fit(self.total, out.shape)
        xp.sum(shifted, axis=axis, keepdims=True, out=total)
        xp.log(total, out=total)
        out += total
        return out

    def extra_repr(self):
        return f"dim={self.dim}" if self.dim is not None else ""


class LogSumExp(_OverFeatures):
    """The lecture's LogSumExp module: ``y = log sum_j exp(x_j)`` over the feature axis.

    The axis is removed from the output. Computed as m + log sum exp(x - m).
    bprop: dE/dx_j = dE/dy * exp(x_j - y) = dE/dy * softmax(x)_j.
    """

    def update_output(self, input):
        axis = self._axis(input)
        keep = self.lse = self._fit(self.lse, self._reduced_shape(input, axis))
        self._log_sum_exp(input, axis, keep)
        self.output = keep.reshape(input.shape[:axis] + input.shape[axis + 1 :])
        return self.output

    def update_grad_input(self, input, grad_output):
        axis = self._axis(input)
        keep_shape = self._reduced_shape(input, axis)
        check_same_shape(self, "grad_output", grad_output, self.output)
        xp = self.backend.xp
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        xp.subtract(input, self.output.reshape(keep_shape), out=gx)
        xp.exp(gx, out=gx)
        gx *= grad_output.reshape(keep_shape)
        return gx


class LogSoftMax(_OverFeatures):
    """``y_i = x_i - log sum_j exp(x_j)`` over the feature axis (= Identity - LogSumExp).

    bprop: dE/dx_i = dE/dy_i - exp(y_i) * sum_j dE/dy_j.
    """

    def update_output(self, input):
        axis = self._axis(input)
        lse = self.lse = self._fit(self.lse, self._reduced_shape(input, axis))
        out = self.output = self.backend.ensure(self.output, input.shape)
        if axis == 1 and _fast.use(_softmax_fast.log_softmax_rows) and _softmax_fast.rows_ready(input, out):
            _softmax_fast.log_softmax_rows(input, out, lse)  # compiled (ember[fast]): one pass per row
            return out
        self._log_sum_exp(input, axis, lse)
        self.backend.xp.subtract(input, lse, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        axis = self._axis(input)
        check_same_shape(self, "grad_output", grad_output, input)
        xp = self.backend.xp
        if axis == 1 and _fast.use(_softmax_fast.log_softmax_rows_backward):
            gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
            if _softmax_fast.rows_ready(self.output, grad_output, gx):  # compiled: one pass per row
                _softmax_fast.log_softmax_rows_backward(self.output, grad_output, gx)
                return gx
        total = self.total = self._fit(self.total, self._reduced_shape(input, axis))
        xp.sum(grad_output, axis=axis, keepdims=True, out=total)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        xp.exp(self.output, out=gx)
        gx *= total
        xp.subtract(grad_output, gx, out=gx)
        return gx


class SoftMax(_OverFeatures):
    """``y_i = exp(x_i) / sum_j exp(x_j)`` over the feature axis.

    bprop: dE/dx_i = y_i * (dE/dy_i - sum_j y_j dE/dy_j).
    """

    def update_output(self, input):
        axis = self._axis(input)
        lse = self.lse = self._fit(self.lse, self._reduced_shape(input, axis))
        self._log_sum_exp(input, axis, lse)
        out = self.output = self.backend.ensure(self.output, input.shape)
        xp = self.backend.xp
        xp.subtract(input, lse, out=out)
        xp.exp(out, out=out)
        return out

    def update_grad_input(self, input, grad_output):
        axis = self._axis(input)
        check_same_shape(self, "grad_output", grad_output, input)
        xp = self.backend.xp
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        xp.multiply(self.output, grad_output, out=gx)
        total = self.total = self._fit(self.total, self._reduced_shape(input, axis))
        xp.sum(gx, axis=axis, keepdims=True, out=total)
        xp.subtract(grad_output, total, out=gx)
        gx *= self.output
        return gx
