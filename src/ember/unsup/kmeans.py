"""k-means dictionaries and the "triangle" encoder (Coates & Ng, 2011).

The lecture's recipe for disentangling a manifold: a sparse non-linear expansion followed
by pooling, "use clustering to break things apart, pool together similar things". k-means
is the simplest clustering that does it: the K centroids ``c_k`` are the dictionary, and
an input is encoded by how close it is to each of them.

- :class:`KMeans` learns the centroids: k-means++ seeding (Arthur & Vassilvitskii, 2007),
  then mini-batch updates (Sculley, 2010): for a batch, assign every sample to its nearest
  centroid, then move each centroid towards the mean of its samples with a per-centroid
  step ``n_k / N_k`` (``n_k`` samples in this batch, ``N_k`` so far), i.e. each centroid is
  the running mean of every sample ever assigned to it. ``batch_size=None`` runs plain
  Lloyd iterations over all samples instead. ``spherical=True`` keeps unit-norm centroids
  and assigns by the largest dot product ``c_k . x`` (cosine similarity for unit x).
- :func:`triangle` is the soft "triangle" code: with ``z_k = ||x - c_k||`` and
  ``mu = mean_k z_k``, ``f_k(x) = max(0, mu - z_k)``: about half the codes are zero (a
  sparse expansion), and a code grows the closer x is to c_k relative to the others.

Distances are computed as one matrix product, ``||x||^2 - 2 x C^T + ||c||^2``, so encoding
millions of patches is a GEMM.
"""

from __future__ import annotations

import numpy as np

ENCODINGS = ("triangle", "hard", "distance", "dot")


def _as_samples(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name}: expected samples (N, D) with N, D >= 1, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"{name}: expected real numbers, got dtype {x.dtype}")
    return x


