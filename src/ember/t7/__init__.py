"""Torch7 ``.t7`` files: a safe reader (:func:`read_t7`) and :func:`load_t7`, which turns
the saved module tree into ember modules. See docs/torch7.md."""

from __future__ import annotations

from ..errors import FormatError
from .mapping import Mapper, UnmappedClassError
from .reader import LuaFunction, TorchObject, deep_recursion, read_t7, read_t7_bytes

from typing import Any
from .._typing import PathLike


def load_t7(path: PathLike, *, partial: bool = False, ascii: Any = None, long_size: int | None = None) -> Any:
    """Load a Torch7 model file as an ember module (float32, NumPy backend).

    ``partial=True`` returns the raw object (:class:`TorchObject` tree, dicts, arrays)
    when some class has no ember mapping, instead of raising :class:`UnmappedClassError`
    (a :class:`FormatError` naming the class and its path in the tree). A file that holds
    no module (a bare tensor or table) is returned as read. Nothing in the file is run.
    """
    obj = read_t7(path, ascii=ascii, long_size=long_size)
    if not isinstance(obj, TorchObject):
        if partial:
            return obj
        keys = [k for k, v in obj.items() if isinstance(v, TorchObject)][:5] if isinstance(obj, dict) else []
        hint = f"; torch objects under the keys {keys}: ember.t7.to_module(read_t7(path)[key])" if keys else ""
        raise FormatError(f"{path}: holds a {type(obj).__name__}, not a Torch7 module (read_t7 gives the raw data{hint})")
    try:
        with deep_recursion():
            return Mapper().module(obj)
    except UnmappedClassError:
        if partial:
            return obj
        raise
    except FormatError as exc:
        raise FormatError(f"{path}: {exc}") from None
    except RecursionError:
        raise FormatError(f"{path}: modules nested too deeply to map") from None


def to_module(obj: Any, path: str = "model") -> Any:
    """Map a raw Torch7 object from :func:`read_t7` (e.g. ``read_t7(f)["model"]`` of a
    checkpoint table) to an ember module; ``path`` names it in error messages."""
    with deep_recursion():
        return Mapper().module(obj, path)


_BUFFERS = ("output", "gradInput", "_input", "_gradOutput")


def raw_arrays(obj: Any, prefix: str = "", seen: Any = None) -> dict:
    """``{path: array}`` for every tensor in a raw Torch7 tree (``modules.1.weight``),
    each array once (at its first path), without the forward/backward buffers
    (``output``, ``gradInput``, ``grad*``) that Torch7 saves with modules."""
    seen = set() if seen is None else seen
    found: dict = {}
    if id(obj) in seen:
        return found
    seen.add(id(obj))
    fields = obj.fields if isinstance(obj, TorchObject) else obj if isinstance(obj, dict) else None
    if fields is None:
        return found
    for key, value in fields.items():
        name = str(key)
        if name in _BUFFERS or name.startswith("grad"):
            continue
        path = f"{prefix}{name}"
        if hasattr(value, "dtype") and value.size and id(value) not in seen:
            seen.add(id(value))
            found[path] = value
        else:
            found.update(raw_arrays(value, path + ".", seen))
    return found


__all__ = ["to_module", "raw_arrays", "deep_recursion", "load_t7", "read_t7", "read_t7_bytes", "TorchObject", "LuaFunction", "UnmappedClassError", "Mapper"]
