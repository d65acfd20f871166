"""Builders for Torch7's parameterized layers: linear, convolutions, pooling, shape,
dropout, batch and local contrast normalization, lookup tables (see :mod:`.mapping`)."""

from __future__ import annotations

import numpy as np

from .. import nn
from ..errors import FormatError
from .mapping import _int, _num, _sizes, as_list, builds


def _has_tensor(obj, key):
    """Whether the module has a non-empty tensor ``key`` (Torch7 drops or empties an unused bias)."""
    return getattr(obj.get(key), "size", 0) > 0


@builds("Linear", "LinearNoBias")
def _linear(mapper, obj, path):
    weight = mapper.array(obj, "weight")
    has_bias = _has_tensor(obj, "bias")
    module = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
    mapper.set_params(module, obj, "weight", "bias")
    return module


@builds("SpatialConvolution", "SpatialConvolutionMM")
def _convolution(mapper, obj, path):
    if _int(obj, "groups", 1) != 1:
        raise FormatError("grouped convolutions have no ember equivalent")
    n_in, n_out, kw, kh = (_int(obj, k) for k in ("nInputPlane", "nOutputPlane", "kW", "kH"))
    pad_w = _int(obj, "padW", obj.get("padding", 0))
    pad_h = _int(obj, "padH", obj.get("padding", 0))
    has_bias = _has_tensor(obj, "bias")
    module = nn.SpatialConvolution(n_in, n_out, kw, kh, _int(obj, "dW", 1), _int(obj, "dH", 1), pad_w, pad_h, bias=has_bias)
    mapper.set_params(module, obj, "weight", "bias")  # MM's (out, in*kh*kw) reshapes to (out, in, kh, kw)
    return module


@builds("SpatialDilatedConvolution", "SpatialFullConvolution")
def _convolution_variants(mapper, obj, path):
    n_in, n_out, kw, kh = (_int(obj, k) for k in ("nInputPlane", "nOutputPlane", "kW", "kH"))
    has_bias = _has_tensor(obj, "bias")
    args = (n_in, n_out, kw, kh, _int(obj, "dW", 1), _int(obj, "dH", 1), _int(obj, "padW", 0), _int(obj, "padH", 0))
    if obj.class_name.endswith("DilatedConvolution"):
        module = nn.SpatialDilatedConvolution(*args, _int(obj, "dilationW", 1), _int(obj, "dilationH", 1), bias=has_bias)
    else:  # weight (in, out, kh, kw) in both
        module = nn.SpatialFullConvolution(*args, _int(obj, "adjW", 0), _int(obj, "adjH", 0), bias=has_bias)
    mapper.set_params(module, obj, "weight", "bias")
    return module


@builds("SpatialZeroPadding")
def _zero_padding(mapper, obj, path):
    pads = [_int(obj, k) for k in ("pad_l", "pad_r", "pad_t", "pad_b")]
    if min(pads) < 0:
        raise FormatError(f"negative padding (cropping) {pads} has no ember equivalent")
    return nn.SpatialZeroPadding(*pads)


@builds("SpatialAdaptiveMaxPooling", "SpatialAdaptiveAveragePooling")
def _adaptive_pooling(mapper, obj, path):
    return getattr(nn, obj.class_name.split(".")[-1])(_int(obj, "W"), _int(obj, "H"))


@builds("SpatialConvolutionMap")
def _convolution_map(mapper, obj, path):
    table = np.asarray(obj["connTable"], dtype=np.float64).reshape(-1, 2)
    if not np.all(np.isfinite(table)) or np.any(table != np.round(table)) or np.any(table < 1):
        raise FormatError("the connection table must hold 1-based plane indices")
    table = table.astype(np.int64) - 1  # 1-based [input, output] rows
    module = nn.SpatialConvolutionMap(table, _int(obj, "kW"), _int(obj, "kH"), _int(obj, "dW", 1), _int(obj, "dH", 1))
    mapper.set_params(module, obj, "weight", "bias")
    return module


@builds("TemporalConvolution")
def _temporal_convolution(mapper, obj, path):
    module = nn.TemporalConvolution(_int(obj, "inputFrameSize"), _int(obj, "outputFrameSize"), _int(obj, "kW"), _int(obj, "dW", 1))
    mapper.set_params(module, obj, "weight", "bias")
    return module


@builds("SpatialMaxPooling")
def _max_pooling(mapper, obj, path):
    kw, kh = _int(obj, "kW"), _int(obj, "kH")
    return nn.SpatialMaxPooling(kw, kh, _int(obj, "dW", kw), _int(obj, "dH", kh), _int(obj, "padW", 0),
                                _int(obj, "padH", 0), ceil_mode=bool(obj.get("ceil_mode", False)))  # fmt: skip


