"""Recurrent networks: MNIST read as a sequence of rows."""

from __future__ import annotations

from .._typing import RNG

from typing import Any

from .. import nn
from .spec import ModelSpec


def mnist_lstm(n_classes: int = 10, rng: RNG = None, hidden: int = 128, dropout: float = 0.0) -> nn.Sequential:
    """Each MNIST image as a sequence of 28 rows of 28 pixels, read by an LSTM.

    Input (N, 28, 28) (batch-first: N images, T = 28 rows, F = 28 pixels). The last
    step's hidden state feeds the classifier: LSTM(28, hidden) -> LastStep ->
    [Dropout] -> Linear(hidden, n_classes) -> LogSoftMax. The forget-gate bias starts
    at 1 (Jozefowicz et al. 2015), which helps plain SGD carry information across rows.
    """
    lstm: Any = nn.LSTM(28, hidden, rng=rng)  # its arrays are attributes named like PyTorch's
    lstm.bias_ih_l0[hidden : 2 * hidden] = 1.0
    lstm.bias_hh_l0[hidden : 2 * hidden] = 0.0
    net = nn.Sequential(lstm, nn.LastStep())
    if dropout:
        net.add(nn.Dropout(dropout, rng=rng))
    net.add(nn.Linear(hidden, n_classes, rng=rng)).add(nn.LogSoftMax())
    return net


SPECS = (
    ModelSpec("mnist-lstm", mnist_lstm, (28, 28), "MNIST rows as a sequence: LSTM(28, 128) -> last step -> 10",
              {"epochs": 10, "batch_size": 64, "lr": 0.1, "momentum": 0.9}),
)
