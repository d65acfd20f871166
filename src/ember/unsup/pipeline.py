"""Single-layer unsupervised feature pipelines (Coates, Lee & Ng 2011), convolutionally.

The lecture's recipe: a **sparse non-linear expansion followed by pooling**. Per image:

1. every ``patch`` x ``patch`` window (stride ``stride``) is taken as a vector x (D values);
2. **normalize**: per-patch contrast normalization, ``x <- (x - mean) / sqrt(var + eps)``;
3. **whiten**: ZCA, ``x <- (x - m) W`` (:class:`ember.data.ZCA`, eps relative to the mean
   eigenvalue; eps ~ 1 mattered most on MNIST);
4. **encode**: K codes per window from a learned dictionary — k-means centroids with the
   triangle code, or any linear filter bank with a non-linearity (a PSD / LISTA encoder);
   optionally **rectify** (``abs`` or ``split`` = [max(0, z), max(0, -z)]);
5. **pool** each code map over a ``grid`` x ``grid`` partition of the image (2: quadrants,
   3: a 3x3 grid) with ``sum``, ``max``, ``lp`` (``(sum z^p)^(1/p)``, the lecture's L2
   pooling for p = 2) or ``lse`` (``(1/beta) log mean exp(beta z)``: average pooling as
   beta -> 0, max pooling as beta -> inf);

giving grid*grid*K features (times 2 for ``split``), then a linear classifier
(:func:`train_linear`: ember's ``Linear`` + ``LogSoftMax`` or a squared hinge, trained by
``optim.sgd``). Steps 1-4 are one GEMM per chunk of images, (B*OH*OW, D) x (D, K), done
chunk by chunk in float32 so memory stays at ``chunk`` images' worth of codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .kmeans import triangle
from .patches import all_patches, as_images, normalize_patches, random_patches

POOLS = ("sum", "mean", "max", "lp", "lse")
RECTIFY = (None, "abs", "split", "relu")
NONLINEARITIES = ("none", "tanh", "shrink", "relu")


def grid_bounds(length: int, grid: int) -> list[tuple[int, int]]:
    """``grid`` contiguous, near-equal [start, stop) ranges covering 0..length."""
    if not 1 <= grid <= length:
        raise ValueError(f"pool: grid must be between 1 and the code map size {length}, got {grid}")
    edges = np.linspace(0, length, grid + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def pool_grid(codes: np.ndarray, grid: int = 2, mode: str = "sum", p: float = 2.0, beta: float = 1.0) -> np.ndarray:
    """Pool code maps (N, OH, OW, K) over a ``grid`` x ``grid`` partition -> (N, grid, grid, K).

    ``sum``/``mean``/``max``; ``lp``: ``(sum z^p)^(1/p)`` over |z|; ``lse``:
    ``(1/beta) log(mean exp(beta z))`` (computed stably, shifted by the region's max)."""
    if mode not in POOLS:
        raise ValueError(f"pool_grid: mode must be one of {POOLS}, got {mode!r}")
    codes = np.asarray(codes)
    if codes.ndim != 4:
        raise ValueError(f"pool_grid: expected codes (N, OH, OW, K), got shape {codes.shape}")
    if mode == "lp" and not p >= 1:
        raise ValueError(f"pool_grid: p must be >= 1, got {p!r}")
    if mode == "lse" and not beta > 0:
        raise ValueError(f"pool_grid: beta must be > 0, got {beta!r}")
    n, oh, ow, k = codes.shape
    if grid == oh == ow:  # one position per region: no pooling (every mode reduces one value to itself)
        return np.array(np.abs(codes) if mode == "lp" else codes, dtype=np.result_type(codes.dtype, np.float32))
    out = np.empty((n, grid, grid, k), dtype=np.result_type(codes.dtype, np.float32))
    for i, (r0, r1) in enumerate(grid_bounds(oh, grid)):
        for j, (c0, c1) in enumerate(grid_bounds(ow, grid)):
            region = codes[:, r0:r1, c0:c1]
            if mode == "sum":
                out[:, i, j] = region.sum(axis=(1, 2))
            elif mode == "mean":
                out[:, i, j] = region.mean(axis=(1, 2))
            elif mode == "max":
                out[:, i, j] = region.max(axis=(1, 2))
            elif mode == "lp":
                out[:, i, j] = (np.abs(region) ** p).sum(axis=(1, 2)) ** (1.0 / p)
            else:
                top = region.max(axis=(1, 2))
                mean = np.exp(beta * (region - top[:, None, None])).mean(axis=(1, 2))
                out[:, i, j] = top + np.log(mean) / beta
    return out


@dataclass
class Whitening:
    """Per-patch contrast normalization then ZCA: ``((x - mean x)/sqrt(var x + contrast_eps) - m) W``.

    ``fit(patches)`` learns m (D,) and W (D, D) with :class:`ember.data.ZCA` (``eps``
    relative to the mean eigenvalue); ``eps=None`` skips ZCA (normalization only)."""

    contrast_eps: float = 0.01
    eps: float | None = 1.0
    mean: np.ndarray | None = None
    w: np.ndarray | None = None

    def fit(self, patches: np.ndarray) -> Whitening:
        """Fit on raw patches (n, D) (normalized here, on a copy); returns self."""
        from ..data.preprocess import ZCA

        x = normalize_patches(np.array(patches, dtype=np.float32), self.contrast_eps)
        if self.eps is not None:
            zca = ZCA(self.eps).fit(x)
            self.mean, self.w = zca.mean.astype(np.float32), zca.w.astype(np.float32)
        return self

    def transform(self, patches: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Normalize (in place: float32 ``patches`` are overwritten) and whiten (n, D) patches."""
        x = normalize_patches(np.asarray(patches, dtype=np.float32), self.contrast_eps)
        if self.eps is None:
            return x
        if self.w is None or self.mean is None:
            raise RuntimeError("Whitening.transform called before fit")
        x -= self.mean
        return np.matmul(x, self.w, out=out)


@dataclass
class TriangleEncoder:
    """k-means codes: the triangle code of each whitened patch against ``centroids`` (K, D)."""

    centroids: np.ndarray

    @property
    def n_codes(self) -> int:
        """K, the codes per patch."""
        return int(self.centroids.shape[0])

    def filters(self) -> np.ndarray:
        """The dictionary atoms (K, D) (drawn as filters)."""
        return self.centroids

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(M, D) whitened patches -> (M, K) codes."""
        return triangle(x, self.centroids)

    def arrays(self) -> dict:
        """The encoder's arrays by name (for a file)."""
        return {"centroids": self.centroids}


@dataclass
class LinearEncoder:
    """A learned feed-forward encoder, ``z = g * f(x W^T + b)`` with f in NONLINEARITIES
    (``shrink``: ``sign(u) max(0, |u| - theta)``), e.g. a PSD or LISTA encoder's first step."""

    weight: np.ndarray
    bias: np.ndarray | None = None
    nonlinearity: str = "tanh"
    gain: np.ndarray | float = 1.0
    theta: float = 0.0
    _wt: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(f"LinearEncoder: nonlinearity must be one of {NONLINEARITIES}, got {self.nonlinearity!r}")
        w = np.asarray(self.weight, dtype=np.float32)
        if w.ndim != 2:
            raise ValueError(f"LinearEncoder: weight must be (K, D), got shape {w.shape}")
        self.weight, self._wt = w, np.ascontiguousarray(w.T)

    @property
    def n_codes(self) -> int:
        """K, the codes per patch."""
        return int(self.weight.shape[0])

    def filters(self) -> np.ndarray:
        """The encoder's filters (K, D)."""
        return self.weight

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(M, D) whitened patches -> (M, K) codes."""
        z = np.asarray(x, dtype=np.float32) @ self._wt
        if self.bias is not None:
            z += np.asarray(self.bias, dtype=np.float32)
        if self.nonlinearity == "tanh":
            np.tanh(z, out=z)
        elif self.nonlinearity == "relu":
            np.maximum(z, 0, out=z)
        elif self.nonlinearity == "shrink":
            z = np.sign(z) * np.maximum(np.abs(z) - np.float32(self.theta), 0)
        if not np.isscalar(self.gain) or self.gain != 1:
            z *= np.asarray(self.gain, dtype=np.float32)
        return z

    def arrays(self) -> dict:
        """The encoder's arrays by name (for a file)."""
        arrays = {"encoder.weight": self.weight, "encoder.gain": np.asarray(self.gain, dtype=np.float32)}
        return arrays if self.bias is None else {**arrays, "encoder.bias": np.asarray(self.bias)}


@dataclass
class FeaturePipeline:
    """patches -> normalize + whiten -> encode -> rectify -> pool, applied convolutionally.

    ``encoder`` has ``encode((M, D)) -> (M, K)`` and ``n_codes``; ``scale`` multiplies raw
    pixels first (1/255 for uint8). :meth:`transform` returns (N, n_features) float32."""

    encoder: TriangleEncoder | LinearEncoder
    whitening: Whitening
    patch: int = 6
    stride: int = 1
    pool: str = "sum"
    grid: int = 3
    rectify: str | None = None
    p: float = 2.0
    beta: float = 1.0
    scale: float = 1.0 / 255

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"FeaturePipeline: pool must be one of {POOLS}, got {self.pool!r}")
        if self.rectify not in RECTIFY:
            raise ValueError(f"FeaturePipeline: rectify must be one of {RECTIFY}, got {self.rectify!r}")

    @property
    def n_features(self) -> int:
        """grid * grid * K (twice that with ``rectify="split"``)."""
        return self.grid * self.grid * self.encoder.n_codes * (2 if self.rectify == "split" else 1)

    def code_maps(self, images) -> np.ndarray:
        """Rectified code maps (N, OH, OW, K') of a few images (no pooling)."""
        x = all_patches(images, self.patch, self.stride, self.scale)
        n, oh, ow, d = x.shape
        flat = self.whitening.transform(x.reshape(-1, d))
        z = self.encoder.encode(flat)
        if self.rectify == "abs":
            np.abs(z, out=z)
        elif self.rectify == "relu":
            np.maximum(z, 0, out=z)
        elif self.rectify == "split":
            z = np.concatenate([np.maximum(z, 0), np.maximum(-z, 0)], axis=1)
        return z.reshape(n, oh, ow, -1)

    def transform(self, images, chunk: int = 100, progress=None) -> np.ndarray:
        """Pooled features (N, n_features) float32, ``chunk`` images at a time;
        ``progress(n_done)`` after each chunk."""
        x = as_images(images, "FeaturePipeline.transform")
        if not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"FeaturePipeline.transform: chunk must be an integer >= 1, got {chunk!r}")
        out = np.empty((x.shape[0], self.n_features), dtype=np.float32)
        for start in range(0, x.shape[0], chunk):
            maps = self.code_maps(x[start : start + chunk])
            pooled = pool_grid(maps, self.grid, self.pool, self.p, self.beta)
            out[start : start + chunk] = pooled.reshape(len(pooled), -1)
            if progress is not None:
                progress(min(start + chunk, x.shape[0]))
        return out


