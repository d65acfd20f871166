"""Containers whose children run side by side: ConcatTable, ParallelTable, MapTable,
Concat, Parallel.

``ConcatTable`` is the lecture's Branch/Duplicate module: one input copied to K
branches; in bprop the gradients coming back from the branches are **summed**
(the fan-out rule that makes "any connection permissible").

Axes (``dim``) are 0-based axes of the arrays counting the batch axis, negative from
the end.
"""

from __future__ import annotations

from ..errors import check_same_shape, name_of, shape_error
from ._tables import check_table, exclusive_runners, is_table, normalize_axis, replicas, sum_into
from .containers import Container, add_context
from .module import backprop, saved, scratch
from typing import TYPE_CHECKING, Any

from .._typing import Array


if TYPE_CHECKING:
    from ..nn.module import Module


class _Branches(Container):
    """Base of containers that run every child once per call on its own input.

    A subclass says how the input is routed to the children (``_routes``), how their
    outputs are combined (``_combine``), how grad_output is split back
    (``_split_grad``) and how the children's grad_inputs are merged (``_merge``).
    """

    _merge: Any  # (input, grads) -> grad_input, defined by each subclass

    replicas = scratch("the modules running a child's second and later uses (declared: "
                       "clear_state and to() drop them)")

    def _runners(self, n):
        """The modules that run the children: a child used twice (``ParallelTable(m, m)``)
        runs the second time as a replica sharing its arrays, so both uses keep their
        own buffers and accumulate into the same gradients."""
        if self.replicas is None:
            self.replicas = {}
        return exclusive_runners(self._children, self.replicas)

    def _routes(self, input: Array):
        raise NotImplementedError

    def update_output(self, input: Array):
        outputs = []
        for index, (child, x) in enumerate(self._routes(input)):
            try:
                outputs.append(child.forward(x))
            except Exception as error:
                add_context(error, self, index, child)
                raise
        self.output = self._combine(input, outputs)
        return self.output

    def _backprop(self, input: Array, grad_output: Array, scale, need_input, need_params):
        routes = self._routes(input)
        grads = []
        for index, ((child, x), go) in enumerate(zip(routes, self._split_grad(grad_output, routes))):
            try:
                grads.append(backprop(child, x, go, scale, need_input, need_params))
            except Exception as error:
                add_context(error, self, index, child)
                raise
        if need_input:
            self.grad_input = self._merge(input, grads)

    # table outputs (ConcatTable, ParallelTable, MapTable)
    def _combine(self, input: Array, outputs):
        return outputs

    def _split_grad(self, grad_output: Array, routes):
        if not is_table(grad_output) or len(grad_output) != len(routes):
            raise shape_error(self, f"grad_output as a table of {len(routes)} entries (one per branch)", grad_output)
        return grad_output

    def __repr__(self) -> str:
        return self._tree_repr(type(self).__name__, [])


class ConcatTable(_Branches):
    """Every child gets the same input; the output is the table of their outputs.
    The lecture's Branch/Duplicate module.

    fprop:  y = [F_1(x), F_2(x), ..., F_K(x)]
    bprop:  dE/dx = sum_k dE/dy_k . dF_k/dx   (fan-out: gradients are summed)
    The input may itself be a table; the sum is then taken entry by entry.
    """

    def _routes(self, input: Array):
        if not self._children:
            raise shape_error(self, "at least one child module", "an empty container")
        return [(child, input) for child in self._runners(len(self._children))]

    def _merge(self, input: Array, grads):
        self.grad_input = sum_into(self.backend, self.grad_input, grads, self, "the branches' input gradients")
        return self.grad_input


class ParallelTable(_Branches):
    """Child k is applied to entry k of the input table: y = [F_1(x_1), ..., F_K(x_K)].

    bprop: dE/dx_k = dE/dy_k . dF_k/dx_k. The table must have one entry per child.
    For a siamese pair, make the second child a ``clone("weight", "bias")`` of the first.
    """

    def _routes(self, input: Array):
        check_table(self, input, len(self._children), what="entries (one per child)")
        return list(zip(self._runners(len(input)), input))

    def _merge(self, input: Array, grads):
        return list(grads)


