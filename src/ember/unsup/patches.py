"""Image patches for dictionary learning and convolutional encoding.

- :func:`as_images` brings (N, H, W), (N, C, H, W) images (uint8 or float) to (N, C, H, W).
- :func:`random_patches` draws ``n`` patches (size x size, every plane) at random
  positions of random images: (n, C*size*size) float32, pixels scaled by ``scale``.
- :func:`all_patches` is every patch of a few images with a stride (the im2col of a
  convolution): (N, OH, OW, C*size*size) float32. Encoding each of them with a linear
  filter bank is then one GEMM, (N*OH*OW, D) x (D, K).
- :func:`normalize_patches` is Coates & Ng's per-patch brightness and contrast
  normalization, ``x <- (x - mean(x)) / sqrt(var(x) + eps)``, in place.

The flattened patch is ordered like ``SpatialConvolution.weight[k]`` (plane, row,
column), so a dictionary atom reshaped to (C, size, size) is a convolution filter.
"""

from __future__ import annotations

import numpy as np


def as_images(images, name: str = "images") -> np.ndarray:
    """(N, H, W) or (N, C, H, W) real images -> a (N, C, H, W) view (no copy)."""
    x = np.asarray(images)
    if not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: expected integer or float images, got dtype {x.dtype}")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or 0 in x.shape:
        raise ValueError(f"{name}: expected images (N, H, W) or (N, C, H, W), got shape {np.shape(images)}")
    return x


def _check_size(size, x, name: str) -> int:
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{name}: size must be an integer >= 1, got {size!r}")
    if size > min(x.shape[2], x.shape[3]):
        raise ValueError(f"{name}: size {size} is larger than the images ({x.shape[2]}x{x.shape[3]})")
    return int(size)


def random_patches(images, size: int, n: int, rng: np.random.Generator | None = None,
                   scale: float = 1.0) -> np.ndarray:  # fmt: skip
    """``n`` patches at uniformly random (image, row, column): (n, C*size*size) float32."""
    x = as_images(images, "random_patches")
    size = _check_size(size, x, "random_patches")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"random_patches: n must be an integer >= 1, got {n!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    count, planes, height, width = x.shape
    img = rng.integers(count, size=n)
    row = rng.integers(height - size + 1, size=n)
    col = rng.integers(width - size + 1, size=n)
    offsets = np.arange(size)
    rows = (row[:, None, None] + offsets[None, :, None])[:, None]  # (n, 1, size, 1)
    cols = (col[:, None, None] + offsets[None, None, :])[:, None]  # (n, 1, 1, size)
    patches = x[img[:, None, None, None], np.arange(planes)[None, :, None, None], rows, cols]
    out = patches.reshape(n, -1).astype(np.float32)
    if scale != 1:
        out *= np.float32(scale)
    return out


def all_patches(images, size: int, stride: int = 1, scale: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """Every ``size`` x ``size`` patch (step ``stride``): (N, OH, OW, C*size*size) float32,
    OH = (H - size) // stride + 1. Written into ``out`` when given (reused buffer)."""
    x = as_images(images, "all_patches")
    size = _check_size(size, x, "all_patches")
    if not isinstance(stride, int | np.integer) or stride < 1:
        raise ValueError(f"all_patches: stride must be an integer >= 1, got {stride!r}")
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
    n, planes, oh, ow = windows.shape[:4]
    shape = (n, oh, ow, planes * size * size)
    if out is None or out.shape != shape or out.dtype != np.float32:
        out = np.empty(shape, dtype=np.float32)
    view = out.reshape(n, oh, ow, planes, size, size)
    view[...] = windows.transpose(0, 2, 3, 1, 4, 5)
    if scale != 1:
        out *= np.float32(scale)
    return out


def normalize_patches(patches: np.ndarray, eps: float = 0.01) -> np.ndarray:
    """Per-patch contrast normalization over the last axis, in place (float arrays):
    ``x <- (x - mean(x)) / sqrt(var(x) + eps)``. A flat patch becomes 0; ``eps`` keeps
    nearly flat patches (background with a speck) from being blown up to unit contrast."""
    if not isinstance(patches, np.ndarray) or not np.issubdtype(patches.dtype, np.floating):
        raise TypeError(f"normalize_patches: expected a float array, got {type(patches).__name__}"
                        f"{'' if not isinstance(patches, np.ndarray) else ' of ' + str(patches.dtype)}")  # fmt: skip
    if not eps >= 0:
        raise ValueError(f"normalize_patches: eps must be >= 0, got {eps!r}")
    patches -= patches.mean(axis=-1, keepdims=True)
    var = np.einsum("...i,...i->...", patches, patches)[..., None]
    var /= patches.shape[-1]
    var += eps
    np.sqrt(var, out=var)
    if eps == 0:
        var[var == 0] = 1
    patches /= var
    return patches


__all__ = ["as_images", "random_patches", "all_patches", "normalize_patches"]
