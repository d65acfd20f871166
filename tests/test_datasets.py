"""SVHN, CIFAR-10 and IDX sets from small files in the real formats; layout and label checks."""

import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from ember.cli import main
from ember.data import check_dataset, load_cifar10, load_idx_set, load_svhn, to_model_layout
from ember.data.download import fetch
from ember.errors import FormatError, ShapeError
from ember.training import load_dataset


def pattern_images(labels, rng, channels_last=False):
    """uint8 (N, 3, 32, 32) noise with a bright row per class (learnable), or (N, 32, 32, 3)."""
    n = len(labels)
    images = rng.integers(0, 50, size=(n, 3, 32, 32)).astype(np.uint8)
    images[np.arange(n), labels % 3, 3 * labels, :] = 255
    return images.transpose(0, 2, 3, 1).copy() if channels_last else images


def write_svhn(folder, rng, n_train=240, n_test=60):
    """SVHN's .mat layout: X uint8 (32, 32, 3, N), y (N, 1) 1..10 with 10 for the digit 0."""
    from scipy.io import savemat

    digits = {}
    for name, n in (("train", n_train), ("test", n_test)):
        d = rng.integers(0, 10, size=n)
        hwc = pattern_images(d, rng, channels_last=True)  # (N, H, W, C)
        savemat(folder / f"{name}_32x32.mat", {"X": hwc.transpose(1, 2, 3, 0), "y": np.where(d == 0, 10, d)[:, None].astype(np.uint8)})
        digits[name] = (hwc, d)
    return digits


def test_svhn_mat_loads_as_nchw_with_digit_labels(tmp_path):
    pytest.importorskip("scipy")
    written = write_svhn(tmp_path, np.random.default_rng(0), 20, 5)
    data = load_svhn(tmp_path)
    images, labels = data["train"]
    hwc, digits = written["train"]
    assert images.shape == (20, 3, 32, 32) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, hwc.transpose(0, 3, 1, 2))  # channel c of sample i is X[:, :, c, i]
    np.testing.assert_array_equal(labels, digits)  # 10 -> 0
    assert labels.dtype == np.int64 and 0 in labels


