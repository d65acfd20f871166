"""Torch7 objects (from :mod:`ember.t7.reader`) to ember modules.

Each Torch7 class name maps to a builder that calls the ember module's public
constructor with the object's fields and then assigns its parameters (``weight``,
``bias``, running statistics). Indices stored 1-based by Torch7 (connection tables,
table indices, padding values) become 0-based; axes become ember's (batch-first) ones.
Tensors that share storage in the file (``clone('weight', 'bias')``) become one array.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import nn
from ..errors import FormatError
from .reader import TorchObject

from .._typing import PathLike

if TYPE_CHECKING:
    from ..nn.module import Module


class UnmappedClassError(FormatError):
    """A Torch7 class with no ember equivalent, named with its path in the module tree."""


def as_list(table: Any, what: str = "table") -> list[Any]:
    """A Lua array table ``{1: a, 2: b, ...}`` as a Python list."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise FormatError(f"{what}: expected a table, got {type(table).__name__}")
    return [table[i] for i in range(1, len(table) + 1) if i in table]


class Mapper:
    """Build ember modules from a Torch7 object tree, remembering what was built so a
    module (or tensor) that appears twice in the file is one ember module (array)."""

    def __init__(self) -> None:
        self.modules: dict[Any, Any] = {}
        self.arrays: dict[Any, Any] = {}

    def module(self, obj: Any, path: str = "model") -> Any:
        """The ember module for the Torch7 object ``obj`` found at ``path``."""
        if not isinstance(obj, TorchObject):
            raise FormatError(f"{path}: expected a Torch7 module, got {type(obj).__name__}")
        if id(obj) in self.modules:
            return self.modules[id(obj)]
        name = obj.class_name.split(".", 1)[-1] if obj.class_name.startswith("cudnn.") else obj.class_name
        builder = BUILDERS.get(name) or BUILDERS.get(name.removeprefix("nn."))
        if builder is None:
            raise UnmappedClassError(f"{path}: Torch7 class {obj.class_name!r} has no ember mapping (use partial=True for the raw object)")
        try:
            module = builder(self, obj, f"{path}<{obj.class_name}>")
        except UnmappedClassError:
            raise
        except (FormatError, ValueError, TypeError, KeyError, IndexError, ArithmeticError, AttributeError) as exc:
            raise FormatError(f"{path}: cannot map {obj.class_name}: {exc}") from None
        self.modules[id(obj)] = module
        return module

    def children(self, obj: Any, path: PathLike) -> list[Module]:
        """The mapped ``modules`` of a container."""
        return [self.module(m, f"{path}.modules[{i}]") for i, m in enumerate(as_list(obj.get("modules"), "modules"), 1)]

    def array(self, obj: Any, key: str, shape: tuple[int, ...] | None = None, required: bool = True) -> Any:
        """Field ``key`` as a float32 array (reshaped to ``shape``), shared when the file
        shares the tensor or its exact view of a storage."""
        tensor = obj.get(key)
        if tensor is None or (isinstance(tensor, np.ndarray) and tensor.size == 0 and shape is None):
            if required:
                raise FormatError(f"missing tensor {key!r}")
            return None
        if not isinstance(tensor, np.ndarray):
            raise FormatError(f"{key!r} is not a tensor")
        address = tensor.__array_interface__["data"][0]
        ident = (address, tensor.shape, tensor.strides, tensor.dtype.str, shape)
        if ident not in self.arrays:
            with np.errstate(over="ignore"):
                value = np.array(tensor, dtype="float32")
            if tensor.dtype.itemsize > 4 and not np.isfinite(value).all() and np.isfinite(tensor).all():
                raise FormatError(f"{key!r} holds values beyond float32's range (corrupted file?)")
            if shape is not None:
                if value.size != int(np.prod(shape)):
                    raise FormatError(f"{key!r} of shape {tensor.shape} does not fit {tuple(shape)}")
                value = value.reshape(shape)
            self.arrays[ident] = value
        return self.arrays[ident]

    def set_params(self, module: Module, obj: Any, *names: Any) -> None:
        """Assign Torch7 tensors to same-named ember attributes, checking shapes."""
        for name in names:
            target = getattr(module, name, None)
            if target is None:
                continue
            value = self.array(obj, name, target.shape)
            setattr(module, name, value)


def _int(obj, key, default=None):
    value = obj.get(key, default)
    if value is None:
        raise FormatError(f"missing field {key!r}")
    if isinstance(value, bool) or not float(value).is_integer():
        raise FormatError(f"field {key!r} = {value!r} is not an integer")
    return int(value)


def _num(obj, key, default=None):
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(f"field {key!r} = {value!r} is not a number")
    return value


def _sizes(value, what):
    """A LongStorage/tensor or a table of sizes as a tuple of ints."""
    if isinstance(value, dict):
        value = as_list(value, what)
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