def fit_kmeans_pipeline(images, k: int = 400, patch: int = 6, n_patches: int = 400000, iterations: int = 10,
                        batch_size: int | None = 1000, spherical: bool = False, contrast_eps: float = 0.01,
                        whiten_eps: float | None = 1.0, seed: int = 0, progress=None, **pipeline_kw) -> FeaturePipeline:  # fmt: skip
    """Learn a k-means dictionary on ``n_patches`` random normalized, whitened patches of
    ``images`` and return the triangle-code pipeline (``pipeline_kw``: pool, grid, stride...)."""
    from .kmeans import KMeans

    rng = np.random.default_rng(seed)
    scale = pipeline_kw.get("scale", 1.0 / 255)
    raw = random_patches(images, patch, n_patches, rng, scale=scale)
    whitening = Whitening(contrast_eps, whiten_eps).fit(raw)
    x = whitening.transform(raw)
    km = KMeans(k, batch_size=batch_size, iterations=iterations, spherical=spherical, seed=seed).fit(x, rng, progress)
    return FeaturePipeline(TriangleEncoder(km.fitted_centroids()), whitening, patch=patch, **pipeline_kw)


@dataclass
class Standardize:
    """``(x - mean) / std`` per feature, float32 (fitted on the training features)."""

    mean: np.ndarray
    std: np.ndarray

    def __call__(self, x) -> np.ndarray:
        return (np.asarray(x, dtype=np.float32) - self.mean) / self.std


