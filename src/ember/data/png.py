"""A minimal PNG writer (NumPy + zlib, no imaging library needed)."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ..io import atomic_write


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(image) -> bytes:
    """PNG bytes of a uint8 image (H, W) grey or (H, W, 3) RGB."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"encode_png: expected uint8 (H, W) or (H, W, 3), got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    color_type = 0 if image.ndim == 2 else 2
    rows = image.reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()  # filter 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def write_png(path, image) -> None:
    """Write a uint8 grey or RGB image to ``path`` as PNG (atomically)."""
    atomic_write(path, [encode_png(image)])
