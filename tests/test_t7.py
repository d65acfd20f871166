"""Torch7 .t7 files: the reader, the mapping to ember modules, the CLI and a fuzz run.

Real files written by Torch7: tests/data/t7 (from python-torchfile, BSD; see its README)
and, when the folder named by EMBER_T7_REAL holds them, the larger real models listed in
REAL_MODELS (not redistributable: their repositories carry no license). References come
from tests/t7_reference.py (torchfile + NumPy), never from ember's reader.
"""

from __future__ import annotations

import os
import pathlib
import struct
import sys

import numpy as np
import pytest

import ember
import ember.cli
from ember import nn
from ember.errors import FormatError
from ember.t7 import LuaFunction, Mapper, TorchObject, UnmappedClassError, deep_recursion, read_t7, read_t7_bytes
from t7_reference import torchfile
from t7_writer import Function, Obj, Storage, Tensor, dumps

HERE = pathlib.Path(__file__).parent
DATA = HERE / "data" / "t7"
needs_torchfile = pytest.mark.skipif(torchfile is None, reason="torchfile (test-only reference reader) is not installed")

# name: (repository, path, commit, one sample's shape) -- fetched by hand into $EMBER_T7_REAL
REAL_MODELS = {
    "henlisp_mlp_cuda.t7": ("henlisp/DeepLearning_HW1", "model.t7", "907429e5a1f5b20a4a4a00334bda0af6399fcbec", (28, 28)),
    "sshanu_lenet.t7": ("Sshanu/ml_HR", "model.net", "e3a6998091185487f1a16aa1b901377a1ce88fcd", (3, 20, 20)),
    "demos_tracker_random.t7": ("torch/demos", "tracker/random.net", "ef43a1c8d04dc3d11794d9c2c9f3a050d5e1e4bd", (3, 22, 22)),
    "demos_tracker_unsupervised.t7": ("torch/demos", "tracker/unsupervised.net", "ef43a1c8d04dc3d11794d9c2c9f3a050d5e1e4bd", (3, 22, 22)),
    "timeseries_cuda.t7": ("arthur-leguennec/classifTimeSeries", "test.t7", "d686ece292ed0fb031da5f57de0748c1f5f89b99", (96, 1)),
    "gmodule_with_linear_identity.t7": ("bshillingford/python-torchfile", "testfiles_x86_64/gmodule_with_linear_identity.t7",
                                        "fbd434a5b5562c88b91a95e6476e11dbb7735436", [(1,), (2,)]),
    # an RNN unrolled 10 steps with nngraph (nested gModules sharing their weights): h0, then x_1..x_10
    "cadene_rnn_nngraph.t7": ("Cadene/AS_Exam", "model.t7", "c4ec0a8d7867ab049e00c1d1f19ecffc236c16d1", [(100,)] + [(5,)] * 10),
}  # fmt: skip


def _real(name):
    for folder in (DATA, pathlib.Path(os.environ.get("EMBER_T7_REAL", "/nonexistent"))):
        if (folder / name).exists():
            return folder / name
    pytest.skip(f"{name} is not here (set EMBER_T7_REAL to a folder holding it; see tests/data/t7/README.md)")


def _inputs(shape, rng):
    """A batch of 3 samples: one array, or a table of arrays for a multi-input graph."""
    if isinstance(shape, list):
        return [rng.standard_normal((3,) + s) for s in shape]
    return rng.standard_normal((3,) + shape)


def _reference(raw, x):
    """The reference outputs, sample by sample, stacked into a batch (a list per output)."""
    from t7_reference import forward

    samples = [forward(raw, [part[n] for part in x] if isinstance(x, list) else x[n]) for n in range(3)]
    if isinstance(samples[0], list):
        return [np.stack([sample[k] for sample in samples]) for k in range(len(samples[0]))]
    return np.stack(samples)


def _assert_close(got, expected, tol):
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    else:
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


# ---------------------------------------------------------------- real models vs the reference
@needs_torchfile
@pytest.mark.parametrize("name", sorted(REAL_MODELS))
def test_real_model_matches_the_independent_reference(name, tmp_path):
    import t7_reference

    path = _real(name)
    model = ember.load_t7(path)
    model.evaluate()
    rng = np.random.default_rng(0)
    x = _inputs(REAL_MODELS[name][3], rng)
    expected = _reference(t7_reference.load(path), x)
    as32 = [a.astype("float32") for a in x] if isinstance(x, list) else x.astype("float32")
    got = model.forward(as32)
    _assert_close(got, expected, 1e-4)
    # ember convert, then ember.load: the same outputs again
    target = tmp_path / "model.safetensors"
    assert ember.cli.main(["convert", str(path), str(target)]) == 0
    again = ember.load(target)
    again.evaluate()
    _assert_close(again.forward(as32), got, 1e-6)


