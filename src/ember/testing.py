"""Gradient checking for modules and criteria (like Torch7's ``nn.Jacobian``).

Checks compare the analytic bprop with **central finite differences in float64**,
``(f(x + h) - f(x - h)) / 2h``. For a module the scalar probed is ``L = <output, R>``
with a fixed random ``R`` of the output's shape, so one backward pass gives
``dL/dx = R . dF/dx`` and ``dL/dW`` for every parameter, and each is compared element by
element with the finite differences of L (a random projection of the full Jacobian,
which misses an error only with probability zero). For large inputs,
:func:`check_random_directions` compares directional derivatives instead.

Typical use on a module of your own::

    from ember.testing import assert_gradients
    m = MyModule(...).to("numpy:float64")
    assert_gradients(m, np.random.default_rng(0).standard_normal((4, 5)))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from ._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .nn.module import Criterion, Module

DEFAULT_EPS = 1e-6


@dataclass
class GradientReport:
    """Result of a check: ``errors[name] = (max abs error, scale of the true gradient)``."""

    errors: dict = field(default_factory=dict)
    atol: float = 1e-6
    rtol: float = 1e-5
    problems: list = field(default_factory=list)

    def mismatch(self, name: str, problem: Any) -> None:
        """Record a gradient whose structure does not mirror the input's."""
        self.errors[name] = (float("inf"), 0.0)
        self.problems.append(problem)

    def add(self, name: str, analytic: Any, numeric: Any) -> None:
        """Record the largest difference between an analytic and a numeric gradient."""
        analytic = np.asarray(analytic, dtype=np.float64)
        numeric = np.asarray(numeric, dtype=np.float64)
        err = float(np.max(np.abs(analytic - numeric))) if analytic.size else 0.0
        scale = float(np.max(np.abs(numeric))) if numeric.size else 0.0
        self.errors[name] = (err, scale)

    def failures(self) -> dict[str, Any]:
        """``{name: (max error, scale)}`` of the gradients outside ``atol + rtol * scale``."""
        return {k: v for k, v in self.errors.items() if not v[0] <= self.atol + self.rtol * v[1]}

    @property
    def ok(self) -> bool:
        return not self.failures()

    def __str__(self) -> str:
        rows = [f"  {k}: max abs error {e:.3g} (gradient scale {s:.3g})" for k, (e, s) in self.errors.items()]
        rows += [f"  structure: {p}" for p in self.problems]
        return "gradient check " + ("passed" if self.ok else "FAILED") + "\n" + "\n".join(rows)


