"""Weights between ember and PyTorch: a ``state_dict`` each way, and torch tensors as data.

ember's array names are PyTorch's (``"0.weight"``: child index, dot, array name), and
ember's layers keep PyTorch's array shapes where the two have the same layer (``Linear``
weight (out, in), ``SpatialConvolution`` weight (out, in, kH, kW), ``BatchNormalization``
weight, bias, running_mean, running_var). So for a ``torch.nn.Sequential`` built like the
ember one (same order of layers, parameterless layers included)::

    torch_net.load_state_dict(ember.interop.to_torch(ember_net))      # ember -> PyTorch
    ember.interop.load_torch(ember_net, torch_net.state_dict())     # PyTorch -> ember

PyTorch's ``num_batches_tracked`` counters (BatchNorm) are written as 0 and ignored on
the way back. A model *file* (``ember.save``) holds the same keys plus ember's own
(the preprocessing, under ``extra/``); :func:`torch_state_dict_from_file` returns
just the model's, so PyTorch's ``load_state_dict`` needs no ``strict=False``.
PyTorch is needed only for the functions that make tensors (``pip install torch``).
"""

from __future__ import annotations

import numpy as np

from .errors import ShapeError

from typing import TYPE_CHECKING, Any
from ._typing import PathLike

if TYPE_CHECKING:
    from .nn.module import Module


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("ember.interop.to_torch needs PyTorch: pip install torch") from None
    return torch


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy array of a torch tensor (detached, on the CPU), or of any array-like."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _batchnorm_counters(module):
    """``{name: 0}`` keys PyTorch's BatchNorm layers have and ember's do not."""
    from .nn.batchnorm import BatchNormalization

    out = {}
    for name, value in module.state_dict().items():
        owner_path, _, attr = name.rpartition(".")
        if attr == "running_mean":
            owner = module if not owner_path else _child(module, owner_path)
            if isinstance(owner, BatchNormalization):
                out[(owner_path + "." if owner_path else "") + "num_batches_tracked"] = 0
    return out


def _child(module, path):
    for index in path.split("."):
        module = module.children()[int(index)]
    return module


def to_torch(module: Module) -> dict:
    """The ember module's weights as a PyTorch ``state_dict`` (an ``OrderedDict`` of CPU
    tensors, copies), ready for ``torch_module.load_state_dict``."""
    from collections import OrderedDict

    torch = _torch()
    state = OrderedDict()
    for name, array in module.state_dict().items():
        state[name] = torch.from_numpy(np.array(module.backend.to_numpy(array), copy=True))
    for name, count in _batchnorm_counters(module).items():
        state[name] = torch.tensor(count, dtype=torch.long)
    return state


def load_torch(module: Module, state_dict: dict[str, Any], strict: bool = True) -> Any:
    """Copy a PyTorch ``state_dict`` (tensors or arrays) into the ember module in place
    (see :meth:`ember.nn.Module.load_state_dict`); ``num_batches_tracked`` keys are
    dropped. Returns the module."""
    state = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    try:
        module.load_state_dict(state, strict=strict)
    except ShapeError as exc:
        raise ShapeError(f"{exc} (is the PyTorch model built with the same layers in the same order?)") from None
    return module


def torch_state_dict_from_file(path: PathLike) -> dict:
    """The model arrays of an ember model file as a PyTorch ``state_dict`` (without the
    ``extra/`` arrays and with BatchNorm counters), for ``load_state_dict(strict=True)``."""
    from . import io

    return to_torch(io.load(path))


__all__ = ["to_numpy", "to_torch", "load_torch", "torch_state_dict_from_file"]