@builds("SpatialAveragePooling")
def _average_pooling(mapper, obj, path):
    if obj.get("divide", True) is False:
        raise FormatError("divide=false (a window sum) has no ember equivalent")
    return nn.SpatialAveragePooling(_int(obj, "kW"), _int(obj, "kH"), _int(obj, "dW", 1), _int(obj, "dH", 1),
                                    _int(obj, "padW", 0), _int(obj, "padH", 0), ceil_mode=bool(obj.get("ceil_mode", False)),
                                    count_include_pad=bool(obj.get("count_include_pad", True))
                                    and "EXCLUDE" not in str(obj.get("mode", "")))  # cudnn keeps it in `mode`  # fmt: skip


@builds("TemporalMaxPooling")
def _temporal_max_pooling(mapper, obj, path):
    return nn.TemporalMaxPooling(_int(obj, "kW"), _int(obj, "dW", _int(obj, "kW")))


@builds("SpatialLPPooling")
def _lp_pooling(mapper, obj, path):
    inner = [m.class_name for m in as_list(obj.get("modules"))]
    if inner == ["nn.Square", "nn.SpatialSubSampling", "nn.Sqrt"]:
        p = 2
    elif len(inner) == 3 and inner[0] == "nn.Power" and inner[2] == "nn.Power":
        p = as_list(obj["modules"])[0].get("pow")
    else:
        raise FormatError(f"unexpected inner modules {inner}")
    sampling = as_list(obj["modules"])[1]
    weight, bias = np.asarray(sampling["weight"], dtype="float64"), np.asarray(sampling["bias"])
    if weight.size == 0 or not (np.all(weight == weight.flat[0]) and np.all(bias == 0)):
        raise FormatError("its SpatialSubSampling has trained per-plane weights or biases; ember's LP pooling is a plain sum")
    kw, kh = _int(obj, "kW"), _int(obj, "kH")
    # Torch7 applies x^p directly (no absolute value) before the weighted window sum
    pooling = nn.SpatialLPPooling(_int(obj, "nInputPlane"), p, kw, kh, _int(obj, "dW", kw), _int(obj, "dH", kh), use_abs=False)
    scale = float(weight.flat[0]) ** (1.0 / p)  # (c sum x^p)^(1/p) = c^(1/p) (sum x^p)^(1/p)
    return pooling if scale == 1 else nn.Sequential(pooling, nn.MulConstant(scale))


@builds("View", "Reshape")
def _view(mapper, obj, path):
    size = _sizes(obj["size"], "size")
    return (nn.View if obj.class_name.endswith("View") else nn.Reshape)(*size)


@builds("Dropout", "SpatialDropout")
def _dropout(mapper, obj, path):
    cls = nn.SpatialDropout if obj.class_name.endswith("SpatialDropout") else nn.Dropout
    # Dropout(p, v1) stores v2 = not v1; files from before v2 existed used v1's scaling
    v1 = not obj.get("v2", False)
    return cls(_num(obj, "p", 0.5), v1=v1) if cls is nn.Dropout else cls(_num(obj, "p", 0.5))


@builds("BatchNormalization", "SpatialBatchNormalization")
def _batchnorm(mapper, obj, path):
    cls = nn.SpatialBatchNormalization if "Spatial" in obj.class_name else nn.BatchNormalization
    mean = mapper.array(obj, "running_mean")
    affine = _has_tensor(obj, "weight")
    module = cls(mean.shape[0], eps=_num(obj, "eps", 1e-5), momentum=_num(obj, "momentum", 0.1), affine=affine)
    mapper.set_params(module, obj, "weight", "bias", "running_mean")
    if obj.get("running_var") is not None:
        mapper.set_params(module, obj, "running_var")
    elif obj.get("running_std") is not None:  # files before nn's version 2 kept 1 / sqrt(var + eps)
        std = np.asarray(obj["running_std"], dtype="float64")
        module.running_var = (1.0 / std**2 - module.eps).astype("float32")
    return module


@builds("SpatialSubtractiveNormalization", "SpatialDivisiveNormalization", "SpatialContrastiveNormalization")
def _lcn(mapper, obj, path):
    cls = getattr(nn, obj.class_name.split(".")[-1])
    kernel = np.array(obj["kernel"], dtype="float64")
    kw = {"threshold": _num(obj, "threshold", 1e-4), "thresval": _num(obj, "thresval", 1e-4)} if "Subtractive" not in obj.class_name else {}
    return cls(_int(obj, "nInputPlane", 1), kernel, **kw)


@builds("LookupTable")
def _lookup(mapper, obj, path):
    weight = mapper.array(obj, "weight")
    padding = _int(obj, "paddingValue", 0)
    module = nn.LookupTable(weight.shape[0], weight.shape[1], padding_index=padding - 1 if padding > 0 else None)
    max_norm = obj.get("maxNorm")
    if isinstance(max_norm, (int, float)) and not isinstance(max_norm, bool) and 0 < max_norm < float("inf"):
        # Torch7 renormalizes each looked-up row to at most maxNorm before using it; doing it
        # to every row once gives the same outputs (the renorm is idempotent)
        p = _num(obj, "normType", 2)
        norms = np.linalg.norm(weight.astype("float64"), ord=p, axis=1, keepdims=True)
        weight = (weight * np.minimum(1.0, max_norm / np.maximum(norms, 1e-7))).astype("float32")
    module.weight = weight
    return module
