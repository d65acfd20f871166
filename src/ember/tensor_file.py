"""The safetensors layout, read and written with every size checked before use.

A file is: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the raw
little-endian C-order arrays. The JSON maps each array name to its ``dtype``, ``shape``
and ``data_offsets`` and has a ``__metadata__`` dict of strings (the reference
``safetensors`` package reads these files).

**Digest.** :func:`write_tensors` stores in ``__metadata__[DIGEST_KEY]`` the SHA-256 of
the canonical header JSON *without* that key (``json.dumps(header, sort_keys=True,
separators=(",", ":"))``) followed by the data bytes, so a flipped byte anywhere -- an
array value, a shape, the architecture -- is refused. Files written before ember stored
it load unverified (:func:`is_verified` says which; ``ember eval`` prints a note).

**Bounded reading.** The header length is checked against the file size and
:data:`MAX_HEADER` before it is read; every entry's dtype, shape and offsets against the
data length before one data byte is read; the arrays must tile the data exactly.
Every failure is a :class:`FormatError` naming the file, the entry and the problem.

**Atomic writes.** A temporary ``.tmp-<name>-<pid>-*.part`` file is fsynced and renamed
over the target; a writer killed mid-write leaves that file behind, and the next write
to the same target removes it (when its process is gone).
"""

from __future__ import annotations

import collections
import glob
import hashlib
import json
import math
import os
import stat
import tempfile

import numpy as np

from .backend import to_numpy
from .errors import FormatError
from ._typing import Array, PathLike

from typing import Any

MAX_HEADER = 100 * 1024 * 1024
#: at most this many dimensions per array (NumPy's own limit is 64)
MAX_NDIM = 32
DIGEST_KEY = "ember_sha256"
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?",
}  # fmt: skip
_CODES = {np.dtype(v).str: k for k, v in _DTYPES.items()}


def _dtype_code(array: Array) -> str:
    dtype = np.dtype(array.dtype).newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    code = _CODES.get(dtype.str)
    if code is None:
        raise ValueError(f"cannot store arrays of dtype {array.dtype} in a model file")
    return code


def header_digest(header: dict, data: Any) -> str:
    """The SHA-256 stored under :data:`DIGEST_KEY`: canonical header JSON (without the
    digest itself) then the data bytes."""
    meta = dict(header.get("__metadata__") or {})
    meta.pop(DIGEST_KEY, None)
    plain = {k: v for k, v in header.items() if k != "__metadata__"}
    if meta:
        plain["__metadata__"] = meta
    h = hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    h.update(b"\0")
    for chunk in data if isinstance(data, list) else [data]:
        h.update(chunk)
    return h.hexdigest()


def is_verified(metadata: dict) -> bool:
    """True when the file carried a digest (checked by :func:`read_tensors`)."""
    return DIGEST_KEY in metadata


