"""Elementwise arithmetic: Square, Sqrt, Power, Exp, Log, AddConstant, MulConstant."""

from __future__ import annotations

from .activation import Pointwise
from .module import scratch
from .._typing import Array

from typing import Any


class Square(Pointwise):
    """``y = x^2``.  bprop: dE/dx = 2 x dE/dy."""

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.multiply(x, x, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.multiply(x, go, out=gx)
        gx *= 2


class Sqrt(Pointwise):
    """``y = sqrt(x)`` for x >= 0.  bprop: dE/dx = dE/dy / (2 y), defined as 0 where y = 0
    (Torch7's convention, which keeps Lp pooling finite on all-zero windows)."""

    zero = scratch("where y == 0 (bool)")

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.sqrt(x, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.multiply(y, 2, out=gx)
        zero = self.zero = self._fit(self.zero, None, like=y, dtype=bool)
        xp.equal(y, 0, out=zero)
        xp.copyto(gx, 1, where=zero)  # no division by 0 (CuPy's ufuncs take no where=)
        xp.divide(go, gx, out=gx)
        xp.copyto(gx, 0, where=zero)


class Power(Pointwise):
    """``y = x^p``.  bprop: dE/dx = p x^(p-1) dE/dy. Negative x with non-integer p gives NaN."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.power(x, self.p, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.power(x, self.p - 1, out=gx)
        gx *= self.p
        gx *= go

    def extra_repr(self) -> str:
        return f"{self.p:g}"


class Exp(Pointwise):
    """``y = exp(x)``.  bprop: dE/dx = y dE/dy."""

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.exp(x, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.multiply(y, go, out=gx)


class Log(Pointwise):
    """``y = log(x)`` for x > 0.  bprop: dE/dx = dE/dy / x."""

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.log(x, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.divide(go, x, out=gx)


class AddConstant(Pointwise):
    """``y = x + c`` for a fixed scalar c.  bprop: dE/dx = dE/dy."""

    def __init__(self, constant: Any) -> None:
        super().__init__()
        self.constant = float(constant)

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.add(x, self.constant, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.copyto(gx, go)

    def extra_repr(self) -> str:
        return f"{self.constant:g}"


class MulConstant(Pointwise):
    """``y = c x`` for a fixed scalar c.  bprop: dE/dx = c dE/dy."""

    def __init__(self, constant: Any) -> None:
        super().__init__()
        self.constant = float(constant)

    def fprop(self, xp: Any, x: Array, y: Array) -> None:
        xp.multiply(x, self.constant, out=y)

    def bprop(self, xp: Any, x: Array, y: Array, go: Array, gx: Array) -> None:
        xp.multiply(go, self.constant, out=gx)

    def extra_repr(self) -> str:
        return f"{self.constant:g}"
