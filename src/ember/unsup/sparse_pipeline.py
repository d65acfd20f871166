"""Sparse-coding features in the convolutional pipeline: a PSD encoder as the expansion.

Predictive Sparse Decomposition (:class:`ember.unsup.PSD`, Kavukcuoglu, Ranzato & LeCun
2008) learns, on whitened patches, a dictionary D with sparse codes ``z*`` (FISTA) and at
the same time a fast encoder ``F(x) = g . tanh(W x + b)`` trained to predict them. The
pipeline then encodes every patch position with F (one GEMM, no FISTA at feature time),
rectifies (``abs``: Jarrett et al.'s |.|, or ``split``: [max(0, z), max(0, -z)]) and pools
exactly as for k-means (:class:`ember.unsup.pipeline.FeaturePipeline`).
"""

from __future__ import annotations

import numpy as np

from .patches import random_patches
from .pipeline import FeaturePipeline, LinearEncoder, Whitening


def train_psd(x: np.ndarray, k: int = 256, lambd: float = 0.3, alpha: float = 1.0, epochs: int = 3,
              batch_size: int = 256, lr: float = 1.0, max_iter: int = 50, seed: int = 0, progress=None,
              init_from_data: bool = True):  # fmt: skip
    """Train :class:`ember.unsup.PSD` (float32) on samples x (N, D) with ``fit_batch`` (one
    SGD step on the mean energy per minibatch, dictionary atoms renormalised, the learning
    rate decayed linearly to a tenth). ``init_from_data``: the atoms start as random samples
    (unit norm). ``progress(step, steps, energy)`` per minibatch."""
    from .psd import PSD

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"train_psd: expected samples (N, D), got shape {x.shape}")
    rng = np.random.default_rng(seed)
    psd = PSD(x.shape[1], k, lambd=lambd, alpha=alpha, max_iter=max_iter, rng=rng)
    if init_from_data:  # atoms start as random samples: learning starts from plausible atoms, not noise
        atoms = x[rng.choice(len(x), size=k, replace=len(x) < k)].T
        psd.decoder.weight[...] = psd.backend.asarray(atoms + 1e-3 * rng.standard_normal(atoms.shape))
    psd.normalize_dictionary()
    n = len(x)
    steps = epochs * (n // batch_size)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            energy = psd.fit_batch(x[np.sort(order[start : start + batch_size])], lr * (1 - 0.9 * step / steps))
            step += 1
            if progress is not None:
                progress(step, steps, energy)
    return psd


def psd_encoder(psd) -> LinearEncoder:
    """The trained PSD's encoder ``g . tanh(W x + b)`` as a pipeline encoder."""
    linear, _, diag = psd.encoder.children()
    to_numpy = psd.backend.to_numpy
    return LinearEncoder(to_numpy(linear.weight), to_numpy(linear.bias), "tanh", gain=np.array(to_numpy(diag.weight)))


def encoder_error(psd, x: np.ndarray) -> float:
    """The PSD encoder's relative prediction error on samples x (N, D), e.g. held-out whitened
    patches: ``||F(x) - z*|| / ||z*||`` over the whole set, z* the codes of the joint energy
    (FISTA started from F(x), as in training). 0 when every code is 0."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"encoder_error: expected samples (N, D), got shape {x.shape}")
    xb = psd.backend.asarray(x)
    z_star = psd.backend.to_numpy(psd.infer(xb)).astype(np.float64)
    z_pred = psd.backend.to_numpy(psd.encode(xb)).astype(np.float64)
    norm = float(np.linalg.norm(z_star))
    return float(np.linalg.norm(z_pred - z_star)) / norm if norm > 0 else 0.0


def fit_psd_pipeline(images, k: int = 256, patch: int = 6, n_patches: int = 100000, lambd: float = 0.3,
                     alpha: float = 1.0, epochs: int = 3, lr: float = 1.0, contrast_eps: float = 0.1,
                     whiten_eps: float | None = 1.0, rectify: str = "split", seed: int = 0, progress=None,
                     **pipeline_kw) -> tuple[FeaturePipeline, object]:  # fmt: skip
    """PSD on ``n_patches`` random normalized, whitened patches; returns the pipeline with
    its encoder (``pipeline_kw``: pool, grid, stride...) and the trained PSD."""
    rng = np.random.default_rng(seed)
    raw = random_patches(images, patch, n_patches, rng, scale=pipeline_kw.get("scale", 1.0 / 255))
    whitening = Whitening(contrast_eps, whiten_eps).fit(raw)
    x = whitening.transform(raw)
    psd = train_psd(x, k, lambd, alpha, epochs, lr=lr, seed=seed, progress=progress)
    pipe = FeaturePipeline(psd_encoder(psd), whitening, patch=patch, rectify=rectify, **pipeline_kw)
    return pipe, psd


__all__ = ["train_psd", "psd_encoder", "encoder_error", "fit_psd_pipeline"]
