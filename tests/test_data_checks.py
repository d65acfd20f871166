"""Data files and arrays (issue 13): label counts, dtypes, integrality and range, image
dtypes, class counts with a clear error for 1-based labels; IDX headers whose
dimensions overflow, gzip bombs and corrupt streams, damaged npz archives -- each a
FormatError naming the file and the array, and nothing allocated beyond the file's size."""

import gzip
import tracemalloc
import zipfile

import numpy as np
import pytest

from ember.data import read_idx
from ember.data.idx import MAX_BYTES
from ember.data.mnist import SHA256, SIZES
from ember.data.npz import read_npz
from ember.data.pose import PoseSet, variance_shares
from ember.errors import FormatError
from ember.training import load_dataset


def arrays(**changes):
    rng = np.random.default_rng(0)
    base = {"x_train": rng.integers(0, 256, (30, 4, 4), dtype=np.uint8), "y_train": rng.integers(0, 4, 30),
            "x_test": rng.integers(0, 256, (10, 4, 4), dtype=np.uint8), "y_test": rng.integers(0, 4, 10)}  # fmt: skip
    base.update(changes)
    return base


@pytest.mark.parametrize("case, message", [
    ("count", r"27 labels in y_train for 30 samples"),
    ("fraction", r"y_train holds fractional"),
    ("2d", r"y_train must be a 1-D array"),
    ("complex", r"array .x_train.: holds dtype <c8"),
    ("string", r"array .x_train.: holds dtype \|S3"),
    ("bool", r"x_train has dtype bool"),
    ("negative", r"y_test holds negative labels"),
    ("huge", r"y_train holds label 1099511627776, more than"),
    ("one-based", r"labels run 1\.\.3 \(1-based.*y = y - 1"),
    ("nan", r"x_train holds NaN"),
])  # fmt: skip
def test_bad_npz_datasets_are_refused(tmp_path, case, message):
    a = arrays()
    changes = {
        "count": {"y_train": a["y_train"][:27]}, "fraction": {"y_train": a["y_train"] + 0.5},
        "2d": {"y_train": a["y_train"][:, None]}, "complex": {"x_train": a["x_train"].astype(np.complex64)},
        "string": {"x_train": a["x_train"].astype("S3")}, "bool": {"x_train": a["x_train"] > 9},
        "negative": {"y_test": a["y_test"] - 2}, "huge": {"y_train": a["y_train"] * 0 + 2**40},
        "one-based": {"y_train": a["y_train"] % 3 + 1, "y_test": a["y_test"] % 3 + 1},
        "nan": {"x_train": np.where(a["x_train"] > 200, np.nan, a["x_train"]).astype(np.float32)},
    }[case]  # fmt: skip
    path = tmp_path / "d.npz"
    np.savez(path, **arrays(**changes))
    with pytest.raises(FormatError, match=r"d\.npz: " + message):
        load_dataset((16,), data_file=str(path), preprocess="none")


def test_whole_number_float_labels_are_accepted(tmp_path):
    path = tmp_path / "d.npz"
    a = arrays()
    np.savez(path, **arrays(y_train=a["y_train"].astype(np.float32)))
    data = load_dataset((16,), data_file=str(path), preprocess="none")
    np.testing.assert_array_equal(data.y_train, a["y_train"])
    assert data.n_classes == 4


@pytest.mark.parametrize("damage", ["truncate", "flip", "object", "npy-shape"])
def test_damaged_npz_archives_are_refused(tmp_path, damage):
    path = tmp_path / "d.npz"
    a = arrays()
    if damage == "object":
        a["x_train"] = np.array([None] * 30, dtype=object)
    np.savez_compressed(path, **a)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":
        raw[100] ^= 0xFF
    elif damage == "npy-shape":
        with zipfile.ZipFile(path, "w") as archive:
            import io

            for name, value in a.items():
                member = io.BytesIO()
                np.save(member, value)
                archive.writestr(name + ".npy", member.getvalue().replace(b"(30, 4, 4)", b"(2000000, 4)"))
        raw = bytearray(path.read_bytes())
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"d\.npz: .*(pickled objects|corrupted|not a readable|does not fill|truncated)"):
        read_npz(path)


def idx(shape, code=0x08):
    return bytes([0, 0, code, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)


def test_idx_dimensions_whose_product_overflows_are_refused(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(idx([2**32 - 1] * 3) + b"\0" * 64)
    with pytest.raises(FormatError, match=r"x\.idx: the IDX header announces \d+ bytes"):
        read_idx(path)


def test_a_gzip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(idx([2**31, 32, 32]) + b"\0" * (1 << 20)))
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"bomb\.gz: the IDX header announces"):
            read_idx(path)
        assert tracemalloc.get_traced_memory()[1] < 64 << 20
    finally:
        tracemalloc.stop()
    assert MAX_BYTES < 2**31 * 32 * 32


def test_mnist_files_must_have_their_known_size_before_anything_is_inflated(tmp_path):
    stem = "t10k-labels-idx1-ubyte"
    path = tmp_path / (stem + ".gz")
    path.write_bytes(gzip.compress(idx([10000 * 300]) + b"\1" * (10000 * 300)))
    with pytest.raises(FormatError, match=f"must have {SIZES[stem]}"):
        read_idx(path, (SHA256[stem],), SIZES[stem])


@pytest.mark.parametrize("damage", ["flip", "truncate", "trailing"])
def test_corrupt_gzip_streams_are_format_errors(tmp_path, damage):
    raw = bytearray(gzip.compress(idx([50, 8]) + bytes(range(200)) * 2))
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    elif damage == "truncate":
        raw = raw[:-12]
    else:
        raw += b"junk"
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"x\.gz: "):
        read_idx(path)


def test_constant_pose_images_get_a_clear_error():
    n = 4
    pose = PoseSet(np.zeros((n, 3, 3), np.uint8), np.arange(n), np.zeros(n, int), np.arange(n) % 2, np.zeros(n, bool))
    with pytest.raises(ValueError, match="all identical"):
        variance_shares(pose)
