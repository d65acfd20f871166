"""The arrays of a module tree as a whole: one flat vector, sharing between trees, copies
and moves between backends -- what :meth:`~ember.nn.Module.get_parameters`,
:meth:`~ember.nn.Module.share`, :meth:`~ember.nn.Module.clone` and
:meth:`~ember.nn.Module.to` do (those methods document the behaviour).

Sharing is recorded on the modules themselves (a weak set of peers per group, see
:func:`link_peers`), never in a registry of this file.
"""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

from .._typing import Array
from ..backend import Backend

if TYPE_CHECKING:
    from .module import Module

GRAD = "grad_"
M = TypeVar("M", bound="Module")


def flatten_parameters(root: Module) -> tuple[Array, Array]:
    """Copy every parameter and gradient of ``root``'s tree into one flat vector each and
    re-point the modules (and their sharing peers outside the tree) at views into them."""
    params, grads = root.parameters()
    seen_grads: dict[int, Any] = {}
    for module in root.modules():
        for name, param, grad in module._own_parameters():
            owner = seen_grads.setdefault(id(param), grad)
            if owner is not grad:
                raise ValueError(
                    f"{module!r}: parameter {name!r} is shared with another module but "
                    f"its gradient is not; share both (clone('{name}') shares the pair)"
                )
    total = sum(int(p.size) for p in params)
    flat_params = root.backend.flat_vector(total, fill=None)
    flat_grads = root.backend.flat_vector(total)
    replacement = {}
    offset = 0
    for param, grad in zip(params, grads):
        n = int(param.size)
        p_view = flat_params[offset : offset + n].reshape(param.shape)
        g_view = flat_grads[offset : offset + n].reshape(param.shape)
        p_view[...] = param
        g_view[...] = grad
        replacement[id(param)] = p_view
        replacement[id(grad)] = g_view
        offset += n
    tree = root.modules()
    inside = {id(m) for m in tree}
    # modules outside this tree that share arrays with it (a clone flattened on
    # its own, Torch7's classic trap) are re-pointed too, so sharing survives; each
    # module knows its own sharing peers (see share)
    outside = [p for m in tree for p in m._sharing_peers() if id(p) not in inside]
    for module in tree + outside:
        for name in module._param_names:
            for attr in (name, GRAD + name):
                value = getattr(module, attr, None)
                if value is not None and id(value) in replacement:
                    setattr(module, attr, replacement[id(value)])
        module._parameters_moved()
    return flat_params, flat_grads


def clone_tree(root: M) -> M:
    """A deep copy of ``root``'s tree without its per-call values; each module keeps its
    random generator (one stream: a clone's Dropout draws its own masks)."""
    memo: dict[int, Any] = {}
    for module in root.modules():
        for attr in ("output", "grad_input", *module._state_names):
            value = module.__dict__.get(attr)
            if value is not None:
                memo[id(value)] = None
        rng = module.__dict__.get("rng")
        if rng is not None:
            memo[id(rng)] = rng
    return copy.deepcopy(root, memo)


def share_arrays(mine: Module, theirs: Module, names: tuple[str, ...]) -> None:
    """Point ``mine``'s tree at ``theirs``' arrays ``names`` (and their gradients)."""
    ours, others = mine.modules(), theirs.modules()
    if len(ours) != len(others):
        raise ValueError(f"{mine!r}: cannot share with {theirs!r}: different structure")
    for a, b in zip(ours, others):
        linked = False
        for name in names:
            attrs = [name]
            if name in b._param_names:
                attrs.append(GRAD + name)
            for attr in attrs:
                if getattr(b, attr, None) is not None:
                    setattr(a, attr, getattr(b, attr))
                    linked = True
        a._parameters_moved()
        if linked and a is not b:
            link_peers(a, b)


def link_peers(a: Module, b: Module) -> None:
    """Record on ``a`` and ``b`` that they share arrays: sharing is transitive, so every
    module of the merged group holds the same weak set of the group's modules."""
    group: weakref.WeakSet = weakref.WeakSet()
    for module in (a, b):
        group.add(module)
        group |= module.__dict__.get("_peers") or weakref.WeakSet()
    for module in list(group):
        module.__dict__["_peers"] = group


def move_tree(root: Module, backend: Backend) -> None:
    """Convert every array of ``root``'s tree to ``backend``, an array met twice (shared)
    converted once, so sharing survives."""
    moved: dict[int, tuple[Any, Any]] = {}

    def convert(value: Array) -> Array:
        # keyed by id: keep every array seen alive (a freed id can be reused), and
        # map converted arrays to themselves (a module met twice in the tree)
        if id(value) not in moved:
            dtype = backend.dtype if value.dtype.kind == "f" else value.dtype
            new = backend.asarray(value, dtype=dtype)
            moved[id(value)] = (value, new)
            moved[id(new)] = (new, new)
        return moved[id(value)][1]

    root.clear_state()
    for module in root.modules():
        module.backend = backend
        for name in module._param_names + module._buffer_names + module._constant_names:
            for attr in (name, GRAD + name):
                value = getattr(module, attr, None)
                if value is not None and hasattr(value, "dtype"):
                    setattr(module, attr, convert(value))
        module._parameters_moved()