# ---------------------------------------------------------------- structures (arrays or tables)
def float_leaves(value: Any) -> list[Any]:
    """The floating-point arrays inside ``value`` (an array or nested list/tuple)."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in float_leaves(item)]
    if hasattr(value, "dtype") and value.dtype.kind == "f":
        return [value]
    return []


def structure_mismatch(value: Any, grad: Array, where: str = "input") -> Any:
    """Why ``grad`` does not mirror ``value`` (a table's gradient is a table of the same
    length; a float array's gradient an array of the same shape), or None if it does.
    Non-float entries (integer selectors, labels) may get anything, usually None."""
    if isinstance(value, (list, tuple)):
        if not isinstance(grad, (list, tuple)) or len(grad) != len(value):
            return f"{where}: a table of {len(value)} entries got a gradient {_describe(grad)}"
        for i, (v, g) in enumerate(zip(value, grad)):
            problem = structure_mismatch(v, g, f"{where}[{i}]")
            if problem:
                return problem
        return None
    if hasattr(value, "dtype") and value.dtype.kind == "f" and getattr(grad, "shape", None) != value.shape:
        return f"{where}: an array of shape {tuple(value.shape)} got a gradient {_describe(grad)}"
    return None


def _describe(value):
    if isinstance(value, (list, tuple)):
        return f"table of {len(value)} entries"
    return f"of shape {tuple(value.shape)}" if hasattr(value, "shape") else repr(value)


def map_structure(fn: Any, value: Any) -> Any:
    """``fn`` applied to every leaf of a (nested) list/tuple table, structure kept."""
    if isinstance(value, (list, tuple)):
        return type(value)(map_structure(fn, v) for v in value)
    return fn(value)


def _copy(value):
    return map_structure(lambda v: v.copy() if hasattr(v, "copy") else v, value)


def _dot(a, b):
    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in zip(float_leaves(a), float_leaves(b))))


def _warn_precision(module) -> None:
    if getattr(module, "backend", None) is not None and module.backend.dtype != "float64":
        warnings.warn(
            f"gradient check of {module!r} in {module.backend.dtype}: finite differences need "
            "float64 (module.to('numpy:float64')), expect spurious failures",
            stacklevel=3,
        )


# ---------------------------------------------------------------- modules
def _probe(module, rng):
    output = module.output
    return map_structure(lambda o: rng.standard_normal(o.shape).astype(o.dtype) if hasattr(o, "shape") and o.dtype.kind == "f" else o, output)


def _setup(module, input: Array, seed, reseed):
    """A private copy of the input, a forward closure (re-seeding noise first) and a
    fixed random probe R of the output's shape (the scalar checked is <output, R>)."""
    _warn_precision(module)
    input = _copy(input)

    def run():
        if reseed is not None:
            reseed(module)
        return module.forward(input)

    run()
    return input, run, _probe(module, np.random.default_rng(seed))


def check_gradients(module: Module, input: Array, eps: float = DEFAULT_EPS, seed: int = 0, reseed: Any = None,
                    params: bool = True) -> GradientReport:
    """Compare bprop (to the input and to every parameter) with finite differences.

    ``reseed(module)`` is called before every forward pass, for modules with noise
    (e.g. re-seed a Dropout generator so every pass draws the same mask).
    Returns a :class:`GradientReport`.
    """
    input, run, probe = _setup(module, input, seed, reseed)

    def loss():
        return _dot(run(), probe)

    if params:
        module.zero_grad_parameters()
    run()
    grad_input = _copy(module.backward(input, probe))
    table = isinstance(input, (list, tuple))
    report = _input_report(input, grad_input, loss, eps, lambda i: f"input[{i}]" if table else "input")
    if params:
        names = {id(a): n for n, a in module.named_arrays()}
        for param, grad in zip(*module.parameters()):
            report.add(names.get(id(param), "parameter"), grad.copy(), _numeric(loss, param, eps))
    return report


def _input_report(input: Array, grad_input, loss, eps, label):
    """A :class:`GradientReport` comparing each float leaf of ``grad_input`` with central
    differences of ``loss()`` over the matching leaf of ``input`` (row ``label(i)``), after
    flagging a grad_input whose structure does not match the input's."""
    report = GradientReport()
    problem = structure_mismatch(input, grad_input)
    if problem:
        report.mismatch("grad_input", problem)
    for i, (leaf, analytic) in enumerate(zip(float_leaves(input), float_leaves(grad_input))):
        report.add(label(i), analytic, _numeric(loss, leaf, eps))
    return report


def _numeric(loss, array: Array, eps):
    """Central differences of ``loss()`` with respect to each element of ``array`` (in place)."""
    flat = array.reshape(-1)
    if flat.base is None and array.size and not np.shares_memory(flat, array):  # pragma: no cover
        raise ValueError("finite differences need a contiguous array")
    grad = np.zeros(array.size)
    for i in range(array.size):
        original = flat[i].copy()
        flat[i] = original + eps
        plus = loss()
        flat[i] = original - eps
        minus = loss()
        flat[i] = original
        grad[i] = (plus - minus) / (2 * eps)
    return grad.reshape(array.shape)


def check_random_directions(module: Module, input: Array, directions: int = 3, eps: float = DEFAULT_EPS, seed: int = 0,
                            reseed: Any = None) -> Any:
    """Directional-derivative check for large inputs: for random directions d (over the
    input and all parameters at once), compare ``(L(p + h d) - L(p - h d)) / 2h`` with
    ``<dL/dp, d>``. Returns a :class:`GradientReport` with one row per direction."""
    input, run, probe = _setup(module, input, seed, reseed)
    rng = np.random.default_rng(seed + 1)
    module.zero_grad_parameters()
    run()
    grads = [g.copy() for g in float_leaves(module.backward(input, probe))] + [g.copy() for g in module.parameters()[1]]
    arrays = float_leaves(input) + module.parameters()[0]
    report = GradientReport()
    for k in range(directions):
        ds = [rng.standard_normal(a.shape) for a in arrays]
        analytic = sum(float(np.vdot(g, d)) for g, d in zip(grads, ds))
        originals = [a.copy() for a in arrays]
        values = []
        for sign in (1, -1):
            for a, o, d in zip(arrays, originals, ds):
                a[...] = o + sign * eps * d
            values.append(_dot(run(), probe))
        for a, o in zip(arrays, originals):
            a[...] = o
        report.add(f"direction {k}", [analytic], [(values[0] - values[1]) / (2 * eps)])
    return report


# ---------------------------------------------------------------- criteria
def check_criterion(criterion: Criterion, input: Array, target: Array, eps: float = DEFAULT_EPS) -> GradientReport:
    """Compare ``criterion.backward`` with finite differences of ``criterion.forward``."""
    _warn_precision(criterion)
    input = _copy(input)
    criterion.forward(input, target)
    analytic = _copy(criterion.backward(input, target))
    return _input_report(input, analytic, lambda: float(criterion.forward(input, target)), eps, lambda i: f"input[{i}]")


def assert_gradients(module: Module, input: Array, target: Array | None = None, **kwargs: Any) -> Any:
    """Raise AssertionError with the report unless the gradient check passes.

    With ``target`` given, ``module`` is treated as a criterion.
    """
    from .nn.module import Criterion

    if isinstance(module, Criterion):
        report = check_criterion(module, input, target, **kwargs)
    else:
        report = check_gradients(module, input, **kwargs)
    if not report.ok:
        raise AssertionError(f"{module!r}: {report}")
    return report
