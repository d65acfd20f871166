"""Long flat vectors on 2 MB memory pages (Linux transparent huge pages), for speed only.

The flat parameter and gradient vectors (``get_parameters``) and the optimizers' state
vectors of the same length (a momentum) are read or written whole at every training step,
between the matrix products that read the weights again. With 4 KB pages a 3 MB vector
spans ~800 pages, and one step over three such vectors evicts the CPU's page-address cache
(TLB; 2048 entries on AMD Zen 3) that the next product needs: every page costs a page-table
walk. On 2 MB pages the same vector is two pages. Measured on the lecture's MNIST MLP
(795 010 parameters, batch 128, AMD EPYC Zen 3, OpenBLAS Haswell kernel, 2 threads,
2026-12-03): a training step 1-2% faster (docs/benchmarks.md, "Memory pages and the in-place ReLU").

NumPy itself asks for huge pages only for arrays of 4 MB and more, and its arrays are not
aligned to 2 MB, so only the middle of a vector could get them. :func:`empty` maps the
memory itself (anonymous, private, 2 MB-aligned) and asks for huge pages with
``madvise(MADV_HUGEPAGE)``: the kernel grants them when
``/sys/kernel/mm/transparent_hugepage/enabled`` is ``always`` or ``madvise`` and free 2 MB
blocks exist, and falls back to 4 KB pages otherwise -- correctness never depends on it.
Elsewhere (not Linux, Python without ``MADV_HUGEPAGE``, THP ``never``, vectors under
:data:`MIN_BYTES`) the arrays come from NumPy as usual, and so they do everywhere with the
environment variable ``EMBER_HUGE_PAGES=0`` or after :func:`set_enabled` ``(False)``. The
memory is freed when the last array viewing it goes away, as for any NumPy array.
"""

from __future__ import annotations

import mmap
import os
import sys

import numpy as np

#: vectors shorter than this (in bytes) come from NumPy: they span few pages anyway
MIN_BYTES = 2 << 20
#: the size of one huge page on x86-64 and most aarch64 kernels
HUGE_PAGE = 2 << 20

_THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
_state: dict[str, bool] = {}


def available() -> bool:
    """True when :func:`empty` maps huge-page memory: Linux, ``mmap.MADV_HUGEPAGE`` known,
    the kernel's THP setting is ``always`` or ``madvise`` (read once), and not switched off
    (``EMBER_HUGE_PAGES=0``, :func:`set_enabled`)."""
    if "available" not in _state:
        _state["available"] = _kernel_allows_huge_pages()
    if "enabled" not in _state:
        _state["enabled"] = os.environ.get("EMBER_HUGE_PAGES", "1") != "0"
    return _state["enabled"] and _state["available"]


def set_enabled(on: bool) -> None:
    """Map long vectors on huge pages (True, the default where :func:`available`) or take
    them from NumPy (False), for the vectors made from now on; only speed differs (the
    benchmarks time both: ``benchmarks/bench_mlp.py --memory-variants``)."""
    if not isinstance(on, bool):
        raise TypeError(f"_pages.set_enabled: expected a bool, got {on!r}")
    _state["enabled"] = on


def _kernel_allows_huge_pages() -> bool:
    if not sys.platform.startswith("linux") or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open(_THP_SETTING, encoding="ascii") as settings:
            chosen = settings.read()
    except OSError:
        return False
    return "[always]" in chosen or "[madvise]" in chosen


def empty(n: int, dtype) -> np.ndarray:
    """An uninitialised 1-D NumPy vector of ``n`` elements, on 2 MB pages when it is at
    least :data:`MIN_BYTES` long and :func:`available` (else ``np.empty``)."""
    dtype = np.dtype(dtype)
    nbytes = int(n) * dtype.itemsize
    if nbytes < MIN_BYTES or not available():
        return np.empty(n, dtype)
    span = -(-nbytes // HUGE_PAGE) * HUGE_PAGE  # whole huge pages
    # one page more than needed, so that a 2 MB boundary lies inside; the unused head is
    # never touched and so never backed by memory
    memory = mmap.mmap(-1, span + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    raw = np.frombuffer(memory, np.uint8)  # the array keeps the mapping alive
    start = -raw.__array_interface__["data"][0] % HUGE_PAGE
    try:
        memory.madvise(mmap.MADV_HUGEPAGE, start, span)
    except OSError:  # refused (e.g. a seccomp filter): 4 KB pages, same results
        pass
    return raw[start : start + nbytes].view(dtype)


def like(x: np.ndarray, fill: float | None = 0.0) -> np.ndarray:
    """A vector of ``x``'s length and dtype from :func:`empty`, filled with ``fill``, or a
    copy of ``x`` when ``fill`` is None. ``x`` must be a 1-D NumPy array."""
    vector = empty(x.shape[0], x.dtype)
    if fill is None:
        np.copyto(vector, x)
    else:
        vector.fill(fill)
    return vector


__all__ = ["available", "set_enabled", "empty", "like", "MIN_BYTES", "HUGE_PAGE"]
