"""Modules whose bprop runs other modules: the :class:`Composite` protocol and
:func:`backprop` (how a composite runs a child's bprop). The tree walks a composite keeps
between steps (:func:`has_parameters`, :func:`tree_cached`) are in ``_tree.py``.

``from ember.nn.module import Composite`` (and ``backprop``) still works:
:mod:`ember.nn.module` hands these names on.
"""

from __future__ import annotations

from typing import Any

from ._tree import has_parameters, lowest_parametrised, tree_cached
from .module import Module


class Composite(Module):
    """Base of the modules whose bprop runs other modules or a loop over time (containers,
    recurrent modules, cells): ONE method, :meth:`_backprop`, does the whole bprop::

        _backprop(input, grad_output, scale, need_input, need_params)

    computes ``self.grad_input`` = dE/d(input) when ``need_input`` and accumulates
    ``scale * dE/dW`` when ``need_params``, sharing the work of both halves in one pass.
    ``update_grad_input``, ``acc_grad_parameters`` and ``backward`` are that call with
    (True, False), (False, True) and (True, True), so each half may be called alone after
    a forward. Children are run with :func:`backprop`, which passes the flags on:
    a sub-tree whose input gradient nobody needs skips every input gradient below its
    lowest parametrised module (``compute_grad_input = False``, at any depth).
    """

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        """dE/d(input) alone (no parameter gradient); None when ``compute_grad_input`` is False."""
        if not self.compute_grad_input:
            self.grad_input = None
            return None
        self._backprop(input, grad_output, 1.0, True, False)
        return self.grad_input

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        """Accumulate ``scale * dE/dW`` alone (``grad_input`` is left as it was)."""
        self._backprop(input, grad_output, scale, False, True)

    def backward(self, input: Any, grad_output: Any, scale: float = 1.0) -> Any:
        """Both halves in one pass; returns ``grad_input`` (None when ``compute_grad_input``
        is False)."""
        self._check_grad_output_kind(grad_output)
        need_input = self.compute_grad_input
        self._backprop(input, grad_output, scale, need_input, True)
        if not need_input:
            self.grad_input = None
        return self.grad_input

    def _backprop(self, input: Any, grad_output: Any, scale: float, need_input: bool, need_params: bool) -> None:
        """The bprop (see the class doc); sets ``self.grad_input`` when ``need_input``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _backprop")


def backprop(module: Module, input: Any, grad_output: Any, scale: float, need_input: bool,
             need_params: bool) -> Any:  # fmt: skip
    """Run ``module``'s bprop as far as asked; returns its grad_input (None when not needed).

    A :class:`Composite` gets the flags (and applies its own ``compute_grad_input``); any
    other module gets ``backward``, ``update_grad_input`` or ``acc_grad_parameters``.
    """
    if isinstance(module, Composite):
        need_input = need_input and module.compute_grad_input
        if need_input or need_params:
            module._backprop(input, grad_output, scale, need_input, need_params)
        return module.grad_input if need_input else None
    if need_input:
        if need_params:
            return module._backward(input, grad_output, scale)
        return module.update_grad_input(input, grad_output)
    if need_params:
        module.acc_grad_parameters(input, grad_output, scale)
    return None


__all__ = ["Composite", "backprop", "has_parameters", "lowest_parametrised", "tree_cached"]
