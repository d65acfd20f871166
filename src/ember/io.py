"""Pickle-free model files in the safetensors layout.

A file is: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the raw
little-endian C-order arrays. The JSON maps each array name to its ``dtype``, ``shape``
and ``data_offsets`` and has a ``__metadata__`` dict of strings. ember stores there:

- ``format``: ``"ember"``, and ``ember_version``;
- ``architecture``: the module tree as JSON (class names and constructor arguments),
  so :func:`load` rebuilds the model from the file alone;
- ``shared``: which array paths are the same array (siamese clones), stored once;
- any user metadata (strings).

Reading never executes code: classes are looked up by name among ember's modules (and
those registered with :func:`register_module`); anything else is rejected. Writes go to a
temporary file that is fsynced and renamed over the target, so a crash never leaves a
half-written file in place of a good one.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile

import numpy as np

from .backend import to_numpy
from .errors import FormatError

MAX_HEADER = 100 * 1024 * 1024
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?",
}  # fmt: skip
_CODES = {np.dtype(v).str if np.dtype(v).str[0] != "|" else np.dtype(v).str: k for k, v in _DTYPES.items()}
_REGISTRY: dict = {}


def _dtype_code(array) -> str:
    dtype = np.dtype(array.dtype).newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    code = _CODES.get(dtype.str)
    if code is None:
        raise ValueError(f"cannot store arrays of dtype {array.dtype} in a model file")
    return code


# ---------------------------------------------------------------- low level: arrays + metadata
def write_tensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Atomically write ``{name: array}`` and string ``metadata`` in the safetensors layout."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.asarray(to_numpy(array), order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        code = _dtype_code(array)
        data = array.astype(_DTYPES[code], copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    if metadata:
        bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"metadata keys and values must be strings; not: {bad}")
        header["__metadata__"] = dict(metadata)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # align the data to 8 bytes, as the reference writer does
    atomic_write(path, [len(blob).to_bytes(8, "little"), blob, *chunks])


def atomic_write(path, parts) -> None:
    """Write the byte strings ``parts`` to ``path`` via a fsynced temporary file + rename.

    The file ends up with the permissions ``open(path, "w")`` would give it: an existing
    file keeps its mode, a new one gets ``0o666 & ~umask`` (not mkstemp's 0o600).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            for part in parts:
                handle.write(part)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - some filesystems refuse directory fsync
        pass


def _mode_for(path) -> int:
    """The permission bits ``open(path, "w")`` would leave: an existing file's own, else
    ``0o666`` less the process umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc, kernel 4.7+)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # os.umask can only be read by setting it. The umask is process-wide, so a file another
    # thread creates in this instant gets the temporary value: 0o777 (nothing granted) errs
    # on the safe side, where 0 would briefly make such files world-writable.
    old = os.umask(0o777)
    os.umask(old)
    return old


def read_tensors(path):
    """Read a safetensors-layout file: returns ``(tensors, metadata)``, validating everything.

    Raises :class:`FormatError` naming the file for a truncated, corrupted or
    malformed file; nothing in the file is executed.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) < 8:
        raise FormatError(f"{path}: not a model file (only {len(raw)} bytes; truncated?)")
    n = int.from_bytes(raw[:8], "little")
    if n > MAX_HEADER or n > len(raw) - 8 or n < 2:
        raise FormatError(f"{path}: bad header length {n} for a file of {len(raw)} bytes (truncated or not a model file)")
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: the header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise FormatError(f"{path}: the header must be a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    data = memoryview(raw)[8 + n :]
    tensors, spans = {}, []
    for name, entry in header.items():
        tensors[name] = _decode_entry(path, name, entry, data, spans)
    spans.sort()
    expected = 0
    for begin, end, name in spans:
        if begin != expected:
            raise FormatError(f"{path}: array {name!r} does not start where the previous one ended (overlap or hole)")
        expected = end
    if expected != len(data):
        raise FormatError(f"{path}: {len(data)} data bytes but the header describes {expected} (truncated or padded)")
    return tensors, metadata


def _decode_entry(path, name, entry, data, spans):
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise FormatError(f"{path}: entry {name!r} must have exactly dtype, shape and data_offsets")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code not in _DTYPES:
        raise FormatError(f"{path}: entry {name!r} has unknown dtype {code!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise FormatError(f"{path}: entry {name!r} has a bad shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= len(data)
    ):
        raise FormatError(f"{path}: entry {name!r} has bad data_offsets {offsets!r} (file truncated?)")
    dtype = np.dtype(_DTYPES[code])
    if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
        raise FormatError(f"{path}: entry {name!r}: {offsets[1] - offsets[0]} bytes do not hold shape {shape} of {code}")
    spans.append((offsets[0], offsets[1], name))
    return np.frombuffer(data[offsets[0] : offsets[1]], dtype=dtype).reshape(shape).copy()


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"duplicate keys {sorted({k for k in keys if keys.count(k) > 1})}")
    return dict(pairs)


# ---------------------------------------------------------------- architecture descriptions
def register_module(cls):
    """Allow :func:`load` to rebuild a user-defined module class (usable as a decorator)."""
    _REGISTRY[cls.__name__] = cls
    return cls


