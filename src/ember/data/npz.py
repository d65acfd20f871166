"""``.npz`` archives (what ``numpy.savez`` writes) read with every size checked first.

``numpy.load`` trusts the archive: a truncated member, a bad CRC or a deflate error
escape as zipfile/zlib exceptions, and a member's ``.npy`` header can ask for any
amount of memory. :func:`read_npz` reads each member's ``.npy`` header from the zip
stream, checks that its shape and dtype describe exactly the member's declared size,
that the declared size is reachable from the compressed size and under
:data:`MAX_BYTES`, and refuses object (pickled), string, complex and other non-numeric
dtypes; only then does it allocate the array and fill it in chunks. Every failure is
a :class:`FormatError` naming the file and the array.
"""

from __future__ import annotations

import ast
import math
import os
import zipfile
import zlib

import numpy as np

from ..errors import FormatError

from typing import Any
from .._typing import PathLike

#: largest array ember reads from an archive (bytes)
MAX_BYTES = 4 << 30
_CHUNK = 1 << 20
_MAX_RATIO = 1100  # deflate cannot expand data by more than about 1032:1
_KINDS = "biuf"  # bool, integers, floats
_MAGIC = b"\x93NUMPY"


def read_npz(path: PathLike, names: Any = None) -> dict:
    """``{name: array}`` for the members of an ``.npz`` archive (only ``names`` if given,
    in any case every one of them must be there)."""
    path = os.fspath(path)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable .npz archive ({exc})") from None
    with archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        wanted = list(members) if names is None else list(names)
        missing = [n for n in wanted if n not in members]
        if missing:
            raise FormatError(f"{path}: missing arrays {missing} (found {sorted(members)[:10]})")
        return {name: _read_member(path, archive, members[name], name) for name in wanted}


def _read_member(path, archive, info, name):
    where = f"{path}: array {name!r}"
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise FormatError(f"{where}: unsupported compression {info.compress_type}")
    limit = info.compress_size * (_MAX_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else 1) + 64
    if info.file_size > min(limit, MAX_BYTES):
        raise FormatError(f"{where}: declares {info.file_size} bytes from {info.compress_size} stored (corrupted?)")
    try:
        with archive.open(info) as stream:
            dtype, shape, fortran, header_length = _npy_header(where, stream)
            count = math.prod(shape)
            if header_length + count * dtype.itemsize != info.file_size:
                raise FormatError(f"{where}: shape {shape} of {dtype} does not fill the member's "
                                  f"{info.file_size} bytes")  # fmt: skip
            array = np.empty(count, dtype=dtype)
            buffer = memoryview(array.view(np.uint8).reshape(-1))
            filled = 0
            while filled < len(buffer):
                got = stream.readinto(buffer[filled : filled + _CHUNK])
                if not got:
                    raise FormatError(f"{where}: truncated ({filled} of {len(buffer)} data bytes)")
                filled += got
            if stream.read(1):
                raise FormatError(f"{where}: more data than its header describes")
    except FormatError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise FormatError(f"{where}: corrupted archive member ({type(exc).__name__}: {exc})") from None
    array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _npy_header(where, stream):
    """``(dtype, shape, fortran_order, header length)`` of a ``.npy`` stream, parsed with
    ``ast.literal_eval`` (data only) and checked."""
    start = stream.read(10)
    if len(start) < 10 or start[:6] != _MAGIC or start[6] not in (1, 2, 3):
        raise FormatError(f"{where}: not a .npy member (bad magic)")
    if start[6] == 1:
        length, prefix = int.from_bytes(start[8:10], "little"), 10
    else:
        start += stream.read(2)
        length, prefix = int.from_bytes(start[8:12], "little"), 12
    if length > 1 << 16:
        raise FormatError(f"{where}: .npy header of {length} bytes")
    text = stream.read(length)
    try:
        header = ast.literal_eval(text.decode("latin1" if start[6] < 3 else "utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise FormatError(f"{where}: unreadable .npy header ({exc})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise FormatError(f"{where}: .npy header must have descr, fortran_order and shape")
    shape, fortran = header["shape"], header["fortran_order"]
    if (
        not isinstance(shape, tuple)
        or len(shape) > 32
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**48 for s in shape)
        or not isinstance(fortran, bool)
    ):
        raise FormatError(f"{where}: bad shape {str(shape)[:60]} or fortran_order in the .npy header")
    try:
        dtype = np.dtype(header["descr"]) if isinstance(header["descr"], str) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        kind = "pickled objects" if dtype is not None and dtype.hasobject else f"dtype {str(header['descr'])[:40]}"
        raise FormatError(f"{where}: holds {kind}; ember reads only numeric (bool, int, float) arrays")
    return dtype, shape, fortran, prefix + length
