"""Input preprocessing fitted on the training set, saved with the model.

The lecture: "normalize the input variables (zero mean, unit variance)", and its
normalization stage comes in "variations on whitening". Here:

- :class:`Standardizer` (``per="global"``, ``"feature"`` or ``"channel"``): subtract the
  mean, divide by the standard deviation (one value, one per input feature, or one
  per channel of (N, C, H, W) images);
- :class:`ZCA`: ZCA whitening, ``x <- (x - mean) W`` with
  ``W = U diag(1 / sqrt(lambda + eps mean(lambda))) U^T`` from the eigendecomposition
  ``C = U diag(lambda) U^T`` of the training covariance. The whitened features are
  decorrelated with unit variance, and, unlike PCA whitening, stay as close as
  possible to the original pixels (W is symmetric), so images still look like images.

Every preprocessor is fitted on training data only and then applied unchanged to
validation and test data. :func:`to_file` / :func:`from_file` turn one into arrays and
string metadata that :func:`ember.io.save` stores in the model file (``extra=``), so
``ember eval`` preprocesses exactly as training did.
"""

from __future__ import annotations

from typing import Any

import json

import numpy as np

from ..errors import FormatError
from .batches import Standardizer
from .._typing import Array

PREFIX = "preprocess/"


class ZCA:
    """ZCA whitening over the flattened sample (all features together).

    ``eps`` regularises the small eigenvalues, relative to their mean (the average
    feature variance), so it does not depend on the input's scale: ``lambda + eps *
    mean(lambda)``. A larger eps whitens less and amplifies less noise.
    fit: mean (D,), W (D, D) in float64; transform keeps each sample's shape.
    """

    per = "zca"

    def __init__(self, eps: float = 0.1) -> None:
        if not isinstance(eps, int | float) or not eps >= 0:
            raise ValueError(f"ZCA: eps must be a number >= 0, got {eps!r}")
        self.eps = float(eps)
        self.mean: Any = None
        self.w: Any = None

    def fit(self, x: Array, chunk: int = 8192) -> ZCA:
        """Mean and whitening matrix W = U diag(1/sqrt(lambda + eps)) U^T of the training
        samples' covariance (accumulated in float64 chunks); returns self."""
        x = np.asarray(x)
        if x.ndim < 2 or x.shape[0] < 2:
            raise ValueError(f"ZCA.fit: expected (N, ...) samples with N >= 2, got shape {x.shape}")
        flat = x.reshape(x.shape[0], -1)
        n, d = flat.shape
        # mean and covariance accumulated in float64 chunks (no N x D float64 copy)
        self.mean = np.zeros(d)
        for start in range(0, n, chunk):
            self.mean += flat[start : start + chunk].sum(axis=0, dtype=np.float64)
        self.mean /= n
        cov = np.zeros((d, d))
        for start in range(0, n, chunk):
            centered = flat[start : start + chunk] - self.mean
            cov += centered.T @ centered
        cov /= n
        eigenvalues, u = np.linalg.eigh(cov)
        eigenvalues = np.maximum(eigenvalues, 0)
        scale = 1.0 / np.sqrt(eigenvalues + self.eps * max(float(eigenvalues.mean()), 1e-12))
        self.w = (u * scale) @ u.T
        return self

    def transform(self, x: Array, dtype: str = "float32", chunk: int = 8192) -> np.ndarray:
        """``(x - mean) W`` per sample, in the input's shape, as ``dtype``."""
        if self.w is None:
            raise RuntimeError("ZCA.transform called before fit")
        x = np.asarray(x)
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.mean.shape[0]:
            raise ValueError(f"ZCA.transform: samples have {flat.shape[1]} features, fitted on {self.mean.shape[0]}")
        out = np.empty(flat.shape, dtype=dtype)
        for start in range(0, flat.shape[0], chunk):
            out[start : start + chunk] = (flat[start : start + chunk] - self.mean) @ self.w
        return out.reshape(x.shape)

    def fit_transform(self, x: Array, dtype: str = "float32") -> np.ndarray:
        """:meth:`fit` on ``x``, then :meth:`transform` it."""
        return self.fit(x).transform(x, dtype)

    def state(self) -> dict:
        """Arrays to store with a model (see :meth:`from_state`)."""
        return {"mean": self.mean, "w": self.w}

    @classmethod
    def from_state(cls, eps: float, state: dict[str, Any]) -> Any:
        """The fitted ZCA that :meth:`state` described."""
        z = cls(eps)
        z.mean, z.w = np.asarray(state["mean"], dtype=np.float64), np.asarray(state["w"], dtype=np.float64)
        return z


KINDS = ("none", "global", "feature", "channel", "zca")


def make_preprocessor(kind: str = "global", eps: float | None = None) -> Any:
    """A new unfitted preprocessor: one of :data:`KINDS` (``"none"`` gives None)."""
    if kind == "none":
        return None
    if kind in ("global", "feature", "channel"):
        return Standardizer(kind)
    if kind == "zca":
        return ZCA() if eps is None else ZCA(eps)
    raise ValueError(f"unknown preprocessing {kind!r}; one of {', '.join(KINDS)}")


def to_file(preprocessor: Any) -> Any:
    """``(arrays, metadata)`` describing a fitted preprocessor, for a model file."""
    if preprocessor is None:
        return {}, {"preprocess": json.dumps({"kind": "none"})}
    config = {"kind": preprocessor.per}
    if isinstance(preprocessor, ZCA):
        config["eps"] = preprocessor.eps
    arrays = {PREFIX + k: np.asarray(v, dtype=np.float64) for k, v in preprocessor.state().items()}
    return arrays, {"preprocess": json.dumps(config)}


def from_file(arrays: Any, metadata: Any) -> Any:
    """Rebuild what :func:`to_file` described (None when the file has no preprocessing)."""
    if "preprocess" not in metadata:
        return None
    try:
        config = json.loads(metadata["preprocess"])
        kind = config["kind"]
        state = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
        if kind == "none":
            return None
        if kind == "zca":
            return ZCA.from_state(config["eps"], state)
        if kind in ("global", "feature", "channel"):
            return Standardizer.from_state(kind, state)
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"bad preprocessing description in the file ({exc})") from exc
    raise FormatError(f"unknown preprocessing {kind!r} in the file")
