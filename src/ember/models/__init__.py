"""Builders for the lecture's networks, by name (used by ``ember train --model NAME``).

Each entry is a :class:`ModelSpec`: a builder ``build(n_classes, rng, **options) -> Module``
whose output is log-probabilities (train it with ``ClassNLLCriterion``), the input shape
of one sample it expects, and training defaults. Each category file lists its models in
``SPECS``; :data:`MODELS` is built from those lists here, in one place (importing a file
registers nothing).
"""

from __future__ import annotations

import numpy as np

from . import convnets, mlp, recurrent
from .spec import ModelSpec

from typing import Any

#: name -> ModelSpec: the names ``ember train --model`` accepts
MODELS: dict = {spec.name: spec for spec in (*mlp.SPECS, *convnets.SPECS, *recurrent.SPECS)}


def get_model(name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``name``; a ValueError lists the known ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def build_model(name: str, n_classes: int = 10, rng: np.random.Generator | None = None, **options: Any) -> Any:
    """Build the network ``name`` (see :data:`MODELS`)."""
    return get_model(name).build(n_classes=n_classes, rng=rng, **options)


__all__ = ["ModelSpec", "MODELS", "get_model", "build_model"]