# ---------------------------------------------------------------- writing
def write_tensors(path: PathLike, tensors: dict, metadata: dict | None = None) -> None:
    """Atomically write ``{name: array}`` and string ``metadata`` in the safetensors layout,
    with the digest of header and data."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.asarray(to_numpy(array), order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        code = _dtype_code(array)
        data = array.astype(_DTYPES[code], copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    metadata = dict(metadata or {})
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ValueError(f"metadata keys and values must be strings; not: {bad}")
    header["__metadata__"] = metadata
    metadata[DIGEST_KEY] = header_digest(header, chunks)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # align the data to 8 bytes, as the reference writer does
    atomic_write(path, [len(blob).to_bytes(8, "little"), blob, *chunks])


def atomic_write(path: PathLike, parts: Any) -> None:
    """Write the byte strings ``parts`` to ``path`` via a fsynced temporary file + rename.

    The file ends up with the permissions ``open(path, "w")`` would give it: an existing
    file keeps its mode, a new one gets ``0o666 & ~umask`` (not mkstemp's 0o600).
    Temporary files of earlier writers of ``path`` that were killed are removed first.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = _mode_for(path)
    prefix = f".tmp-{os.path.basename(path)}-"
    remove_leftovers(folder, prefix)
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", suffix=".part", dir=folder)
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


def remove_leftovers(folder: PathLike, prefix: str) -> list:
    """Delete ``prefix<pid>-*.part`` files whose writing process no longer exists (a
    writer killed mid-write); a live writer's file is left alone. Returns what was removed."""
    removed = []
    for leftover in glob.glob(os.path.join(glob.escape(os.fspath(folder)), glob.escape(prefix) + "*.part")):
        pid_text = os.path.basename(leftover)[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        try:
            os.unlink(leftover)
            removed.append(leftover)
        except FileNotFoundError:  # another writer removed it first
            pass
    return removed


def _alive(pid) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31
    return True


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


# ---------------------------------------------------------------- reading
def parse_json(path: PathLike, text: Any, what: str = "the header") -> Any:
    """``json.loads`` whose every failure (bad UTF-8, syntax, duplicate keys, nesting too
    deep for the parser) is a FormatError naming ``path`` and ``what``."""
    try:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise FormatError(f"{path}: {what} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"{path}: {what} is not valid JSON ({exc})") from None


def read_tensors(path: PathLike) -> tuple[Any, dict[str, Any]]:
    """Read a safetensors-layout file: returns ``(tensors, metadata)``, validating everything.

    Raises :class:`FormatError` naming the file for a truncated, corrupted or
    malformed file; nothing in the file is executed and no array is allocated before
    its size was checked against the file's length.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < 8:
                raise FormatError(f"{path}: not a model file (only {size} bytes; truncated?)")
            n = int.from_bytes(handle.read(8), "little")
            if n > MAX_HEADER or n > size - 8 or n < 2:
                raise FormatError(f"{path}: bad header length {n} for a file of {size} bytes (truncated or not a model file)")
            header = parse_json(path, handle.read(n))
            if not isinstance(header, dict):
                raise FormatError(f"{path}: the header must be a JSON object")
            data_length = size - 8 - n
            layout = _check_layout(path, header, data_length)
            data = bytearray(data_length)
            if handle.readinto(data) != data_length:
                raise FormatError(f"{path}: the file shrank while it was read")
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    metadata = header.get("__metadata__", {}) or {}
    if DIGEST_KEY in metadata and header_digest(header, data) != metadata[DIGEST_KEY]:
        raise FormatError(f"{path}: digest mismatch: the file is corrupted (its {DIGEST_KEY} does not match its bytes)")
    view = memoryview(data)
    tensors = {name: np.frombuffer(view[a:b], dtype=dtype).reshape(shape).copy() for name, (dtype, shape, a, b) in layout.items()}
    return tensors, dict(metadata)


def _check_layout(path, header, data_length) -> dict:
    """``{name: (dtype, shape, begin, end)}`` after checking every entry against the data
    length; the arrays must tile the data without overlap or hole."""
    metadata = header.get("__metadata__", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError(f"{path}: __metadata__ must map strings to strings")
    if DIGEST_KEY in metadata and not (len(metadata[DIGEST_KEY]) == 64 and metadata[DIGEST_KEY].isalnum()):
        raise FormatError(f"{path}: __metadata__ {DIGEST_KEY!r} is not a SHA-256 hex digest")
    layout = {}
    for name, entry in header.items():
        if name != "__metadata__":
            layout[name] = _check_entry(path, name, entry, data_length)
    expected = 0
    for begin, end, name in sorted((b, e, name) for name, (_, _, b, e) in layout.items()):
        if begin != expected:
            raise FormatError(f"{path}: array {name!r} does not start where the previous one ended (overlap or hole)")
        expected = end
    if expected != data_length:
        raise FormatError(f"{path}: {data_length} data bytes but the header describes {expected} (truncated or padded)")
    return layout


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(path, name, entry, data_length):
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise FormatError(f"{path}: entry {name!r} must have exactly dtype, shape and data_offsets")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str) or code not in _DTYPES:
        raise FormatError(f"{path}: entry {name!r} has unknown dtype {code!r}")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_NDIM
        or not all(_is_int(s) and 0 <= s < 2**48 for s in shape)
    ):
        raise FormatError(f"{path}: entry {name!r} has a bad shape {str(shape)[:80]}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_length
    ):
        raise FormatError(f"{path}: entry {name!r} has bad data_offsets {str(offsets)[:80]} (file truncated?)")
    dtype = np.dtype(_DTYPES[code])
    if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
        raise FormatError(f"{path}: entry {name!r}: {offsets[1] - offsets[0]} bytes do not hold shape {shape} of {code}")
    return dtype, tuple(shape), offsets[0], offsets[1]


def _no_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        counts = collections.Counter(k for k, _ in pairs)
        raise ValueError(f"duplicate keys {sorted(k for k, c in counts.items() if c > 1)[:5]}")
    return result
