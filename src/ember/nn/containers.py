"""Containers: modules made of modules.

``Sequential`` is the lecture's cascade: X_k = F_k(X_{k-1}, W_k) for k = 1..n, and
bprop is the backward sweep dE/dX_{k-1} = dE/dX_k . dF_k/dX_{k-1} in reverse order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Self

from ._tree import lowest_parametrised, structure_changed, tree_cached
from .composite import Composite, backprop
from .module import Module

__all__ = ["Container", "Sequential", "add_context", "lowest_parametrised"]


def add_context(error: BaseException, container: Module, index: int, child: Module) -> None:
    """Add "in module i (child) of Container" to an exception without rewriting it."""
    error.add_note(f"  in module {index} ({child!r}) of {type(container).__name__}")


class Container(Composite):
    """A module holding an ordered list of children; ``add``, ``get``, ``len``, iteration."""

    _input_kind = "any"

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self._children: list[Module] = []
        for module in modules:
            self.add(module)

    def children(self) -> list[Module]:
        return list(self._children)

    def add(self, module: Module) -> Self:
        """Append a module; returns self so calls chain (``seq.add(a).add(b)``)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.add: expected a Module, got {type(module).__name__}")
        self._check_backend(module)
        self._children.append(module)
        structure_changed()
        return self

    def insert(self, module: Module, index: int | None = None) -> Self:
        """Insert a module at position ``index`` (0-based; default: the end)."""
        if index is None:
            return self.add(module)
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.insert: expected a Module, got {type(module).__name__}")
        self._check_backend(module)
        self._children.insert(self._check_index(index, len(self._children) + 1), module)
        structure_changed()
        return self

    def _check_backend(self, module: Module) -> None:
        """An empty container adopts its first child's backend. A child is never converted
        here (a conversion would give it new arrays and silently break any sharing with
        modules outside, a clone's weights): build the tree, then move it as a whole with
        ``.to(...)``. A tree left on mixed backends is reported by the first module that
        gets an input of another dtype, naming the module and the ``.to`` fix."""
        if not self._children:
            self.backend = module.backend

    def remove(self, index: int | None = None) -> Module:
        """Remove and return the module at ``index`` (default: the last one)."""
        if not self._children:
            raise IndexError(f"{type(self).__name__}.remove: the container is empty")
        index = len(self._children) - 1 if index is None else index
        removed = self._children.pop(self._check_index(index, len(self._children)))
        structure_changed()
        return removed

    def get(self, index: int) -> Module:
        """The child at ``index`` (0-based, negative counts from the end)."""
        return self._children[self._check_index(index, len(self._children))]

    def size(self) -> int:
        """The number of children (Torch7's ``container:size()``; also ``len(container)``)."""
        return len(self._children)

    def _check_index(self, index: int, limit: int) -> int:
        if not -limit <= index < limit:
            raise IndexError(
                f"{type(self).__name__}: index {index} out of range for {len(self._children)} modules"
            )
        return index % limit if limit else index

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._children)

    def __getitem__(self, index: int) -> Module:
        return self.get(index)

    def spec(self) -> dict[str, Any]:
        spec = super().spec()
        spec["args"] = {k: v for k, v in spec["args"].items() if not k.startswith("*")}
        spec["children"] = [child.spec() for child in self._children]
        return spec

    def _tree_repr(self, header: str, lines: list[str]) -> str:
        pad = "  "
        body = [f"{pad}({i}): " + repr(child).replace("\n", "\n" + pad) for i, child in enumerate(self._children)]
        return header + " {\n" + "\n".join(lines + body) + "\n}"


def may_overwrite_input(children: list[Module]) -> frozenset[int]:
    """Indices k of the children that may write over their input: child k has an
    ``inplace`` switch (``ReLU``; it works in place only while the switch is on) and child
    k - 1's output is free for it (see ``Module.output_free_for_next``)."""
    return frozenset(k for k in range(1, len(children))
                     if isinstance(getattr(children[k], "inplace", None), bool) and children[k - 1].output_free_for_next)  # fmt: skip


def forward_over_input(child: Module, input: Any) -> Any:
    """``child.forward(input)`` with leave to overwrite ``input``, for this call only."""
    child.overwrite_input = True
    try:
        return child.forward(input)
    finally:
        child.overwrite_input = False


class Sequential(Container):
    """Chain of modules: the output of child k is the input of child k+1.

    fprop:  X_0 = input, X_k = F_k(X_{k-1}), output = X_n
    bprop:  G_n = grad_output, G_{k-1} = F_k.backward(X_{k-1}, G_k), grad_input = G_0

    Each child's ``backward`` also accumulates its parameter gradients (scaled).
    """

    def update_output(self, input: Any) -> Any:
        current = input
        children = self._children
        in_place = tree_cached(self, "_in_place_children", lambda: may_overwrite_input(children))
        for index, child in enumerate(children):
            try:
                if index in in_place and current is children[index - 1].output:
                    current = forward_over_input(child, current)
                else:
                    current = child.forward(current)
            except Exception as error:
                add_context(error, self, index, child)
                raise
        self.output = current
        return current

    def _backprop(self, input: Any, grad_output: Any, scale: float, need_input: bool, need_params: bool) -> None:
        """G_{k-1} = F_k's bprop of (X_{k-1}, G_k), k = n..1. When dE/d(input) is not
        needed, the sweep stops at the lowest child with parameters, which then only
        accumulates its parameter gradients (that child's index is kept between steps,
        see ``_tree.tree_cached``)."""
        children = self._children
        lowest = 0 if need_input else tree_cached(self, "_lowest_parametrised", lambda: lowest_parametrised(children))
        current = grad_output
        for index in range(len(children) - 1, lowest - 1, -1):
            child = children[index]
            previous = children[index - 1].output if index > 0 else input
            try:
                current = backprop(child, previous, current, scale, need_input or index > lowest, need_params)
            except Exception as error:
                add_context(error, self, index, child)
                raise
            if current is None:  # a child set to compute_grad_input = False: nothing flows below
                break
        if need_input:
            self.grad_input = current

    def __repr__(self) -> str:
        flow = " -> ".join(["input"] + [f"({i})" for i in range(len(self._children))] + ["output"])
        return self._tree_repr("Sequential", [f"  [{flow}]"])
