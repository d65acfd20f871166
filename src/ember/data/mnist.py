"""MNIST: bundled with ember (offline), with download code for other locations.

``load_mnist()`` returns ``{"train": (images, labels), "test": (images, labels)}``, images
uint8 (N, 28, 28) and labels int64 (N,). Files are looked up in ``data_dir`` (default:
the copy bundled in the package); :func:`download_mnist` fetches them from the mirrors,
verifying checksums, for users who want them elsewhere.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Sequence
from importlib import resources

from ..errors import FormatError
from ..io import atomic_write
from .download import download_first
from .idx import read_bytes, read_idx, sha256

from typing import Any
from .._typing import PathLike

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
#: SHA-256 of the uncompressed files (the canonical digests; they match Keras' list).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: length of each uncompressed file: the IDX header must announce exactly this
SIZES = {"train-images-idx3-ubyte": 47040016, "train-labels-idx1-ubyte": 60008,
         "t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008}  # fmt: skip
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def bundled_dir() -> str:
    """The folder of the MNIST copy shipped inside the package."""
    return str(resources.files("ember.datasets") / "mnist")


def find_idx_file(data_dir: str, stem: str, kind: str = "IDX", hint: str = "") -> str:
    """``data_dir/stem.gz``, else ``data_dir/stem``; a FileNotFoundError saying
    "``kind`` file ``stem``(.gz) not found in ``data_dir``" then ``hint`` when neither exists."""
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{kind} file {stem}(.gz) not found in {data_dir}{hint}")


def _find(data_dir: str, stem: str) -> str:
    hint = f"; run ember.data.download_mnist({data_dir!r}) or copy the files there from {MIRRORS[0]}"
    return find_idx_file(data_dir, stem, "MNIST", hint)


def load_mnist(data_dir: str | None = None, splits: Sequence[str] = ("train", "test")) -> dict:
    """Load MNIST splits as ``{split: (images uint8 (N,28,28), labels int64 (N,))}``.

    Every file is checked against its SHA-256 (of the uncompressed bytes).
    """
    data_dir = data_dir or bundled_dir()
    out = {}
    for split in splits:
        if split not in FILES:
            raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
        images_stem, labels_stem = FILES[split]
        images = read_idx(_find(data_dir, images_stem), (SHA256[images_stem],), SIZES[images_stem])
        labels = read_idx(_find(data_dir, labels_stem), (SHA256[labels_stem],), SIZES[labels_stem]).astype("int64")
        if images.shape[0] != labels.shape[0]:
            raise FormatError(f"MNIST {split}: {images.shape[0]} images but {labels.shape[0]} labels")
        out[split] = (images, labels)
    return out


def _gzip_problem(blob: bytes, digest: str) -> str | None:
    """None when ``blob`` is gzip data whose uncompressed SHA-256 is ``digest``, else why not."""
    try:
        raw = gzip.decompress(blob)
    except (OSError, EOFError):
        return "not gzip data"
    return None if sha256(raw) == digest else "checksum mismatch"


def download_mnist(data_dir: str, mirrors: Sequence[str] = MIRRORS, timeout: float = 30) -> list[str]:
    """Download the four MNIST files into ``data_dir`` (skipping valid ones).

    Each file is tried on every mirror, verified by SHA-256, and written atomically
    (temporary file then rename). Raises ``OSError`` naming the file, the mirrors
    tried and where to put the file by hand when every mirror fails (e.g. offline).
    Returns the paths written or found.
    """
    os.makedirs(data_dir, exist_ok=True)
    paths = []
    for stem, digest in SHA256.items():
        target = os.path.join(data_dir, stem + ".gz")
        try:
            if os.path.exists(target) and sha256(read_bytes(target, SIZES[stem])) == digest:
                paths.append(target)
                continue
        except FormatError:  # a damaged copy: download it again
            pass
        blob = download_first(f"{stem}.gz", mirrors, functools.partial(_gzip_problem, digest=digest), target,
                              f"sha256 of the uncompressed file: {digest}", timeout)  # fmt: skip
        atomic_write(target, [blob])
        paths.append(target)
    return paths