def test_svhn_errors_name_the_file_and_the_fix(tmp_path):
    pytest.importorskip("scipy")
    from scipy.io import savemat

    with pytest.raises(FileNotFoundError, match="download_svhn"):
        load_svhn(tmp_path)
    savemat(tmp_path / "train_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])})
    with pytest.raises(FormatError, match="1..10"):
        load_svhn(tmp_path, splits=("train",))
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(FormatError, match="test_32x32.mat"):
        load_svhn(tmp_path, splits=("test",))


def test_svhn_mlp_trains_on_svhn_files_by_default(tmp_path, capsys):
    pytest.importorskip("scipy")
    write_svhn(tmp_path, np.random.default_rng(1))
    argv = ["train", "--model", "svhn-mlp", "--data-dir", str(tmp_path), "--epochs", "3", "--no-progress", "--lr", "0.01"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "svhn-mlp on svhn (240 train" in out
    assert "Linear(1500 -> 10)" in out  # 10 classes, not 11
    final = [line for line in out.splitlines() if line.startswith("test accuracy")][0]
    assert float(final.split()[2].rstrip("%")) > 50.0
    model = tmp_path / "svhn.safetensors"
    assert main([*argv[:5], "--epochs", "1", "--save", str(model), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["eval", str(model), "--data-dir", str(tmp_path)]) == 0  # the dataset and layout come from the file
    assert "svhn-mlp on svhn test set" in capsys.readouterr().out


def cifar_records(labels, images):
    return b"".join(bytes([int(y)]) + x.tobytes() for y, x in zip(labels, images))


def write_cifar(folder, rng, per_batch=12, n_test=10, as_archive=False):
    files = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, size=n_test if name == "test_batch.bin" else per_batch)
        images = pattern_images(labels, rng)
        files[name] = (images, labels, cifar_records(labels, images))
    if as_archive:
        with tarfile.open(folder / "cifar-10-binary.tar.gz", "w:gz") as tar:
            for name, (_, _, blob) in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (folder / "cifar-10-batches-bin").mkdir()
        for name, (_, _, blob) in files.items():
            (folder / "cifar-10-batches-bin" / name).write_bytes(blob)
    return files


@pytest.mark.parametrize("as_archive", [False, True])
def test_cifar10_binary_records(tmp_path, as_archive):
    files = write_cifar(tmp_path, np.random.default_rng(2), as_archive=as_archive)
    data = load_cifar10(tmp_path)
    images, labels = data["train"]
    assert images.shape == (60, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    expected = np.concatenate([files[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(images, expected)
    np.testing.assert_array_equal(data["test"][1], files["test_batch.bin"][1])


def test_cifar10_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="download_cifar10"):
        load_cifar10(tmp_path)
    write_cifar(tmp_path, np.random.default_rng(3))
    path = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FormatError, match="whole number of 3073-byte"):
        load_cifar10(tmp_path, splits=("test",))
    path.write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(FormatError, match="labels are 0..9"):
        load_cifar10(tmp_path, splits=("test",))


def test_cli_trains_on_cifar10(tmp_path, capsys):
    write_cifar(tmp_path, np.random.default_rng(4), per_batch=40, n_test=40)
    argv = ["train", "--model", "svhn-mlp", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--epochs", "2",
            "--no-progress", "--lr", "0.01"]  # fmt: skip
    assert main(argv) == 0
    assert "svhn-mlp on cifar10 (200 train / 40 test)" in capsys.readouterr().out


def idx_bytes(array):
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes()


def test_any_idx_set_in_mnist_layout_without_mnist_checksums(tmp_path, capsys):
    rng = np.random.default_rng(5)
    for prefix, n in (("train", 200), ("t10k", 50)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 2 * labels, :] = 255
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (tmp_path / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    assert load_idx_set(tmp_path)["test"][0].shape == (50, 28, 28)
    argv = ["train", "--dataset", "idx", "--data-dir", str(tmp_path), "--epochs", "1", "--no-progress"]
    assert main(argv) == 0
    assert "mnist-mlp on idx (200 train / 50 test)" in capsys.readouterr().out
    # MNIST itself still checks its checksums on the same folder
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err or "this file must have" in err  # MNIST's known digest or size


def test_layout_detected_when_unambiguous_else_asked_for():
    nchw = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)
    nhwc = nchw.transpose(0, 2, 3, 1).copy()
    out, layout = to_model_layout(nhwc, (3, 4, 5))
    assert layout == "nhwc" and out.dtype == np.uint8
    np.testing.assert_array_equal(out, nchw)
    out, layout = to_model_layout(nchw, (3, 4, 5))
    assert layout == "nchw"
    np.testing.assert_array_equal(out, nchw)
    with pytest.raises(ShapeError, match="--layout"):
        to_model_layout(nchw.reshape(2, -1), (3, 4, 5))  # flat: either order fits
    np.testing.assert_array_equal(to_model_layout(nhwc.reshape(2, -1), (3, 4, 5), "nhwc")[0], nchw)
    cube = np.zeros((2, 3, 3, 3), np.uint8)
    with pytest.raises(ShapeError, match="--layout nchw or --layout nhwc"):
        to_model_layout(cube, (3, 3, 3))
    with pytest.raises(ShapeError, match="not NHWC"):
        to_model_layout(nchw, (3, 4, 5), "nhwc")


def test_labels_validated():
    x = np.zeros((2, 4), np.uint8)
    y_train, _, k = check_dataset("d", x, np.array([1.0, 0.0]), x, np.array([0, 2]))
    assert y_train.dtype == np.int64 and list(y_train) == [1, 0] and k == 3
    with pytest.raises(FormatError, match="whole numbers"):
        check_dataset("d", x, np.array([0.5, 1.0]), x, np.array([0, 1]))
    with pytest.raises(FormatError, match="negative"):
        check_dataset("d", x, np.array([0, -1]), x, np.array([0, 1]))


def test_nhwc_npz_with_one_based_labels_is_refused_with_the_fix(tmp_path, capsys):
    """The lecture's SVHN case: images (N, 32, 32, 3) and labels 1..10."""
    rng = np.random.default_rng(6)
    digits = rng.integers(0, 10, size=80)
    images = pattern_images(digits, rng, channels_last=True)
    path = tmp_path / "svhn.npz"
    np.savez(path, x_train=images[:60], y_train=digits[:60] + 1, x_test=images[60:], y_test=digits[60:] + 1)
    assert main(["train", "--model", "svhn-mlp", "--data", str(path), "--epochs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "1-based" in err and "y = y - 1" in err and "y % 10" in err
    np.savez(path, x_train=images[:60], y_train=digits[:60], x_test=images[60:], y_test=digits[60:])
    data = load_dataset((3, 32, 32), data_file=path, preprocess="none")
    assert data.layout == "nhwc" and data.n_classes == 10
    np.testing.assert_array_equal(data.x_train, images[:60].transpose(0, 3, 1, 2))


def test_fetch_checks_the_digest_and_writes_atomically(tmp_path):
    source = tmp_path / "mirror"
    source.mkdir()
    (source / "file.bin").write_bytes(b"payload")
    good = "sha256:" + hashlib.sha256(b"payload").hexdigest()
    target_dir = tmp_path / "data"
    path = fetch("file.bin", (source.as_uri() + "/",), good, target_dir)
    assert open(path, "rb").read() == b"payload"
    (source / "other.bin").write_bytes(b"changed")
    bad = "md5:" + hashlib.md5(b"original").hexdigest()
    with pytest.raises(OSError, match="checksum mismatch") as info:
        fetch("other.bin", ("http://127.0.0.1:9/", source.as_uri() + "/"), bad, target_dir, timeout=2)
    assert str(target_dir / "other.bin") in str(info.value) and "127.0.0.1:9" in str(info.value)
    assert sorted(p.name for p in target_dir.iterdir()) == ["file.bin"]  # nothing half-written


def test_download_mnist_through_a_mirror_checks_the_uncompressed_digest(tmp_path):
    import shutil

    from ember.data import download_mnist
    from ember.data.mnist import bundled_dir

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        shutil.copy(f"{bundled_dir()}/{name}", mirror / name)
    (mirror / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + bytes(8)))  # wrong content
    with pytest.raises(OSError, match="t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        download_mnist(tmp_path / "data", mirrors=(mirror.as_uri() + "/",))
    shutil.copy(f"{bundled_dir()}/t10k-labels-idx1-ubyte.gz", mirror / "t10k-labels-idx1-ubyte.gz")
    assert len(download_mnist(tmp_path / "data", mirrors=(mirror.as_uri() + "/",))) == 4
    assert load_idx_set(tmp_path / "data")["test"][1].shape == (10000,)


def test_samples_that_do_not_fit_the_model_name_the_models_that_take_them():
    from ember.training.train import make_dataset

    rng = np.random.default_rng(7)
    x, y = rng.integers(0, 255, size=(20, 3, 32, 32)).astype(np.uint8), np.arange(20) % 10
    with pytest.raises(ShapeError, match=r"do not fit a model expecting \(784,\) .*--model svhn-mlp"):
        make_dataset("svhn", x, y, x, y, (784,))
