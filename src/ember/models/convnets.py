"""Convolutional networks for 1x28x28 images: LeNet-5 and the lecture's multistage net."""

from __future__ import annotations

import numpy as np

from .. import image, nn
from .spec import ModelSpec


def lenet5(n_classes: int = 10, rng: np.random.Generator | None = None, dropout: float = 0.0) -> nn.Sequential:
    """LeNet-5 as most frameworks ship it (Caffe/PyTorch examples), for 1x28x28 inputs:

    conv 5x5 1->20, max 2x2, ReLU, conv 5x5 20->50, max 2x2, ReLU, Linear 800->500, ReLU,
    [Dropout], Linear 500->n_classes, LogSoftMax.

    The ReLU comes after the max pooling: max and ReLU commute (max(0, max_i x_i) =
    max_i max(0, x_i), and the gradients agree too), and rectifying the pooled map costs
    a quarter as much. The 1998 original (tanh units, 6/16 maps, partial S2->C3
    connections, RBF outputs) can be built with ``nn.SpatialConvolutionMap(nn.tables.lenet5_c3(), 5, 5)``.
    """
    net = nn.Sequential(
        nn.SpatialConvolution(1, 20, 5, 5, rng=rng), nn.SpatialMaxPooling(2, 2), nn.ReLU(),
        nn.SpatialConvolution(20, 50, 5, 5, rng=rng), nn.SpatialMaxPooling(2, 2), nn.ReLU(),
        nn.Reshape(800), nn.Linear(800, 500, rng=rng), nn.ReLU(inplace=True),  # over the Linear's output
    )  # fmt: skip
    if dropout:
        net.add(nn.Dropout(dropout, rng=rng))
    return net.add(nn.Linear(500, n_classes, rng=rng)).add(nn.LogSoftMax())


def convnet_lcn(n_classes: int = 10, rng: np.random.Generator | None = None, dropout: float = 0.5,
                width: tuple[int, int] = (32, 64), hidden: int = 256) -> nn.Sequential:
    """The lecture's multistage architecture, two stages of
    [Normalization -> Filter bank -> Non-linearity -> Pooling], then a classifier:

    stage 1: contrast normalization (Gaussian 7-tap kernel), conv 5x5 1->32, ReLU,
             L2 pooling 2x2 (stride 2)                       -> 32x12x12
    stage 2: contrast normalization over the 32 maps, conv 5x5 32->64, ReLU,
             L2 pooling 2x2                                   -> 64x4x4
    classifier: Linear 1024->256, ReLU, Dropout(0.5), Linear 256->n_classes, LogSoftMax.

    The normalizations are Torch7's SpatialContrastiveNormalization (subtractive then
    divisive, one map over all planes, border coefficients, threshold floor).
    """
    c1, c2 = width
    kernel = image.gaussian1d(7)
    net = nn.Sequential(
        nn.SpatialContrastiveNormalization(1, kernel),
        nn.SpatialConvolution(1, c1, 5, 5, rng=rng), nn.ReLU(inplace=True), nn.SpatialLPPooling(c1, 2, 2, 2),
        nn.SpatialContrastiveNormalization(c1, kernel),
        nn.SpatialConvolution(c1, c2, 5, 5, rng=rng), nn.ReLU(inplace=True), nn.SpatialLPPooling(c2, 2, 2, 2),
        nn.Reshape(c2 * 16), nn.Linear(c2 * 16, hidden, rng=rng), nn.ReLU(inplace=True),
    )  # fmt: skip  (each ReLU writes over the output of the layer before it: same numbers)
    if dropout:
        net.add(nn.Dropout(dropout, rng=rng))
    return net.add(nn.Linear(hidden, n_classes, rng=rng)).add(nn.LogSoftMax())


SPECS = (
    ModelSpec("lenet5", lenet5, (1, 28, 28), "LeNet-5: conv 20, pool, conv 50, pool, 500, 10 (MNIST)",
              {"epochs": 10, "batch_size": 64, "lr": 0.05, "lr_decay": 1e-4, "momentum": 0.9}),
    ModelSpec("convnet-lcn", convnet_lcn, (1, 28, 28),
              "2 stages [contrast norm, conv, ReLU, L2 pool] + 256 + 10 (the lecture's multistage net)",
              {"epochs": 10, "batch_size": 64, "lr": 0.05, "lr_decay": 5e-4, "momentum": 0.9}),
)