def squared_distances(x: np.ndarray, centroids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``||x_i - c_k||^2`` for samples (N, D) and centroids (K, D), as (N, K) (clipped at 0).

    Computed as ``||x||^2 - 2 x C^T + ||c||^2`` (one GEMM) in the centroids' dtype."""
    dtype = centroids.dtype
    x = np.asarray(x, dtype=dtype)
    d = np.matmul(x, centroids.T, out=out)
    d *= -2
    d += np.einsum("ij,ij->i", x, x)[:, None]
    d += np.einsum("ij,ij->i", centroids, centroids)[None, :]
    np.maximum(d, 0, out=d)
    return d


def triangle(x: np.ndarray, centroids: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The triangle code (Coates & Ng 2011): ``f_k = max(0, mean_j(z_j) - z_k)``,
    ``z_k = ||x - c_k||``. x (N, D), centroids (K, D) -> (N, K), non-negative."""
    z = squared_distances(x, centroids, out=out)
    np.sqrt(z, out=z)
    mu = z.mean(axis=1, keepdims=True)
    np.subtract(mu, z, out=z)
    np.maximum(z, 0, out=z)
    return z


def _cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-cluster sums of the rows of x, (k, D) float64: rows sorted by cluster, then one
    ``np.add.reduceat`` (O(N D), much faster than ``np.add.at`` or a one-hot GEMM)."""
    sums = np.zeros((k, x.shape[1]))
    order = np.argsort(labels, kind="stable")
    present, starts = np.unique(labels[order], return_index=True)
    sums[present] = np.add.reduceat(np.asarray(x, dtype=np.float64)[order], starts, axis=0)
    return sums


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator, spherical: bool = False) -> np.ndarray:
    """k-means++ seeding: the first centroid uniformly at random, each next one a sample
    drawn with probability proportional to its squared distance to the nearest centroid
    chosen so far (for ``spherical``: 1 - |cosine|). Returns (k, D) float64 (copies)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if k > n:
        raise ValueError(f"kmeans_plus_plus: k={k} centroids need at least k samples, got {n}")
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(n)
    if spherical:
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        best = 1 - np.abs(unit @ unit[chosen[0]])
    else:
        sq = np.einsum("ij,ij->i", x, x)
        best = sq - 2 * x @ x[chosen[0]] + sq[chosen[0]]
    for i in range(1, k):
        weights = np.maximum(best, 0)
        total = weights.sum()
        pick = rng.choice(n, p=weights / total) if total > 0 else rng.integers(n)
        chosen[i] = pick
        new = 1 - np.abs(unit @ unit[pick]) if spherical else sq - 2 * x @ x[pick] + sq[pick]
        np.minimum(best, new, out=best)
    return (unit if spherical else x)[chosen].copy()


class KMeans:
    """k-means dictionary learning (mini-batch, k-means++ seeding, optional spherical).

    ``KMeans(k, batch_size=1000, iterations=50, spherical=False, init="k-means++", seed=0)``.
    ``fit(x)`` learns ``centroids`` (K, D) float32 from samples (N, D); ``iterations``
    counts passes over the data (epochs) for mini-batch and Lloyd steps for
    ``batch_size=None``. Centroids that never get a sample are re-seeded on a random sample.
    ``encode(x, kind)``: ``"triangle"`` (the default), ``"hard"`` (one-hot of the nearest),
    ``"distance"`` (``||x - c_k||``), ``"dot"`` (``x . c_k``). ``predict(x)``: nearest centroid.
    ``inertia(x)``: mean squared distance to the nearest centroid (what k-means minimises).
    """

    def __init__(self, k: int, batch_size: int | None = 1000, iterations: int = 50, spherical: bool = False,
                 init: str = "k-means++", seed: int = 0, init_samples: int = 20000) -> None:  # fmt: skip
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k < 1:
            raise ValueError(f"KMeans: k must be an integer >= 1, got {k!r}")
        if batch_size is not None and (not isinstance(batch_size, int | np.integer) or batch_size < 1):
            raise ValueError(f"KMeans: batch_size must be an integer >= 1 or None, got {batch_size!r}")
        if not isinstance(iterations, int | np.integer) or iterations < 0:
            raise ValueError(f"KMeans: iterations must be an integer >= 0, got {iterations!r}")
        if init not in ("k-means++", "random"):
            raise ValueError(f"KMeans: init must be 'k-means++' or 'random', got {init!r}")
        self.k, self.batch_size, self.iterations = int(k), batch_size, int(iterations)
        self.spherical, self.init, self.seed, self.init_samples = bool(spherical), init, seed, int(init_samples)
        self.centroids: np.ndarray | None = None
        self.counts: np.ndarray | None = None

    def __repr__(self) -> str:
        kind = "spherical " if self.spherical else ""
        return f"KMeans({kind}k={self.k}, batch_size={self.batch_size}, iterations={self.iterations})"

    def _assign(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        c32 = c.astype(np.float32)  # float32 GEMMs: twice as fast, and the argmin hardly ever changes
        if self.spherical:
            return np.argmax(np.asarray(x, dtype=np.float32) @ c32.T, axis=1)
        return np.argmin(squared_distances(x, c32), axis=1)

    def _normalize(self, c: np.ndarray) -> None:
        if self.spherical:
            c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)

    def fit(self, x, rng: np.random.Generator | None = None, progress=None) -> KMeans:
        """Learn the centroids from samples x (N, D); returns self. ``progress(i, total)``
        is called after each pass (e.g. to drive a progress bar)."""
        x = _as_samples(x, "KMeans.fit")
        n = x.shape[0]
        if n < self.k:
            raise ValueError(f"KMeans.fit: k={self.k} centroids need at least {self.k} samples, got {n}")
        rng = rng if rng is not None else np.random.default_rng(self.seed)
        seed_rows = rng.choice(n, size=min(n, max(self.init_samples, self.k)), replace=False)
        if self.init == "k-means++":
            c = kmeans_plus_plus(x[seed_rows], self.k, rng, self.spherical)
        else:
            c = np.asarray(x[seed_rows[: self.k]], dtype=np.float64).copy()
            self._normalize(c)
        counts = np.zeros(self.k)
        for it in range(self.iterations):
            if self.batch_size is None:
                c = self._lloyd(x, c, rng)
            else:
                order = rng.permutation(n)
                for start in range(0, n, self.batch_size):
                    self._minibatch_step(x[np.sort(order[start : start + self.batch_size])], c, counts)
                dead = np.flatnonzero(counts == 0)
                if len(dead):
                    c[dead] = x[rng.choice(n, size=len(dead), replace=False)]
                    self._normalize(c)
            if progress is not None:
                progress(it + 1, self.iterations)
        self.centroids = c.astype(np.float32)
        self.counts = counts if self.batch_size is not None else None  # samples per centroid (mini-batch)
        return self

    def _minibatch_step(self, batch: np.ndarray, c: np.ndarray, counts: np.ndarray) -> None:
        if self.spherical:
            batch = batch / np.maximum(np.linalg.norm(batch, axis=1, keepdims=True), 1e-12)
        labels = self._assign(batch, c)
        n_k = np.bincount(labels, minlength=self.k).astype(np.float64)
        sums = _cluster_sums(batch, labels, self.k)
        counts += n_k
        hit = n_k > 0
        # c_k <- c_k + (sum_k - n_k c_k) / N_k: the running mean of all samples assigned to k
        c[hit] += (sums[hit] - n_k[hit, None] * c[hit]) / counts[hit, None]
        self._normalize(c)

    def _lloyd(self, x: np.ndarray, c: np.ndarray, rng: np.random.Generator, chunk: int = 50000) -> np.ndarray:
        sums = np.zeros_like(c)
        n_k = np.zeros(self.k)
        for start in range(0, x.shape[0], chunk):
            block = x[start : start + chunk]
            if self.spherical:
                block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
            labels = self._assign(block, c)
            n_k += np.bincount(labels, minlength=self.k)
            sums += _cluster_sums(block, labels, self.k)
        new = c.copy()
        hit = n_k > 0
        new[hit] = sums[hit] / n_k[hit, None]
        dead = np.flatnonzero(~hit)
        if len(dead):
            new[dead] = x[rng.choice(x.shape[0], size=len(dead), replace=False)]
        self._normalize(new)
        return new

    def fitted_centroids(self) -> np.ndarray:
        """The centroids (K, D) float32; RuntimeError before :meth:`fit`."""
        if self.centroids is None:
            raise RuntimeError("KMeans: fit first")
        return self.centroids

    def _fitted(self, name: str, x) -> tuple[np.ndarray, np.ndarray]:
        if self.centroids is None:
            raise RuntimeError(f"KMeans.{name} called before fit")
        x = _as_samples(x, f"KMeans.{name}")
        if x.shape[1] != self.centroids.shape[1]:
            raise ValueError(f"KMeans.{name}: expected samples with {self.centroids.shape[1]} features, got shape {x.shape}")
        return x, self.centroids

    def predict(self, x) -> np.ndarray:
        """Index of the nearest centroid (largest dot product when spherical) per sample."""
        x, c = self._fitted("predict", x)
        return self._assign(np.asarray(x, dtype=c.dtype), c)

    def inertia(self, x) -> float:
        """Mean over samples of the squared distance to the nearest centroid."""
        x, c = self._fitted("inertia", x)
        return float(squared_distances(x, c).min(axis=1).mean())

    def encode(self, x, kind: str = "triangle") -> np.ndarray:
        """Codes (N, K) float32 of samples (N, D); ``kind`` in ENCODINGS."""
        x, c = self._fitted("encode", x)
        if kind == "triangle":
            return triangle(x, c)
        if kind == "distance":
            return np.sqrt(squared_distances(x, c))
        if kind == "dot":
            return np.asarray(x, dtype=c.dtype) @ c.T
        if kind == "hard":
            out = np.zeros((x.shape[0], self.k), dtype=c.dtype)
            out[np.arange(x.shape[0]), self.predict(x)] = 1
            return out
        raise ValueError(f"KMeans.encode: kind must be one of {ENCODINGS}, got {kind!r}")


__all__ = ["KMeans", "triangle", "squared_distances", "kmeans_plus_plus", "ENCODINGS"]
