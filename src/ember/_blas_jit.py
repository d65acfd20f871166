""":func:`ember._blas.gemm` as compiled code (``ember[fast]``: Numba), for NumPy's OpenBLAS.

The ctypes call of ``_blas.gemm`` spends ~11 us in Python per product, whatever its size:
reading three arrays' addresses through ``__array_interface__``, checking their layouts
and converting fourteen arguments. A training step of the lecture's MLP makes five
products, so that is over 1% of a step at batch 128 (benchmarks/bench_mlp.py --floor).
:func:`gemm` makes the same checks and the same ``cblas_?gemm`` call from compiled code,
in ~1 us. It is used only while ember's BLAS is NumPy's own OpenBLAS (whose wheels export
``scipy_cblas_?gemm64_``), so both paths call one routine with the same arguments and
give the same bits (tests/test_fast_softmax.py compares them for every layout). ``_blas.gemm``'s Python code is the
reference and the fallback.

Imported on first use (it imports Numba) by ``_blas._compiled_gemm``, after that made the
OpenBLAS symbols resolvable by name (which lets the compiled products be cached on disk).
The recurrent kernels (``nn/_rnn_jit.py``) call the same two bindings.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from . import _fast

#: NumPy's OpenBLAS (64-bit integers, ``scipy_`` prefixed): the routines compiled code calls by name
SGEMM, DGEMM = "scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"
_ROW_MAJOR, _NO_TRANS = 101, 111


def blas_signature(real):
    """The C signature of ``cblas_?gemm`` with 64-bit integers, pointers passed as int64."""
    i64, i32 = types.int64, types.intc
    return types.void(i32, i32, i32, i64, i64, i64, real, i64, i64, i64, i64, real, i64, i64)


sgemm = types.ExternalFunction(SGEMM, blas_signature(types.float32))
dgemm = types.ExternalFunction(DGEMM, blas_signature(types.float64))


def _call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):  # pragma: no cover - stub
    """``cblas_?gemm`` (row-major) on whole arrays, picked by dtype at compile time."""


@overload(_call)
def _call_impl(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    blas, real = (sgemm, np.float32) if a.dtype == types.float32 else (dgemm, np.float64)
    i32, i64 = np.int32, np.int64

    def call(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        blas(i32(_ROW_MAJOR), i32(trans_a), i32(trans_b), i64(m), i64(n), i64(k), real(alpha),
             i64(a.ctypes.data), i64(lda), i64(b.ctypes.data), i64(ldb), real(beta),
             i64(c.ctypes.data), i64(ldc))  # fmt: skip

    return call


@_fast.kernel()
def _layout(x):  # pragma: no cover - compiled
    """(0 = rows contiguous, 1 = columns contiguous (a transposed view), -1 = neither;
    leading dimension): ``_blas._matrix``'s rule, in the same order."""
    size = x.itemsize
    rows, cols = x.shape
    s0, s1 = x.strides
    if (s1 == size or cols == 1) and s0 % size == 0 and s0 // size >= max(cols, 1):
        return 0, max(s0 // size, 1)
    if (s0 == size or rows == 1) and s1 % size == 0 and s1 // size >= max(rows, 1):
        return 1, max(s1 // size, 1)
    return -1, 0


@_fast.kernel()
def gemm(a, b, out, alpha, beta):  # pragma: no cover - compiled
    """``out = alpha * a @ b + beta * out`` for 2-D arrays of one dtype (``_blas.gemm``
    checked the dtypes and dimensions); False (nothing done) when the shapes do not fit
    or a layout is not BLAS's."""
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
        return False
    trans_a, lda = _layout(a)
    trans_b, ldb = _layout(b)
    trans_c, ldc = _layout(out)
    if trans_a < 0 or trans_b < 0 or trans_c != 0:
        return False
    if m == 0 or n == 0:
        return True
    if k == 0:  # nothing to multiply: out = beta * out, in the arrays' precision
        scale = out.dtype.type(beta)
        for i in range(m):
            for j in range(n):
                out[i, j] *= scale
        return True
    _call(_NO_TRANS + trans_a, _NO_TRANS + trans_b, m, n, k, alpha, a, lda, b, ldb, beta, out, ldc)
    return True
