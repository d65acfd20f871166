"""Pictures of what a network learned: the first layer's filters as a PNG grid.

The PNG is written with ``zlib`` only (no matplotlib needed): 8-bit grayscale, or RGB for
filters over 3 input planes.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np

from typing import Any
from ._typing import Array, PathLike


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: PathLike, pixels: Any) -> None:
    """Write a uint8 image (H, W) grayscale or (H, W, 3) RGB as a PNG file (atomically)."""
    from .io import atomic_write

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim == 2:
        color, rows = 0, pixels
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        color, rows = 2, pixels.reshape(pixels.shape[0], -1)
    else:
        raise ValueError(f"write_png: expected an (H, W) or (H, W, 3) image, got shape {pixels.shape}")
    height, width = pixels.shape[:2]
    raw = b"".join(b"\x00" + rows[i].tobytes() for i in range(height))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    atomic_write(path, [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"IDAT", zlib.compress(raw, 9)),
                        _chunk(b"IEND", b"")])  # fmt: skip


def filter_grid(weight: Array, path: str | None = None, scale: int = 8, pad: int = 1,
                columns: int | None = None) -> Any:
    """Draw filters as a grid of tiles and (optionally) save it as a PNG.

    ``weight``: (n_filters, n_planes, kh, kw) as in ``SpatialConvolution.weight`` (or
    (n_filters, kh, kw)). Filters over 3 planes are drawn in colour; otherwise every
    (filter, plane) kernel gets its own grayscale tile, one row of planes per filter
    when there are several. Each tile is scaled to its own min..max (mid-gray when
    constant), enlarged ``scale`` times, with a ``pad``-pixel black border.
    Returns the uint8 image (H, W) or (H, W, 3).
    """
    w = np.asarray(weight.get() if hasattr(weight, "get") else weight, dtype=np.float64)
    if w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"filter_grid: expected a weight of shape (n_filters, n_planes, kh, kw), got {w.shape}")
    n, planes, kh, kw = w.shape
    rgb = planes == 3
    tiles = w.transpose(0, 2, 3, 1)[..., :3] if rgb else w.reshape(n * planes, kh, kw, 1)
    low = tiles.min(axis=(1, 2, 3), keepdims=True)
    span = tiles.max(axis=(1, 2, 3), keepdims=True) - low
    tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5)
    count = len(tiles)
    cols = columns or (planes if 1 < planes != 3 and planes <= 64 else math.ceil(math.sqrt(count)))
    rows = math.ceil(count / cols)
    th, tw = kh * scale, kw * scale
    grid = np.zeros((rows * (th + pad) + pad, cols * (tw + pad) + pad, tiles.shape[3]))
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        big = np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)
        grid[pad + r * (th + pad) : pad + r * (th + pad) + th, pad + c * (tw + pad) : pad + c * (tw + pad) + tw] = big
    image = np.round(grid * 255).astype(np.uint8)
    image = image if rgb else image[..., 0]
    if path is not None:
        write_png(path, image)
    return image


def first_layer_weight(model: Any) -> Any:
    """The weight of the first module that has a 4-D (or 3-D) weight (a filter bank)."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is not None and weight.ndim in (3, 4):
            return weight
    raise ValueError(f"{type(model).__name__}: no convolution (a module with a 4-D weight) to draw")


__all__ = ["filter_grid", "write_png", "first_layer_weight"]
