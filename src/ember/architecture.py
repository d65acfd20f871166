"""The module tree as JSON (class names and constructor arguments), and its validated rebuild.

:func:`describe_architecture` gives what model files and checkpoints store;
:func:`build` makes the modules again without executing anything from the file:

- classes are looked up by name among ember's public modules (and the caller's own classes,
  ``ember.load(path, classes=[MyModule])``); an abstract base (``Module``, ``Container``, ``Criterion``) or
  a criterion where a layer belongs (or the reverse) is refused;
- nesting is bounded (:data:`MAX_DEPTH`), integer arguments are bounded
  (:data:`MAX_INT`), array arguments must be numeric and small (:data:`MAX_ARRAY_ARG`);
- a module class that owns arrays may not ask, through the product of its integer
  arguments, for more elements than ``budget`` (the loader passes a bound derived from
  the file's own arrays), so a 3 kB file cannot make a constructor allocate gigabytes;
- the module's own constructor checks its arguments; any ``TypeError``/``ValueError``/
  ``OverflowError`` it raises becomes a :class:`FormatError` naming the entry.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from .backend import to_numpy
from .errors import FormatError

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .nn.module import Criterion, Module

#: deepest allowed nesting of modules (and of JSON values inside constructor arguments)
MAX_DEPTH = 64
#: largest absolute integer accepted as a constructor argument
MAX_INT = 2**31 - 1
#: most elements of an array given as a constructor argument
MAX_ARRAY_ARG = 1 << 22
_ARRAY_KINDS = "biuf"  # bool, integers, floats: no strings, objects, datetimes
_PLAIN_KEYS = {"type", "args", "children"}
def _known_classes(classes=()):
    """ember's module classes by name, and ``classes`` (the caller's own Module subclasses)."""
    from . import nn

    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"classes: {cls!r} is not a Module subclass")
    known = {name: getattr(nn, name) for name in nn.__all__ if isinstance(getattr(nn, name), type)}
    known.update((cls.__name__, cls) for cls in classes)
    return {name: cls for name, cls in known.items() if issubclass(cls, nn.Module)}


def encode_value(value: Any) -> Any:
    """Constructor arguments to JSON: arrays become ``{"__ndarray__": [...], "dtype": ...}``."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = to_numpy(value)
        return {"__ndarray__": array.tolist(), "dtype": str(array.dtype)}
    if hasattr(value, "spec") and callable(value.spec):
        return {"__module__": value.spec()}
    raise TypeError(f"cannot describe constructor argument of type {type(value).__name__} in a model file")


def describe_architecture(module: Module) -> dict:
    """The JSON-ready description of ``module``'s tree stored in model files."""
    return encode_value(module.spec())


