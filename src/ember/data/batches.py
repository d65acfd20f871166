"""Minibatches and input normalization, as the lecture recommends.

- shuffle the training samples at every epoch (a seeded ``numpy.random.Generator``);
- normalize the inputs to zero mean and unit variance, with statistics fitted on the
  training set only and then applied unchanged to the test set.
"""

from __future__ import annotations

import numpy as np


def minibatches(n, batch_size, rng=None, shuffle=True, drop_last=False):
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

    def __init__(self, per="global", eps=1e-8):
        if per not in ("global", "feature", "channel"):
            raise ValueError(f"Standardizer: per must be 'global', 'feature' or 'channel', got {per!r}")
        self.per, self.eps = per, float(eps)
        self.mean = self.std = None

    def fit(self, x):
        """Measure the mean and standard deviation of the training samples ``x``; returns self."""
        x = np.asarray(x, dtype=np.float64)
        axes = {"global": None, "feature": 0, "channel": (0,) + tuple(range(2, x.ndim))}[self.per]
        keep = self.per != "global"
        self.mean = x.mean(axis=axes, keepdims=keep)
        std = x.std(axis=axes, keepdims=keep)
        # floor: eps, and for per-feature/channel scaling 1% of the mean std, so features that
        # are (nearly) constant in training (MNIST's border pixels) do not explode on new data
        floor = self.eps if self.per == "global" else max(self.eps, 0.01 * float(std.mean()))
        self.std = np.maximum(std, floor)
        if self.per != "global":
            self.mean, self.std = self.mean[0], self.std[0]
        return self

    def transform(self, x, dtype="float32"):
        """``(x - mean) / std`` with the fitted statistics, as ``dtype``."""
        if self.mean is None:
            raise RuntimeError("Standardizer.transform called before fit")
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.std).astype(dtype)

    def fit_transform(self, x, dtype="float32"):
        """:meth:`fit` on ``x``, then :meth:`transform` it."""
        return self.fit(x).transform(x, dtype)

    def state(self) -> dict:
        """Arrays to store with a model (see :meth:`from_state`)."""
        return {"mean": np.asarray(self.mean, dtype=np.float64), "std": np.asarray(self.std, dtype=np.float64)}

    @classmethod
    def from_state(cls, per, state):
        """The fitted Standardizer that :meth:`state` described."""
        s = cls(per)
        s.mean, s.std = state["mean"], state["std"]
        if s.per == "global":
            s.mean, s.std = float(s.mean), float(s.std)
        return s
