"""Model files: pickle-free round trips, sharing kept, hostile or damaged files rejected."""

import json
import os
import stat

import numpy as np
import pytest

import ember
from ember import io, nn, tensor_file
from ember.errors import FormatError


def small_net():
    return nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU(), nn.Linear(3, 2, rng=1), nn.LogSoftMax())


def test_round_trip_rebuilds_the_architecture(tmp_path):
    net = small_net()
    path = tmp_path / "net.safetensors"
    ember.save(net, path, metadata={"note": "hello", "epoch": 3})
    again, meta = ember.load(path, with_metadata=True)
    assert repr(again) == repr(net)
    assert meta["note"] == "hello" and meta["epoch"] == "3"
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_array_equal(again.forward(x), net.forward(x))


def test_shared_parameters_are_stored_once_and_stay_shared(tmp_path):
    a = nn.Linear(3, 3, rng=0)
    b = a.clone("weight", "bias")
    net = nn.Sequential(a, nn.Tanh(), b)
    path = tmp_path / "shared.safetensors"
    ember.save(net, path)
    tensors, meta = io.read_tensors(path)
    assert sorted(tensors) == ["0.bias", "0.weight"]
    again = ember.load(path)
    assert again.get(0).weight is again.get(2).weight
    assert again.get(0).grad_weight is again.get(2).grad_weight
    params, _ = again.get_parameters()
    assert params.size == 12


def test_writes_are_atomic_and_leave_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    ember.save(small_net(), path)
    good = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk on fire"):
        ember.save(small_net(), path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["m.safetensors"]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_files_get_the_permissions_of_a_plain_open(tmp_path, umask_022):
    path = tmp_path / "m.safetensors"
    ember.save(small_net(), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644  # 0o666 & ~0o022, not mkstemp's 0o600
    os.chmod(path, 0o640)
    ember.save(small_net(), path)  # replacing a file keeps its mode, as open(path, "w") does
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_umask_is_read_without_proc_too(monkeypatch, umask_022):
    assert tensor_file._umask() == 0o022

    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(tensor_file, "open", no_proc, raising=False)
    assert tensor_file._umask() == 0o022
    assert os.umask(0o022) == 0o022  # the fallback put the umask back


def _write_raw(path, header: dict, data: bytes = b""):
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)


@pytest.mark.parametrize("cut", [0, 5, 8, 40, -1])
def test_truncated_files_are_rejected(tmp_path, cut):
    path = tmp_path / "m.safetensors"
    ember.save(small_net(), path)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] if cut >= 0 else raw[:-3])
    with pytest.raises(FormatError):
        ember.load(path)


def test_flipped_header_bytes_are_rejected(tmp_path):
    path = tmp_path / "m.safetensors"
    ember.save(small_net(), path)
    raw = bytearray(path.read_bytes())
    raw[10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError):
        ember.load(path)


@pytest.mark.parametrize(
    "header, data, message",
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "data_offsets|truncated"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
         b"\0" * 8, "overlap"),
        ({"a": {"dtype": "PICKLE", "shape": [1], "data_offsets": [0, 1]}}, b"\0", "unknown dtype"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "bad shape"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4, "do not hold"),
        ({"__metadata__": {"format": "ember", "architecture": json.dumps({"type": "os.system", "args": {}})}}, b"",
         "unknown module type"),
        ({"__metadata__": {"format": "ember", "architecture": json.dumps({"type": "Linear", "args": {"in_features": -1, "out_features": 2}})}},
         b"", "cannot rebuild"),
        ({"__metadata__": {"x": 1}}, b"", "__metadata__ must map strings"),
    ],
)  # fmt: skip
def test_malformed_or_hostile_headers_are_rejected(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    _write_raw(path, header, data)
    with pytest.raises(FormatError, match=message):
        ember.load(path)


def test_huge_header_length_is_rejected_without_reading_it(tmp_path):
    path = tmp_path / "huge.safetensors"
    path.write_bytes((2**62).to_bytes(8, "little") + b"{}")
    with pytest.raises(FormatError, match="bad header length"):
        ember.load(path)


def test_duplicate_keys_are_rejected(tmp_path):
    path = tmp_path / "dup.safetensors"
    blob = b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}'
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + b"\0")
    with pytest.raises(FormatError, match="duplicate"):
        io.read_tensors(path)


def test_safetensors_layout_is_readable_by_a_plain_reader(tmp_path):
    """The file is the standard layout: u64 length, JSON header, raw little-endian data."""
    path = tmp_path / "m.safetensors"
    net = small_net()
    ember.save(net, path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    entry = header["0.weight"]
    begin, end = entry["data_offsets"]
    weight = np.frombuffer(raw[8 + n + begin : 8 + n + end], dtype="<f4").reshape(entry["shape"])
    np.testing.assert_array_equal(weight, net.get(0).weight)


def test_custom_modules_load_only_when_named(tmp_path):
    class Twice(nn.Module):
        """y = 2x."""

        def update_output(self, input):
            self.output = input * 2
            return self.output

    path = tmp_path / "custom.safetensors"
    ember.save(nn.Sequential(Twice()), path)
    with pytest.raises(FormatError, match="classes="):
        ember.load(path)
    assert isinstance(ember.load(path, classes=[Twice]).get(0), Twice)
    with pytest.raises(FormatError, match="Twice"):  # naming it once registers nothing
        ember.load(path)