def _axis(obj, dim, buffer: str="output"):
    """Torch7's 1-based dimension ``dim`` of the arrays a module saw, as an ember axis.

    Torch7 counts from the front of whatever it gets, so ``Concat(1)`` on single (C, H, W)
    samples and ``Concat(2)`` on (N, C, H, W) batches both mean the planes. The buffer
    Torch7 saved with the module (its last ``output``, or ``gradInput`` for the input)
    gives the rank it ran at, which turns the dimension into an axis from the end: right
    for ember's batches either way. Without that buffer the dimension is taken as written
    for batches (counted from the front, 0-based)."""
    if dim <= 0:
        return dim
    saved = obj.get(buffer)
    if isinstance(saved, np.ndarray) and saved.size and saved.ndim >= dim:
        return dim - 1 - saved.ndim
    return dim - 1


BUILDERS = {}


def builds(*names: Any) -> Any:
    """Register a builder for the Torch7 class names (``nn.`` prefix omitted)."""

    def register(function):
        for name in names:
            BUILDERS[name] = function
        return function

    return register


def _simple(cls, **fields):
    """A builder calling ``cls(**{arg: obj[field]})`` with numeric fields and defaults."""

    def value(obj, key, default):
        if isinstance(default, bool):  # a flag such as sizeAverage
            flag = obj.get(key, default)
            if not isinstance(flag, bool):
                raise FormatError(f"field {key!r} = {flag!r} is not a boolean")
            return flag
        return _num(obj, key, default)

    def build(mapper, obj, path):
        return cls(**{arg: value(obj, key, default) for arg, (key, default) in fields.items()})

    return build


for _name in ("Tanh", "Sigmoid", "Abs", "Square", "Exp", "Log", "Identity", "CAddTable", "CSubTable",
              "CMulTable", "CDivTable", "CMaxTable", "CMinTable", "FlattenTable", "DotProduct", "CosineDistance",
              "LogSumExp"):  # fmt: skip
    BUILDERS[_name] = _simple(getattr(nn, _name))
BUILDERS.update({
    "ReLU": _simple(nn.ReLU, inplace=("inplace", False)),  # Torch7's nn.ReLU(true): same numbers, see ReLU
    "Threshold": _simple(nn.Threshold, threshold=("threshold", 1e-6), value=("val", 0.0)),
    "HardTanh": _simple(nn.HardTanh, min_value=("min_val", -1.0), max_value=("max_val", 1.0)),
    "SoftPlus": _simple(nn.SoftPlus, beta=("beta", 1.0), threshold=("threshold", 20.0)),
    "SoftShrink": _simple(nn.SoftShrink, lambd=("lambda", 0.5)),
    "HardShrink": _simple(nn.HardShrink, lambd=("lambda", 0.5)),
    "Power": _simple(nn.Power, p=("pow", 1.0)),
    "AddConstant": _simple(nn.AddConstant, constant=("constant_scalar", 0.0)),
    "MulConstant": _simple(nn.MulConstant, constant=("constant_scalar", 1.0)),
    "PairwiseDistance": _simple(nn.PairwiseDistance, p=("norm", 2)),
    "MSECriterion": _simple(nn.MSECriterion, size_average=("sizeAverage", True)),
    "DistKLDivCriterion": _simple(nn.DistKLDivCriterion, size_average=("sizeAverage", True)),
    "AbsCriterion": _simple(nn.AbsCriterion, size_average=("sizeAverage", True)),
    "SmoothL1Criterion": _simple(nn.SmoothL1Criterion, size_average=("sizeAverage", True)),
    "MarginCriterion": _simple(nn.MarginCriterion, margin=("margin", 1.0), size_average=("sizeAverage", True)),
    "HingeEmbeddingCriterion": _simple(nn.HingeEmbeddingCriterion, margin=("margin", 1.0), size_average=("sizeAverage", True)),
    "L1HingeEmbeddingCriterion": _simple(nn.L1HingeEmbeddingCriterion, margin=("margin", 1.0)),
    "CosineEmbeddingCriterion": _simple(nn.CosineEmbeddingCriterion, margin=("margin", 0.0), size_average=("sizeAverage", True)),
    "MarginRankingCriterion": _simple(nn.MarginRankingCriterion, margin=("margin", 0.0), size_average=("sizeAverage", True)),
})  # fmt: skip


def _softmax(cls):
    def build(mapper, obj, path):
        # cudnn's 'CUDNN_SOFTMAX_MODE_CHANNEL' normalizes over the planes of (N, C, H, W)
        return cls(dim=1) if obj.get("mode") == "CUDNN_SOFTMAX_MODE_CHANNEL" else cls()

    return build


BUILDERS.update({"SoftMax": _softmax(nn.SoftMax), "LogSoftMax": _softmax(nn.LogSoftMax),
                 "SpatialSoftMax": _softmax(nn.SpatialSoftMax), "SpatialLogSoftMax": _softmax(nn.SpatialLogSoftMax)})  # fmt: skip


@builds("Sqrt")
def _sqrt(mapper, obj, path):
    eps = _num(obj, "eps", 0)  # Torch7's Sqrt(b) computes sqrt(x + b)
    return nn.Sqrt() if eps == 0 else nn.Sequential(nn.AddConstant(eps), nn.Sqrt())


