"""Compiled time loops of the fused LSTM and GRU layers (the optional ``ember[fast]`` path).

The NumPy loop of :mod:`ember.nn.rnn_kernels` is the reference; these kernels compute
the same thing in one compiled call per layer and direction, with **batch-major**
per-step arrays (gates (T, N, G*H), states (T+1, N, H)): a step's gates of one sequence
are one contiguous row, so the gate math vectorises over H and a batch half is a block
of whole rows (the NumPy loop's feature-major layout made each step touch G*H rows T*N
elements apart: 3-9x slower gate math):

- forward: the input projection of all steps (one GEMM, done by the caller, no bias)
  lies in ``gates``. Each step adds ``h_{t-1} W_hh^T`` to ``gates[t]`` with one
  ``cblas_?gemm`` (beta = 1, from a contiguous W_hh^T), then passes over each row add
  the bias, compute the gate activations (in place), the new states and what the
  backward needs.
- backward: passes over each row write dE/d(gates) into the (T, N, G*H) buffer the
  weight-gradient GEMMs read and add it to the bias-gradient sums, then one
  ``cblas_?gemm`` adds ``dE/d(gates) W_hh`` to dE/dh_{t-1}.

The batch is split in two halves run on two threads (the caller and ember's helper
thread, :mod:`ember.nn._parallel`) with OpenBLAS set to one thread meanwhile: each half
runs its whole time loop with no synchronisation (REFERENCE §8.2: a Numba parallel
region next to threaded OpenBLAS collapses).

BLAS is NumPy's own OpenBLAS (``scipy_cblas_?gemm64_`` in NumPy's wheels), bound by
symbol name (``llvmlite.binding.load_library_permanently`` + Numba's
``ExternalFunction``) so the kernels are cached on disk. When Numba is missing, or NumPy's
BLAS is not that OpenBLAS, :func:`ready` is False and the NumPy loop runs. Numba and the
kernels (:mod:`ember.nn._rnn_jit`) are imported on first use, not with ``import ember``.

float32 uses a rational tanh (Eigen's, relative error < 4e-7; it vectorises where
``np.tanh`` would run scalar without SVML); float64 uses ``math.tanh`` so gradient
checks stay exact.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import _fast
from . import _parallel
from .module import scratch

#: batch halves narrower than this run on one thread (the hand-off would cost more)
MIN_SPLIT = 8


def _load() -> tuple[Any, Any]:
    """(numba, NumPy's OpenBLAS as a ctypes library) when the compiled path can run, else
    (None, None)."""
    from ..backend import compiled_blas

    lib = compiled_blas()
    if lib is None:
        return None, None
    import numba

    return numba, lib.handle


_state: dict[str, Any] = {"checked": False, "jit": None, "get": None, "set": None}


def _jit() -> Any:
    """The compiled kernels' module (loaded on first use), or None when they cannot run."""
    if not _state["checked"]:
        _state["checked"] = True
        numba, lib = _load()
        if numba is not None:
            from . import _rnn_jit

            _state["jit"] = _rnn_jit
            get, put = (getattr(lib, f"scipy_openblas_{w}_num_threads64_", None) for w in ("get", "set"))
            if get is not None and put is not None:
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                _state["get"], _state["set"] = get, put
    return _state["jit"]


def ready() -> bool:
    """True when the compiled loops can run: Numba installed and NumPy's BLAS is OpenBLAS."""
    return _jit() is not None


def kernel(name: str) -> Callable:
    """The compiled kernel ``name`` (``lstm_forward``, ``lstm_backward``, ``gru_forward``,
    ``gru_backward``); call only after :func:`usable` said yes."""
    return getattr(_jit(), name)


def run(kernel: Callable, args: tuple, n: int) -> None:
    """``kernel(*args, n0, n1)`` over the batch columns 0:n: two halves on two threads when
    ember's array work may use two (:func:`ember.runtime.configure_threads`) and the helper
    thread is free, with OpenBLAS on one thread meanwhile; else one call on this thread."""
    half = (n // 2 + 7) // 8 * 8  # the first half a multiple of 8 columns (whole vectors)
    if half < MIN_SPLIT or n - half < MIN_SPLIT or not _split_pair(kernel, args + (0, half), args + (half, n)):
        kernel(*args, 0, n)


def _split_pair(work: Callable, mine: tuple, theirs: tuple) -> bool:
    """``work(*mine)`` here and ``work(*theirs)`` on the helper thread with OpenBLAS on one
    thread meanwhile; False (nothing done) when two threads are not allowed or free."""
    threads_get, threads_set = _state["get"], _state["set"]
    if _parallel.get_num_threads() < 2 or threads_set is None:
        return False
    helper = _parallel._helper()
    if not helper.lock.acquire(blocking=False):
        return False
    old = threads_get()
    try:
        threads_set(1)
        helper.run_pair(work, mine, theirs)
    finally:
        threads_set(old)
        helper.lock.release()
    return True


def split_rows(work: Callable, rows: int) -> None:
    """``work(start, stop)`` over ``range(rows)`` (e.g. BLAS products on row blocks of their
    outputs): two halves on two threads with one BLAS thread each, as :func:`run`, or one
    call here when two threads are not allowed or the halves would be small."""
    half = (rows // 2 + 15) // 16 * 16
    if half < 2 * MIN_SPLIT or rows - half < 2 * MIN_SPLIT or not _split_pair(work, (0, half), (half, rows)):
        work(0, rows)


def split_gemm(backend: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray, alpha: float = 1.0,
               beta: float = 0.0) -> bool:
    """``out = alpha a b + beta out`` (2-D NumPy arrays, any may be a transposed view) as two
    halves of ``out``, each a ``backend.gemm`` on its own thread with one BLAS thread (like
    the time loops: no multi-threaded BLAS call that waits for a descheduled thread on a
    shared host). False when it cannot (the caller then makes the product itself)."""
    if not ready() or backend.xp is not np or out.ndim != 2 or a.ndim != 2 or b.ndim != 2:
        return False
    rows = out.shape[0] >= out.shape[1]
    size = out.shape[0] if rows else out.shape[1]
    half = (size // 2 + 15) // 16 * 16
    if half < 2 * MIN_SPLIT or size - half < 2 * MIN_SPLIT:
        return False

    def work(x, y, z):
        backend.gemm(x, y, z, alpha=alpha, beta=beta)

    if rows:
        parts = (a[:half], b, out[:half]), (a[half:], b, out[half:])
    else:
        parts = (a, b[:, :half], out[:, :half]), (a, b[:, half:], out[:, half:])
    return _split_pair(work, *parts)


def usable(*arrays: np.ndarray) -> bool:
    """True when the compiled path is on and these arrays suit it (float32/64 NumPy arrays)."""
    if not (_fast.enabled() and ready()):
        return False
    first = arrays[0]
    if not isinstance(first, np.ndarray) or first.dtype not in (np.float32, np.float64):
        return False
    return all(isinstance(a, np.ndarray) and a.dtype == first.dtype for a in arrays)


class BatchMajor:
    """The compiled path's part of :class:`ember.nn.rnn_kernels.Kernel` (a base of it):
    the batch-major forward and the small buffers the compiled loops take."""

    w_hh_t = scratch("W_hh^T (H, G*H), C-contiguous: the compiled forward's per-step products run faster from it")
    zero_bias = scratch("zeros (G*H,): the bias of a compiled loop for a layer without bias")
    db = scratch("the compiled backward's bias-gradient sums, one row per batch half (2, parts, G*H)")

    if TYPE_CHECKING:  # provided by Kernel (rnn_kernels.py), the class this is a base of
        hs: int
        gates: int
        parts: int
        reverse: bool
        proj: Any
        states: Any
        g: Any

        def fit(self, buffer: Any, shape: tuple[int, ...]) -> np.ndarray: ...
        def fits(self, buffers: Any, shapes: list[tuple[int, ...]]) -> list[np.ndarray]: ...
        def gemm(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float = 0.0, trans_b: bool = False,
                 alpha: float = 1.0) -> None: ...
        def forward_compiled(self, p: dict[str, np.ndarray], keep: np.ndarray | None) -> None: ...

    def forward_batch_major(self, x: np.ndarray, p: dict[str, np.ndarray], state0: list[np.ndarray],
                            keep: np.ndarray | None, start: int, end: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """``Kernel.forward`` on the compiled path, whose per-step arrays are batch-major
        (N, features) (:mod:`ember.nn._rnn_jit`): proj (T, N, G*H) = X^T W_ih^T in one
        GEMM (the compiled loop adds the bias), states (T+1, N, H); returns (T, H, N) and
        (H, N) views, like the NumPy path."""
        f, t_len, n = x.shape
        hs, gh = self.hs, self.gates * self.hs
        proj = self.proj = self.fit(self.proj, (t_len, n, gh))
        self.gemm(x.reshape(f, t_len * n).T, p["weight_ih"].T, proj.reshape(t_len * n, gh))  # the bias: in the loop
        states = self.states = self.fits(self.states, [(t_len + 1, n, hs)] * self.parts)
        for s, s0 in zip(states, state0):
            s[start] = s0.T
        self.g = proj
        self.forward_compiled(p, keep)
        out = states[0][:-1] if self.reverse else states[0][1:]
        return out.transpose(0, 2, 1), [s[end].T for s in states]

    def w_t(self, p: dict[str, np.ndarray]) -> np.ndarray:
        """W_hh^T (H, G*H), C-contiguous, for the compiled forward."""
        w = p["weight_hh"]
        self.w_hh_t = self.fit(self.w_hh_t, w.shape[::-1])
        kernel("transpose")(w, self.w_hh_t)
        return self.w_hh_t

    def zeros(self) -> np.ndarray:
        """Zeros (G*H,): the bias of a compiled loop for a layer without bias."""
        zero = self.zero_bias = self.fit(self.zero_bias, (self.gates * self.hs,))
        zero.fill(0)
        return zero

    def bias_sums(self, parts: int) -> np.ndarray:
        """The compiled backward's bias-gradient sums (2, parts, G*H), zeroed: one row per
        batch half (the two threads), ``parts`` = 2 for the GRU (dg and dhg)."""
        db = self.db = self.fit(self.db, (2, parts, self.gates * self.hs))
        db.fill(0)
        return db

    @staticmethod
    def keep_bytes(keep: np.ndarray | None, t_len: int, n: int) -> tuple[np.ndarray, bool]:
        """(``keep`` as a (T, N) uint8 view, whether there is one) for a compiled loop."""
        if keep is None:
            return np.zeros((1, 1), np.uint8), False
        return keep.reshape(t_len, n).view(np.uint8), True


__all__ = ["BatchMajor", "ready", "kernel", "run", "split_gemm", "split_rows", "usable"]
