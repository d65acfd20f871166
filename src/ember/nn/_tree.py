"""Walks of a module tree that a composite would repeat every step, and their cache.

:func:`has_parameters` walks a sub-tree; :func:`tree_cached` keeps such an answer on the
module that asked, until the structure of any tree changes. One counter,
:class:`TreeVersion`, says when: ``add``/``insert``/``remove``, ``get_parameters``,
``share``, ``to``/``type`` and loading a file raise it (through
``Module._parameters_moved``), and :func:`structure_changed` raises it by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .module import Module

T = TypeVar("T")


class TreeVersion:
    """The version of the module trees' structure: one counter for all trees, raised by
    every change a cached walk depends on. A plain counter, not a registry: it refers to
    no module."""

    value: int = 0


def structure_changed() -> None:
    """Say that a module tree changed in a way ember cannot see: a parameter array
    assigned or removed by hand (``linear.bias = None``), a composite's child replaced
    through an attribute. ``add``/``insert``/``remove``, ``get_parameters``, ``share``,
    ``to``/``type`` and loading a file say it themselves. Containers then walk their
    trees again (e.g. to find the lowest child with parameters)."""
    TreeVersion.value += 1


def tree_cached(module: Module, key: str, compute: Callable[[], T]) -> T:
    """``compute()``, kept on ``module`` (in its ``__dict__`` under ``key``) until a module
    tree changes (see :class:`TreeVersion`): for the walks a composite would otherwise
    repeat every step (which child is the lowest with parameters, which graph nodes need
    an input gradient)."""
    entry = module.__dict__.get(key)
    version = TreeVersion.value
    if entry is not None and entry[0] == version:
        return entry[1]
    value = compute()
    module.__dict__[key] = (version, value)
    return value


def has_parameters(module: Module) -> bool:
    """True when ``module`` or a module below it has a trainable array (a walk of the
    tree: a composite asking every step keeps the answer with :func:`tree_cached`)."""
    return any(m._own_parameters() for m in module.modules())


def lowest_parametrised(modules: list[Module]) -> int:
    """Index of the first of ``modules`` with parameters (``len(modules)`` when none)."""
    return next((i for i, m in enumerate(modules) if has_parameters(m)), len(modules))
