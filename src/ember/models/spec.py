"""A named network of :mod:`ember.models`: how to build it and how to feed and train it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class ModelSpec:
    """A named network: how to build it and how to feed and train it by default."""

    name: str
    build: Callable
    input_shape: tuple
    description: str
    defaults: dict = field(default_factory=dict)
