"""The datasets ``ember train --dataset NAME`` knows, and any IDX set in MNIST's layout.

Every loader returns ``{"train": (images, labels), "test": (images, labels)}`` with uint8
images, either (N, H, W) (one channel) or (N, C, H, W), and int64 labels from 0.

- ``mnist``: the bundled copy, or ``data_dir`` (checked against MNIST's SHA-256s);
- ``svhn``: :func:`~ember.data.svhn.load_svhn` (SciPy), labels 10 -> 0;
- ``cifar10``: :func:`~ember.data.cifar.load_cifar10` (binary records, no pickle);
- ``idx``: :func:`load_idx_set`, four IDX files named like MNIST's (Fashion-MNIST,
  KMNIST, EMNIST exports, your own), no checksum since they are not MNIST.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import FormatError
from .cifar import load_cifar10
from .idx import read_idx
from .mnist import FILES as IDX_FILES
from .mnist import find_idx_file, load_mnist
from .svhn import load_svhn


def _find_idx(data_dir: str, stem: str) -> str:
    return find_idx_file(data_dir, stem, "IDX", " (an IDX set uses MNIST's four file names)")


def load_idx_set(data_dir: str | None, splits: Sequence[str] = ("train", "test"), download: bool = False) -> dict:
    """Four IDX files in MNIST's layout and names (``train-images-idx3-ubyte[.gz]``,
    ``train-labels-idx1-ubyte``, ``t10k-...``) from ``data_dir``, without MNIST's checksums.
    Images must be uint8 (N, H, W) or (N, C, H, W) and labels (N,) integers."""
    if not data_dir:
        raise ValueError("the idx dataset needs --data-dir (the folder with the four IDX files)")
    if download:
        raise ValueError("the idx dataset is your own files: nothing to download")
    out = {}
    for split in splits:
        images_stem, labels_stem = IDX_FILES[split]
        images_path, labels_path = _find_idx(data_dir, images_stem), _find_idx(data_dir, labels_stem)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim not in (3, 4):
            raise FormatError(f"{images_path}: expected images (N, H, W) or (N, C, H, W), got {images.shape}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise FormatError(f"{labels_path}: expected integer labels (N,), got {labels.shape} {labels.dtype}")
        if len(images) != len(labels):
            raise FormatError(f"{data_dir} {split}: {len(images)} images but {len(labels)} labels")
        out[split] = (images, labels.astype("int64"))
    return out


def _mnist(data_dir: str | None = None, splits: Sequence[str] = ("train", "test"), download: bool = False) -> dict:
    if download and data_dir:  # the bundled copy needs no download
        from .mnist import download_mnist

        download_mnist(data_dir)
    return load_mnist(data_dir, splits)


#: name -> loader(data_dir, splits, download)
DATASETS: dict[str, Callable[..., dict]] = {"mnist": _mnist, "svhn": load_svhn, "cifar10": load_cifar10, "idx": load_idx_set}


def load_named(name: str, data_dir: str | None = None, download: bool = False) -> dict:
    """``{"train": ..., "test": ...}`` of the dataset ``name`` (one of :data:`DATASETS`)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; one of {', '.join(DATASETS)} (or --data FILE.npz)")
    return DATASETS[name](data_dir, ("train", "test"), download)