@builds("Sum", "Mean", "Max", "Min")
def _reduction(mapper, obj, path):
    name = obj.class_name.split(".")[-1]
    dim, n_dims = _int(obj, "dimension", 1), obj.get("nInputDims")
    axis = dim - 1 - _int(obj, "nInputDims") if isinstance(n_dims, int) and dim > 0 else _axis(obj, dim, "gradInput")
    if name == "Sum":
        return nn.Sum(axis, size_average=bool(obj.get("sizeAverage", False)))
    return getattr(nn, name)(axis)


@builds("Sequential")
def _sequential(mapper, obj, path):
    return nn.Sequential(*mapper.children(obj, path))


@builds("ConcatTable", "ParallelTable")
def _branches(mapper, obj, path):
    return getattr(nn, obj.class_name.split(".")[-1])(*mapper.children(obj, path))


@builds("Concat", "DepthConcat")
def _concat(mapper, obj, path):
    if obj.class_name.endswith("DepthConcat"):
        raise FormatError("DepthConcat pads its children's outputs; ember's Concat does not")
    return nn.Concat(_axis(obj, _int(obj, "dimension")), *mapper.children(obj, path))


@builds("Parallel")
def _parallel(mapper, obj, path):
    return nn.Parallel(_axis(obj, _int(obj, "inputDimension"), "gradInput"), _axis(obj, _int(obj, "outputDimension")),
                       *mapper.children(obj, path))  # fmt: skip


@builds("ClassNLLCriterion", "CrossEntropyCriterion", "BCECriterion")
def _weighted_criterion(mapper, obj, path):
    name = obj.class_name.split(".")[-1]
    source = obj.get("nll") if name == "CrossEntropyCriterion" and isinstance(obj.get("nll"), TorchObject) else obj
    weights = mapper.array(source, "weights", required=False)
    kwargs = {}
    ignore = source.get("ignoreIndex")
    if name != "BCECriterion" and isinstance(ignore, int) and not isinstance(ignore, bool) and ignore > 0:
        kwargs["ignore_index"] = ignore - 1  # Torch7's class indices are 1-based
    return getattr(nn, name)(weights=weights, size_average=bool(source.get("sizeAverage", True)), **kwargs)


@builds("MultiMarginCriterion")
def _multi_margin(mapper, obj, path):
    return nn.MultiMarginCriterion(p=_int(obj, "p", 1), weights=mapper.array(obj, "weights", required=False),
                                   margin=_num(obj, "margin", 1.0), size_average=bool(obj.get("sizeAverage", True)))  # fmt: skip


@builds("JoinTable", "SplitTable")
def _join_split(mapper, obj, path):
    name = obj.class_name.split(".")[-1]
    dim, n_dims = _int(obj, "dimension"), obj.get("nInputDims")
    if n_dims is not None and dim > 0:  # Torch7 counts dim inside each sample: an axis from the end fits batches too
        return getattr(nn, name)(dim - 1 - _int(obj, "nInputDims"))
    return getattr(nn, name)(_axis(obj, dim, "output" if name == "JoinTable" else "gradInput"))


@builds("SelectTable")
def _select(mapper, obj, path):
    index = _int(obj, "index")
    return nn.SelectTable(index - 1 if index > 0 else index)


@builds("NarrowTable")
def _narrow(mapper, obj, path):
    return nn.NarrowTable(_int(obj, "offset") - 1, _int(obj, "length", 1))


@builds("Replicate")
def _replicate(mapper, obj, path):
    n_dim, dim = obj.get("nDim"), _int(obj, "dim", 1)
    if isinstance(n_dim, int) and not isinstance(n_dim, bool):  # (Torch7's default is math.huge: no batch rule)
        # a sample's output has nDim + 1 axes; dim counts in it from the front
        return nn.Replicate(_int(obj, "nfeatures"), dim - 2 - n_dim)
    return nn.Replicate(_int(obj, "nfeatures"), _axis(obj, dim))


@builds("Add", "CMul", "Mul")
def _elementwise_params(mapper, obj, path):
    name = obj.class_name.split(".")[-1]
    weight = mapper.array(obj, "bias" if name == "Add" else "weight")
    module = nn.Add(weight.size, scalar=bool(obj.get("scalar", False))) if name == "Add" else (
        nn.CMul(*weight.shape) if name == "CMul" else nn.Mul())  # fmt: skip
    mapper.set_params(module, obj, "bias" if name == "Add" else "weight")
    return module


@builds("Euclidean", "Cosine")
def _prototypes(mapper, obj, path):
    weight = mapper.array(obj, "weight")
    name = obj.class_name.split(".")[-1]
    # Torch7's Euclidean keeps weight as (inputSize, outputSize); Cosine as (outputSize, inputSize)
    n_in, n_out = weight.shape if name == "Euclidean" else weight.shape[::-1]
    module = getattr(nn, name)(n_in, n_out)
    value = weight.T if name == "Euclidean" and module.weight.shape != weight.shape else weight
    module.weight = np.ascontiguousarray(value).reshape(module.weight.shape)
    return module


from . import graph_map, layers_map  # noqa: E402,F401  (register the layer, gModule and recurrent builders)
