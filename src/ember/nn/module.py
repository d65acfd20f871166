"""The module contract: :class:`Module` and :class:`Criterion`.

A module computes ``output = F(input, W)`` (fprop) and, given ``dE/d(output)``, the two
back-propagated quantities of the lecture (bprop)::

    update_grad_input:     dE/d(input) = dE/d(output) . dF/d(input)
    acc_grad_parameters:   dE/dW      += scale * dE/d(output) . dF/dW

A leaf module overrides at most these three methods (and lists its trainable arrays in
``_param_names``); a module whose bprop runs other modules (containers, recurrent
modules, cells) is a :class:`Composite` and implements the one ``_backprop`` instead.
Everything else -- ``forward``/``backward``, flattening, clone/share, mode switches,
backend moves, the architecture description used by the file format -- is a method of
:class:`Module`; the longer bodies live by concern in ``_state.py`` (``saved``/``scratch``
declarations, buffer reuse), ``_arrays.py`` (flattening, sharing, copies, moves),
``_spec.py`` (recording constructor arguments), ``_tree.py`` (cached tree walks) and
``composite.py`` (the :class:`Composite` protocol). Every name stays importable from here.

Buffers: ``output`` and ``grad_input`` are reused across calls. The array a call
returns is overwritten by the next call; copy it if you need to keep it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Self

from .._typing import Array
from ..backend import NUMPY32, Backend, get_backend
from ..errors import ShapeError, describe
from ._arrays import GRAD as _GRAD
from ._arrays import clone_tree, flatten_parameters, move_tree, share_arrays
from ._spec import record_constructor_arguments
from ._state import DeclaredState, State, saved, scratch
from ._tree import TreeVersion, has_parameters, structure_changed
from .torch_habits import TorchHabits

if TYPE_CHECKING:  # defined in composite.py (which imports Module); handed on by __getattr__ below
    from .composite import Composite, backprop


class Module(DeclaredState, TorchHabits):
    """Base class of every layer and container.

    Attributes:
        output: the last output (a reused buffer).
        grad_input: the last gradient with respect to the input (a reused buffer).
        train: True in training mode (see :meth:`training` / :meth:`evaluate`).
        backend: the :class:`~ember.backend.Backend` the arrays live on.
    """

    #: names of the trainable arrays; the gradient of ``weight`` is ``grad_weight``.
    _param_names: tuple = ()
    #: names of non-trainable persistent arrays (e.g. running statistics).
    _buffer_names: tuple = ()
    #: names of arrays fixed at construction (kernels, index ramps): moved by ``to()``,
    #: kept by ``clear_state()``, not written to files (the constructor rebuilds them).
    _constant_names: tuple = ()
    #: "float": the input must be a floating array of the backend's dtype;
    #: "any": the module checks its own input (tables, index inputs).
    _input_kind: str = "float"
    #: False tells a container (any :class:`Composite`, at any depth) that the caller does
    #: not need dE/d(input) (the network's input is data): every input gradient below its
    #: lowest parametrised module is skipped, and that module only accumulates its
    #: parameter gradients, as PyTorch does for inputs that do not require gradients.
    #: ``grad_input`` is then None.
    compute_grad_input: bool = True
    #: True on a class whose output the next module of a :class:`Sequential` may write
    #: over (an in-place ReLU): the output is the module's own buffer, and neither its
    #: backward nor anything else of the module reads it again (Linear, convolutions).
    output_free_for_next: bool = False
    #: Set by a :class:`Sequential` for the duration of one forward call of a module that
    #: can work in place (``ReLU(inplace=True)``): its input may be overwritten (the input
    #: is the previous module's output and that module's class says it is free).
    overwrite_input: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # DeclaredState collects the saved/scratch names
        if "__init__" in cls.__dict__:
            cls.__init__ = record_constructor_arguments(cls.__dict__["__init__"])  # type: ignore[method-assign]

    def __init__(self) -> None:
        self.output: Any = None
        self.grad_input: Any = None
        self.train = True
        self.backend: Backend = NUMPY32

    # ------------------------------------------------------------------ fprop / bprop
    def forward(self, input: Any) -> Any:
        """Compute and return the output (= :meth:`update_output` after input checks)."""
        if self._input_kind == "float":
            self._check_float_input(input)
        return self.update_output(input)

    def backward(self, input: Any, grad_output: Any, scale: float = 1.0) -> Any:
        """bprop: :meth:`update_grad_input` then :meth:`acc_grad_parameters`.

        Returns ``grad_input``. Parameter gradients accumulate (``+= scale * ...``).
        With ``compute_grad_input = False`` only the parameter gradients (``grad_input``
        is then None).
        """
        self._check_grad_output_kind(grad_output)
        return self._backward(input, grad_output, scale)

    def _backward(self, input: Any, grad_output: Any, scale: float) -> Any:
        """:meth:`backward` without the check of ``grad_output``: inside a container a
        branch whose output nobody used gets ``None`` (e.g. a :class:`SelectTable`)."""
        if not self.compute_grad_input:
            self.grad_input = None
            self.acc_grad_parameters(input, grad_output, scale)
            return None
        self.update_grad_input(input, grad_output)
        self.acc_grad_parameters(input, grad_output, scale)
        return self.grad_input

    def _check_grad_output_kind(self, grad_output: Any) -> None:
        """A module whose output is an array needs an array dE/d(output) of the backend:
        ``None`` or a list would fail deep inside (or, in a container, pass silently)."""
        if isinstance(self.output, self.backend.xp.ndarray) and not isinstance(grad_output, self.backend.xp.ndarray):
            raise ShapeError(f"{self!r}: backward needs grad_output = dE/d(output), an array of shape "
                             f"{tuple(self.output.shape)} like the output, got {describe(grad_output)}")

    def __call__(self, *args: Any) -> Any:
        """``module(x)`` computes ``forward(x)``. Called on graph nodes (``module(node)``,
        ``module(a, b)``, ``module([a, b])``) or on nothing (``module()``, an input node),
        it builds a node of a :class:`~ember.nn.Graph` instead."""
        if not args or _has_nodes(args):
            from .graph import make_node

            return make_node(self, args)
        return self.forward(*args)

    def update_output(self, input: Any) -> Any:
        """fprop: compute ``self.output`` from ``input`` (reusing its buffer) and return it.
        Each module's docstring gives its formula."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input: Any, grad_output: Any) -> Any:
        """bprop to the input: compute ``self.grad_input`` = dE/d(input) from the same
        ``input`` as the last forward and ``grad_output`` = dE/d(output); return it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def acc_grad_parameters(self, input: Any, grad_output: Any, scale: float = 1.0) -> None:
        """Accumulate ``scale * dE/dW`` into the gradient arrays (no-op without parameters)."""

    def _check_float_input(self, input: Any) -> None:
        backend = self.backend
        if not isinstance(input, backend.xp.ndarray):
            where = "a NumPy array" if backend.name == "numpy" else "a CuPy array"
            raise ShapeError(f"{self!r}: expected input as {where}, got {describe(input)}")
        if input.dtype != backend.dtype:
            raise ShapeError(
                f"{self!r}: expected input of dtype {backend.dtype}, got {input.dtype} "
                f"(convert with backend.asarray(x) or move the module with .to(...))"
            )

    # ------------------------------------------------------------------ tree walks
    def children(self) -> list[Module]:
        """Direct sub-modules (empty for a leaf module)."""
        return []

    def modules(self) -> list[Module]:
        """This module and every module below it, depth first (Torch7 ``listModules``)."""
        found: list[Module] = [self]
        for child in self.children():
            found.extend(child.modules())
        return found

    def apply(self, fn: Callable[[Module], object]) -> Self:
        """Call ``fn(module)`` on this module and every module below it; returns self."""
        for module in self.modules():
            fn(module)
        return self

    def find_modules(self, cls: type | str) -> list[Module]:
        """Every module of the given class (or class name) in the tree."""
        if isinstance(cls, str):
            return [m for m in self.modules() if type(m).__name__ == cls]
        return [m for m in self.modules() if isinstance(m, cls)]

    def training(self) -> Self:
        """Switch the whole tree to training mode (Dropout drops, BatchNorm learns)."""
        for module in self.modules():
            module.train = True
        return self

    def evaluate(self) -> Self:
        """Switch the whole tree to evaluation mode."""
        for module in self.modules():
            module.train = False
        return self

    # ------------------------------------------------------------------ parameters
    def _own_parameters(self) -> list[tuple[str, Array, Array]]:
        """(name, param, grad) for this module's own trainable arrays that exist."""
        own = []
        for name in self._param_names:
            param = getattr(self, name, None)
            if param is not None:
                own.append((name, param, getattr(self, _GRAD + name)))
        return own

    def parameters(self) -> tuple[list[Array], list[Array]]:
        """``(params, grads)``: two lists, each shared array once (Torch7 ``parameters``)."""
        params: list[Array] = []
        grads: list[Array] = []
        seen: set[int] = set()
        for module in self.modules():
            for name, param, grad in module._own_parameters():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                params.append(param)
                grads.append(grad)
        return params, grads

    def zero_grad_parameters(self) -> Self:
        """Set every parameter gradient to zero (called every training step: walks the tree
        without building the deduplicated lists of :meth:`parameters`)."""
        for module in self.modules():
            for _, _, grad in module._own_parameters():
                grad.fill(0)
        return self

    def update_parameters(self, learning_rate: float) -> Self:
        """Plain gradient step on every parameter: ``W -= learning_rate * dE/dW``."""
        for param, grad in zip(*self.parameters()):
            param -= learning_rate * grad
        return self

    def get_parameters(self) -> tuple[Array, Array]:
        """Gather all parameters into one flat vector and all gradients into another.

        Every parameter and gradient array of the tree is re-pointed to a view into the
        flat vectors, so an optimizer that updates the flat vector in place updates the
        network. Arrays shared between modules (clones, ``share``) appear once. Calling
        it again re-flattens and keeps everything consistent (the earlier flat vectors
        are then detached from the network). Returns ``(flat_params, flat_grads)``.
        """
        return flatten_parameters(self)

    def _parameters_moved(self) -> None:
        """Called after this module's arrays were re-pointed or replaced (flattening,
        sharing, moves, loading): the module trees changed (see ``_tree.structure_changed``).
        A module overriding it calls ``super()._parameters_moved()``."""
        TreeVersion.value += 1

    def named_arrays(self, prefix: str = "") -> list[tuple[str, Array]]:
        """``[(path, array)]`` for every parameter and buffer, shared arrays included.

        Paths look like ``"2.weight"`` (child indices separated by dots).
        """
        named = []
        for name in self._param_names + self._buffer_names:
            value = getattr(self, name, None)
            if value is not None:
                named.append((prefix + name, value))
        for index, child in enumerate(self.children()):
            named.extend(child.named_arrays(f"{prefix}{index}."))
        return named

    # ------------------------------------------------------------------ copies and sharing
    def clone(self, *shared: str) -> Self:
        """A deep copy of the module tree; the arrays named in ``shared`` stay shared.

        ``m.clone("weight", "bias")`` gives a module whose weight and bias (and their
        gradients ``grad_weight``, ``grad_bias``) are the very arrays of ``m``: gradients
        from both copies accumulate in one place, as siamese nets and unfolding in time
        need.
        """
        twin = clone_tree(self)
        if shared:
            twin.share(self, *shared)
        return twin

    def share(self, other: Module, *names: str) -> Self:
        """Make this tree use ``other``'s arrays for ``names`` (and their gradients).

        Both trees must have the same structure; returns self.
        """
        share_arrays(self, other, names)
        return self

    def __getstate__(self) -> dict[str, Any]:
        # a copy shares nothing until share() links it: the peer record stays behind
        state = self.__dict__.copy()
        state.pop("_peers", None)
        return state

    def _sharing_peers(self) -> list[Module]:
        """The modules this one shares arrays with through :meth:`share` / :meth:`clone`
        (held weakly, so a dropped copy is forgotten)."""
        peers = self.__dict__.get("_peers")
        return [] if peers is None else [p for p in list(peers) if p is not self]

    def clear_state(self) -> Self:
        """Drop output, grad_input and every declared per-call value (``saved`` and
        ``scratch``, see :class:`State`); they are rebuilt on demand."""
        for module in self.modules():
            module.output = None
            module.grad_input = None
            for name in module._state_names:
                module.__dict__.pop(name, None)
        return self

    def to(self, backend: Backend | str) -> Self:
        """Move every array of the tree to ``backend`` (a Backend or e.g. ``"numpy:float64"``).

        Sharing between modules is preserved. Returns self.
        """
        move_tree(self, get_backend(backend))
        return self

    def type(self, dtype: Any) -> Self:
        """Torch7-style cast: ``module.type("float64")`` keeps the array namespace."""
        return self.to(Backend(self.backend.name, dtype))

    def float(self) -> Self:
        """Torch7's ``module:float()``: cast every array to float32 (same backend)."""
        return self.type("float32")

    def double(self) -> Self:
        """Torch7's ``module:double()``: cast every array to float64 (same backend)."""
        return self.type("float64")

    # ------------------------------------------------------------------ description
    def spec(self) -> dict[str, Any]:
        """The declarative description of this module (class name and constructor args)."""
        return {"type": type(self).__name__, "args": dict(self.__dict__.get("_spec_args", {}))}

    def extra_repr(self) -> str:
        """What goes inside the parentheses of the repr (override in subclasses)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra})" if extra else type(self).__name__


class Criterion(Module):
    """Base class of the cost modules: ``loss = forward(input, target)`` (a float),
    ``grad_input = backward(input, target)`` (dE/d(input)).

    ``size_average`` (default True) divides the loss by the number of samples or
    elements, as each criterion documents.
    """

    def __init__(self, size_average: bool = True) -> None:
        super().__init__()
        self.size_average = bool(size_average)

    def forward(self, input: Any, target: Any) -> Any:  # type: ignore[override]
        """The loss (a float) of ``input`` against ``target`` (= :meth:`update_output`
        after input checks)."""
        if self._input_kind == "float":
            self._check_float_input(input)
        return self.update_output(input, target)

    def backward(self, input: Any, target: Any) -> Any:  # type: ignore[override]
        """dE/d(input) for the same ``input`` and ``target`` (= :meth:`update_grad_input`)."""
        return self.update_grad_input(input, target)

    def __call__(self, input: Any, target: Any) -> Any:
        return self.forward(input, target)

    def update_output(self, input: Any, target: Any) -> Any:  # type: ignore[override]
        """Compute the loss, store it in ``self.output`` and return it (each criterion's
        docstring gives its formula)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input: Any, target: Any) -> Any:
        """Compute ``self.grad_input`` = dE/d(input) and return it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def _check_float_target(self, input: Any, target: Any, name: str = "target") -> None:
        """Targets of regression criteria: an array of the input's shape and dtype."""
        if not isinstance(target, self.backend.xp.ndarray) or target.shape != input.shape:
            raise ShapeError(
                f"{self!r}: expected {name} of shape {tuple(input.shape)} like the input, "
                f"got {describe(target)}"
            )
        if target.dtype != input.dtype:
            raise ShapeError(f"{self!r}: expected {name} of dtype {input.dtype}, got {target.dtype}")


def _has_nodes(args: tuple[Any, ...]) -> bool:
    """True when the call arguments contain graph nodes (see :meth:`Module.__call__`)."""
    items = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    return any(getattr(item, "_is_graph_node", False) for item in items)


def __getattr__(name: str) -> Any:
    """``from ember.nn.module import Composite`` (or ``backprop``):
    they live in :mod:`ember.nn.composite`, which imports :class:`Module` from here, so
    they are handed on when first asked for rather than imported at the top."""
    if name in ("Composite", "backprop"):
        from . import composite

        return getattr(composite, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Module", "Composite", "Criterion", "State", "saved", "scratch", "backprop", "has_parameters",
           "structure_changed", "TreeVersion"]  # fmt: skip