@pytest.mark.parametrize("name", ["henlisp_mlp_cuda.t7", "timeseries_cuda.t7"])
def test_the_cuda_models_hold_cuda_tensors_read_as_host_arrays(name):
    path = _real(name)
    assert b"torch.CudaStorage" in path.read_bytes()  # the weights really are CUDA tensors in the file
    raw = read_t7(path)
    weight = raw["modules"][len(raw["modules"])]["weight"] if name.startswith("time") else raw["modules"][2]["weight"]
    assert isinstance(weight, np.ndarray) and weight.dtype == np.float32 and weight.size


# ---------------------------------------------------------------- the reader on torchfile's files
@needs_torchfile
@pytest.mark.parametrize("path", sorted(DATA.glob("*.t7")), ids=lambda p: p.name)
def test_reader_agrees_with_torchfile(path):
    import t7_reference

    def same(ours, theirs, seen):
        if id(ours) in seen:
            return
        seen.add(id(ours))
        if isinstance(ours, np.ndarray):
            np.testing.assert_array_equal(ours, np.asarray(theirs))
        elif isinstance(ours, TorchObject):
            assert ours.class_name == t7_reference.kind(theirs) or ours.class_name.endswith(t7_reference.kind(theirs))
            for key, value in ours.fields.items():
                if isinstance(key, str):
                    same(value, t7_reference.field(theirs, key), seen)
        elif isinstance(ours, dict):
            for key, value in ours.items():
                if isinstance(key, (int, str)):
                    same(value, theirs[key] if key in theirs else theirs[str(key).encode()], seen)
        elif isinstance(ours, (int, float, str, bool)):
            assert ours == (theirs.decode() if isinstance(theirs, bytes) else theirs)

    ours = read_t7(path)
    try:
        theirs = t7_reference.load(path)
    except Exception as exc:  # torchfile refuses functions; ours keeps them as records
        assert isinstance(ours, LuaFunction), exc
        return
    same(ours, theirs, set())


def test_functions_are_kept_as_records_never_run():
    function = read_t7(DATA / "function.t7")
    assert isinstance(function, LuaFunction) and function.bytecode.startswith(b"\x1bL")  # LuaJIT / Lua bytecode
    with_upvalues = read_t7(DATA / "function_upvals.t7")
    assert isinstance(with_upvalues.upvalues, dict) and with_upvalues.upvalues


def test_cycles_and_shared_references():
    table = read_t7(DATA / "recursive_kv_table.t7")
    (key,) = table
    assert table[key] is key.value  # {t = t} written once
    obj = read_t7(DATA / "recursive_class.t7")
    assert any(v is obj for v in obj.fields.values())


# ---------------------------------------------------------------- formats and mapping (written here)
def _mlp(kind="Float", shared=False):
    w1 = Tensor(kind, np.arange(12, dtype="float64").reshape(3, 4) / 10)
    lin1 = Obj("nn.Linear", {"weight": w1, "bias": Tensor(kind, np.ones(3)), "gradWeight": Tensor(kind, np.zeros((3, 4)))})
    w2 = w1 if shared else Tensor(kind, -np.ones((3, 3)))
    lin2 = Obj("nn.Linear", {"weight": w2, "bias": Tensor(kind, np.zeros(3))})
    return Obj("nn.Sequential", {"modules": {1: lin1, 2: Obj("nn.Tanh", {"train": True}), 3: Obj("nn.Dropout", {"p": 0.2, "v2": True}), 4: Obj("nn.ConcatTable", {"modules": {1: lin2}})}, "fn": Function()})  # fmt: skip


@pytest.mark.parametrize("ascii,long_size", [(False, 8), (False, 4), (True, 8)])
def test_binary_ascii_and_4_byte_long_files_map_alike(tmp_path, ascii, long_size):
    path = tmp_path / "m.t7"
    path.write_bytes(dumps(_mlp("Cuda"), ascii=ascii, long_size=long_size))
    model = ember.load_t7(path)
    model.evaluate()
    x = np.ones((2, 4), dtype="float32")
    expected = np.tanh(x @ (np.arange(12).reshape(3, 4) / 10).T + 1) @ -np.ones((3, 3)).T
    np.testing.assert_allclose(model.forward(x)[0], expected, rtol=1e-5)


def test_shared_parameters_stay_shared(tmp_path):
    path = tmp_path / "shared.t7"
    path.write_bytes(dumps(_mlp(shared=True)))
    model = ember.load_t7(path)
    assert model[0].weight is model[3][0].weight


def test_one_storage_seen_by_two_tensors_is_one_array(tmp_path):
    storage = Storage("Double", np.arange(6.0))
    a, b = Tensor("Double", np.zeros(6), storage), Tensor("Double", np.zeros(6), storage)
    value = read_t7_bytes(dumps({1: a, 2: b}))
    assert np.shares_memory(value[1], value[2]) and value[1].tolist() == list(range(6))


def test_unmapped_class_names_class_and_path_and_partial_returns_raw(tmp_path):
    path = tmp_path / "odd.t7"
    path.write_bytes(dumps(Obj("nn.Sequential", {"modules": {1: Obj("nn.Tanh", {}), 2: Obj("nn.Bilinear", {})}})))
    with pytest.raises(UnmappedClassError, match=r"modules\[2\].*'nn\.Bilinear'"):
        ember.load_t7(path)
    raw = ember.load_t7(path, partial=True)
    assert isinstance(raw, TorchObject) and raw.class_name == "nn.Sequential"


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


