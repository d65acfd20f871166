"""Declared per-call state: the ``saved`` / ``scratch`` descriptors and the reuse of buffers.

What a module's forward keeps for its backward, and each scratch buffer, is declared in
one visible place, the class body (see :class:`State`); :class:`DeclaredState` (a base of
:class:`~ember.nn.Module`) collects the declarations of a class and its bases and reuses
buffers with :meth:`DeclaredState._fit`.
"""

from __future__ import annotations

from typing import Any

from ..backend import Backend
from ._layout import axis_order, ensure_layout


class State:
    """Declares one per-call value of a module, in the class body where everyone sees it::

        class SpatialConvolution(Module):
            cols = saved("im2col columns of the last input, (C*kh*kw, OH*OW*N)")
            dcols = scratch("dE/d(cols) during update_grad_input")

    ``saved`` values are what ``update_output`` keeps for the backward; ``scratch``
    values are buffers reused across calls. Either is read as a plain attribute: ``None``
    until first assigned (and again after :meth:`Module.clear_state`), then whatever the
    module stored (usually ``self.x = self._fit(self.x, shape)``). Declared values are
    dropped by ``clear_state()`` and ``to()``, never copied by ``clone()`` and never
    written to files; an undeclared per-call array is a bug the contract tests catch.

    A non-data descriptor: once assigned, the value lives in the instance ``__dict__``
    and reads cost a plain attribute lookup.
    """

    __slots__ = ("name", "kind", "doc")

    def __init__(self, kind: str, doc: str = "") -> None:
        self.kind, self.doc = kind, doc
        self.name: str | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> Any:
        return self if obj is None else None

    def __repr__(self) -> str:
        return f"{self.kind}({self.doc!r})"


# typed Any: the class attribute a declaration makes holds arrays (or tables) once assigned
def saved(doc: str = "") -> Any:
    """Declare a value ``update_output`` keeps for the backward (see :class:`State`)."""
    return State("saved", doc)


def scratch(doc: str = "") -> Any:
    """Declare a scratch buffer reused across calls (see :class:`State`)."""
    return State("scratch", doc)


class DeclaredState:
    """Base of :class:`~ember.nn.Module`: the names of the declared values and the reuse
    of buffers."""

    #: names of the declared per-call values (``saved``/``scratch``), over the whole MRO;
    #: filled in by ``__init_subclass__``.
    _state_names: tuple[str, ...] = ()
    backend: Backend

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, State) and name not in names:
                    names.append(name)
        cls._state_names = tuple(names)

    def _fit(self, buffer: Any, shape: Any, dtype: Any = None, order: Any = None, like: Any = None) -> Any:
        """``buffer`` when it already has ``shape``, ``dtype`` (default: the backend's)
        and memory layout, else a new uninitialised array: how declared buffers are reused,
        ``self.cols = self._fit(self.cols, shape)``. ``order`` is an axis order (see
        ``_layout``); ``like=array`` takes ``array``'s shape and layout."""
        if like is not None:
            shape, order = like.shape, axis_order(like)
        if order is None:
            return self.backend.ensure(buffer, shape, dtype)
        return ensure_layout(self.backend, buffer, shape, order, dtype)
