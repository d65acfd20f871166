"""The module contract: :class:`Module` and :class:`Criterion`.

A module computes ``output = F(input, W)`` (fprop) and, given ``dE/d(output)``, the two
back-propagated quantities of the lecture (bprop)::

    update_grad_input:     dE/d(input) = dE/d(output) . dF/d(input)
    acc_grad_parameters:   dE/dW      += scale * dE/d(output) . dF/dW

A leaf module overrides at most these three methods (and lists its trainable arrays in
``_param_names``); a module whose bprop runs other modules (containers, recurrent
modules, cells) is a :class:`Composite` and implements the one ``_backprop`` instead.
Everything else -- ``forward``/``backward``, flattening, clone/share, mode switches,
backend moves, the architecture description used by the file format -- lives here.

Buffers: ``output`` and ``grad_input`` are reused across calls. The array a call
returns is overwritten by the next call; copy it if you need to keep it.
"""

from __future__ import annotations

import copy
import functools
import inspect
import weakref

from ..backend import NUMPY32, Backend, get_backend
from ..errors import ShapeError, describe
from ._layout import axis_order, ensure_layout
from .torch_habits import TorchHabits

_GRAD = "grad_"


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

    def __init__(self, kind, doc=""):
        self.kind, self.doc, self.name = kind, doc, None

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        return self if obj is None else None

    def __repr__(self):
        return f"{self.kind}({self.doc!r})"


def saved(doc=""):
    """Declare a value ``update_output`` keeps for the backward (see :class:`State`)."""
    return State("saved", doc)


def scratch(doc=""):
    """Declare a scratch buffer reused across calls (see :class:`State`)."""
    return State("scratch", doc)


