"""Torch7 classes -> ember modules, on files written from the documented layout
(tests/t7_writer.py): each class's saved fields and the function ember then computes,
checked against NumPy formulas from Torch7's nn documentation."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn
from ember.errors import FormatError
from ember.t7 import deep_recursion, read_t7
from t7_writer import Obj, Tensor, dumps, sample_mlp


def test_shared_parameters_stay_shared(tmp_path):
    path = tmp_path / "shared.t7"
    path.write_bytes(dumps(sample_mlp(shared=True)))
    model = ember.load_t7(path)
    assert model[0].weight is model[3][0].weight


def test_one_based_indices_become_zero_based(tmp_path):
    conv = Obj("nn.SpatialConvolutionMap", {"connTable": Tensor("Double", np.array([[1, 2], [2, 1]], float)), "kW": 1, "kH": 1,
               "dW": 1, "dH": 1, "weight": Tensor("Double", np.array([2.0, 3.0]).reshape(2, 1, 1)), "bias": Tensor("Double", np.zeros(2))})  # fmt: skip
    seq = Obj("nn.Sequential", {"modules": {1: conv}})
    path = tmp_path / "map.t7"
    path.write_bytes(dumps(seq))
    model = ember.load_t7(path)
    x = np.stack([np.full((1, 1), 1.0), np.full((1, 1), 10.0)])[None].astype("float32")  # planes 0 and 1
    out = model.forward(x)
    assert out[0, 1, 0, 0] == pytest.approx(2.0) and out[0, 0, 0, 0] == pytest.approx(30.0)
    table = Obj("nn.LookupTable", {"weight": Tensor("Double", np.eye(3)), "paddingValue": 2})
    path.write_bytes(dumps(table))
    assert ember.load_t7(path).padding_index == 1


def test_deeply_nested_containers_map_or_raise_format_error(tmp_path):
    module = Obj("nn.ReLU", {})
    for _ in range(330):  # each container is three levels of the file: object, fields, modules
        module = Obj("nn.Sequential", {"modules": {1: module}})
    path = tmp_path / "deep.t7"
    with deep_recursion():  # (for the test's own recursive writer)
        path.write_bytes(dumps(module))
    try:
        net = ember.load_t7(path)
    except FormatError:
        return
    assert isinstance(net, nn.Sequential)


def test_dimensions_of_a_model_run_on_single_samples_fit_ember_batches(tmp_path):
    # Torch7 Concat(1) on (C, H, W) samples joins planes; the saved output shows the rank
    branch = Obj("nn.Identity", {})
    concat = Obj("nn.Concat", {"dimension": 1, "modules": {1: branch, 2: branch}, "output": Tensor("Double", np.zeros((2, 3, 3)))})
    replicate = Obj("nn.Replicate", {"nfeatures": 2, "dim": 1, "nDim": 3})
    path = tmp_path / "dims.t7"
    path.write_bytes(dumps(Obj("nn.Sequential", {"modules": {1: concat, 2: replicate}})))
    model = ember.load_t7(path)
    x = np.arange(2 * 1 * 3 * 3, dtype="float32").reshape(2, 1, 3, 3)
    out = model.forward(x)
    assert out.shape == (2, 2, 2, 3, 3)  # planes joined on axis 1, then copies inserted before them
    np.testing.assert_array_equal(out[:, 0, 1], x[:, 0])


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


TRANSFER = [
    ("nn.ReLU", {"threshold": 0, "val": 0}, lambda x: np.maximum(x, 0)),
    ("cudnn.ReLU", {}, lambda x: np.maximum(x, 0)),
    ("nn.Tanh", {}, np.tanh),
    ("nn.Sigmoid", {}, _sigmoid),
    ("nn.Threshold", {"threshold": 0.5, "val": -2.0}, lambda x: np.where(x > 0.5, x, -2.0)),
    ("nn.HardTanh", {"min_val": -0.5, "max_val": 0.7}, lambda x: np.clip(x, -0.5, 0.7)),
    ("nn.SoftPlus", {"beta": 2.0, "threshold": 20}, lambda x: np.log1p(np.exp(2 * x)) / 2),
    ("nn.SoftShrink", {"lambda": 0.3}, lambda x: np.sign(x) * np.maximum(np.abs(x) - 0.3, 0)),
    ("nn.HardShrink", {"lambda": 0.3}, lambda x: np.where(np.abs(x) > 0.3, x, 0)),
    ("nn.Abs", {}, np.abs),
    ("nn.Square", {}, np.square),
    ("nn.Sqrt", {"eps": 0.1}, lambda x: np.sqrt(np.abs(x) + 0.1)),
    ("nn.Power", {"pow": 3}, lambda x: x**3),
    ("nn.Exp", {}, np.exp),
    ("nn.Log", {}, lambda x: np.log(np.abs(x))),
    ("nn.AddConstant", {"constant_scalar": 1.5}, lambda x: x + 1.5),
    ("nn.MulConstant", {"constant_scalar": -2.0}, lambda x: x * -2.0),
    ("nn.SoftMax", {}, lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    ("nn.LogSoftMax", {}, lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    ("nn.LogSumExp", {}, lambda x: np.log(np.exp(x).sum(-1))),
    ("nn.Identity", {}, lambda x: x),
]


@pytest.mark.parametrize("name,fields,function", TRANSFER, ids=[t[0] for t in TRANSFER])
def test_every_transfer_function_maps_with_torch7_fields(tmp_path, name, fields, function):
    path = tmp_path / "f.t7"
    path.write_bytes(dumps(Obj(name, dict(fields, train=True, output=Tensor("Float", np.zeros(0))))))
    module = ember.load_t7(path)
    x = np.random.default_rng(1).standard_normal((4, 5))
    if name in ("nn.Sqrt", "nn.Log"):
        x = np.abs(x)
    np.testing.assert_allclose(module.forward(x.astype("float32")), function(x), rtol=1e-5, atol=1e-6)


def _load_obj(tmp_path, obj):
    path = tmp_path / "one.t7"
    path.write_bytes(dumps(obj))
    return ember.load_t7(path)


def test_batch_normalization_keeps_running_statistics(tmp_path):
    rng = np.random.default_rng(2)
    mean, var, w, b = rng.standard_normal(3), rng.uniform(0.5, 2, 3), rng.standard_normal(3), rng.standard_normal(3)
    fields = {"eps": 1e-3, "momentum": 0.1, "affine": True, "running_mean": Tensor("Cuda", mean),
              "running_var": Tensor("Cuda", var), "weight": Tensor("Cuda", w), "bias": Tensor("Cuda", b)}  # fmt: skip
    bn = _load_obj(tmp_path, Obj("cudnn.SpatialBatchNormalization", fields))
    bn.evaluate()
    x = rng.standard_normal((2, 3, 4, 4))
    expected = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-3) * w[:, None, None] + b[:, None, None]
    np.testing.assert_allclose(bn.forward(x.astype("float32")), expected, rtol=1e-4, atol=1e-5)
    # nn before version 2 saved running_std = 1 / sqrt(var + eps)
    legacy = dict(fields, running_std=Tensor("Double", 1 / np.sqrt(var + 1e-3)))
    del legacy["running_var"]
    old = _load_obj(tmp_path, Obj("nn.SpatialBatchNormalization", legacy, version=1))
    np.testing.assert_allclose(old.running_var, var, rtol=1e-5)


def test_convolution_mm_weights_reshape_and_match_a_direct_convolution(tmp_path):
    rng = np.random.default_rng(3)
    weight, bias = rng.standard_normal((4, 2, 3, 3)), rng.standard_normal(4)
    fields = {"nInputPlane": 2, "nOutputPlane": 4, "kW": 3, "kH": 3, "dW": 1, "dH": 1, "padW": 1, "padH": 1,
              "weight": Tensor("Float", weight.reshape(4, 18)), "bias": Tensor("Float", bias)}  # fmt: skip
    conv = _load_obj(tmp_path, Obj("nn.SpatialConvolutionMM", fields))
    x = rng.standard_normal((1, 2, 5, 5))
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    expected = np.einsum("chwij,ocij->ohw", windows, weight) + bias[:, None, None]
    np.testing.assert_allclose(conv.forward(x.astype("float32"))[0], expected, rtol=1e-4, atol=1e-4)


def test_dropout_flags_lcn_and_criteria_keep_their_settings(tmp_path):
    assert _load_obj(tmp_path, Obj("nn.Dropout", {"p": 0.3, "v2": True})).v1 is False
    assert _load_obj(tmp_path, Obj("nn.Dropout", {"p": 0.3}, version=0)).v1 is True  # before v2 existed
    kernel = np.ones((5, 5))
    lcn = _load_obj(tmp_path, Obj("nn.SpatialContrastiveNormalization", {"nInputPlane": 3, "kernel": Tensor("Double", kernel), "threshold": 0.01, "thresval": 0.02}))
    assert isinstance(lcn, nn.SpatialContrastiveNormalization) and lcn.divisive.threshold == 0.01 and lcn.divisive.thresval == 0.02
    weights = np.array([1.0, 2.0, 0.5])
    nll = _load_obj(tmp_path, Obj("nn.ClassNLLCriterion", {"weights": Tensor("Float", weights), "sizeAverage": False}))
    logp = np.log(np.full((2, 3), 1 / 3))
    target = np.array([2, 0])  # 0-based in ember (Torch7's 3 and 1)
    assert nll.forward(logp.astype("float32"), target) == pytest.approx(-(0.5 * logp[0, 2] + 1.0 * logp[1, 0]), rel=1e-5)


def test_gmodule_with_a_split_module_output_and_two_outputs(tmp_path):
    """nngraph: x -> Linear -> ConcatTable(Tanh, Sigmoid) -> :split(2) -> two outputs."""
    rng = np.random.default_rng(4)
    weight, bias = rng.standard_normal((4, 3)), rng.standard_normal(4)
    linear = Obj("nn.Linear", {"weight": Tensor("Double", weight), "bias": Tensor("Double", bias)})
    branches = Obj("nn.ConcatTable", {"modules": {1: Obj("nn.Tanh", {}), 2: Obj("nn.Sigmoid", {})}})
    data = {"in": {"input": {}}, "lin": {"module": linear}, "cat": {"module": branches},
            "split": {"nSplitOutputs": 2}, "s1": {"selectindex": 1}, "s2": {"selectindex": 2}, "out": {"input": {}}}  # fmt: skip
    for child, parents in (("lin", ["in"]), ("cat", ["lin"]), ("split", ["cat"]), ("s1", ["split"]), ("s2", ["split"]), ("out", ["s2", "s1"])):
        data[child]["mapindex"] = {i: data[p] for i, p in enumerate(parents, 1)}
    nodes = {name: Obj("nngraph.Node", {"data": data[name], "id": i}) for i, name in enumerate(data, 1)}
    order = ["in", "lin", "cat", "split", "s1", "s2", "out"]
    graph = Obj("nn.gModule", {"forwardnodes": {i: nodes[n] for i, n in enumerate(order, 1)}, "innode": nodes["in"],
                               "outnode": nodes["out"], "nInputs": 1})  # fmt: skip
    model = _load_obj(tmp_path, graph)
    assert isinstance(model, nn.Graph)
    x = rng.standard_normal((2, 3))
    hidden = x @ weight.T + bias
    first, second = model.forward(x.astype("float32"))
    np.testing.assert_allclose(first, _sigmoid(hidden), rtol=1e-5, atol=1e-6)  # the outnode lists s2 first
    np.testing.assert_allclose(second, np.tanh(hidden), rtol=1e-5, atol=1e-6)


def test_a_checkpoint_table_points_to_its_model(tmp_path):
    from ember.t7 import to_module

    path = tmp_path / "checkpoint.t7"
    path.write_bytes(dumps({"model": sample_mlp(), "epoch": 3}))
    with pytest.raises(FormatError, match="model"):
        ember.load_t7(path)
    net = to_module(read_t7(path)["model"])
    assert isinstance(net, nn.Sequential) and len(net) == 4


@pytest.mark.parametrize("name,fields", [
    ("nn.MSECriterion", {"sizeAverage": False}), ("nn.AbsCriterion", {"sizeAverage": True}),
    ("nn.SmoothL1Criterion", {"sizeAverage": False}), ("nn.DistKLDivCriterion", {"sizeAverage": False}),
    ("nn.MarginCriterion", {"margin": 0.5, "sizeAverage": True}), ("nn.BCECriterion", {"sizeAverage": False}),
])  # fmt: skip
def test_criteria_keep_size_average_and_margin(tmp_path, name, fields):
    criterion = _load_obj(tmp_path, Obj(name, dict(fields, output=0, gradInput=Tensor("Float", np.zeros(0)))))
    assert criterion.size_average is fields["sizeAverage"]
    assert getattr(criterion, "margin", fields.get("margin")) == fields.get("margin")


def test_table_and_elementwise_modules_follow_torch7_fields(tmp_path):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    join = _load_obj(tmp_path, Obj("nn.JoinTable", {"dimension": 1, "nInputDims": 1}))
    np.testing.assert_allclose(join.forward([a.astype("float32"), b.astype("float32")]), np.hstack([a, b]), rtol=1e-6)
    last = _load_obj(tmp_path, Obj("nn.SelectTable", {"index": -1}))
    assert last.forward([a, b]) is b
    narrow = _load_obj(tmp_path, Obj("nn.NarrowTable", {"offset": 2, "length": 1}))
    assert narrow.forward([a, b, a])[0] is b
    scale = rng.standard_normal(3)
    cmul = _load_obj(tmp_path, Obj("nn.CMul", {"weight": Tensor("Double", scale)}))
    np.testing.assert_allclose(cmul.forward(a.astype("float32")), a * scale, rtol=1e-5)
    shift = _load_obj(tmp_path, Obj("nn.Add", {"bias": Tensor("Double", scale), "scalar": False}))
    np.testing.assert_allclose(shift.forward(a.astype("float32")), a + scale, rtol=1e-5)
    protos = rng.standard_normal((3, 4))  # Torch7's Euclidean keeps (inputSize, outputSize)
    euclid = _load_obj(tmp_path, Obj("nn.Euclidean", {"weight": Tensor("Double", protos)}))
    expected = np.linalg.norm(a[:, :, None] - protos[None], axis=1)
    np.testing.assert_allclose(euclid.forward(a.astype("float32")), expected, rtol=1e-5)
    pool = _load_obj(tmp_path, Obj("nn.SpatialAveragePooling", {"kW": 2, "kH": 2, "dW": 2, "dH": 2, "padW": 0, "padH": 0,
                                                                "ceil_mode": False, "count_include_pad": True}))  # fmt: skip
    x = rng.standard_normal((1, 1, 4, 4))
    np.testing.assert_allclose(pool.forward(x.astype("float32"))[0, 0], x[0, 0].reshape(2, 2, 2, 2).mean(axis=(1, 3)), rtol=1e-5)


def test_an_in_place_relu_keeps_its_flag_and_its_numbers(tmp_path):
    # Torch7's nn.ReLU(true) saves inplace = true; ember's ReLU(inplace=True) computes the same
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((4, 3)), rng.standard_normal(4)
    linear = Obj("nn.Linear", {"weight": Tensor("Double", w), "bias": Tensor("Double", b)})
    path = tmp_path / "relu.t7"
    path.write_bytes(dumps(Obj("nn.Sequential", {"modules": {1: linear, 2: Obj("nn.ReLU", {"inplace": True})}})))
    model = ember.load_t7(path)
    assert model[1].inplace is True
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x), np.maximum(x @ w.T + b, 0), rtol=1e-5, atol=1e-6)
    assert model[1].output is model[0].output  # written over the Linear's output
    path.write_bytes(dumps(Obj("nn.ReLU", {"inplace": 1})))
    with pytest.raises(FormatError, match="inplace"):
        ember.load_t7(path)
