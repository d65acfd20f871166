"""CIFAR-10, from its *binary* version (no pickle is ever loaded).

``cifar-10-binary.tar.gz`` holds ``cifar-10-batches-bin/data_batch_{1..5}.bin`` (10000
images each) and ``test_batch.bin``. Every file is a run of fixed-size records: one label
byte (0..9) then 3072 pixel bytes, the red, green and blue 32x32 planes in row-major
order. ember returns images uint8 (N, 3, 32, 32) (NCHW) and labels int64, class names in
:data:`CLASSES`.
"""

from __future__ import annotations

import os
import tarfile

import numpy as np

from ..errors import FormatError
from ..io import atomic_write
from .download import data_home, fetch

from typing import Any
from .._typing import PathLike

MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
ARCHIVE = "cifar-10-binary.tar.gz"
#: MD5 of the archive as listed on the CIFAR page (only an MD5 is published)
DIGEST = "md5:c32a1d4ab5d03f1284b67883e8d87530"
FOLDER = "cifar-10-batches-bin"
FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORD = 1 + 3 * 32 * 32


def read_cifar_bin(paths: Any) -> tuple[np.ndarray, np.ndarray]:
    """Records of the binary CIFAR-10 files ``paths``, concatenated, as
    ``(images uint8 (N, 3, 32, 32), labels int64)``; each file's size must be a whole
    number of 3073-byte records and every label 0..9, else :class:`FormatError`."""
    sizes = []
    for path in paths:
        size = os.path.getsize(path)
        if size % RECORD:
            raise FormatError(f"{path}: {size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records (truncated?)")
        sizes.append(size // RECORD)
    n = sum(sizes)
    images, labels = np.empty((n, 3, 32, 32), dtype=np.uint8), np.empty(n, dtype=np.int64)
    start = 0
    for path, count in zip(paths, sizes):
        records = np.fromfile(path, dtype=np.uint8).reshape(count, RECORD)
        if count and records[:, 0].max() > 9:
            raise FormatError(f"{path}: label byte {int(records[:, 0].max())} (CIFAR-10 labels are 0..9; "
                              "is this CIFAR-100's binary format, 2 label bytes per record?)")  # fmt: skip
        labels[start : start + count] = records[:, 0]
        images[start : start + count] = records[:, 1:].reshape(count, 3, 32, 32)
        start += count
    return images, labels


def _folder(data_dir):
    nested = os.path.join(data_dir, FOLDER)
    return nested if os.path.isdir(nested) else data_dir


def load_cifar10(data_dir: PathLike | None = None, splits: tuple[str, ...] = ("train", "test"),
                 download: bool = False) -> dict:
    """CIFAR-10 as ``{split: (images uint8 (N, 3, 32, 32), labels int64 0..9)}``.

    The ``.bin`` files are looked up in ``data_dir/cifar-10-batches-bin/`` or ``data_dir``
    itself (default folder: :func:`~ember.data.download.data_home` ``("cifar10")``). An
    archive ``cifar-10-binary.tar.gz`` found there is unpacked first; ``download=True``
    fetches it when missing.
    """
    data_dir = os.fspath(data_dir or data_home("cifar10"))
    needed = [name for split in splits for name in FILES.get(split, ())]
    if not all(os.path.exists(os.path.join(_folder(data_dir), name)) for name in needed):
        if download or os.path.exists(os.path.join(data_dir, ARCHIVE)):
            download_cifar10(data_dir)
    out = {}
    for split in splits:
        if split not in FILES:
            raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
        paths = [os.path.join(_folder(data_dir), name) for name in FILES[split]]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(
                f"CIFAR-10 file {os.path.basename(missing[0])} not found in {_folder(data_dir)}; run "
                f"ember.data.download_cifar10({data_dir!r}) (or `ember train --dataset cifar10 --download`), "
                f"or put {MIRRORS[0]}{ARCHIVE} (the binary version) in {data_dir}"
            )
        out[split] = read_cifar_bin(paths)
    return out


def extract_cifar10(archive: Any, data_dir: PathLike) -> list:
    """Unpack the ``.bin`` files of the binary archive into ``data_dir/cifar-10-batches-bin``
    (only those regular files, by their base name: nothing outside the folder is written)."""
    wanted = {name for names in FILES.values() for name in names}
    written = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = os.path.basename(member.name)
                if member.isfile() and name in wanted:
                    target = os.path.join(data_dir, FOLDER, name)
                    handle = tar.extractfile(member)
                    if handle is None:  # pragma: no cover - isfile() members always have one
                        continue
                    atomic_write(target, [handle.read()])
                    written.append(target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FormatError(f"{archive}: not a readable CIFAR-10 tar.gz archive ({exc})") from exc
    if len(written) != len(wanted):
        raise FormatError(f"{archive}: expected {sorted(wanted)} in it; is it the binary version ({ARCHIVE})?")
    return written


def download_cifar10(data_dir: PathLike | None = None, mirrors: Any = MIRRORS, timeout: int = 120) -> list:
    """Fetch :data:`ARCHIVE` into ``data_dir`` (kept if already valid), check its MD5,
    and unpack its ``.bin`` files; returns their paths. Offline, the ``OSError`` says
    where to put the archive."""
    data_dir = os.fspath(data_dir or data_home("cifar10"))
    archive = os.path.join(data_dir, ARCHIVE)
    if not os.path.exists(archive):
        archive = fetch(ARCHIVE, mirrors, DIGEST, data_dir, timeout)
    return extract_cifar10(archive, data_dir)
