"""IDX files (the MNIST format), raw or gzip-compressed, with checksum verification.

Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a
big-endian uint32, then the data (big-endian). MNIST images have magic 2051
(``00 00 08 03``) and labels 2049 (``00 00 08 01``).
"""

from __future__ import annotations

import gzip
import hashlib
import os

import numpy as np

from ..errors import FormatError

_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_bytes(path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by its magic bytes)."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FormatError(f"{path}: corrupted gzip data ({exc})") from exc
    return raw


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_idx(data: bytes, name="<bytes>") -> np.ndarray:
    """Decode IDX bytes into a NumPy array (native byte order)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _TYPES:
        raise FormatError(f"{name}: not an IDX file (bad magic {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FormatError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise FormatError(f"{name}: {len(data) - header} data bytes, the header announces {expected} (truncated?)")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path, digests=()) -> np.ndarray:
    """Read an IDX file (raw or .gz). If ``digests`` is given, the SHA-256 of the
    decompressed bytes must be one of them, else :class:`FormatError`."""
    data = read_bytes(path)
    if digests and sha256(data) not in digests:
        raise FormatError(f"{path}: checksum mismatch (sha256 {sha256(data)}, expected one of {list(digests)})")
    return parse_idx(data, os.fspath(path))
