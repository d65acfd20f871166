"""Pickle-free model files in the safetensors layout (see :mod:`ember.tensor_file`).

A model file's ``__metadata__`` (a dict of strings) holds:

- ``format``: ``"ember"``, and ``ember_version``;
- ``architecture``: the module tree as JSON (class names and constructor arguments, see
  :mod:`ember.architecture`), so :func:`load` rebuilds the model from the file alone;
- ``shared``: which array paths are the same array (siamese clones), stored once;
- ``ember_sha256``: the digest of header and array bytes, verified on load (files
  written before ember stored it still load; :func:`is_verified` tells them apart);
- any user metadata (strings).

Reading never executes code and allocates nothing the file's length does not justify:
classes are looked up by name among ember's modules (and the classes the caller passes to
:func:`load`, ``classes=[MyModule]``); every array must match its slot's shape and dtype kind; a
``shared`` alias must point at a stored array of the same shape and dtype; anything else
raises :class:`FormatError` naming the file and the entry. Writes go to a temporary file
that is fsynced and renamed over the target, so a crash never leaves a half-written file
in place of a good one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from ._typing import Array
from .architecture import MAX_DEPTH, build, decode_value, describe_architecture, encode_value
from .errors import FormatError
from .tensor_file import (
    DIGEST_KEY,
    MAX_HEADER,
    atomic_write,
    header_digest,
    is_verified,
    parse_json,
    read_tensors,
    write_tensors,
)

if TYPE_CHECKING:
    from .backend import Backend
    from .nn.module import Module

__all__ = ["save", "load", "load_extra", "check_fits", "read_tensors", "write_tensors", "atomic_write",
           "build", "encode_value", "decode_value", "describe_architecture", "is_verified", "header_digest",
           "DIGEST_KEY", "MAX_HEADER", "MAX_DEPTH"]  # fmt: skip
#: a module owning arrays may ask (product of its integer arguments) for at most
#: max(BUDGET_FLOOR, BUDGET_FACTOR x the elements stored in the file)
BUDGET_FLOOR = 1 << 22
BUDGET_FACTOR = 16


# ---------------------------------------------------------------- model files
EXTRA = "extra/"


def save(module: Module, path: str | os.PathLike, metadata: dict | None = None, extra: dict | None = None) -> None:
    """Save a module's parameters, buffers and architecture to ``path`` (atomically).

    ``metadata``: extra string key/values (non-strings are JSON-encoded).
    ``extra``: other named arrays kept with the model (e.g. the input preprocessing),
    read back with :func:`load_extra`.
    """
    from ._version import __version__

    tensors: dict = {}
    shared: dict = {}
    by_id: dict = {}
    for name, array in module.named_arrays():
        if id(array) in by_id:
            shared[name] = by_id[id(array)]
        else:
            by_id[id(array)] = name
            tensors[name] = array
    for name, array in (extra or {}).items():
        tensors[EXTRA + name] = array
    meta = {
        "format": "ember",
        "ember_version": __version__,
        "architecture": json.dumps(describe_architecture(module)),
        "shared": json.dumps(shared),
    }
    for key, value in (metadata or {}).items():
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    write_tensors(path, tensors, meta)


@overload
def load(path: str | os.PathLike, backend: Backend | str | None = None, with_metadata: Literal[False] = False,
         classes: Iterable[type] = ()) -> Module: ...  # fmt: skip


@overload
def load(path: str | os.PathLike, backend: Backend | str | None, with_metadata: Literal[True],
         classes: Iterable[type] = ()) -> tuple[Module, dict]: ...  # fmt: skip


@overload
def load(path: str | os.PathLike, backend: Backend | str | None = None, *, with_metadata: Literal[True],
         classes: Iterable[type] = ()) -> tuple[Module, dict]: ...  # fmt: skip


def load(path: str | os.PathLike, backend: Backend | str | None = None, with_metadata: bool = False,
         classes: Iterable[type] = ()) -> Module | tuple[Module, dict]:  # fmt: skip
    """Rebuild a module from a file written by :func:`save`.

    Returns the module (or ``(module, metadata)`` with ``with_metadata=True``), on the
    NumPy float32 backend unless ``backend`` says otherwise. Everything is checked
    before the module is returned (see the module docs); the first problem raises
    :class:`FormatError` naming the file and the entry. ``classes``: your own Module
    subclasses the file may name (ember's own are always known; nothing is looked up
    anywhere else, so a file can only build the classes you name here).
    """
    path = str(path)
    tensors, metadata = read_tensors(path)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(EXTRA)}
    if metadata.get("format") != "ember" or "architecture" not in metadata:
        raise FormatError(f"{path}: not an ember model file (no architecture in its metadata)")
    spec = parse_json(path, metadata["architecture"], "the architecture description")
    shared = parse_json(path, metadata.get("shared", "{}"), "the sharing table")
    if not isinstance(shared, dict) or not all(isinstance(v, str) for v in shared.values()):
        raise FormatError(f"{path}: the sharing table must map array paths to array paths")
    stored = sum(int(a.size) for a in tensors.values())
    module = build(spec, source=path, budget=max(BUDGET_FLOOR, BUDGET_FACTOR * stored), classes=tuple(classes))
    slots = dict(module.named_arrays())
    missing = [p for p in slots if p not in tensors and p not in shared]
    extra = [p for p in tensors if p not in slots]
    if missing or extra:
        raise FormatError(f"{path}: arrays do not match the architecture (missing {missing[:5]}, unexpected {extra[:5]})")
    for name, array in tensors.items():
        check_fits(path, name, array, slots[name])
    owners = _owners(module)
    for alias, canonical in shared.items():
        _check_alias(path, alias, canonical, slots, tensors, owners)
    for name, array in tensors.items():
        slots[name][...] = array
    for alias, canonical in shared.items():
        source, source_attr = owners[id(slots[canonical])][0]
        for owner, attr in owners[id(slots[alias])]:
            setattr(owner, attr, getattr(source, source_attr))
            if attr in owner._param_names:
                setattr(owner, "grad_" + attr, getattr(source, "grad_" + source_attr))
    for m in module.modules():
        m._parameters_moved()
    if backend is not None:
        module.to(backend)
    return (module, metadata) if with_metadata else module


def _owners(module: Module) -> dict:
    """``{id(array): [(module, attribute), ...]}`` for the arrays :meth:`Module.named_arrays` lists."""
    owners: dict = {}
    for m in module.modules():
        for attr in m._param_names + m._buffer_names:
            value = getattr(m, attr, None)
            if value is not None:
                owners.setdefault(id(value), []).append((m, attr))
    return owners


def check_fits(path: str | os.PathLike, name: str, array: np.ndarray, slot: Array, needs: str = "the architecture",
               exact: bool = False) -> None:  # fmt: skip
    """A stored ``array`` must have the shape and dtype of ``slot``, the live array it
    fills (any float for a float slot, unless ``exact``); else a :class:`FormatError`
    "``path``: ``name`` has shape ..., ``needs`` needs ..." (model files, checkpoints)."""
    if tuple(slot.shape) != tuple(array.shape):
        raise FormatError(f"{path}: {name} has shape {tuple(array.shape)}, {needs} needs {tuple(slot.shape)}")
    dtype = np.dtype(str(slot.dtype))  # (a CuPy array's dtype prints as NumPy's)
    fits = array.dtype.kind == "f" if dtype.kind == "f" and not exact else array.dtype == dtype
    if not fits:
        raise FormatError(f"{path}: {name} is stored as {array.dtype}, {needs} needs {slot.dtype}")


def _check_alias(path: str, alias: str, canonical: str, slots: dict, tensors: dict, owners: dict) -> None:
    """An alias names an array slot that is not stored, and points at a stored array of
    the same shape, dtype and kind (parameter or buffer)."""
    if alias not in slots or canonical not in tensors or alias in tensors:
        raise FormatError(f"{path}: bad sharing entry {alias[:80]!r} -> {canonical[:80]!r} (must map an unstored "
                          f"array slot to a stored array)")  # fmt: skip
    a, c = slots[alias], slots[canonical]
    if tuple(a.shape) != tuple(c.shape) or a.dtype != c.dtype:
        raise FormatError(f"{path}: sharing entry {alias!r} -> {canonical!r}: shape {tuple(a.shape)} {a.dtype} "
                          f"cannot share {tuple(c.shape)} {c.dtype}")  # fmt: skip
    (owner, attr), (source, source_attr) = owners[id(a)][0], owners[id(c)][0]
    if (attr in owner._param_names) != (source_attr in source._param_names):
        raise FormatError(f"{path}: sharing entry {alias!r} -> {canonical!r} links a parameter with a buffer")


def load_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` arrays stored by :func:`save` (``{}`` when there are none)."""
    tensors, _ = read_tensors(path)
    return {k[len(EXTRA) :]: v for k, v in tensors.items() if k.startswith(EXTRA)}
