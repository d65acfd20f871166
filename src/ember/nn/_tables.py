"""Helpers for modules whose input or output is a table (a Python list of arrays).

A *table* is a ``list`` (or ``tuple``) whose entries are arrays or tables. Gradients
mirror the structure of what they are the gradient of; an entry that cannot receive
a gradient (an integer selector, say) gets ``None``.
"""

from __future__ import annotations

from ..errors import ShapeError, describe, name_of, shape_error
from .._typing import Array

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..backend import Backend
    from ..nn.module import Module


def is_table(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def check_table(module: Module, input: Array, n: int | None = None, min_n: int = 1, what: str = "arrays") -> Any:
    """Raise a ShapeError naming ``module`` unless ``input`` is a table of the right length."""
    if n is not None:
        wanted = f"a table (list) of {n} {what}"
    else:
        wanted = f"a table (list) of at least {min_n} {what}"
    if not is_table(input):
        raise shape_error(module, wanted, input)
    if (n is not None and len(input) != n) or len(input) < min_n:
        raise shape_error(module, wanted, f"a table of {len(input)} entries")
    return input


def check_entry(module: Module, index: int, value: Any) -> Any:
    """A table entry must be a floating array of the module's backend and dtype."""
    backend = module.backend
    if not isinstance(value, backend.xp.ndarray):
        raise ShapeError(f"{name_of(module)}: table entry {index}: expected an array, got {describe(value)}")
    if value.dtype != backend.dtype:
        raise ShapeError(f"{name_of(module)}: table entry {index}: expected dtype {backend.dtype}, got {value.dtype}")
    return value


def check_float_table(module: Module, input: Array, n: int | None = None, min_n: int = 1,
                      same_shape: bool = True) -> Any:
    """A table of floating arrays (all of one shape when ``same_shape``)."""
    check_table(module, input, n, min_n)
    return check_float_entries(module, input, 0, same_shape)


def check_float_entries(module: Module, entries: Any, offset: int = 0, same_shape: bool = True) -> Any:
    """Entries ``offset, offset + 1, ...`` of a table: floating arrays (of one shape)."""
    for index, value in enumerate(entries):
        check_entry(module, index + offset, value)
        if same_shape and value.shape != entries[0].shape:
            raise shape_error(
                module,
                f"table entries of one shape (entry {offset} is {tuple(entries[0].shape)})",
                f"entry {index + offset} of shape {tuple(value.shape)}",
            )
    return entries


def _prefix(owner):
    return f"{name_of(owner)}: " if owner is not None else ""


def sum_into(backend: Backend, buffer: Array, parts: Any, owner: Any = None, what: str = "gradients") -> Any:
    """``sum(parts)`` entry by entry, written into ``buffer`` (reused when it fits).

    ``parts`` are arrays or tables of one structure; ``None`` parts (no gradient) are
    skipped; the result is ``None`` when every part is. Returns the result (the reused
    buffer or a new one). Parts that do not fit raise a ShapeError naming ``owner``
    (the module adding them) and ``what`` is being added.
    """
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    first = parts[0]
    if is_table(first):
        n = len(first)
        if any(not is_table(p) or len(p) != n for p in parts):
            raise ShapeError(f"{_prefix(owner)}cannot add {what} of different structures: {[describe(p) for p in parts]}")
        old = reused(buffer, n)
        return [sum_into(backend, old[i], [p[i] for p in parts], owner, what) for i in range(n)]
    if any(getattr(p, "shape", None) != first.shape for p in parts):
        raise ShapeError(f"{_prefix(owner)}cannot add {what} of different shapes: {[describe(p) for p in parts]}")
    out = backend.ensure(buffer, first.shape, first.dtype)
    out[...] = first
    for part in parts[1:]:
        out += part
    return out


def reused(old: Any, n: int) -> Any:
    """``old`` when it is a table of ``n`` entries (a module's buffers from its last
    call), else ``n`` Nones: the entries to hand to ``backend.ensure``."""
    return old if is_table(old) and len(old) == n else [None] * n


def table_buffers(backend: Backend, old: Any, shapes: Any) -> list[Any]:
    """Arrays of ``shapes``, reusing the entries of the table ``old`` that fit."""
    return [backend.ensure(o, shape) for o, shape in zip(reused(old, len(shapes)), shapes)]


def zeros_like(backend: Backend, buffer: Array, reference: Array) -> Any:
    """Zeros with the structure of ``reference`` (``None`` for non-float entries)."""
    if is_table(reference):
        old = reused(buffer, len(reference))
        return [zeros_like(backend, old[i], r) for i, r in enumerate(reference)]
    if not hasattr(reference, "dtype") or reference.dtype.kind != "f":
        return None
    out = backend.ensure(buffer, reference.shape, reference.dtype)
    out.fill(0)
    return out


def copy_into(backend: Backend, buffer: Array, value: Any) -> Any:
    """A copy of ``value`` (array or table) in ``buffer`` (reused when it fits)."""
    return sum_into(backend, buffer, [value])


def normalize_axis(module: Module, dim: int, ndim: Any, what: str = "input") -> Any:
    """``dim`` (may be negative) as an axis of an array with ``ndim`` axes."""
    if not -ndim <= dim < ndim:
        raise ShapeError(f"{name_of(module)}: dim {dim} is out of range for an {what} with {ndim} axes")
    return dim % ndim


# ---------------------------------------------------------------- replicas of one module
def _array_attrs(module):
    for name in module._param_names + module._buffer_names:
        yield name
        if name in module._param_names:
            yield "grad_" + name


def sync_replica(prototype: Module, replica: Any) -> bool:
    """Point ``replica`` (a clone of ``prototype``) at the prototype's parameters,
    gradients, buffers and random generator, and copy its train/eval mode. Returns False when the replica
    no longer matches (different backend or structure) and must be rebuilt.

    Replicas give one module several independent ``output``/``grad_input`` buffers
    (one per use: MapTable entries, a module used twice in a Graph) while every
    gradient accumulates in the prototype's arrays.
    """
    mine, theirs = prototype.modules(), replica.modules()
    if replica.backend != prototype.backend or len(mine) != len(theirs):
        return False
    for p, r in zip(mine, theirs):
        if type(p) is not type(r):
            return False
        moved = False
        for attr in _array_attrs(p):
            value = getattr(p, attr, None)
            if getattr(r, attr, None) is not value:
                setattr(r, attr, value)
                moved = True
        r.train = p.train
        if getattr(p, "rng", None) is not None:
            r.rng = p.rng  # type: ignore[attr-defined]  # one random stream, also after the prototype's generator was replaced
        if moved:
            r._parameters_moved()
    return True


def make_replica(prototype: Module) -> Any:
    """A copy of ``prototype`` with fresh buffers that shares all its arrays."""
    replica = prototype.clone()
    sync_replica(prototype, replica)
    return replica


def replicas(prototype: Module, existing: Any, n: int) -> Any:
    """``n`` modules running ``prototype``'s function: the prototype itself, then
    replicas (reused from ``existing`` while they still match)."""
    out = [prototype]
    for i in range(1, n):
        replica = existing[i] if i < len(existing) else None
        if replica is None or not sync_replica(prototype, replica):
            replica = make_replica(prototype)
        out.append(replica)
    return out


def exclusive_runners(modules: Any, cache: Any) -> Any:
    """The modules that run ``modules`` (each once per pass, in order) without two
    uses sharing buffers: the module itself the first time it (or any module inside
    it) runs, a replica (sharing every array) the next times.

    ``cache`` is a dict owned by the caller, keeping replicas between passes.
    """
    claimed: set[int] = set()
    runners: list[Any] = []
    for index, module in enumerate(modules):
        inside = {id(m) for m in module.modules()}
        if not inside & claimed:
            claimed |= inside
            runners.append(module)
            continue
        prototype, replica = cache.get(index, (None, None))
        if prototype is not module or not sync_replica(module, replica):
            replica = make_replica(module)
            cache[index] = (module, replica)
        runners.append(replica)
    return runners