class _Builder:
    """One rebuild: where messages point (``source``), the element budget, the depth."""

    def __init__(self, source, budget, classes=()) -> None:
        self.source, self.budget = source, budget
        self.classes = _known_classes(classes)

    def fail(self, entry, problem):
        where = f"{self.source}: " if self.source else ""
        return FormatError(f"{where}architecture entry {entry or '<root>'}: {problem}")

    # ------------------------------------------------------------ modules
    def module(self, spec, entry, depth, criterion):
        from .nn import Container, Criterion, Module

        if depth > MAX_DEPTH:
            raise self.fail(entry, f"modules nested deeper than {MAX_DEPTH} levels")
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise self.fail(entry, f"bad module description {str(spec)[:80]!r}")
        name = spec["type"]
        cls = self.classes.get(name)
        if cls is None:
            raise self.fail(entry, f"unknown module type {name[:80]!r}; pass your own classes to load, e.g. ember.load(path, classes=[MyModule])")
        if cls in (Module, Container, Criterion) or cls.update_output is Module.update_output:
            raise self.fail(entry, f"{name} is an abstract base class, not a usable module")
        if criterion is not None and issubclass(cls, Criterion) != criterion:
            wanted = "a criterion" if criterion else "a layer"
            raise self.fail(entry, f"{name} where {wanted} belongs")
        label = f"{entry or '<root>'} ({name})"

        def child(sub_spec, index=None):
            sub_entry = f"{entry}.{index}" if entry else str(index)
            return self.module(sub_spec, sub_entry if index is not None else entry, depth + 1, issubclass(cls, Criterion))

        if hasattr(cls, "from_spec"):
            counter = iter(range(10**9))
            made = self._call(label, lambda: cls.from_spec(spec, lambda s: child(s, next(counter))))
            # from_spec reads what it knows: anything else in the entry would be silently dropped
            described = made.spec()
            ignored = sorted(set(spec) - set(described))
            args = spec.get("args", {})
            ignored += sorted(f"args.{k}" for k in (args if isinstance(args, dict) else {"<not an object>": 0})
                              if k not in described.get("args", {}))  # fmt: skip
            if ignored:
                raise self.fail(label, f"unexpected keys {ignored[:5]}")
            return made
        unknown = set(spec) - _PLAIN_KEYS
        if unknown:
            raise self.fail(label, f"unexpected keys {sorted(unknown)[:5]}")
        args = self.value(spec.get("args", {}), label, depth, issubclass(cls, Criterion))
        if not isinstance(args, dict):
            raise self.fail(label, "arguments must be an object")
        positional = [k for k in args if k.startswith("*")]
        if len(positional) > 1 or (positional and not isinstance(args[positional[0]], list)):
            raise self.fail(label, "at most one '*' argument, and it must be a list")
        star = args.pop(positional[0]) if positional else []
        self._check_budget(cls, label, star, args)
        self._check_kinds(cls, label, args)
        module = self._call(label, lambda: cls(*star, **args))
        children = spec.get("children", [])
        if not isinstance(children, list):
            raise self.fail(label, "children must be a list")
        if children and not isinstance(module, Container):
            raise self.fail(label, f"{name} is not a container; it cannot have children")
        for index, sub in enumerate(children):
            made = child(sub, index)
            self._call(label, lambda made=made: module.add(made))
        return module

    def _call(self, label, make):
        try:
            return make()
        except FormatError as exc:
            if self.source and not str(exc).startswith(f"{self.source}:"):
                raise FormatError(f"{self.source}: {label}: {exc}") from exc
            raise
        except (TypeError, ValueError, OverflowError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
            raise self.fail(label, f"cannot rebuild it from its arguments: {type(exc).__name__}: {str(exc)[:200]}") from exc
        except MemoryError as exc:
            raise self.fail(label, "its arguments ask for more memory than there is") from exc

    def _check_kinds(self, cls, label, args):
        """An argument whose constructor default is a bool must be a bool, a number a
        number, a string a string: the generic check for constructors that do not check
        their own arguments (``dim="1"``, ``bias=-1``)."""
        parameters = _parameters(cls)
        for key, value in args.items():
            default = parameters[key].default if key in parameters else None
            if isinstance(default, bool):
                fits = isinstance(value, bool)
            elif isinstance(default, (int, float)):
                fits = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif isinstance(default, str):
                fits = isinstance(value, str)
            else:
                continue
            if not fits:
                raise self.fail(label, f"argument {key} = {str(value)[:40]!r} should be of the kind of its default "
                                       f"{default!r}")  # fmt: skip

    def _check_budget(self, cls, label, star, args):
        # modules owning arrays list them in _param_names/_buffer_names, or (those that set
        # the names per instance, like the recurrent layers) take an ``rng`` to initialize them
        owns_arrays = cls._param_names or cls._buffer_names or "rng" in _parameters(cls)
        if self.budget is None or not owns_arrays:
            return
        sizes = [v for v in list(star) + list(args.values()) if isinstance(v, int) and not isinstance(v, bool) and v > 1]
        sizes += [v for s in star if isinstance(s, list) for v in s if isinstance(v, int) and not isinstance(v, bool) and v > 1]
        wanted = math.prod(sizes)
        if wanted > self.budget:
            raise self.fail(label, f"arguments ask for about {wanted:.3g} elements, more than the file's arrays allow "
                                   f"({self.budget:.3g}); the file is corrupted or not what it claims")  # fmt: skip

    # ------------------------------------------------------------ argument values
    def value(self, value, label, depth, criterion):
        if depth > MAX_DEPTH:
            raise self.fail(label, f"argument values nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, bool) or value is None or isinstance(value, (float, str)):
            return value
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                raise self.fail(label, f"integer argument {value:.3g} is out of range (|n| <= {MAX_INT})")
            return value
        if isinstance(value, list):
            return [self.value(v, label, depth + 1, criterion) for v in value]
        if not isinstance(value, dict):
            raise self.fail(label, f"bad argument value of type {type(value).__name__}")
        if "__ndarray__" in value:
            return self._array(value, label)
        if "__module__" in value:
            if set(value) != {"__module__"}:
                raise self.fail(label, "a module argument must be exactly {'__module__': description}")
            return self.module(value["__module__"], label.split(" ")[0], depth + 1, criterion)
        return {k: self.value(v, label, depth + 1, criterion) for k, v in value.items()}

    def _array(self, value, label):
        if set(value) - {"__ndarray__", "dtype"}:
            raise self.fail(label, "an array argument must have only __ndarray__ and dtype")
        try:
            dtype = np.dtype(value.get("dtype", "float64"))
        except (TypeError, ValueError) as exc:
            raise self.fail(label, f"array argument of unknown dtype {str(value.get('dtype'))[:40]!r}") from exc
        if dtype.kind not in _ARRAY_KINDS or dtype.itemsize > 16:
            raise self.fail(label, f"array arguments must be numeric, not {dtype}")
        try:
            array = np.asarray(value["__ndarray__"], dtype=dtype)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise self.fail(label, f"bad array argument ({str(exc)[:120]})") from exc
        if array.size > MAX_ARRAY_ARG:
            raise self.fail(label, f"array argument of {array.size} elements (at most {MAX_ARRAY_ARG})")
        return array


def _parameters(cls) -> dict:
    """The constructor's parameters (``{}`` where Python cannot tell them)."""
    try:
        return dict(inspect.signature(cls.__init__).parameters)
    except (TypeError, ValueError):  # pragma: no cover - builtin signatures
        return {}


def build(spec: dict, source: Any = None, budget: Any = None, criterion: Criterion | None = None,
          classes: tuple[Any, ...] = ()) -> Any:
    """Rebuild a module tree from its description (no code is executed).

    ``source`` names the file in messages; ``budget`` bounds the elements a module owning
    arrays may ask for (see the module docs); ``criterion``: True/False requires the root to be a criterion/a layer (None: either;
    below the root a container's children are layers, a criterion's are criteria).
    ``classes``: your own Module subclasses the description may name (ember's are always
    known; nothing else is looked up). Raises :class:`FormatError` naming the file and the
    entry for anything wrong.
    """
    return _Builder(source, budget, classes).module(spec, "", 0, criterion)


def decode_value(value: Any) -> Any:
    """Constructor arguments from JSON back to arrays and modules (validated as in :func:`build`)."""
    return _Builder(None, None).value(value, "argument", 0, False)
