"""Criteria made of criteria: ParallelCriterion and MultiCriterion (weighted sums)."""

from __future__ import annotations

from typing import Any

from ..errors import FormatError, name_of, shape_error
from ._tables import check_table, copy_into, is_table, sum_into
from .module import Criterion, scratch
from .._typing import Array


def _scaled(backend, buffer, value, weight):
    """A copy of ``value`` (array or table) times ``weight``, in ``buffer``."""
    out = copy_into(backend, buffer, value)
    if weight != 1:
        _scale_in_place(out, weight)
    return out


def _scale_in_place(value, weight) -> None:
    if is_table(value):
        for item in value:
            _scale_in_place(item, weight)
    elif value is not None:
        value *= weight


class _CriterionSum(Criterion):
    """A weighted sum of child criteria; ``add(criterion, weight=1)`` chains."""

    _input_kind = "any"
    parts = scratch("{k: w_k dC_k/dx_k}, each in a buffer reused across calls")

    def __init__(self) -> None:
        super().__init__()
        self.criteria: list[Any] = []
        self.weights: list[float] = []

    def add(self, criterion, weight: float=1.0):
        """Append a criterion with its weight; returns self."""
        if not isinstance(criterion, Criterion):
            raise TypeError(f"{type(self).__name__}.add: expected a Criterion, got {type(criterion).__name__}")
        if not self.criteria:
            self.backend = criterion.backend  # adopt the first one's (see Container.add)
        elif criterion.backend != self.backend:
            criterion.to(self.backend)
        self.criteria.append(criterion)
        self.weights.append(float(weight))
        return self

    def children(self):
        return list(self.criteria)

    def spec(self):
        spec = super().spec()
        spec["children"] = [c.spec() for c in self.criteria]
        spec["weights"] = list(self.weights)
        return spec

    @classmethod
    def from_spec(cls, spec, build):
        """Rebuild the criterion and its weighted children from :meth:`spec`."""
        args = spec.get("args", {})
        try:
            made = cls(**args)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"cannot rebuild {spec['type']} from {args}: {exc}") from exc
        children, weights = spec.get("children", []), spec.get("weights", [])
        if len(children) != len(weights):
            raise FormatError(f"{spec['type']}: {len(children)} criteria but {len(weights)} weights")
        for child, weight in zip(children, weights):
            made.add(build(child), weight)
        return made

    def _routes(self, input: Array, target: Array):
        """``[(x_k, t_k)]``: what each criterion gets."""
        raise NotImplementedError

    def _call(self, k, method, x: Array, t):
        try:
            return getattr(self.criteria[k], method)(x, t)
        except Exception as error:
            error.add_note(f"  in criterion {k} ({name_of(self.criteria[k])}) of {type(self).__name__}")
            raise

    def update_output(self, input: Array, target: Array):
        routes = self._routes(input, target)
        self.output = sum(w * float(self._call(k, "forward", x, t)) for k, ((x, t), w) in enumerate(zip(routes, self.weights)))
        return self.output

    def _weighted_grads(self, input: Array, target: Array):
        """``[w_k dC_k/dx_k]``, each in a buffer of this criterion."""
        if self.parts is None:
            self.parts = {}
        store = self.parts
        for k, ((x, t), w) in enumerate(zip(self._routes(input, target), self.weights)):
            store[k] = _scaled(self.backend, store.get(k), self._call(k, "backward", x, t), w)
        return [store[k] for k in range(len(self.criteria))]

    def __repr__(self) -> str:
        rows = [f"  ({i}): {w:g} * {c!r}" for i, (c, w) in enumerate(zip(self.criteria, self.weights))]
        extra = self.extra_repr()
        return f"{type(self).__name__}{f'({extra})' if extra else ''} {{\n" + "\n".join(rows) + "\n}"


class ParallelCriterion(_CriterionSum):
    """Criterion k on entry k of the input table (and of the target table):

        loss = sum_k w_k C_k(x_k, t_k)        dE/dx_k = w_k dC_k/dx_k

    With ``repeat_target=True`` every criterion gets the same target t.
    """

    def __init__(self, repeat_target: bool = False) -> None:
        super().__init__()
        self.repeat_target = bool(repeat_target)

    def _routes(self, input: Array, target: Array):
        n = len(self.criteria)
        check_table(self, input, n, what="entries (one per criterion)")
        if not self.repeat_target:
            if not is_table(target) or len(target) != n:
                raise shape_error(self, f"a target table of {n} entries (or repeat_target=True)", target)
            return list(zip(input, target))
        return [(x, target) for x in input]

    def update_grad_input(self, input: Array, target: Array) -> Array:
        self.grad_input = self._weighted_grads(input, target)
        return self.grad_input

    def extra_repr(self) -> str:
        return "repeat_target=True" if self.repeat_target else ""


class MultiCriterion(_CriterionSum):
    """Several criteria on the same input and target:

        loss = sum_k w_k C_k(x, t)            dE/dx = sum_k w_k dC_k/dx
    """

    def _routes(self, input: Array, target: Array):
        if not self.criteria:
            raise shape_error(self, "at least one criterion (add(criterion, weight))", "an empty MultiCriterion")
        return [(input, target)] * len(self.criteria)

    def update_grad_input(self, input: Array, target: Array) -> Array:
        self.grad_input = sum_into(self.backend, self.grad_input, self._weighted_grads(input, target), self)
        return self.grad_input
