"""Errors raised by ember and small helpers that build their messages.

Every shape or dtype problem raises :class:`ShapeError` (a ``ValueError``) whose
message names the module (its repr), what was expected and what was received, e.g.::

    Linear(784 -> 1000): expected input (N, 784) or (784,), got (8, 100)
"""

from __future__ import annotations

from typing import Any

from ._typing import Array, PathLike


class ShapeError(ValueError):
    """An array of the wrong shape, dtype or device was given to a module."""


class TrainingError(RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class FormatError(ValueError):
    """A model or checkpoint file is truncated, corrupted or not an ember file."""


def read_whole_file(path: PathLike) -> bytes:
    """The bytes of the file at ``path``; an unreadable file is a :class:`FormatError`
    naming it (what every reader of small files does first)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def describe(array: Array) -> str:
    """A short human description of what was received: shape and dtype, or type."""
    shape = getattr(array, "shape", None)
    if type(array).__module__.startswith("torch"):  # a PyTorch habit: say what ember takes
        return (f"a torch.Tensor {tuple(shape or ())} {getattr(array, 'dtype', '')} (ember takes NumPy arrays: "
                "t.numpy(), or ember.interop.to_numpy(t))")  # fmt: skip
    if shape is None:
        if isinstance(array, (list, tuple)):
            return f"a {type(array).__name__} of {len(array)} entries"
        return f"a {type(array).__name__}"
    return f"{tuple(shape)} {getattr(array, 'dtype', '')}".rstrip()


def name_of(module: Any) -> str:
    """A one-line name for messages: the repr, or a container's header line
    (``ConcatTable`` rather than its whole multi-line tree)."""
    text = repr(module)
    return text.split("\n", 1)[0].removesuffix(" {") if "\n" in text else text


def shape_error(module: Any, expected: str, got: Any) -> ShapeError:
    """Build the standard message: ``<module>: expected <expected>, got <got>``."""
    if not isinstance(got, str):
        got = describe(got)
    return ShapeError(f"{name_of(module)}: expected {expected}, got {got}")


def check_same_shape(module: Any, name: str, array: Array, reference: Array) -> None:
    """Raise a ShapeError unless ``array.shape == reference.shape``."""
    if getattr(array, "shape", None) != reference.shape:
        raise shape_error(module, f"{name} of shape {tuple(reference.shape)}", array)


def check_positive(owner: str, **values: Any) -> None:
    """Raise ValueError naming ``owner`` unless every value is a positive int."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def check_non_negative(owner: str, **values: Any) -> None:
    """Raise ValueError naming ``owner`` unless every value is an int >= 0."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{owner}: {name} must be a non-negative int, got {value!r}")
