"""Image kernels, as Torch7's ``image`` package makes them (``image.gaussian``, ``gaussian1D``).

Used to build the smoothing kernels of local contrast normalization, e.g.
``nn.SpatialContrastiveNormalization(1, image.gaussian1d(7))``.
"""

from __future__ import annotations

import numpy as np

from typing import Any


def _check(name, size, sigma):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"image.{name}: size must be a positive int, got {size!r}")
    if not sigma > 0:
        raise ValueError(f"image.{name}: sigma must be > 0, got {sigma!r}")


def _profile(size, sigma, mean):
    """exp(-((i - c) / (sigma size))^2 / 2), i = 1..size, c = mean size + 0.5 (Torch7's units)."""
    i = np.arange(1, size + 1, dtype=np.float64)
    return np.exp(-(((i - (mean * size + 0.5)) / (sigma * size)) ** 2) / 2)


def gaussian1d(size: int = 3, sigma: float = 0.25, amplitude: float = 1.0, normalize: bool = False,
               mean: float = 0.5) -> np.ndarray:
    """1-D Gaussian kernel (Torch7 ``image.gaussian1D``).

    g[i] = amplitude * exp(-((i - c) / (sigma * size))^2 / 2) for i = 1..size, with
    c = mean * size + 0.5; ``sigma`` and ``mean`` are relative to ``size`` (so the default
    mean 0.5 centres the kernel). ``normalize=True`` divides by the sum (the amplitude is
    then irrelevant). Returns float64 of shape (size,).
    """
    _check("gaussian1d", size, sigma)
    g = amplitude * _profile(size, sigma, mean)
    return g / g.sum() if normalize else g


def gaussian(size: int = 3, sigma: float = 0.25, amplitude: float = 1.0, normalize: bool = False, width: int | None = None, height: int | None = None,
             sigma_horz: Any = None, sigma_vert: Any = None, mean_horz: float = 0.5, mean_vert: float = 0.5) -> Any:  # fmt: skip
    """2-D Gaussian kernel (Torch7 ``image.gaussian``), shape (height, width).

    g[i, j] = amplitude * exp(-((j - cx) / (sigma_horz width))^2 / 2
                               - ((i - cy) / (sigma_vert height))^2 / 2),
    i = 1..height, j = 1..width, cx = mean_horz width + 0.5, cy = mean_vert height + 0.5.
    ``width``/``height`` default to ``size``, ``sigma_horz``/``sigma_vert`` to ``sigma``.
    """
    width = size if width is None else width
    height = size if height is None else height
    sigma_horz = sigma if sigma_horz is None else sigma_horz
    sigma_vert = sigma if sigma_vert is None else sigma_vert
    _check("gaussian", width, sigma_horz)
    _check("gaussian", height, sigma_vert)
    g = amplitude * np.outer(_profile(height, sigma_vert, mean_vert), _profile(width, sigma_horz, mean_horz))
    return g / g.sum() if normalize else g


__all__ = ["gaussian", "gaussian1d"]
