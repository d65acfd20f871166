"""An independent reference for Torch7 models in the tests: the ``torchfile`` package
(PyPI) reads the file, and plain NumPy (float64) computes the forward pass from the
layer definitions of Torch7's nn documentation, one sample at a time as Torch7 would."""

from __future__ import annotations

import numpy as np

torchfile = None
try:  # optional test-only dependency
    import torchfile
except ImportError:  # pragma: no cover
    pass


def load(path):
    """The raw object tree, as torchfile reads it (strings decoded, tables as dicts)."""
    return torchfile.load(str(path), use_list_heuristic=False, utf8_decode_strings=True)


def kind(obj):
    name = obj._typename
    return (name.decode() if isinstance(name, bytes) else name).split(".")[-1]


def field(obj, key, default=None):
    fields = obj if isinstance(obj, dict) else obj._obj
    return fields.get(key, fields.get(key.encode(), default))


def items(table):
    return [table[k] for k in sorted(table)]


def _windows(x, kh, kw, dh, dw):
    """(C, H, W) -> (C, OH, OW, kh, kw) views of the windows."""
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return view[:, ::dh, ::dw]


def _conv(x, weight, bias, obj):
    pad_w, pad_h = int(field(obj, "padW", 0) or 0), int(field(obj, "padH", 0) or 0)
    x = np.pad(x, ((0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    kh, kw = int(field(obj, "kH")), int(field(obj, "kW"))
    weight = weight.reshape(weight.shape[0], -1, kh, kw)
    win = _windows(x, kh, kw, int(field(obj, "dH", 1)), int(field(obj, "dW", 1)))
    return np.einsum("chwij,ocij->ohw", win, weight) + bias[:, None, None]


def forward(obj, x):
    """Torch7's forward of module ``obj`` on one sample ``x`` (float64)."""
    name = kind(obj)
    w = lambda key: np.asarray(field(obj, key), dtype=np.float64)  # noqa: E731
    if name == "Sequential":
        for child in items(field(obj, "modules")):
            x = forward(child, x)
        return x
    if name == "Linear":
        return w("weight") @ x + w("bias")
    if name == "LinearNoBias":
        return w("weight") @ x
    if name == "Sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "ConcatTable":
        return [forward(child, x) for child in items(field(obj, "modules"))]
    if name == "ParallelTable":
        return [forward(child, part) for child, part in zip(items(field(obj, "modules")), x)]
    if name == "NarrowTable":
        offset = int(field(obj, "offset")) - 1
        return x[offset : offset + int(field(obj, "length"))]
    if name == "SelectTable":
        return x[int(field(obj, "index")) - 1]
    if name == "SplitTable":  # one sample: Torch7's dimension counts from 1
        return list(np.moveaxis(x, int(field(obj, "dimension")) - 1, 0))
    if name == "FlattenTable":
        flat = []
        for part in x:
            flat.extend(part if isinstance(part, list) else [part])
        return flat
    if name == "CMulTable":
        return np.prod(np.stack(x), axis=0)
    if name == "ReLU":
        return np.maximum(x, 0)
    if name == "Tanh":
        return np.tanh(x)
    if name == "LogSoftMax":
        shifted = x - x.max()
        return shifted - np.log(np.exp(shifted).sum())
    if name in ("View", "Reshape"):
        return x.reshape([int(s) for s in np.asarray(field(obj, "size")).reshape(-1)])
    if name in ("SpatialConvolution", "SpatialConvolutionMM"):
        return _conv(x, w("weight"), w("bias"), obj)
    if name == "SpatialMaxPooling":
        return _windows(x, int(field(obj, "kH")), int(field(obj, "kW")), int(field(obj, "dH")), int(field(obj, "dW"))).max(axis=(3, 4))
    if name == "SpatialConvolutionMap":
        table = np.asarray(field(obj, "connTable"), dtype=int).reshape(-1, 2) - 1
        weight, bias = w("weight"), w("bias")
        out = None
        for k, (i, o) in enumerate(table):
            part = _conv(x[i : i + 1], weight[k][None, None], np.zeros(1), obj)[0]
            out = np.zeros((len(bias),) + part.shape) if out is None else out
            out[o] += part
        return out + bias[:, None, None]
    if name == "SpatialLPPooling":
        square, sampling, root = items(field(obj, "modules"))
        weight = np.asarray(field(sampling, "weight"), dtype=np.float64).reshape(x.shape[0], -1)
        kh, kw = int(field(obj, "kH")), int(field(obj, "kW"))
        win = _windows(x**2, kh, kw, int(field(obj, "dH")), int(field(obj, "dW")))
        kernel = (weight if weight.shape[1] == kh * kw else np.repeat(weight[:, :1], kh * kw, 1)).reshape(-1, 1, 1, kh, kw)
        return np.sqrt((win * kernel).sum(axis=(3, 4)) + np.asarray(field(sampling, "bias"), dtype=np.float64)[:, None, None])
    if name == "TemporalConvolution":
        kw, dw = int(field(obj, "kW")), int(field(obj, "dW", 1))
        frames = np.stack([x[t : t + kw].reshape(-1) for t in range(0, x.shape[0] - kw + 1, dw)])
        return frames @ w("weight").T + w("bias")
    if name == "TemporalMaxPooling":
        kw, dw = int(field(obj, "kW")), int(field(obj, "dW"))
        return np.stack([x[t : t + kw].max(axis=0) for t in range(0, x.shape[0] - kw + 1, dw)])
    if name == "Identity":
        return x
    if name == "CAddTable":
        return sum(x)
    if name == "gModule":
        return _graph(obj, x)
    raise NotImplementedError(name)


def _graph(obj, x):
    """nngraph's forward: nodes in topological order; a node gets its parents' outputs."""
    values = {}
    innode, outnode = field(field(obj, "innode"), "data"), field(field(obj, "outnode"), "data")
    for node in items(field(obj, "forwardnodes")):
        data = field(node, "data")
        parents = [values[id(p)] for p in items({k: v for k, v in field(data, "mapindex", {}).items() if isinstance(k, (int, float))})]
        if data is innode:
            values[id(data)] = x
            continue
        inputs = parents[0] if len(parents) == 1 else parents
        module, select = field(data, "module"), field(data, "selectindex")
        if module is not None:
            values[id(data)] = forward(module, inputs)
        elif select is not None:
            values[id(data)] = inputs[int(select) - 1]
        else:
            values[id(data)] = inputs
    return values[id(outnode)]
