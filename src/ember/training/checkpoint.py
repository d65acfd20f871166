"""Training checkpoints that never lose work.

A checkpoint is a pickle-free file in the safetensors layout (see :mod:`ember.io`)
holding named arrays (the flat parameters, the optimizer's state arrays, module
buffers, the epoch's data order, ...) and one JSON document ``info`` (epoch, step,
position in the epoch, optimizer scalars, RNG states, schedule state, options, ...).

- **Atomic**: written to a temporary file, fsynced, renamed over the old checkpoint;
  killing the process at any moment leaves either the old or the new file.
- **Verified**: the file's digest (:data:`ember.tensor_file.DIGEST_KEY`, the SHA-256 of
  the header -- every array's name, dtype and shape, and ``info`` -- and of the array
  bytes) is checked as the file is read; a truncated or corrupted file raises
  :class:`FormatError` naming the file and the problem, and nothing is returned from it.
  The arrays are hashed once on save and once on resume. Checkpoints written before
  ember stored that digest carry their own ``checksum`` (:func:`_digest`), still checked.
- **Never half-loaded**: :func:`read_checkpoint` validates the whole file before
  returning, and the restore helpers check every shape before assigning anything.

RNG states are NumPy ``Generator.bit_generator.state`` dicts (JSON: arbitrary-size
integers are exact in Python's json).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._typing import Array
from ..backend import to_numpy
from ..errors import FormatError
from ..io import is_verified, read_tensors, write_tensors

if TYPE_CHECKING:
    from ..nn.module import Module

FORMAT = "ember-checkpoint"
VERSION = 1
_SCALARS = (bool, int, float, str, type(None))


def _digest(arrays: dict, info_json: str) -> str:
    """The ``checksum`` of checkpoints written before the file digest existed (read only)."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asarray(arrays[name], order="C")
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        h.update(f"{name}\0{a.dtype.str}\0{list(a.shape)}\0".encode())
        h.update(a.tobytes())
    h.update(info_json.encode())
    return h.hexdigest()


def write_checkpoint(path: str | os.PathLike, arrays: dict[str, Array], info: dict) -> None:
    """Atomically write ``arrays`` ({name: array}) and the JSON-able ``info`` (the file
    digest written with them covers both)."""
    try:
        info_json = json.dumps(info, sort_keys=True)
    except TypeError as exc:
        raise TypeError(f"checkpoint info must be JSON values: {exc}") from exc
    write_tensors(path, arrays, {"format": FORMAT, "version": str(VERSION), "info": info_json})


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], Any]:
    """``(arrays, info)`` from a checkpoint, after checking its format and digest.

    Raises :class:`FormatError` (naming the file) if it is truncated, corrupted,
    not a checkpoint, unverified, or from a newer format version.
    """
    arrays, meta = read_tensors(path)
    if meta.get("format") != FORMAT:
        raise FormatError(f"{path}: not an ember checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != str(VERSION):
        raise FormatError(f"{path}: checkpoint format version {meta.get('version')!r}, this ember reads {VERSION}")
    info_json = meta.get("info", "")
    # read_tensors checked the file digest when there is one; an older checkpoint has its own checksum
    if not is_verified(meta) and _digest(arrays, info_json) != meta.get("checksum"):
        raise FormatError(f"{path}: checksum mismatch: the checkpoint is corrupted (refusing to load any of it)")
    try:
        info = json.loads(info_json)
    except ValueError as exc:  # pragma: no cover - the checksum catches this first
        raise FormatError(f"{path}: bad checkpoint info ({exc})") from exc
    return arrays, info


# ---------------------------------------------------------------- optimizer state
def pack_state(state: dict, prefix: str = "optim/") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split an optimizer state dict into ``(arrays, scalars)``; ``"_"`` keys (scratch)
    are left out. Values must be arrays or JSON scalars."""
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith("_"):
            continue
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            arrays[prefix + key] = to_numpy(value)
        elif isinstance(value, _SCALARS) or isinstance(value, np.integer | np.floating | np.bool_):
            scalars[key] = value.item() if isinstance(value, np.generic) else value
        else:
            raise TypeError(f"cannot checkpoint optimizer state {key!r} of type {type(value).__name__}")
    return arrays, scalars


def unpack_state(arrays: dict, scalars: dict, to_backend: Callable[[np.ndarray], Array] | None = None,
                 prefix: str = "optim/") -> dict:  # fmt: skip
    """The inverse of :func:`pack_state` (arrays moved with ``to_backend`` if given)."""
    state = dict(scalars)
    for name, value in arrays.items():
        if name.startswith(prefix):
            state[name[len(prefix) :]] = value if to_backend is None else to_backend(value)
    return state


# ---------------------------------------------------------------- random generators
def generators(model: Module, *others: object) -> list[np.random.Generator]:
    """Every distinct ``numpy.random.Generator`` used by the model's modules (e.g.
    Dropout's ``rng``), in tree order, after ``others`` (e.g. the data order's)."""
    found, seen = [], set()
    for gen in list(others) + [getattr(m, "rng", None) for m in model.modules()]:
        if isinstance(gen, np.random.Generator) and id(gen) not in seen:
            seen.add(id(gen))
            found.append(gen)
    return found


def rng_states(gens: list[np.random.Generator]) -> list[Mapping[str, Any]]:
    """Each generator's ``bit_generator.state`` (JSON-able dicts)."""
    return [g.bit_generator.state for g in gens]


def set_rng_states(gens: list[np.random.Generator], states: list[Mapping[str, Any]]) -> None:
    """Set each generator's state (checked first by ``run_checks.check_rng_states``)."""
    for g, s in zip(gens, states):
        g.bit_generator.state = s

