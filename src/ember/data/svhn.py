"""SVHN (Street View House Numbers, cropped digits): the lecture's ``svhn-mlp`` data.

The files are MATLAB ``.mat`` files, ``{train,test,extra}_32x32.mat``, read with SciPy
(``pip install 'ember[mat]'``; SciPy is needed for nothing else). In them ``X`` is
uint8 (32, 32, 3, N), height x width x RGB x sample, and ``y`` is (N, 1) with values
1..10, where **10 stands for the digit 0** (the dataset's own convention). ember returns
images uint8 (N, 3, 32, 32) (NCHW, what ``svhn-mlp`` and the convolutions take) and
labels int64 0..9 (``y % 10``), so class k is the digit k.

Only MD5 digests of these files are published (torchvision's source); :func:`download_svhn`
checks them.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import FormatError
from .download import data_home, fetch

from typing import Any
from .._typing import PathLike

MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)
FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
DIGESTS = {
    "train_32x32.mat": "md5:e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "md5:eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "md5:a93ce644f1a588dc4d68dda5feec44a7",
}


def _loadmat():
    try:
        from scipy.io import loadmat
    except ImportError:
        raise ImportError("SVHN's .mat files are read with SciPy: pip install 'ember[mat]' (or pip install scipy)") from None
    return loadmat


def read_svhn_mat(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One SVHN ``.mat`` file as ``(images uint8 (N, 3, 32, 32), labels int64 0..9)``."""
    path = os.fspath(path)
    loadmat = _loadmat()
    if not os.path.exists(path):
        raise FileNotFoundError(f"SVHN file {path} not found")
    try:
        content = loadmat(path)
    except Exception as exc:  # SciPy's reader raises many kinds (IndexError, MatReadError...) on foreign bytes
        raise FormatError(f"{path}: not a readable MATLAB .mat file ({exc})") from exc
    if "X" not in content or "y" not in content:
        raise FormatError(f"{path}: an SVHN file holds arrays 'X' and 'y'; found {sorted(k for k in content if not k.startswith('__'))}")
    x, y = content["X"], np.asarray(content["y"])
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
        raise FormatError(f"{path}: expected X as uint8 (32, 32, 3, N), got {x.shape} {x.dtype}")
    n = x.shape[3]
    if y.size != n or y.dtype.kind not in "iuf":
        raise FormatError(f"{path}: expected y with {n} numeric labels like X, got {y.shape} {y.dtype}")
    y = y.reshape(n)
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise FormatError(f"{path}: y holds non-integer labels")
    y = y.astype(np.int64)
    if n and (y.min() < 1 or y.max() > 10):
        raise FormatError(f"{path}: SVHN labels run 1..10 (10 = digit 0), got {y.min()}..{y.max()}")
    # (H, W, C, N) -> (N, C, H, W): one uint8 copy, no float intermediate
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)))
    return images, y % 10


def load_svhn(data_dir: PathLike | None = None, splits: tuple[str, ...] = ("train", "test"),
              download: bool = False) -> dict:
    """SVHN splits as ``{split: (images uint8 (N, 3, 32, 32), labels int64 0..9)}``.

    Files are looked up in ``data_dir`` (default :func:`~ember.data.download.data_home`
    ``("svhn")``). ``download=True`` fetches missing ones first (see :func:`download_svhn`).
    Splits: ``"train"``, ``"test"``, ``"extra"``.
    """
    data_dir = os.fspath(data_dir or data_home("svhn"))
    out = {}
    for split in splits:
        if split not in FILES:
            raise ValueError(f"load_svhn: split must be one of {', '.join(FILES)}, got {split!r}")
        path = os.path.join(data_dir, FILES[split])
        if download and not os.path.exists(path):
            download_svhn(data_dir, splits=(split,))
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"SVHN file {FILES[split]} not found in {data_dir}; run ember.data.download_svhn({data_dir!r}) "
                f"(or `ember train --dataset svhn --download`), or put it there from {MIRRORS[0]}{FILES[split]}"
            )
        out[split] = read_svhn_mat(path)
    return out


def download_svhn(data_dir: PathLike | None = None, splits: tuple[str, ...] = ("train", "test"), mirrors: Any = MIRRORS,
                  timeout: int = 60) -> list:
    """Download the SVHN ``.mat`` files of ``splits`` into ``data_dir`` (valid ones are kept),
    verified by MD5 and written atomically; returns their paths. Offline, the ``OSError``
    says where to put the files."""
    data_dir = os.fspath(data_dir or data_home("svhn"))
    return [fetch(FILES[s], mirrors, DIGESTS[FILES[s]], data_dir, timeout) for s in splits]
