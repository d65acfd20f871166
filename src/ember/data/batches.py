"""Minibatches and input normalization, as the lecture recommends.

- shuffle the training samples at every epoch (a seeded ``numpy.random.Generator``);
- normalize the inputs to zero mean and unit variance, with statistics fitted on the
  training set only and then applied unchanged to the test set.
"""

from __future__ import annotations

from typing import Any

from collections.abc import Iterator

import numpy as np
from .._typing import Array


def minibatches(n: int, batch_size: int, rng: np.random.Generator | None = None, shuffle: bool = True,
                drop_last: bool = False) -> Iterator[np.ndarray]:
    """Yield index arrays covering ``range(n)`` in batches (a new permutation per call
    when ``shuffle``; pass the same generator every epoch for a reproducible order)."""
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"minibatches: batch_size must be a positive int, got {batch_size!r}")
    order = (rng if rng is not None else np.random.default_rng()).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


class Standardizer:
    """Zero-mean, unit-variance scaling fitted on training data.

    ``per="global"`` uses one mean and std for all features (the lecture's MNIST
    recipe), ``per="feature"`` one per input feature, ``per="channel"`` one per channel
    of (N, C, ...) images. ``std`` is floored at ``eps`` (and, per feature or channel, at 1% of
    the mean std) so constant features stay finite on new data.
    """

    def __init__(self, per: str = "global", eps: float = 1e-8) -> None:
        if per not in ("global", "feature", "channel"):
            raise ValueError(f"Standardizer: per must be 'global', 'feature' or 'channel', got {per!r}")
        self.per, self.eps = per, float(eps)
        self.mean: Any = None
        self.std: Any = None

    def fit(self, x: Array, chunk: int = 1024) -> Standardizer:
        """Measure the mean and standard deviation of the training samples ``x``; returns self.

        Two passes over ``chunk`` samples at a time with float64 accumulators (the mean,
        then the squared deviations from it), so uint8 images are never copied whole to
        float64."""
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[0] < 1:
            raise ValueError(f"Standardizer.fit: expected (N, ...) samples with N >= 1, got shape {x.shape}")
        n = x.shape[0]
        axes = {"global": None, "feature": 0, "channel": (0,) + tuple(range(2, x.ndim))}[self.per]
        keep = self.per != "global"
        count = {"global": x.size, "feature": n, "channel": n * int(np.prod(x.shape[2:]))}[self.per]
        total = 0.0
        for start in range(0, n, chunk):
            total = total + x[start : start + chunk].sum(axis=axes, keepdims=keep, dtype=np.float64)
        mean = total / count
        squares = 0.0
        for start in range(0, n, chunk):
            deviation = x[start : start + chunk] - mean  # float64, one chunk
            squares = squares + np.square(deviation).sum(axis=axes, keepdims=keep)
        std = np.sqrt(squares / count)
        self.mean = float(mean) if self.per == "global" else mean
        # floor: eps, and for per-feature/channel scaling 1% of the mean std, so features that
        # are (nearly) constant in training (MNIST's border pixels) do not explode on new data
        floor = self.eps if self.per == "global" else max(self.eps, 0.01 * float(std.mean()))
        self.std = float(np.maximum(std, floor)) if self.per == "global" else np.maximum(std, floor)
        if self.per != "global":
            self.mean, self.std = self.mean[0], self.std[0]
        return self

    def transform(self, x: Array, dtype: str = "float32", out: np.ndarray | None = None) -> np.ndarray:
        """``(x - mean) / std`` with the fitted statistics, computed in ``dtype`` (no float64
        copy for float32 output), into ``out`` if given."""
        if self.mean is None:
            raise RuntimeError("Standardizer.transform called before fit")
        x = np.asarray(x)
        out = np.empty(x.shape, dtype=dtype) if out is None else out
        np.copyto(out, x, casting="unsafe")
        out -= np.asarray(self.mean, dtype=out.dtype)
        out /= np.asarray(self.std, dtype=out.dtype)
        return out

    def fit_transform(self, x: Array, dtype: str = "float32") -> np.ndarray:
        """:meth:`fit` on ``x``, then :meth:`transform` it."""
        return self.fit(x).transform(x, dtype)

    def state(self) -> dict:
        """Arrays to store with a model (see :meth:`from_state`)."""
        return {"mean": np.asarray(self.mean, dtype=np.float64), "std": np.asarray(self.std, dtype=np.float64)}

    @classmethod
    def from_state(cls, per: Any, state: dict[str, Any]) -> Any:
        """The fitted Standardizer that :meth:`state` described."""
        s = cls(per)
        s.mean, s.std = state["mean"], state["std"]
        if s.per == "global":
            s.mean, s.std = float(s.mean), float(s.std)
        return s
