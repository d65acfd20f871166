"""Downloading dataset files: every mirror in turn, a digest check, an atomic write.

:func:`fetch` is what the dataset modules (:mod:`~ember.data.svhn`,
:mod:`~ember.data.cifar`) call for each file. A digest is written ``"sha256:<hex>"`` or
``"md5:<hex>"`` (some datasets publish only MD5s; see docs/datasets.md). When every
mirror fails (no network, a moved file) the ``OSError`` names the file, each URL tried
with its error, and the path where a copy fetched by hand must be put.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request

from ..io import atomic_write

from typing import Any
from .._typing import PathLike

#: where named datasets live unless ``data_dir`` is given: $EMBER_DATA, else ~/.cache/ember
DATA_HOME_ENV = "EMBER_DATA"


def data_home(name: str) -> str:
    """The default folder of dataset ``name``: ``$EMBER_DATA/name`` or ``~/.cache/ember/name``."""
    root = os.environ.get(DATA_HOME_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "ember")
    return os.path.join(root, name)


def _split_digest(digest: str) -> tuple[str, str]:
    algorithm, sep, value = digest.partition(":")
    if not sep or algorithm not in ("sha256", "md5"):
        raise ValueError(f"digest must be 'sha256:<hex>' or 'md5:<hex>', got {digest!r}")
    return algorithm, value.lower()


def file_digest(path: PathLike, algorithm: str = "sha256", block: int = 1 << 20) -> str:
    """The hex digest of the file at ``path`` (read in 1 MiB blocks, never whole)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def matches(path: PathLike, digest: str) -> bool:
    """Whether the file at ``path`` exists and has the digest ``"algorithm:hex"``."""
    algorithm, value = _split_digest(digest)
    return os.path.isfile(path) and file_digest(path, algorithm) == value


def fetch(filename: str, mirrors: Any, digest: str, data_dir: PathLike, timeout: float = 60) -> str:
    """Make sure ``data_dir/filename`` holds the file with ``digest``; return its path.

    A valid existing file is kept. Otherwise each ``mirror + filename`` is downloaded
    in turn, checked, and written atomically (a temporary file renamed into place, so an
    interrupted download never leaves a half file under the real name).
    """
    algorithm, value = _split_digest(digest)
    target = os.path.join(os.fspath(data_dir), filename)
    if matches(target, digest):
        return target

    def check(blob):
        got = hashlib.new(algorithm, blob).hexdigest()
        return None if got == value else f"checksum mismatch ({algorithm} {got})"

    blob = download_first(filename, mirrors, check, target, f"{algorithm} {value}", timeout)
    atomic_write(target, [blob])
    return target


def download_first(filename: str, mirrors: Any, check: Any, target: str, expected: str, timeout: float = 60) -> bytes:
    """The bytes of ``mirror + filename`` from the first mirror that answers and whose
    bytes pass ``check(blob)`` (None when good, else the reason). When none does, an
    ``OSError`` names every URL tried with its error and the ``target`` path where a copy
    fetched by hand must go (``expected``: its digest, for the person doing it)."""
    errors = []
    for mirror in mirrors:
        url = mirror + filename
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed dataset mirrors
                blob = response.read()
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        problem = check(blob)
        if problem is None:
            return blob
        errors.append(f"{url}: {problem}")
    raise OSError(
        f"could not download {filename}; tried:\n  " + "\n  ".join(errors or ["(no mirrors given)"])
        + f"\nDownload it by hand and put it at {target} ({expected})"
    )