def _known_classes():
    from . import nn

    known = {name: getattr(nn, name) for name in nn.__all__ if isinstance(getattr(nn, name), type)}
    known.update(_REGISTRY)
    return known


def encode_value(value):
    """Constructor arguments to JSON: arrays become ``{"__ndarray__": [...], "dtype": ...}``."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = to_numpy(value)
        return {"__ndarray__": array.tolist(), "dtype": str(array.dtype)}
    if hasattr(value, "spec") and callable(value.spec):
        return {"__module__": value.spec()}
    raise TypeError(f"cannot describe constructor argument of type {type(value).__name__} in a model file")


def decode_value(value):
    """Inverse of :func:`encode_value`: JSON values back to arrays and modules."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value.get("dtype", "float64")))
        if "__module__" in value:
            return build(value["__module__"])
        return {k: decode_value(v) for k, v in value.items()}
    return value


def describe_architecture(module) -> dict:
    """The JSON-ready description of ``module``'s tree stored in model files."""
    return encode_value(module.spec())


def build(spec: dict):
    """Rebuild a module tree from its description (no code is executed)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise FormatError(f"bad module description {str(spec)[:80]!r}")
    classes = _known_classes()
    cls = classes.get(spec["type"])
    if cls is None:
        raise FormatError(
            f"unknown module type {spec['type']!r}; register custom classes with ember.io.register_module"
        )
    if hasattr(cls, "from_spec"):
        return cls.from_spec(spec, build)
    args = decode_value(spec.get("args", {}))
    if not isinstance(args, dict):
        raise FormatError(f"{spec['type']}: arguments must be an object")
    positional = []
    for key in [k for k in args if k.startswith("*")]:
        positional = args.pop(key)
    try:
        module = cls(*positional, **args)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"cannot rebuild {spec['type']} from {args}: {exc}") from exc
    for child in spec.get("children", []):
        module.add(build(child))
    return module


# ---------------------------------------------------------------- model files
EXTRA = "extra/"


def save(module, path, metadata: dict | None = None, extra: dict | None = None) -> None:
    """Save a module's parameters, buffers and architecture to ``path`` (atomically).

    ``metadata``: extra string key/values (non-strings are JSON-encoded).
    ``extra``: other named arrays kept with the model (e.g. the input preprocessing),
    read back with :func:`load_extra`.
    """
    from . import __version__

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


def load(path, backend=None, with_metadata=False):
    """Rebuild a module from a file written by :func:`save`.

    Returns the module (or ``(module, metadata)`` with ``with_metadata=True``), on the
    NumPy float32 backend unless ``backend`` says otherwise.
    """
    tensors, metadata = read_tensors(path)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(EXTRA)}
    if metadata.get("format") != "ember" or "architecture" not in metadata:
        raise FormatError(f"{path}: not an ember model file (no architecture in its metadata)")
    try:
        spec = json.loads(metadata["architecture"])
        shared = json.loads(metadata.get("shared", "{}"))
    except ValueError as exc:
        raise FormatError(f"{path}: corrupted architecture description ({exc})") from exc
    try:
        module = build(spec)
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from exc
    slots = _array_slots(module)
    missing = [p for p in slots if p not in tensors and p not in shared]
    extra = [p for p in tensors if p not in slots]
    if missing or extra:
        raise FormatError(f"{path}: arrays do not match the architecture (missing {missing[:5]}, unexpected {extra[:5]})")
    for name, array in tensors.items():
        owner, attr = slots[name]
        current = getattr(owner, attr)
        if tuple(current.shape) != array.shape:
            raise FormatError(f"{path}: {name} has shape {array.shape}, the architecture needs {tuple(current.shape)}")
        setattr(owner, attr, array.astype(current.dtype))
    for alias, canonical in shared.items():
        if alias not in slots or canonical not in slots:
            raise FormatError(f"{path}: bad sharing entry {alias!r} -> {canonical!r}")
        owner, attr = slots[alias]
        source, source_attr = slots[canonical]
        setattr(owner, attr, getattr(source, source_attr))
        grad = "grad_" + source_attr
        if attr in owner._param_names and hasattr(source, grad):
            setattr(owner, "grad_" + attr, getattr(source, grad))
    for m in module.modules():
        m._parameters_moved()
    if backend is not None:
        module.to(backend)
    return (module, metadata) if with_metadata else module


def load_extra(path) -> dict:
    """The ``extra`` arrays stored by :func:`save` (``{}`` when there are none)."""
    tensors, _ = read_tensors(path)
    return {k[len(EXTRA) :]: v for k, v in tensors.items() if k.startswith(EXTRA)}


def _array_slots(module, prefix=""):
    """``{path: (module, attribute)}`` for every parameter and buffer, by the same paths
    as :meth:`Module.named_arrays`."""
    slots = {}
    for name in module._param_names + module._buffer_names:
        if getattr(module, name, None) is not None:
            slots[prefix + name] = (module, name)
    for index, child in enumerate(module.children()):
        slots.update(_array_slots(child, f"{prefix}{index}."))
    return slots