@pytest.mark.parametrize("blob", [b"", b"\x04\x00\x00", dumps({1: "x" * 10})[:-3], b"\x09\x00\x00\x00", b"\x03\x00\x00\x00\x01\x00\x00\x00\xff\xff\xff\x7f"])
def test_truncated_or_corrupted_files_raise_format_error(blob):
    with pytest.raises(FormatError):
        read_t7_bytes(blob)


def test_deep_nesting_is_refused_not_a_crash():
    # 3000 tables, each the only value of the one before: {1: {1: {1: ...}}}
    blob = b"".join(struct.pack("<iii", 3, i + 1, 1) + struct.pack("<id", 1, 1.0) for i in range(3000)) + struct.pack("<iii", 3, 3001, 0)
    with pytest.raises(FormatError, match="nested"):
        read_t7_bytes(blob)
    assert sys.getrecursionlimit() < 10**5


def test_the_fuzzer_finds_no_crash_hang_or_memory_blowup():
    # its own process, so that the peak memory it checks is the fuzzing's alone
    import subprocess

    script = HERE / "fuzz" / "fuzz_t7.py"
    n_files = os.environ.get("EMBER_T7_FUZZ", "300")
    done = subprocess.run([sys.executable, str(script), n_files, "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"'files': {n_files}" in done.stdout and "'crashes': []" in done.stdout, done.stdout


@needs_torchfile
def test_rnn_fast_lstm_matches_the_step_module_saved_with_it():
    """The rnn package's FastLSTM from a real file (an LSTM language model): ember's
    Recurrent(LSTMCell) built from its i2g / o2g weights against the file's own step
    module (its nn graph of Linear, SplitTable, Sigmoid/Tanh, CMulTable ...) run by the
    reference for two steps from a zero state."""
    import t7_reference

    path = _real("compress_fastlstm.t7")
    step = t7_reference.field
    raw = t7_reference.load(path)
    fast_lstm_ref = step(t7_reference.items(step(step(step(raw, "module"), "module"), "modules"))[0], "module")
    ours = read_t7(path)["module"]["module"]["modules"][1]["module"]
    assert ours.class_name == "nn.FastLSTM"
    model = Mapper().module(ours)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, int(step(fast_lstm_ref, "inputSize"))))
    hidden = int(step(fast_lstm_ref, "outputSize"))
    expected = np.zeros((2, 3, hidden))
    for n in range(2):
        h, c = np.zeros(hidden), np.zeros(hidden)
        for t in range(3):
            h, c = t7_reference.forward(step(fast_lstm_ref, "recurrentModule"), [x[n, t], h, c])
            expected[n, t] = h
    np.testing.assert_allclose(model.forward(x.astype("float32")), expected, rtol=1e-4, atol=1e-5)


def test_convert_partial_writes_the_raw_tensors_of_an_unmapped_model(tmp_path, capsys):
    source, target = tmp_path / "odd.t7", tmp_path / "odd.safetensors"
    weight = np.arange(6.0).reshape(2, 3)
    source.write_bytes(dumps(Obj("nn.Sequential", {"modules": {1: Obj("nn.Bilinear", {"weight": Tensor("Double", weight), "gradWeight": Tensor("Double", weight)})}})))
    assert ember.cli.main(["convert", str(source), str(target)]) == 1
    assert "nn.Bilinear" in capsys.readouterr().err
    assert ember.cli.main(["convert", str(source), str(target), "--partial"]) == 0
    arrays, meta = ember.io.read_tensors(target)
    assert list(arrays) == ["modules.1.weight"] and meta["format"] == "torch7-raw"
    np.testing.assert_array_equal(arrays["modules.1.weight"], weight)


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


def test_other_formats_are_named_not_misread():
    with pytest.raises(FormatError, match="HDF5"):
        read_t7_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(FormatError, match="zip"):
        read_t7_bytes(b"PK\x03\x04" + bytes(64))


def test_ember_eval_runs_a_t7_model_directly(tmp_path, capsys):
    rng = np.random.default_rng(0)
    mlp = Obj("nn.Sequential", {"modules": {
        1: Obj("nn.View", {"size": Tensor("Long", np.array([784]))}),
        2: Obj("nn.Linear", {"weight": Tensor("Cuda", rng.standard_normal((10, 784)) * 0.01), "bias": Tensor("Cuda", np.zeros(10))}),
        3: Obj("nn.LogSoftMax", {})}})  # fmt: skip
    path = tmp_path / "mlp.t7"
    path.write_bytes(dumps(mlp))
    assert ember.cli.main(["eval", str(path), "--input-shape", "[28,28]"]) == 0
    assert "accuracy" in capsys.readouterr().out


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


# Torch7 class, its saved fields, and the function it computes (from Torch7's nn docs)
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
    path.write_bytes(dumps({"model": _mlp(), "epoch": 3}))
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