class MapTable(ParallelTable):
    """One module applied to every entry of a table: y = [F(x_1), ..., F(x_K)], any K.

    The entries are run by replicas of the module that share all its parameters,
    gradients and buffers (so they accumulate their gradients in one place), each
    with its own output buffers. ``children()`` is just the module.
    bprop: dE/dx_k = dE/dy_k . dF/dx_k;  dE/dW = sum_k dE/dy_k . dF/dW.
    """

    def __init__(self, module: Module | None = None) -> None:
        super().__init__()
        if module is not None:
            self.add(module)

    def add(self, module: Module) -> Any:
        if self._children:
            raise ValueError(f"{name_of(self)}: a MapTable holds exactly one module")
        return super().add(module)

    def spec(self) -> dict[str, Any]:
        return {"type": "MapTable", "args": {}, "children": [child.spec() for child in self._children]}

    def _runners(self, n):
        existing = self.replicas or []
        self.replicas = replicas(self._children[0], existing, max(n, len(existing)))
        return self.replicas[:n]

    def _routes(self, input: Array):
        if not self._children:
            raise shape_error(self, "a module to map (MapTable(module))", "an empty MapTable")
        check_table(self, input, min_n=1, what="entries")
        return list(zip(self._runners(len(input)), input))


class Concat(ConcatTable):
    """Every child gets the same input; their outputs are concatenated along ``dim``
    (a ConcatTable whose output table is joined into one array).

    fprop:  y = [F_1(x) | F_2(x) | ... | F_K(x)]   (joined along axis dim)
    bprop:  dE/dx = sum_k (slice k of dE/dy) . dF_k/dx
    """

    sizes = saved("the children's output sizes along dim (how dE/dy is split)")

    def __init__(self, dim: int, *modules: Any) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise ValueError(f"Concat: dim must be an int, got {dim!r}")
        self.dim = dim
        super().__init__(*modules)

    def _combine(self, input: Array, outputs):
        return _join(self, outputs, self.dim, "dim")

    def _split_grad(self, grad_output: Array, routes):
        return _split(self, grad_output, self.dim)

    def __repr__(self) -> str:
        return self._tree_repr(f"Concat(dim={self.dim})", [])


class Parallel(_Branches):
    """Child k gets slice k of the input along ``input_dim`` (that axis removed); the
    outputs are concatenated along ``output_dim`` (an axis of the children's outputs).

    fprop:  y = [F_1(x[.., 0, ..]) | ... | F_K(x[.., K-1, ..])]
    bprop:  slice k of dE/dx along input_dim = (slice k of dE/dy) . dF_k/dx_k
    The input must have exactly K slices along input_dim (one per child).
    """

    sizes = saved("the children's output sizes along output_dim (how dE/dy is split)")

    def __init__(self, input_dim: Any, output_dim: Any, *modules: Any) -> None:
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"Parallel: {name} must be an int, got {value!r}")
        self.input_dim, self.output_dim = input_dim, output_dim
        super().__init__(*modules)

    def _routes(self, input: Array):
        self._check_float_input(input)
        axis = normalize_axis(self, self.input_dim, input.ndim)
        if input.shape[axis] != len(self._children) or not self._children:
            raise shape_error(self, f"an input with {len(self._children)} slices along axis {axis} (one per child)", input)
        return [(child, input[(slice(None),) * axis + (k,)]) for k, child in enumerate(self._runners(len(self._children)))]

    def _combine(self, input: Array, outputs):
        return _join(self, outputs, self.output_dim, "output_dim")

    def _split_grad(self, grad_output: Array, routes):
        return _split(self, grad_output, self.output_dim)

    def _merge(self, input: Array, grads):
        axis = normalize_axis(self, self.input_dim, input.ndim)
        gx = self.grad_input = self.backend.ensure(self.grad_input, input.shape)
        self.backend.xp.stack(grads, axis=axis, out=gx)
        return gx

    def __repr__(self) -> str:
        return self._tree_repr(f"Parallel(input_dim={self.input_dim}, output_dim={self.output_dim})", [])


def _join(module, outputs, dim, name):
    """Concatenate the children's outputs along ``dim``; remembers the sizes for bprop."""
    first = outputs[0]
    axis = normalize_axis(module, dim, first.ndim, "output of child 0")
    for k, out in enumerate(outputs):
        if out.ndim != first.ndim or out.shape[:axis] + out.shape[axis + 1 :] != first.shape[:axis] + first.shape[axis + 1 :]:
            raise shape_error(
                module,
                f"child outputs that agree on every axis but {name}={dim} (child 0 gave {tuple(first.shape)})",
                f"{tuple(out.shape)} from child {k}",
            )
    module.sizes = [out.shape[axis] for out in outputs]
    shape = list(first.shape)
    shape[axis] = sum(module.sizes)
    out = module._fit(module.output, tuple(shape))
    module.backend.xp.concatenate(outputs, axis=axis, out=out)
    return out


def _split(module, grad_output: Array, dim):
    """Views of ``grad_output`` matching the children's outputs (see :func:`_join`)."""
    check_same_shape(module, "grad_output", grad_output, module.output)
    axis = normalize_axis(module, dim, grad_output.ndim)
    parts, start = [], 0
    for size in module.sizes:
        parts.append(grad_output[(slice(None),) * axis + (slice(start, start + size),)])
        start += size
    return parts
