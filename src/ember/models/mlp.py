"""The lecture's fully connected networks."""

from __future__ import annotations

import numpy as np

from .. import nn
from .spec import ModelSpec


def mnist_mlp(n_classes: int = 10, rng: np.random.Generator | None = None, hidden: int = 1000,
              dropout: float = 0.0) -> nn.Sequential:
    """The lecture's MNIST network: 784 -> 1000 ReLU -> 10 LogSoftMax.

    Input: (N, 784) or (N, 1, 28, 28) (reshaped). Optional dropout before each Linear
    after the first.
    """
    # the ReLU writes over the Linear's output (same numbers, less memory traffic)
    net = nn.Sequential(nn.Reshape(784), nn.Linear(784, hidden, rng=rng), nn.ReLU(inplace=True))
    if dropout:
        net.add(nn.Dropout(dropout, rng=rng))
    net.add(nn.Linear(hidden, n_classes, rng=rng)).add(nn.LogSoftMax())
    return net


def svhn_mlp(n_classes: int = 10, rng: np.random.Generator | None = None, hidden: int = 1500,
             dropout: float = 0.0) -> nn.Sequential:
    """The lecture's SVHN example: Reshape(3*32*32) -> Linear(3072, 1500) -> Tanh ->
    Linear(1500, 10) -> LogSoftMax. Works on any 3x32x32 data."""
    net = nn.Sequential(nn.Reshape(3 * 32 * 32), nn.Linear(3 * 32 * 32, hidden, rng=rng), nn.Tanh())
    if dropout:
        net.add(nn.Dropout(dropout, rng=rng))
    net.add(nn.Linear(hidden, n_classes, rng=rng)).add(nn.LogSoftMax())
    return net


SPECS = (
    ModelSpec("mnist-mlp", mnist_mlp, (784,), "784-1000-10 ReLU MLP of the lecture (MNIST)",
              {"epochs": 10, "batch_size": 64, "lr": 0.05, "lr_decay": 2e-4, "momentum": 0.9}),
    ModelSpec("svhn-mlp", svhn_mlp, (3, 32, 32), "3x32x32 -> 1500 Tanh -> 10 (the lecture's SVHN net)",
              {"epochs": 10, "batch_size": 64, "lr": 0.02, "momentum": 0.9, "dataset": "svhn"}),
)
