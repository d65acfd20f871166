"""The declarative description of a module: its constructor arguments, recorded as it is
built (``Module.spec()`` returns them; the file format writes them, see :mod:`ember.io`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def record_constructor_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``__init__`` so the outermost call stores its arguments in ``_spec_args``.

    The stored arguments are the declarative description of the module that the file
    format writes (see :func:`ember.io.save`), so a model can be rebuilt without code.
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        if "_spec_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded: dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    recorded["*" + name] = list(value)
                elif name != "rng":
                    recorded[name] = value
            self.__dict__["_spec_args"] = recorded
        init(self, *args, **kwargs)

    return wrapper
