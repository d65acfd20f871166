"""Builders for the lecture's networks, by name (used by ``ember train --model NAME``).

Each entry is a :class:`ModelSpec`: a builder ``build(n_classes, rng, **options) -> Module``
whose output is log-probabilities (train it with ``ClassNLLCriterion``), the input shape
of one sample it expects, and training defaults. Register new models with
:func:`register` from a category file imported below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class ModelSpec:
    """A named network: how to build it and how to feed and train it by default."""

    name: str
    build: Callable
    input_shape: tuple
    description: str
    defaults: dict = field(default_factory=dict)


MODELS: dict = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to :data:`MODELS` (the names ``ember train --model`` accepts); returns it."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``name``; a ValueError lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def build_model(name: str, n_classes: int = 10, rng: np.random.Generator | None = None, **options):
    """Build the network ``name`` (see :data:`MODELS`)."""
    return get_model(name).build(n_classes=n_classes, rng=rng, **options)


from . import mlp  # noqa: E402,F401  (registers mnist-mlp, svhn-mlp)
from . import convnets  # noqa: E402,F401  (registers lenet5, convnet-lcn)
from . import recurrent  # noqa: E402,F401  (registers mnist-lstm)

__all__ = ["ModelSpec", "MODELS", "register", "get_model", "build_model"]
