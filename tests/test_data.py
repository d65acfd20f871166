"""ember.data: IDX parsing, checksums, the bundled MNIST, downloads, batches, scaling."""

import gzip
import hashlib

import numpy as np
import pytest

from ember.data import Standardizer, download_mnist, load_mnist, minibatches, parse_idx, read_idx
from ember.errors import FormatError


def idx_bytes(array, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_idx_round_trip_raw_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "x-idx3-ubyte"
    raw.write_bytes(idx_bytes(images))
    gz = tmp_path / "x-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(read_idx(raw), images)
    np.testing.assert_array_equal(read_idx(gz), images)
    ints = np.array([1, -2, 300], dtype=np.int32)
    np.testing.assert_array_equal(parse_idx(idx_bytes(ints, 0x0C)), ints)


def test_idx_errors_are_clear(tmp_path):
    with pytest.raises(FormatError, match="not an IDX file"):
        parse_idx(b"\x01\x02\x03\x04")
    with pytest.raises(FormatError, match="truncated"):
        parse_idx(idx_bytes(np.zeros((4, 4), np.uint8))[:-3])
    path = tmp_path / "f"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(FormatError, match="checksum mismatch"):
        read_idx(path, digests=("0" * 64,))
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_idx(path, digests=(good,)).shape == (3,)


def test_bundled_mnist_is_real_and_verified():
    data = load_mnist()
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28) and xtr.dtype == np.uint8
    assert ytr.dtype == np.int64 and set(np.unique(yte)) == set(range(10))
    assert ytr[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]


def test_missing_files_name_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_mnist"):
        load_mnist(tmp_path)


def test_download_offline_names_file_mirrors_and_destination(tmp_path):
    dead = ("http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/")
    with pytest.raises(OSError) as info:
        download_mnist(tmp_path, mirrors=dead, timeout=2)
    text = str(info.value)
    assert "train-images-idx3-ubyte.gz" in text and dead[0] in text and dead[1] in text
    assert str(tmp_path) in text
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_download_skips_files_that_are_already_valid(tmp_path):
    import shutil

    from ember.data.mnist import bundled_dir

    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):  # fmt: skip
        shutil.copy(f"{bundled_dir()}/{name}", tmp_path / name)
    assert len(download_mnist(tmp_path, mirrors=("http://127.0.0.1:9/",))) == 4


def test_minibatches_cover_everything_once_and_shuffle_per_epoch():
    rng = np.random.default_rng(0)
    first = np.concatenate(list(minibatches(10, 3, rng)))
    second = np.concatenate(list(minibatches(10, 3, rng)))
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert not np.array_equal(first, second)
    assert [len(b) for b in minibatches(10, 3, shuffle=False, drop_last=True)] == [3, 3, 3]
    again = np.concatenate(list(minibatches(10, 3, np.random.default_rng(0))))
    np.testing.assert_array_equal(first, again)


def test_standardizer_is_fitted_on_training_data_only():
    train = np.array([[0.0, 10.0], [2.0, 30.0]])
    test = np.array([[4.0, 50.0]])
    per_feature = Standardizer("feature").fit(train)
    np.testing.assert_allclose(per_feature.transform(train, "float64").mean(axis=0), 0)
    np.testing.assert_allclose(per_feature.transform(test, "float64"), [[3.0, 3.0]])
    whole = Standardizer().fit(train)
    assert abs(whole.transform(train, "float64").std() - 1) < 1e-12
    images = np.random.default_rng(0).uniform(size=(5, 3, 4, 4))
    per_channel = Standardizer("channel").fit(images)
    assert per_channel.mean.shape == (3, 1, 1)
    with pytest.raises(ValueError, match="per must be"):
        Standardizer("pixel")
