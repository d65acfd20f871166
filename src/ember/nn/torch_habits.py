"""What a PyTorch user types first, on ember's modules (docs/pytorch.md has the table).

ember keeps Torch7's names and the lecture's API first; these names only make the
PyTorch habits either work with PyTorch's meaning or fail with one line naming ember's way:

- ``module.train`` stays Torch7's boolean field (``if module.train:``, ``module.train =
  False``) *and* is callable as in PyTorch: ``net.train()`` = :meth:`training`,
  ``net.train(False)`` = :meth:`evaluate`; ``net.eval()`` = :meth:`evaluate`.
- ``parameters()`` stays Torch7's ``(params, grads)`` pair. A PyTorch loop
  ``for p in net.parameters(): p.shape`` would see two lists; the lists say so in one line
  (use ``net.parameters()[0]`` or :func:`named_parameters`).
- :func:`named_parameters`, :func:`named_buffers`, :func:`state_dict`,
  :func:`load_state_dict` and :func:`zero_grad` have PyTorch's meaning, with PyTorch's key
  names (``"0.weight"``: child index, dot, array name).

:class:`~ember.nn.Module` inherits them from :class:`TorchHabits`, which also wraps the
``parameters()`` that Module defines (see :meth:`TorchHabits.__init_subclass__`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from ..errors import ShapeError, describe

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..nn.module import Module


class TrainFlag(int):
    """``module.train`` as read: true/false like Torch7's field, and callable like
    PyTorch's ``module.train(mode=True)`` (switches the whole tree, returns the module)."""

    _module: Any

    def __new__(cls, value: Any, module: Module) -> Any:
        flag = super().__new__(cls, bool(value))
        flag._module = module
        return flag

    def __call__(self, mode: bool = True) -> Any:
        return self._module.training() if mode else self._module.evaluate()

    def __repr__(self) -> str:
        return repr(bool(self))

    __str__ = __repr__


class TrainField:
    """The descriptor behind ``module.train`` (stored as the plain bool ``_train``)."""

    def __get__(self, module: Module, owner: type | None = None) -> Any:
        if module is None:
            return self
        return TrainFlag(module.__dict__.get("_train", True), module)

    def __set__(self, module: Module, value: Any) -> None:
        module.__dict__["_train"] = bool(value)


class ArrayList(list):
    """One half of Torch7's ``(params, grads)`` pair: a list of arrays that explains the
    pair when used as one array (the PyTorch loop ``for p in net.parameters()``)."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AttributeError(
            f"'{name}' of a list: net.parameters() is Torch7's (params, grads) pair, so a loop over it sees two "
            f"lists; loop over net.parameters()[0], or `for name, p in net.named_parameters()`"
        )


def pair_of_lists(parameters: Any) -> Any:
    """Wrap Torch7's ``parameters()`` so both lists are :class:`ArrayList`."""

    def wrapped(self):
        params, grads = parameters(self)
        return ArrayList(params), ArrayList(grads)

    wrapped.__name__, wrapped.__qualname__, wrapped.__doc__ = "parameters", "Module.parameters", parameters.__doc__
    return wrapped


def _named(module, kind, prefix: str=""):
    names = module._param_names if kind == "param" else module._buffer_names
    for name in names:
        value = getattr(module, name, None)
        if value is not None:
            yield prefix + name, value
    for index, child in enumerate(module.children()):
        yield from _named(child, kind, f"{prefix}{index}.")


class LoadResult(NamedTuple):
    """What :func:`load_state_dict` returns, like PyTorch: the keys it did not find."""

    missing_keys: list
    unexpected_keys: list


def _as_numpy(value, key):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor: its values, on the CPU
        value = value.detach().cpu().numpy()
    if not hasattr(value, "shape"):
        raise ShapeError(f"load_state_dict: {key!r} is {describe(value)}, not an array")
    return value


class TorchHabits:
    """The PyTorch names of :class:`~ember.nn.Module` (see the module docstring)."""

    train = TrainField()
    if TYPE_CHECKING:  # provided by Module, which mixes these names in
        backend: Any
        parameters: Any
        zero_grad_parameters: Any
        named_arrays: Any
        evaluate: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap a ``parameters()`` defined by the class (Module's: Torch7's pair) so its two
        lists explain themselves to a PyTorch loop (:class:`ArrayList`)."""
        super().__init_subclass__(**kwargs)
        if "parameters" in cls.__dict__:
            cls.parameters = pair_of_lists(cls.__dict__["parameters"])

    def eval(self) -> Any:  # noqa: A001 - the PyTorch name, as a method
        """PyTorch's name for :meth:`evaluate` (evaluation mode for the whole tree); returns self."""
        return self.evaluate()

    def zero_grad(self, set_to_none: bool = False) -> Any:
        """PyTorch's name for :meth:`zero_grad_parameters` (gradients are arrays, never None here)."""
        if set_to_none:
            raise ValueError("zero_grad(set_to_none=True): ember's gradients are preallocated arrays (views into the "
                             "flat gradient); use zero_grad() / zero_grad_parameters()")  # fmt: skip
        return self.zero_grad_parameters()

    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[Any]:
        """Iterate ``(name, weight array)`` as PyTorch does: names ``"0.weight"``, a shared
        array once (under its first name) unless ``remove_duplicate=False``."""
        seen = set()
        for name, value in _named(self, "param", prefix):
            if remove_duplicate and id(value) in seen:
                continue
            seen.add(id(value))
            yield name, value

    def named_buffers(self, prefix: str = "") -> Iterator[Any]:
        """Iterate ``(name, array)`` over the persistent non-trainable arrays (running statistics)."""
        yield from _named(self, "buffer", prefix)

    def state_dict(self) -> dict[str, Any]:
        """``{name: array}`` of every parameter and buffer, PyTorch's ``state_dict`` keys
        (``"0.weight"``, shared arrays under each name). The arrays are the module's own,
        not copies, as in PyTorch; :func:`ember.interop.to_torch` makes torch tensors."""
        return dict(self.named_arrays())

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> LoadResult:
        """Copy ``state`` (``{name: array or torch tensor}``, keys as :func:`state_dict`)
        into the module's arrays *in place*, so the flat vectors of ``get_parameters()``
        stay attached. ``strict``: missing or unexpected keys are an error (a KeyError
        listing them), as in PyTorch; shapes must match. Returns ``(missing_keys, unexpected_keys)``."""
        slots = dict(self.named_arrays())
        missing = [k for k in slots if k not in state]
        unexpected = [k for k in state if k not in slots]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing[:8]}, unexpected keys {unexpected[:8]} "
                           "(strict=False loads the keys that match)")  # fmt: skip
        for key, current in slots.items():
            if key not in state:
                continue
            value = _as_numpy(state[key], key)
            if tuple(current.shape) != tuple(value.shape):
                raise ShapeError(f"load_state_dict: {key} has shape {tuple(value.shape)}, the module needs {tuple(current.shape)}")
            current[...] = self.backend.asarray(value, dtype=current.dtype)
        return LoadResult(missing, unexpected)