def train_linear(x_train: np.ndarray, y_train: np.ndarray, epochs: int = 20, lr: float = 0.05,
                 weight_decay: float = 1e-4, batch_size: int = 128, loss: str = "nll", momentum: float = 0.9,
                 seed: int = 0, progress=None):  # fmt: skip
    """A linear classifier on fixed features, trained with ember's modules and ``optim.sgd``.

    Features are standardized per feature (fitted here); the model is
    ``Linear(F -> C)`` [+ ``LogSoftMax`` with ``ClassNLLCriterion`` for ``loss="nll"``, or
    ``MultiMarginCriterion(p=2)``, the L2-SVM's squared hinge, for ``loss="hinge"``];
    the learning rate decays linearly to 0. Returns ``(model, standardize)`` where
    ``standardize(x)`` maps raw features to the model's input (float32)."""
    from .. import nn, optim

    if loss not in ("nll", "hinge"):
        raise ValueError(f"train_linear: loss must be 'nll' or 'hinge', got {loss!r}")
    x_train = np.asarray(x_train)
    y = np.asarray(y_train).astype(np.int64)
    if x_train.ndim != 2 or len(x_train) != len(y):
        raise ValueError(f"train_linear: expected features (N, F) and N labels, got {x_train.shape} and {y.shape}")
    standardize = Standardize(x_train.mean(axis=0, dtype=np.float64).astype(np.float32),
                              (x_train.std(axis=0, dtype=np.float64) + 1e-6).astype(np.float32))  # fmt: skip
    mean, std = standardize.mean, standardize.std

    n, f = x_train.shape
    classes = int(y.max()) + 1
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(f, classes, rng=rng))
    if loss == "nll":
        model.add(nn.LogSoftMax())
    criterion = nn.ClassNLLCriterion() if loss == "nll" else nn.MultiMarginCriterion(p=2)
    params, grads = model.get_parameters()
    state: dict = {}
    steps = epochs * ((n + batch_size - 1) // batch_size)
    step, batch = 0, np.empty((batch_size, f), dtype=np.float32)
    for epoch in range(epochs):
        order = rng.permutation(n)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = np.sort(order[start : start + batch_size])
            xb = batch[: len(rows)]
            np.subtract(x_train[rows], mean, out=xb)
            xb /= std
            yb = y[rows]

            def feval(_x, xb=xb, yb=yb):
                grads[...] = 0
                out = model.forward(xb)
                value = criterion.forward(out, yb)
                model.backward(xb, criterion.backward(out, yb))
                return value, grads

            config = {"learning_rate": lr * (1 - step / steps), "weight_decay": weight_decay,
                      "momentum": momentum, "dampening": 0.0}  # fmt: skip
            _, (value,) = optim.sgd(feval, params, config, state)
            if not np.isfinite(value):
                from ..errors import TrainingError

                raise TrainingError(f"train_linear: the loss became {value} at step {step} (epoch {epoch + 1}); "
                                    f"try a smaller lr than {lr}")  # fmt: skip
            total += value * len(rows)
            step += 1
        if progress is not None:
            progress(epoch + 1, total / n)
    model.evaluate()
    return model, standardize


def accuracy(model, standardize, x: np.ndarray, y: np.ndarray, chunk: int = 2000) -> float:
    """Fraction of samples whose largest output is the label."""
    right = 0
    for start in range(0, len(x), chunk):
        out = model.forward(standardize(x[start : start + chunk]))
        right += int((out.argmax(axis=1) == np.asarray(y[start : start + chunk])).sum())
    return right / len(x)


__all__ = ["FeaturePipeline", "Whitening", "TriangleEncoder", "LinearEncoder", "pool_grid", "grid_bounds",
           "fit_kmeans_pipeline", "train_linear", "Standardize", "accuracy", "POOLS", "RECTIFY"]  # fmt: skip
