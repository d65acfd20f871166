"""A safe reader for Torch7's ``torch.save`` files (binary and ascii).

Layout (torch7 ``File.lua``, ``generic/Tensor.c``, ``generic/Storage.c``): every value
starts with an int type tag -- 0 nil, 1 number (double), 2 string (int length + bytes),
3 table, 4 torch object, 5 boolean (int 0/1), 6/7/8 Lua function. Tables, torch objects
and functions 7/8 then carry an int *reference index*: an index seen before means "the
same object again", which is how shared tensors and reference cycles are written once.

- table: int n, then n (key, value) pairs;
- torch object: a version string ``"V <n>"`` (files older than versions start directly
  with the class name), the class name, then the class's data: tensors are int nDim,
  long size[nDim], long stride[nDim], long storageOffset (1-based), then a storage
  object (or nil); storages are long n, then n raw elements; every other class (``nn.*``
  modules) is written as one table of its fields;
- function: int n, n bytes of Lua bytecode, then the table of its upvalues.

Binary files are little-endian with 4-byte ints and the writer's C ``long`` (8 bytes,
4 on Windows and 32-bit builds); ascii files hold the same values as whitespace-separated
text, with strings and byte storages as raw bytes followed by a newline.

Nothing in the file is ever executed: Lua functions become :class:`LuaFunction` records.
Every count and size is checked against the bytes left in the file before anything is
allocated, nesting is limited, and any inconsistency raises :class:`FormatError`.
"""

from __future__ import annotations

from typing import Any

import math
import os
import re
import struct
import sys

import numpy as np

from ..errors import FormatError, read_whole_file

from .._typing import PathLike

NIL, NUMBER, STRING, TABLE, TORCH, BOOLEAN, FUNCTION, LEGACY_RECUR_FUNCTION, RECUR_FUNCTION = range(9)
MAX_DEPTH = 1000
MAX_DIMS = 64
MAX_EXPANDED_BYTES = 256 * 2**20  # tensors larger than their storage (stride-0 views), all together

# element type of each storage / tensor class (Cuda ones are written as host data of that type)
_ELEMENT_TYPES = {
    "Byte": "u1", "Char": "i1", "Short": "<i2", "Int": "<i4", "Long": "long", "Float": "<f4",
    "Double": "<f8", "Half": "<f2", "Cuda": "<f4", "CudaByte": "u1", "CudaChar": "i1",
    "CudaShort": "<i2", "CudaInt": "<i4", "CudaLong": "long", "CudaDouble": "<f8", "CudaHalf": "<f2",
}  # fmt: skip
_TENSOR_CLASS = re.compile(r"^torch\.(\w*?)(Tensor|Storage)$")


class TorchObject:
    """An instance of a Torch7 class other than a tensor or storage (``nn.Linear`` ...).

    ``class_name`` (e.g. ``"nn.Linear"``), ``version`` (the ``V n`` number, 0 if absent)
    and ``fields``: the object's table (a dict) as written by Torch7.
    """

    def __init__(self, class_name: str, version: int) -> None:
        self.class_name, self.version = class_name, version
        self.fields: dict[Any, Any] = {}

    def get(self, key: Any, default: Any = None) -> Any:
        """The field ``key`` (``default`` when absent)."""
        return self.fields.get(key, default) if isinstance(self.fields, dict) else default

    def __getitem__(self, key: Any) -> Any:
        return self.fields[key]

    def __contains__(self, key: Any) -> bool:
        return isinstance(self.fields, dict) and key in self.fields

    def __repr__(self) -> str:
        return f"TorchObject({self.class_name!r}, version {self.version}, {len(self.fields)} fields)"


class LuaFunction:
    """A Lua function found in the file: its bytecode and upvalues, kept but never run."""

    def __init__(self, bytecode: bytes, upvalues: Any) -> None:
        self.bytecode, self.upvalues = bytecode, upvalues

    def __repr__(self) -> str:
        return f"LuaFunction({len(self.bytecode)} bytes of bytecode)"