def _record_constructor_arguments(init):
    """Wrap ``__init__`` so the outermost call stores its arguments in ``_spec_args``.

    The stored arguments are the declarative description of the module that the file
    format writes (see :func:`ember.io.save`), so a model can be rebuilt without code.
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if "_spec_args" not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded = {}
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


class Module(TorchHabits):
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

    #: names of the declared per-call values (``saved``/``scratch``), over the whole MRO;
    #: filled in by ``__init_subclass__``.
    _state_names: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        names = []
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, State) and name not in names:
                    names.append(name)
        cls._state_names = tuple(names)
        if "__init__" in cls.__dict__:
            cls.__init__ = _record_constructor_arguments(cls.__dict__["__init__"])

    def __init__(self):
        self.output = None
        self.grad_input = None
        self.train = True
        self.backend: Backend = NUMPY32

    # ------------------------------------------------------------------ fprop / bprop
    def forward(self, input):
        """Compute and return the output (= :meth:`update_output` after input checks)."""
        if self._input_kind == "float":
            self._check_float_input(input)
        return self.update_output(input)

    def backward(self, input, grad_output, scale=1.0):
        """bprop: :meth:`update_grad_input` then :meth:`acc_grad_parameters`.

        Returns ``grad_input``. Parameter gradients accumulate (``+= scale * ...``).
        With ``compute_grad_input = False`` only the parameter gradients (``grad_input``
        is then None).
        """
        self._check_grad_output_kind(grad_output)
        return self._backward(input, grad_output, scale)

    def _backward(self, input, grad_output, scale):
        """:meth:`backward` without the check of ``grad_output``: inside a container a
        branch whose output nobody used gets ``None`` (e.g. a :class:`SelectTable`)."""
        if not self.compute_grad_input:
            self.grad_input = None
            self.acc_grad_parameters(input, grad_output, scale)
            return None
        self.update_grad_input(input, grad_output)
        self.acc_grad_parameters(input, grad_output, scale)
        return self.grad_input

    def _check_grad_output_kind(self, grad_output):
        """A module whose output is an array needs an array dE/d(output) of the backend:
        ``None`` or a list would fail deep inside (or, in a container, pass silently)."""
        if isinstance(self.output, self.backend.xp.ndarray) and not isinstance(grad_output, self.backend.xp.ndarray):
            raise ShapeError(f"{self!r}: backward needs grad_output = dE/d(output), an array of shape "
                             f"{tuple(self.output.shape)} like the output, got {describe(grad_output)}")

    def __call__(self, *args):
        """``module(x)`` computes ``forward(x)``. Called on graph nodes (``module(node)``,
        ``module(a, b)``, ``module([a, b])``) or on nothing (``module()``, an input node),
        it builds a node of a :class:`~ember.nn.Graph` instead."""
        if not args or _has_nodes(args):
            from .graph import make_node

            return make_node(self, args)
        return self.forward(*args)

    def update_output(self, input):
        """fprop: compute ``self.output`` from ``input`` (reusing its buffer) and return it.
        Each module's docstring gives its formula."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input, grad_output):
        """bprop to the input: compute ``self.grad_input`` = dE/d(input) from the same
        ``input`` as the last forward and ``grad_output`` = dE/d(output); return it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        """Accumulate ``scale * dE/dW`` into the gradient arrays (no-op without parameters)."""

    def _check_float_input(self, input):
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
    def children(self) -> list:
        """Direct sub-modules (empty for a leaf module)."""
        return []

    def modules(self) -> list:
        """This module and every module below it, depth first (Torch7 ``listModules``)."""
        found = [self]
        for child in self.children():
            found.extend(child.modules())
        return found

    def apply(self, fn):
        """Call ``fn(module)`` on this module and every module below it; returns self."""
        for module in self.modules():
            fn(module)
        return self

    def find_modules(self, cls) -> list:
        """Every module of the given class (or class name) in the tree."""
        if isinstance(cls, str):
            return [m for m in self.modules() if type(m).__name__ == cls]
        return [m for m in self.modules() if isinstance(m, cls)]

    def training(self):
        """Switch the whole tree to training mode (Dropout drops, BatchNorm learns)."""
        for module in self.modules():
            module.train = True
        return self

    def evaluate(self):
        """Switch the whole tree to evaluation mode."""
        for module in self.modules():
            module.train = False
        return self

    # ------------------------------------------------------------------ parameters
    def _own_parameters(self):
        """(name, param, grad) for this module's own trainable arrays that exist."""
        own = []
        for name in self._param_names:
            param = getattr(self, name, None)
            if param is not None:
                own.append((name, param, getattr(self, _GRAD + name)))
        return own

    def parameters(self):
        """``(params, grads)``: two lists, each shared array once (Torch7 ``parameters``)."""
        params, grads, seen = [], [], set()
        for module in self.modules():
            for name, param, grad in module._own_parameters():
                if id(param) in seen:
                    continue
                seen.add(id(param))
                params.append(param)
                grads.append(grad)
        return params, grads

    def zero_grad_parameters(self):
        """Set every parameter gradient to zero (called every training step: walks the tree
        without building the deduplicated lists of :meth:`parameters`)."""
        for module in self.modules():
            for _, _, grad in module._own_parameters():
                grad.fill(0)
        return self

    def update_parameters(self, learning_rate):
        """Plain gradient step on every parameter: ``W -= learning_rate * dE/dW``."""
        for param, grad in zip(*self.parameters()):
            param -= learning_rate * grad
        return self

    def get_parameters(self):
        """Gather all parameters into one flat vector and all gradients into another.

        Every parameter and gradient array of the tree is re-pointed to a view into the
        flat vectors, so an optimizer that updates the flat vector in place updates the
        network. Arrays shared between modules (clones, ``share``) appear once. Calling
        it again re-flattens and keeps everything consistent (the earlier flat vectors
        are then detached from the network). Returns ``(flat_params, flat_grads)``.
        """
        params, grads = self.parameters()
        seen_grads = {}
        for module in self.modules():
            for name, param, grad in module._own_parameters():
                owner = seen_grads.setdefault(id(param), grad)
                if owner is not grad:
                    raise ValueError(
                        f"{module!r}: parameter {name!r} is shared with another module but "
                        f"its gradient is not; share both (clone('{name}') shares the pair)"
                    )
        xp = self.backend.xp
        total = sum(int(p.size) for p in params)
        flat_params = xp.empty(total, dtype=self.backend.dtype)
        flat_grads = xp.zeros(total, dtype=self.backend.dtype)
        replacement = {}
        offset = 0
        for param, grad in zip(params, grads):
            n = int(param.size)
            p_view = flat_params[offset : offset + n].reshape(param.shape)
            g_view = flat_grads[offset : offset + n].reshape(param.shape)
            p_view[...] = param
            g_view[...] = grad
            replacement[id(param)] = p_view
            replacement[id(grad)] = g_view
            offset += n
        tree = self.modules()
        inside = {id(m) for m in tree}
        # modules outside this tree that share arrays with it (a clone flattened on
        # its own, Torch7's classic trap) are re-pointed too, so sharing survives; each
        # module knows its own sharing peers (see share)
        outside = [p for m in tree for p in m._sharing_peers() if id(p) not in inside]
        for module in tree + outside:
            for name in module._param_names:
                for attr in (name, _GRAD + name):
                    value = getattr(module, attr, None)
                    if value is not None and id(value) in replacement:
                        setattr(module, attr, replacement[id(value)])
            module._parameters_moved()
        return flat_params, flat_grads

    def _parameters_moved(self):
        """Hook called after parameters were re-pointed (flattening, sharing, moves)."""

    def named_arrays(self, prefix=""):
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
    def clone(self, *shared):
        """A deep copy of the module tree; the arrays named in ``shared`` stay shared.

        ``m.clone("weight", "bias")`` gives a module whose weight and bias (and their
        gradients ``grad_weight``, ``grad_bias``) are the very arrays of ``m``: gradients
        from both copies accumulate in one place, as siamese nets and unfolding in time
        need.
        """
        memo = {}
        for module in self.modules():
            for attr in ("output", "grad_input", *module._state_names):
                value = module.__dict__.get(attr)
                if value is not None:
                    memo[id(value)] = None
            rng = module.__dict__.get("rng")
            if rng is not None:  # one random stream: a clone's Dropout draws its own masks
                memo[id(rng)] = rng
        twin = copy.deepcopy(self, memo)
        if shared:
            twin.share(self, *shared)
        return twin

    def share(self, other, *names):
        """Make this tree use ``other``'s arrays for ``names`` (and their gradients).

        Both trees must have the same structure; returns self.
        """
        mine, theirs = self.modules(), other.modules()
        if len(mine) != len(theirs):
            raise ValueError(f"{self!r}: cannot share with {other!r}: different structure")
        for a, b in zip(mine, theirs):
            linked = False
            for name in names:
                attrs = [name]
                if name in b._param_names:
                    attrs.append(_GRAD + name)
                for attr in attrs:
                    if getattr(b, attr, None) is not None:
                        setattr(a, attr, getattr(b, attr))
                        linked = True
            a._parameters_moved()
            if linked and a is not b:
                _link_peers(a, b)
        return self

    def __getstate__(self):
        # a copy shares nothing until share() links it: the peer record stays behind
        state = self.__dict__.copy()
        state.pop("_peers", None)
        return state

    def _sharing_peers(self):
        """The modules this one shares arrays with through :meth:`share` / :meth:`clone`
        (held weakly, so a dropped copy is forgotten)."""
        peers = self.__dict__.get("_peers")
        return [] if peers is None else [p for p in list(peers) if p is not self]

    def clear_state(self):
        """Drop output, grad_input and every declared per-call value (``saved`` and
        ``scratch``, see :class:`State`); they are rebuilt on demand."""
        for module in self.modules():
            module.output = None
            module.grad_input = None
            for name in module._state_names:
                module.__dict__.pop(name, None)
        return self

    def to(self, backend):
        """Move every array of the tree to ``backend`` (a Backend or e.g. ``"numpy:float64"``).

        Sharing between modules is preserved. Returns self.
        """
        backend = get_backend(backend)
        moved = {}

        def convert(value):
            # keyed by id: keep every array seen alive (a freed id can be reused), and
            # map converted arrays to themselves (a module met twice in the tree)
            if id(value) not in moved:
                dtype = backend.dtype if value.dtype.kind == "f" else value.dtype
                new = backend.asarray(value, dtype=dtype)
                moved[id(value)] = (value, new)
                moved[id(new)] = (new, new)
            return moved[id(value)][1]

        self.clear_state()
        for module in self.modules():
            module.backend = backend
            for name in module._param_names + module._buffer_names + module._constant_names:
                for attr in (name, _GRAD + name):
                    value = getattr(module, attr, None)
                    if value is not None and hasattr(value, "dtype"):
                        setattr(module, attr, convert(value))
            module._parameters_moved()
        return self

    def type(self, dtype):
        """Torch7-style cast: ``module.type("float64")`` keeps the array namespace."""
        return self.to(Backend(self.backend.name, dtype))

    def float(self):
        """Torch7's ``module:float()``: cast every array to float32 (same backend)."""
        return self.type("float32")

    def double(self):
        """Torch7's ``module:double()``: cast every array to float64 (same backend)."""
        return self.type("float64")

    # ------------------------------------------------------------------ description
    def spec(self) -> dict:
        """The declarative description of this module (class name and constructor args)."""
        return {"type": type(self).__name__, "args": dict(self.__dict__.get("_spec_args", {}))}

    def extra_repr(self) -> str:
        """What goes inside the parentheses of the repr (override in subclasses)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra})" if extra else type(self).__name__

    # ------------------------------------------------------------------ buffers
    def _fit(self, buffer, shape, dtype=None, order=None, like=None):
        """``buffer`` when it already has ``shape``, ``dtype`` (default: the backend's)
        and memory layout, else a new uninitialised array: how declared buffers are reused,
        ``self.cols = self._fit(self.cols, shape)``. ``order`` is an axis order (see
        ``_layout``); ``like=array`` takes ``array``'s shape and layout."""
        if like is not None:
            shape, order = like.shape, axis_order(like)
        if order is None:
            return self.backend.ensure(buffer, shape, dtype)
        return ensure_layout(self.backend, buffer, shape, order, dtype)


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

    def update_grad_input(self, input, grad_output):
        """dE/d(input) alone (no parameter gradient); None when ``compute_grad_input`` is False."""
        if not self.compute_grad_input:
            self.grad_input = None
            return None
        self._backprop(input, grad_output, 1.0, True, False)
        return self.grad_input

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        """Accumulate ``scale * dE/dW`` alone (``grad_input`` is left as it was)."""
        self._backprop(input, grad_output, scale, False, True)

    def backward(self, input, grad_output, scale=1.0):
        """Both halves in one pass; returns ``grad_input`` (None when ``compute_grad_input``
        is False)."""
        self._check_grad_output_kind(grad_output)
        need_input = self.compute_grad_input
        self._backprop(input, grad_output, scale, need_input, True)
        if not need_input:
            self.grad_input = None
        return self.grad_input

    def _backprop(self, input, grad_output, scale, need_input, need_params):
        """The bprop (see the class doc); sets ``self.grad_input`` when ``need_input``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _backprop")


def backprop(module, input, grad_output, scale, need_input, need_params):
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


def has_parameters(module) -> bool:
    """True when ``module`` or a module below it has a trainable array."""
    return any(m._own_parameters() for m in module.modules())


class Criterion(Module):
    """Base class of the cost modules: ``loss = forward(input, target)`` (a float),
    ``grad_input = backward(input, target)`` (dE/d(input)).

    ``size_average`` (default True) divides the loss by the number of samples or
    elements, as each criterion documents.
    """

    def __init__(self, size_average=True):
        super().__init__()
        self.size_average = bool(size_average)

    def forward(self, input, target):
        """The loss (a float) of ``input`` against ``target`` (= :meth:`update_output`
        after input checks)."""
        if self._input_kind == "float":
            self._check_float_input(input)
        return self.update_output(input, target)

    def backward(self, input, target):
        """dE/d(input) for the same ``input`` and ``target`` (= :meth:`update_grad_input`)."""
        return self.update_grad_input(input, target)

    def __call__(self, input, target):
        return self.forward(input, target)

    def update_output(self, input, target):
        """Compute the loss, store it in ``self.output`` and return it (each criterion's
        docstring gives its formula)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_output")

    def update_grad_input(self, input, target):
        """Compute ``self.grad_input`` = dE/d(input) and return it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement update_grad_input")

    def _check_float_target(self, input, target, name="target"):
        """Targets of regression criteria: an array of the input's shape and dtype."""
        if not isinstance(target, self.backend.xp.ndarray) or target.shape != input.shape:
            raise ShapeError(
                f"{self!r}: expected {name} of shape {tuple(input.shape)} like the input, "
                f"got {describe(target)}"
            )
        if target.dtype != input.dtype:
            raise ShapeError(f"{self!r}: expected {name} of dtype {input.dtype}, got {target.dtype}")


def _link_peers(a, b):
    """Record on ``a`` and ``b`` that they share arrays: sharing is transitive, so every
    module of the merged group holds the same weak set of the group's modules."""
    group = weakref.WeakSet()
    for module in (a, b):
        group.add(module)
        group |= module.__dict__.get("_peers") or weakref.WeakSet()
    for module in list(group):
        module.__dict__["_peers"] = group


def _has_nodes(args) -> bool:
    """True when the call arguments contain graph nodes (see :meth:`Module.__call__`)."""
    items = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    return any(getattr(item, "_is_graph_node", False) for item in items)


__all__ = ["Module", "Composite", "Criterion", "State", "saved", "scratch", "backprop", "has_parameters"]
