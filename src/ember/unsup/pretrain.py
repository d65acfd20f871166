"""Unsupervised pre-training of a ConvNet's filter banks, then supervised fine-tuning.

The lecture (and Jarrett, Kavukcuoglu, Ranzato & LeCun 2009): learn each stage's filters
without labels, stage by stage, on the outputs of the stages below, then fine-tune the
whole network with back-propagation. Here a stage's filter bank is learned with
**spherical k-means on ZCA-whitened patches** of its input:

1. run the network up to the convolution on a sample of training images (for
   ``convnet-lcn`` stage 1: the contrast normalization; stage 2: stage 1 + normalization);
2. draw random kh x kw x C_in patches p of that input; fit ZCA ``x = (p - m) W``;
3. spherical k-means on x gives unit centroids c_k (as many as the convolution has maps);
4. fold the whitening into the filter: ``c_k . ((p - m) W) = (W c_k) . p - m . (W c_k)``,
   so ``weight_k = s_k W c_k`` and ``bias_k = -s_k m . W c_k`` (W is symmetric), where s_k
   scales each filter's response on the patches to the standard deviation the random
   initialisation gives (so the learning rate that suits the random net suits this one).

The learned filter fires on what the centroid looks like in whitened space (edges and
strokes, not blobs). :func:`pretrain_convolutions` does it in place and returns the learned
filters; training afterwards is the ordinary ``fit``.
"""

from __future__ import annotations

import numpy as np

from .kmeans import KMeans
from .patches import random_patches


def convolutions(model) -> list:
    """The ``SpatialConvolution`` modules of ``model`` in order (the filter banks)."""
    from .. import nn

    return [m for m in model.modules() if type(m) is nn.SpatialConvolution]


def _inputs_of(model, conv, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """What ``conv`` receives inside the top-level Sequential ``model`` for ``images``."""
    layers = list(model.children())
    if conv not in layers:
        raise ValueError(f"pretrain: {conv!r} is not a top-level module of the model")
    below = layers[: layers.index(conv)]
    out = []
    was_training = model.train
    model.evaluate()
    try:
        for start in range(0, len(images), batch):
            x = np.asarray(images[start : start + batch], dtype=model.backend.dtype)
            for layer in below:
                x = layer.forward(x)
            out.append(np.array(model.backend.to_numpy(x), dtype=np.float32))
    finally:
        if was_training:
            model.training()
    return np.concatenate(out)


def fold_whitening(centroids: np.ndarray, mean: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filters and biases on raw patches equal to dot products with ``centroids`` (K, D)
    in whitened space: ``c_k . ((p - m) W) = f_k . p + b_k`` with ``f_k = W c_k`` (W
    symmetric, as ZCA's is) and ``b_k = -m . f_k``. Returns (K, D) and (K,) float64."""
    filters = np.asarray(centroids, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    return filters, -filters @ np.asarray(mean, dtype=np.float64)


def learn_filters(inputs: np.ndarray, n_filters: int, kh: int, kw: int, n_patches: int = 100000,
                  whiten_eps: float = 1.0, iterations: int = 10, seed: int = 0, target_std: float | None = None):  # fmt: skip
    """Filters (n_filters, C, kh, kw) and biases (n_filters,) learned by spherical k-means
    on whitened kh x kw patches of ``inputs`` (N, C, H, W), whitening folded in (see the
    module docstring). ``target_std``: each filter's response std on the patches (default:
    keep the unit-norm whitened-space scale)."""
    from ..data.preprocess import ZCA

    if kh != kw:
        raise ValueError(f"learn_filters: square filters only, got {kh}x{kw}")
    rng = np.random.default_rng(seed)
    patches = random_patches(inputs, kh, n_patches, rng)
    zca = ZCA(whiten_eps).fit(patches)
    white = zca.transform(patches)
    km = KMeans(n_filters, batch_size=1000, iterations=iterations, spherical=True, seed=seed).fit(white, rng)
    filters, bias = fold_whitening(km.fitted_centroids(), zca.mean, zca.w)
    response_std = (patches @ filters.T.astype(np.float32)).std(axis=0) + 1e-12
    scale = (target_std / response_std) if target_std is not None else np.ones(n_filters)
    filters *= scale[:, None]
    bias *= scale
    channels = inputs.shape[1]
    return filters.reshape(n_filters, channels, kh, kw).astype(np.float32), bias.astype(np.float32)


def pretrain_convolutions(model, images, stages=(0,), n_patches: int = 100000, whiten_eps: float = 1.0,
                          iterations: int = 10, seed: int = 0, n_images: int = 10000, progress=None) -> list:  # fmt: skip
    """Pre-train the filter banks ``stages`` (indices among the model's convolutions, in
    order) of a top-level ``Sequential`` in place, each on the outputs of the (already
    pre-trained) stages below for ``n_images`` of ``images`` (preprocessed model inputs).
    Each filter is rescaled to the response std its random initialisation had.
    Returns the learned weights, one array per stage. ``progress(message)`` per stage."""
    convs = convolutions(model)
    if not convs:
        raise ValueError(f"pretrain: {type(model).__name__} has no SpatialConvolution to pre-train")
    stages = sorted(set(stages))
    if not stages or stages[0] < 0 or stages[-1] >= len(convs):
        raise ValueError(f"pretrain: stages must be indices among the model's {len(convs)} convolutions, got {stages}")
    rng = np.random.default_rng(seed)
    n = len(images)
    sample = np.sort(rng.choice(n, size=min(n, n_images), replace=False))
    x = np.asarray(images[sample], dtype=np.float32)
    learned = []
    for stage in stages:
        conv = convs[stage]
        if conv.dw != 1 or conv.dh != 1 or conv.pad_w or conv.pad_h:
            raise ValueError(f"pretrain: {conv!r}: only stride 1 without padding is supported")
        inputs = _inputs_of(model, conv, x)
        kh, kw = conv.weight.shape[2:]
        random_std = float(np.std(random_patches(inputs, kh, 5000, rng) @ conv.backend.to_numpy(conv.weight)
                                  .reshape(len(conv.weight), -1).T.astype(np.float32)))  # fmt: skip
        weight, bias = learn_filters(inputs, conv.weight.shape[0], kh, kw, n_patches, whiten_eps, iterations,
                                     seed + stage, target_std=random_std)  # fmt: skip
        conv.weight[...] = conv.backend.asarray(weight)
        if conv.bias is not None:
            conv.bias[...] = conv.backend.asarray(bias)
        learned.append(weight)
        if progress is not None:
            progress(f"stage {stage + 1}: {weight.shape[0]} filters {kh}x{kw} over {inputs.shape[1]} planes "
                     f"from {n_patches} patches")  # fmt: skip
    return learned


__all__ = ["pretrain_convolutions", "learn_filters", "fold_whitening", "convolutions"]
