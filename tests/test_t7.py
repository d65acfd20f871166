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
from ember.errors import FormatError
from ember.t7 import LuaFunction, Mapper, TorchObject, UnmappedClassError, read_t7, read_t7_bytes
from t7_reference import torchfile
from t7_writer import Obj, Storage, Tensor, dumps, sample_mlp

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
@pytest.mark.parametrize("ascii,long_size", [(False, 8), (False, 4), (True, 8)])
def test_binary_ascii_and_4_byte_long_files_map_alike(tmp_path, ascii, long_size):
    path = tmp_path / "m.t7"
    path.write_bytes(dumps(sample_mlp("Cuda"), ascii=ascii, long_size=long_size))
    model = ember.load_t7(path)
    model.evaluate()
    x = np.ones((2, 4), dtype="float32")
    expected = np.tanh(x @ (np.arange(12).reshape(3, 4) / 10).T + 1) @ -np.ones((3, 3)).T
    np.testing.assert_allclose(model.forward(x)[0], expected, rtol=1e-5)


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


# Torch7 class, its saved fields, and the function it computes (from Torch7's nn docs)