class TableKey:
    """A table key that Python cannot hash (a table or tensor used as a key), by identity."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __hash__(self) -> Any:
        return id(self.value)

    def __eq__(self, other: Any) -> Any:
        return isinstance(other, TableKey) and other.value is self.value

    def __repr__(self) -> str:
        return f"TableKey({type(self.value).__name__})"


class _Binary:
    """Values from a binary file, with a cursor; every read checks the bytes left."""

    def __init__(self, raw: bytes, long_size: int) -> None:
        self.raw, self.pos, self.long = raw, 0, "<i4" if long_size == 4 else "<i8"

    def left(self):
        return len(self.raw) - self.pos

    def _take(self, n, what):
        if n < 0 or n > self.left():
            raise FormatError(f"{what} needs {n} bytes at offset {self.pos}, {self.left()} left (truncated file?)")
        self.pos += n
        return self.pos - n

    def ints(self, n, what: str="int"):
        start = self._take(4 * n, what)
        return struct.unpack_from(f"<{n}i", self.raw, start)

    def longs(self, n, what: str="long"):
        size = np.dtype(self.long).itemsize
        start = self._take(size * n, what)
        return tuple(int(v) for v in np.frombuffer(self.raw, self.long, n, start))

    def double(self):
        return struct.unpack_from("<d", self.raw, self._take(8, "number"))[0]

    def chars(self, n, what: str="string"):
        start = self._take(n, what)
        return self.raw[start : start + n]

    def array(self, dtype, n, what):
        dtype = np.dtype(self.long if dtype == "long" else dtype)
        if n > self.left() // dtype.itemsize:
            raise FormatError(f"{what} of {n} elements needs {n * dtype.itemsize} bytes, {self.left()} left (truncated file?)")
        return np.frombuffer(self.raw, dtype, n, self._take(n * dtype.itemsize, what)).copy()


_TOKEN = re.compile(rb"[ \t\r\n\f\v]*([^ \t\r\n\f\v]+)")


class _Ascii(_Binary):
    """The same values from an ascii file (``torch.save(f, x, 'ascii')``)."""

    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    def _numbers(self, n, convert, what):
        if n > self.left():
            raise FormatError(f"{what}: {n} numbers cannot fit in the {self.left()} bytes left (truncated file?)")
        values = []
        for _ in range(n):
            match = _TOKEN.match(self.raw, self.pos)
            if match is None:
                raise FormatError(f"{what}: the file ends at offset {self.pos} (truncated?)")
            try:
                values.append(convert(match.group(1)))
            except ValueError:
                raise FormatError(f"{what}: {match.group(1)[:20]!r} at offset {self.pos} is not a number") from None
            self.pos = match.end()
        if n:
            self._newline()
        return values

    def _newline(self) -> None:
        if self.raw[self.pos : self.pos + 1] == b"\n":
            self.pos += 1

    def ints(self, n, what: str="int"):
        return tuple(self._numbers(n, int, what))

    longs = ints

    def double(self):
        return self._numbers(1, float, "number")[0]

    def chars(self, n, what: str="string"):
        data = _Binary.chars(self, n, what)
        self._newline()
        return data

    def array(self, dtype, n, what):
        if dtype in ("u1", "i1"):
            return np.frombuffer(self.chars(n, what), dtype).copy()
        dtype = np.dtype("<i8" if dtype == "long" else dtype)
        return np.asarray(self._numbers(n, float if dtype.kind == "f" else int, what), dtype=dtype)


_OTHER_FORMATS = [
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file"),
    (b"PK\x03\x04", "a zip archive (a PyTorch >= 1.6 torch.save file?)"),
    (b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19", "a legacy PyTorch pickle file"),
]


def _detect_ascii(raw: bytes) -> bool:
    """Binary files start with a 4-byte type tag (``04 00 00 00``); ascii ones with a digit."""
    return bool(re.match(rb"[ \t\r\n]*-?\d+[ \t\r]*\n", raw[:32]))


class Reader:
    """Decode one serialized object; see the module docstring for the format."""

    def __init__(self, raw: bytes, ascii: bool, long_size: int = 8, max_depth: int = MAX_DEPTH) -> None:
        self.source = _Ascii(raw) if ascii else _Binary(raw, long_size)
        self.memo: dict = {}
        self.depth, self.max_depth = 0, max_depth
        self.expanded = 0

    def read(self) -> Any:
        """The next object of the file."""
        self.depth += 1
        if self.depth > self.max_depth:
            raise FormatError(f"objects nested more than {self.max_depth} deep (hostile file?)")
        try:
            return self._read()
        finally:
            self.depth -= 1

    def _read(self):
        src = self.source
        (tag,) = src.ints(1, "type tag")
        if tag == NIL:
            return None
        if tag == NUMBER:
            value = src.double()
            return int(value) if value.is_integer() and abs(value) < 2**53 else value
        if tag == STRING:
            return _text(src.chars(self._count(src.ints(1, "string length")[0], 1, "string")))
        if tag == BOOLEAN:
            (value,) = src.ints(1, "boolean")
            return value != 0
        if tag == FUNCTION:
            return self._function()
        if tag not in (TABLE, TORCH, LEGACY_RECUR_FUNCTION, RECUR_FUNCTION):
            raise FormatError(f"unknown type tag {tag} at offset {src.pos - 4} (corrupted file?)")
        (index,) = src.ints(1, "reference index")
        if index in self.memo:
            return self.memo[index]
        if index <= 0:
            raise FormatError(f"bad reference index {index} at offset {src.pos}")
        if tag == TABLE:
            return self._table(index)
        if tag == TORCH:
            return self._torch(index)
        return self._function(index)

    def _count(self, n, min_bytes, what):
        """``n`` items of at least ``min_bytes`` each must fit in what is left of the file."""
        if n < 0 or n * min_bytes > self.source.left():
            raise FormatError(f"{what}: a count of {n} cannot fit in the {self.source.left()} bytes left (corrupted or truncated file)")
        return n

    def _table(self, index):
        table = self.memo[index] = {}
        n = self._count(self.source.ints(1, "table size")[0], 4, "table")
        for _ in range(n):
            key, value = self.read(), self.read()
            if key is None:
                raise FormatError("a table has a nil key (corrupted file)")
            try:
                hash(key)
            except TypeError:
                key = TableKey(key)
            table[key] = value
        return table

    def _function(self, index=None):
        code = self.source.chars(self._count(self.source.ints(1, "function size")[0], 1, "function"), "function")
        function = LuaFunction(bytes(code), None)
        if index is not None:
            self.memo[index] = function
        function.upvalues = self.read()
        return function

    def _torch(self, index):
        version_text = self._string("version")
        match = re.fullmatch(r"V (\d+)", version_text)
        class_name = self._string("class name") if match else version_text
        version = int(match.group(1)) if match else 0
        kind = _TENSOR_CLASS.match(class_name)
        if kind and kind.group(1) in _ELEMENT_TYPES:
            element = _ELEMENT_TYPES[kind.group(1)]
            if kind.group(2) == "Storage":
                n = self.source.longs(1, "storage size")[0]
                if n < 0:
                    raise FormatError(f"{class_name}: negative size {n}")
                storage = self.memo[index] = self.source.array(element, n, class_name)
                return storage
            tensor = self.memo[index] = self._tensor(class_name)
            return tensor
        if (class_name.startswith("torch.") and ("Tensor" in class_name or "Storage" in class_name)) or class_name.startswith("tds."):
            raise FormatError(f"unsupported class {class_name!r} (its data has its own layout)")
        obj = self.memo[index] = TorchObject(class_name, version)
        fields = self.read()
        if not isinstance(fields, dict):
            raise FormatError(f"{class_name}: expected a table of fields, got {type(fields).__name__}")
        obj.fields = fields
        return obj

    def _string(self, what):
        n = self._count(self.source.ints(1, f"{what} length")[0], 1, what)
        return _text(self.source.chars(n, what))

    def _tensor(self, class_name):
        src = self.source
        (ndim,) = src.ints(1, "tensor dimension")
        if not 0 <= ndim <= MAX_DIMS:
            raise FormatError(f"{class_name}: {ndim} dimensions (at most {MAX_DIMS})")
        size, stride = src.longs(ndim, "tensor size"), src.longs(ndim, "tensor stride")
        (offset,) = src.longs(1, "tensor offset")
        storage = self.read()
        if any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise FormatError(f"{class_name}: negative size or stride {size} / {stride}")
        numel = math.prod(size)
        if ndim == 0 or numel == 0:
            return np.zeros(size if ndim else (0,), dtype=storage.dtype if isinstance(storage, np.ndarray) else "f4")
        if not isinstance(storage, np.ndarray) or storage.ndim != 1:
            raise FormatError(f"{class_name} of size {size} has no storage")
        last = offset - 1 + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 1 or last >= len(storage):
            raise FormatError(f"{class_name}: size {size}, stride {stride}, offset {offset} reach past its storage of {len(storage)}")
        if numel > len(storage):
            self.expanded += numel * storage.itemsize
            if self.expanded > MAX_EXPANDED_BYTES:
                raise FormatError(f"{class_name}: stride-0 views expand to over {MAX_EXPANDED_BYTES} bytes (hostile file?)")
        item = storage.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[offset - 1 :], shape=size, strides=[s * item for s in stride], writeable=False
        )


def _text(data) -> str:
    return bytes(data).decode("utf-8", errors="surrogateescape")


def read_t7_bytes(raw: bytes, *, ascii: Any = None, long_size: int | None = None, name: str = "<bytes>") -> Any:
    """Decode ``raw`` (a whole ``torch.save`` file). ``ascii``: None detects the format;
    ``long_size`` 8 or 4 (None: try 8, then 4, as files from Windows use 4-byte longs)."""
    for magic, what in _OTHER_FORMATS:
        if raw.startswith(magic):
            raise FormatError(f"{name}: this is {what}, not a Torch7 torch.save file")
    if ascii is None:
        ascii = _detect_ascii(raw)
    sizes = [8] if ascii else ([long_size] if long_size else [8, 4])
    first_error = None
    with deep_recursion():
        for size in sizes:
            reader = Reader(raw, ascii, size)
            try:
                value = reader.read()
                if reader.source.left() and raw[reader.source.pos :].strip():
                    raise FormatError(f"{reader.source.left()} bytes after the end of the object (corrupted file?)")
                return value
            except FormatError as exc:
                first_error = first_error or str(exc)
            except (MemoryError, RecursionError, OverflowError, ValueError, TypeError) as exc:
                first_error = first_error or f"{type(exc).__name__}: {exc}"
    # the 8-byte-long reading's complaint is the telling one for most files
    raise FormatError(f"{name}: not a readable Torch7 file: {first_error}")


class deep_recursion:
    """Allow the recursion that ``MAX_DEPTH`` nested objects need (and no more), then
    restore the interpreter's limit."""

    def __enter__(self) -> None:
        self.old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(self.old, 8 * MAX_DEPTH + 1000))

    def __exit__(self, *exc: Any) -> None:
        sys.setrecursionlimit(self.old)


def read_t7(path: PathLike, *, ascii: Any = None, long_size: int | None = None) -> Any:
    """Read a Torch7 ``.t7`` file into Python values: numbers, strings, booleans, dicts
    (Lua tables), NumPy arrays (tensors and storages, CUDA ones as host arrays),
    :class:`TorchObject` and :class:`LuaFunction`. Raises :class:`FormatError`."""
    path = os.fspath(path)
    raw = read_whole_file(path)
    return read_t7_bytes(raw, ascii=ascii, long_size=long_size, name=path)
