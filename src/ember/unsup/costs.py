"""Energy terms of the sparse models: the L1 sparsity cost and the per-unit gain ``Diag``."""

from __future__ import annotations

from ..backend import axpby
from ..errors import ShapeError, check_positive, check_same_shape, describe, shape_error
from ..nn.module import Criterion, Module, scratch


class L1Cost(Criterion):
    """The sparsity energy ``E = sum_i |z_i|`` over every element of the input (Torch7 ``nn.L1Cost``).

    A criterion without a target: ``L1Cost().forward(z)`` (a target, if given, must be
    None). ``size_average`` (default False, as Torch7) divides by the number of samples
    (the first axis of a batch).

    fprop:  E = sum_i |z_i|  (/ N with size_average)
    bprop:  dE/dz = sign(z)  (0 at z = 0; / N with size_average)
    """

    def __init__(self, size_average=False):
        super().__init__(size_average)

    def _check(self, input, target):
        if target is not None:
            raise ShapeError(f"{self!r}: takes no target (the energy is sum |z|), got {describe(target)}")
        if input.ndim == 0:
            raise shape_error(self, "an input with at least one axis", input)

    def _divisor(self, input):
        return input.shape[0] if self.size_average and input.ndim > 1 else 1

    def forward(self, input, target=None):
        """sum |input| (a float); the target must be None."""
        return super().forward(input, target)

    def backward(self, input, target=None):
        """sign(input) (divided by N with size_average); the target must be None."""
        return super().backward(input, target)

    def __call__(self, input, target=None):
        return self.forward(input, target)

    def update_output(self, input, target=None):
        self._check(input, target)
        self.output = float(self.backend.xp.abs(input).sum()) / self._divisor(input)
        return self.output

    def update_grad_input(self, input, target=None):
        self._check(input, target)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.sign(input, out=gx)
        if self._divisor(input) != 1:
            gx /= self._divisor(input)
        return gx

    def extra_repr(self):
        return "size_average" if self.size_average else ""


class Diag(Module):
    """A learned gain per unit: ``y[n, i, ...] = d_i x[n, i, ...]`` (Torch7 ``unsup.Diag``).

    The last stage of the PSD encoder ``Linear -> Tanh -> Diag``: it lets the encoder
    match the scale of the sparse codes (tanh saturates at 1). Unit ``i`` is axis 1 of a
    batch (N, n) or (N, n, H, W) (one gain per feature map), or axis 0 of one sample (n,).

    fprop:            y = d * x (d broadcast over the batch and spatial axes)
    bprop to input:   dE/dx = d * dE/dy
    bprop to weights: dE/dd_i += scale * sum over (n, spatial) of dE/dy * x
    Init (Torch7): d = 1.
    """

    _param_names = ("weight",)
    product = scratch("dE/dy * x before it is summed per unit")
    weight_step = scratch("dE/dd of this call, before it is scaled in")

    def __init__(self, n_units, rng=None):
        super().__init__()
        check_positive("Diag", n_units=n_units)
        self.n_units = n_units
        self.weight = self.backend.xp.ones(n_units, dtype=self.backend.dtype)
        self.grad_weight = self.weight * 0

    def _axis(self, input):
        axis = 0 if input.ndim == 1 else 1
        if input.ndim == 0 or input.ndim == 3 or input.shape[axis] != self.n_units:
            raise shape_error(self, f"input (N, {self.n_units}), (N, {self.n_units}, H, W) or ({self.n_units},)", input)
        return axis

    def _gain(self, input):
        axis = self._axis(input)
        return self.weight.reshape((self.n_units,) + (1,) * (input.ndim - axis - 1))

    def update_output(self, input):
        out = self.output = self.backend.ensure(self.output, input.shape)
        self.backend.xp.multiply(input, self._gain(input), out=out)
        return out

    def update_grad_input(self, input, grad_output):
        check_same_shape(self, "grad_output", grad_output, input)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.multiply(grad_output, self._gain(input), out=gx)
        return gx

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        axis = self._axis(input)
        check_same_shape(self, "grad_output", grad_output, input)
        xp = self.backend.xp
        self.product = self._fit(self.product, input.shape)
        xp.multiply(grad_output, input, out=self.product)
        self.weight_step = self._fit(self.weight_step, self.weight.shape)
        axes = tuple(a for a in range(input.ndim) if a != axis)
        if axes:
            xp.sum(self.product, axis=axes, out=self.weight_step)
        else:
            self.weight_step[...] = self.product
        axpby(scale, self.weight_step, 1.0, self.grad_weight, self.weight_step)

    def extra_repr(self):
        return str(self.n_units)


__all__ = ["L1Cost", "Diag"]
