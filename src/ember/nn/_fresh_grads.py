"""Zeroing the gradients of a training step without a pass over them: :func:`zeroed_gradients`.

A step zeroes every gradient (``zero_grad_parameters``), then ``backward`` accumulates
into them (``grad += scale * dE/dW``). For a module whose first accumulation can as well
*write* its gradient (a Linear layer: a product with BLAS ``beta = 0``, an outer product
written rather than added), zeroing first is a wasted pass over the gradient memory
(3 MB per step for the lecture's MNIST MLP). Inside ``with zeroed_gradients(model):``

* every gradient of the tree is zero as far as any module can tell: those of modules
  that may write instead are only *marked* zero (see :func:`take_zero_mark`), the
  others are filled with zeros as ``zero_grad_parameters`` does;
* a marked module's first accumulation consumes the mark and writes; later ones add;
* on leaving (normally or by an exception) the gradients still marked -- of modules the
  backward never reached -- are filled with zeros, so afterwards every gradient holds
  exactly what ``zero_grad_parameters`` + forward + backward would have left.

The gradient arrays must not be *read* inside the block before the backward (nothing in
a forward/backward does). A module is only marked when its own class declares
``_writes_fresh_grads = True`` (a subclass that changes how gradients accumulate does
not inherit it), it shares no array with another module (:meth:`Module.share`) and none
of its gradient arrays overlaps another gradient of the tree; the arrays are NumPy's.
Which modules qualify is worked out once per tree structure (``_tree.tree_cached``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._tree import tree_cached

if TYPE_CHECKING:
    from .module import Module

#: the ``__dict__`` key of the mark: "the gradient arrays hold zeros, not yet written"
MARK = "_grads_zero"


def take_zero_mark(module: Module) -> bool:
    """True (once) when ``module``'s gradients are marked zero: its next accumulation
    must write (``grad = scale * dE/dW``) instead of adding."""
    return module.__dict__.pop(MARK, False)


def _bounds(array: Any) -> tuple[int, int]:
    low, high = np.lib.array_utils.byte_bounds(array)
    return low, high


def _plan(root: Module) -> tuple[list[Module], list[Module]]:
    """(modules whose gradients are filled with zeros, modules only marked)."""
    owners: list[Module] = []
    seen: set[int] = set()
    for module in root.modules():
        if id(module) not in seen and module._own_parameters():
            seen.add(id(module))
            owners.append(module)
    spans = []  # (start, end, owner) of every gradient array, to find overlaps
    for module in owners:
        for _, _, grad in module._own_parameters():
            if not isinstance(grad, np.ndarray):
                spans.append((0, 1 << 62, module))  # not NumPy: never marked
            elif grad.size:
                spans.append((*_bounds(grad), module))
    spans.sort(key=lambda span: span[0])
    overlapping: set[int] = set()
    reach_end, reach_owner = -1, None
    for start, end, module in spans:
        if start < reach_end:
            overlapping.update((id(module), id(reach_owner)))
        if end > reach_end:
            reach_end, reach_owner = end, module
    fill: list[Module] = []
    mark: list[Module] = []
    for module in owners:
        qualifies = type(module).__dict__.get("_writes_fresh_grads", False) and not module._sharing_peers()
        (mark if qualifies and id(module) not in overlapping else fill).append(module)
    return fill, mark


class zeroed_gradients:  # noqa: N801 - used as a function: ``with zeroed_gradients(model):``
    """Context manager: ``model.zero_grad_parameters()`` whose zeroing is left, where a
    module can, to its first accumulation (see the module docstring). Re-entrant use is
    not needed and not supported."""

    __slots__ = ("marked",)

    def __init__(self, model: Module) -> None:
        fill, self.marked = tree_cached(model, "_zero_plan", lambda: _plan(model))
        for module in fill:
            for _, _, grad in module._own_parameters():
                grad.fill(0)
        for module in self.marked:
            module.__dict__[MARK] = True

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        for module in self.marked:
            if module.__dict__.pop(MARK, False):  # never reached by the backward: zero it now
                for _, _, grad in module._own_parameters():
                    grad.fill(0)
