"""IDX files (the MNIST format), raw or gzip-compressed, with checksum verification.

Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a
big-endian uint32, then the data (big-endian). MNIST images have magic 2051
(``00 00 08 03``) and labels 2049 (``00 00 08 01``).

Reading is bounded: the header's dimensions (multiplied as Python integers, so they
cannot overflow) give the data size, which must equal the file's length (raw), be
reachable by deflate from the compressed length and stay under :data:`MAX_BYTES`
(gzip), and equal ``size`` when the caller knows it; only then is the buffer allocated.
Compressed data is inflated in :data:`CHUNK`-sized steps straight into that buffer,
hashed as it streams, and refused the moment it runs past the announced size.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib

import numpy as np

from ..errors import FormatError, read_whole_file

from typing import Any
from .._typing import PathLike

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: largest decompressed IDX file ember reads (bytes)
MAX_BYTES = 4 << 30
#: bytes inflated per step
CHUNK = 1 << 20
#: deflate cannot expand data by more than about 1032:1
_MAX_RATIO = 1100


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _header_size(head: bytes, name):
    """``(dtype, shape, header length)`` from the first bytes of an IDX file."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
        raise FormatError(f"{name}: not an IDX file (bad magic {head[:4].hex()})")
    ndim = head[3]
    header = 4 + 4 * ndim
    if len(head) < header:
        raise FormatError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.dtype(_TYPES[head[2]]), shape, header


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a NumPy array (native byte order)."""
    dtype, shape, header = _header_size(bytes(data[:1024]), name)
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise FormatError(f"{name}: {len(data) - header} data bytes, the header announces {expected} (truncated?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_bytes(path: PathLike, size: int | None = None, digests: tuple[Any, ...] = ()) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic bytes),
    read within the bounds above; with ``digests`` its SHA-256 must be one of them."""
    path = os.fspath(path)
    raw = read_whole_file(path)
    if raw[:2] != b"\x1f\x8b":
        _check_size(path, len(raw), raw, size, len(raw))
        data = raw
    else:
        data = _inflate(path, raw, size)
    if digests and sha256(data) not in digests:
        raise FormatError(f"{path}: checksum mismatch (sha256 {sha256(data)}, expected one of {list(digests)})")
    return data


def _check_size(path, total, head, size, limit):
    """The size the IDX header announces must be ``size`` (when known) and at most ``limit``."""
    dtype, shape, header = _header_size(head, path)
    announced = header + math.prod(shape) * dtype.itemsize
    if size is not None and announced != size:
        raise FormatError(f"{path}: the IDX header announces {announced} bytes, this file must have {size}")
    if announced > min(limit, MAX_BYTES):
        raise FormatError(f"{path}: the IDX header announces {announced} bytes, more than the file can hold "
                          f"({total} bytes read)")  # fmt: skip
    return announced


def _inflate(path, raw, size):
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = stream.decompress(raw, 1024)
        announced = _check_size(path, len(raw), head, size, len(raw) * _MAX_RATIO)
        out = bytearray(announced)
        filled = len(head)
        if filled > announced:
            raise FormatError(f"{path}: more data than the IDX header announces")
        out[:filled] = head
        while not stream.eof:
            chunk = stream.decompress(stream.unconsumed_tail, min(CHUNK, announced - filled + 1))
            if not chunk:
                break
            if filled + len(chunk) > announced:
                raise FormatError(f"{path}: more data than the IDX header announces ({announced} bytes)")
            out[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    except zlib.error as exc:
        raise FormatError(f"{path}: corrupted gzip data ({exc})") from None
    if not stream.eof:
        raise FormatError(f"{path}: truncated gzip data ({filled} of {announced} bytes)")
    if filled != announced:
        raise FormatError(f"{path}: {filled} bytes, the IDX header announces {announced} (truncated?)")
    if stream.unused_data.strip(b"\0"):
        raise FormatError(f"{path}: unexpected bytes after the gzip stream")
    return out


def read_idx(path: PathLike, digests: tuple[Any, ...] = (), size: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or .gz). If ``digests`` is given, the SHA-256 of the
    decompressed bytes must be one of them, and with ``size`` the decompressed length
    must be exactly that; else :class:`FormatError`."""
    return parse_idx(read_bytes(path, size, digests), os.fspath(path))
