"""Two-way parallelism for the array work BLAS does not cover (im2col, col2im, pooling).

NumPy releases the GIL inside copies and ufunc loops, so two Python threads that each
work on one half of the channels run on two cores. :func:`split` runs ``work(0, mid)``
on the calling thread and ``work(mid, n)`` on one persistent helper thread, then waits.
``work`` must not call BLAS: OpenBLAS called from two threads at once stalled for 100+
ms at a time here; matrix products always run on the calling thread.

The number of threads is 1 (everything on the calling thread, no helper thread) until
:func:`ember.runtime.configure_threads` allows 2 -- it does only when OpenBLAS's idle
threads were told to stop spinning soon: a spinning BLAS thread holds the second core
and the helper would only slow the step down (measured, see docs/convnets.md). The
helper thread is started on the first :func:`split` that uses it, never at import. With
one thread, or when the helper is busy (another thread of the program is using it), the
work runs serially on the caller: results never depend on the number of threads.
"""

from __future__ import annotations

import contextlib

import os
import threading


_state = {"threads": 1, "helper": None, "pid": None}
#: below this many array elements the hand-off costs more than it saves
MIN_ELEMENTS = 1 << 15


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (1 or 2) for ember's own array work (set by :func:`ember.runtime.configure_threads`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _state["threads"] = min(n, 2)


def get_num_threads() -> int:
    """The number of threads (1 or 2) ember's own array work uses."""
    return int(_state["threads"] or 1)


class _Helper:
    """One daemon thread that runs one task at a time for :func:`split`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.start = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.task = None
        self.error = None
        threading.Thread(target=self._loop, name="ember-helper", daemon=True).start()

    def _loop(self):
        while True:
            self.start.acquire()
            work, args = self.task
            try:
                work(*args)
            except BaseException as error:  # re-raised in the caller
                self.error = error
            self.done.release()

    def run_pair(self, work, mine, theirs):
        self.task, self.error = (work, theirs), None
        self.start.release()
        try:
            work(*mine)
        finally:
            self.done.acquire()
            self.task = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


def _helper():
    if _state["pid"] != os.getpid():  # none yet, or we are a forked child
        _state["helper"], _state["pid"] = _Helper(), os.getpid()
    return _state["helper"]


def split(work, n, size=None, xp=None):
    """Run ``work(start, stop)`` over ``range(n)``: halves on two threads when allowed.

    ``size`` (elements touched) below :data:`MIN_ELEMENTS`, or a non-NumPy ``xp`` (GPU
    arrays), runs ``work(0, n)`` on the caller.
    """
    serial = n < 2 or (size is not None and size < MIN_ELEMENTS) or (xp is not None and xp.__name__ != "numpy")
    if serial or _state["threads"] < 2:
        work(0, n)
        return
    helper = _helper()
    if not helper.lock.acquire(blocking=False):
        work(0, n)
        return
    try:
        mid = (n + 1) // 2
        helper.run_pair(work, (0, mid), (mid, n))
    finally:
        helper.lock.release()


