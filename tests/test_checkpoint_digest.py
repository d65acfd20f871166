"""A checkpoint is hashed once on save and once on resume (the file digest covers the
arrays and ``info``); checkpoints written before the file digest existed, which carry
their own ``checksum``, are still verified."""

import json

import numpy as np
import pytest

from ember import tensor_file
from ember.errors import FormatError
from ember.training import checkpoint

ARRAYS = {"params": np.arange(6, dtype=np.float32), "order": np.arange(4)}
INFO = {"run": {"epoch": 1}, "rng": []}


def _rewrite_metadata(path, edit):
    """Rewrite the JSON header of a safetensors-layout file (data bytes unchanged)."""
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    edit(header["__metadata__"])
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n :])


def test_the_arrays_are_hashed_once_on_save_and_once_on_read(tmp_path, monkeypatch):
    calls = []
    real = tensor_file.header_digest
    monkeypatch.setattr(tensor_file, "header_digest", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(checkpoint, "_digest", lambda *a: pytest.fail("a second hash of the arrays"))
    path = tmp_path / "run.ckpt"
    checkpoint.write_checkpoint(path, ARRAYS, INFO)
    assert len(calls) == 1
    arrays, info = checkpoint.read_checkpoint(path)
    assert len(calls) == 2 and info == INFO
    assert all(np.array_equal(arrays[k], v) for k, v in ARRAYS.items())


def _old_style(path):
    """A checkpoint as ember wrote it before the file digest: its own checksum only."""
    checkpoint.write_checkpoint(path, ARRAYS, INFO)
    checksum = checkpoint._digest(ARRAYS, json.dumps(INFO, sort_keys=True))
    _rewrite_metadata(path, lambda meta: (meta.pop(tensor_file.DIGEST_KEY), meta.update(checksum=checksum)))


def test_an_old_checkpoint_with_its_own_checksum_still_loads_and_is_checked(tmp_path):
    path = tmp_path / "old.ckpt"
    _old_style(path)
    arrays, info = checkpoint.read_checkpoint(path)
    assert info == INFO and np.array_equal(arrays["params"], ARRAYS["params"])
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 0x01  # a bit of params' data
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="checksum mismatch"):
        checkpoint.read_checkpoint(path)


def test_a_checkpoint_without_any_digest_is_refused(tmp_path):
    path = tmp_path / "bare.ckpt"
    checkpoint.write_checkpoint(path, ARRAYS, INFO)
    _rewrite_metadata(path, lambda meta: meta.pop(tensor_file.DIGEST_KEY))
    with pytest.raises(FormatError, match="checksum mismatch"):
        checkpoint.read_checkpoint(path)
