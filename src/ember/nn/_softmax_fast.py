"""Compiled row loops (``ember[fast]``: Numba) for a classifier's last stage: LogSoftMax
over the class axis of an (N, C) batch and the ClassNLL criterion on its output.

For the lecture's small class counts (C = 10) the NumPy code is a dozen whole-array calls
on tiny arrays (max, subtract, exp, sum, log, ... each with an axis), so a step spends its
time in call overhead, not arithmetic: ~0.1 ms per training step at batch 128, measured
against a hand-written step (benchmarks/bench_mlp.py --floor). Each function below is one
pass over the rows. The NumPy code in ``activation.py`` and ``criterion.py`` is the
reference (tests/test_fast_softmax.py compares the two); the row sums here run left to
right where NumPy sums pairwise, so the two agree to float rounding, not bit for bit.

Only the common case is compiled: 2-D NumPy arrays of one float dtype with the class axis
last and contiguous, integer labels that are all classes (no ``ignore_index``, no class
weights). Anything else runs the NumPy code, which also raises the errors.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _fast


def rows_ready(*arrays) -> bool:
    """True when every array is a 2-D NumPy array of one float dtype and shape, with
    C-contiguous rows of at least one element (what the kernels below take)."""
    first = arrays[0]
    for a in arrays:
        if not isinstance(a, np.ndarray) or a.ndim != 2 or not a.flags.c_contiguous:
            return False
        if a.dtype != first.dtype or a.shape != first.shape:
            return False
    return first.dtype.kind == "f" and first.shape[1] > 0


@_fast.kernel()
def log_softmax_rows(x, out, lse):  # pragma: no cover - compiled
    """out[n] = x[n] - lse[n], lse[n] = m + log sum_c exp(x[n, c] - m), m = max_c x[n, c]
    (lse has shape (N, 1); a NaN anywhere in a row makes the row NaN, as NumPy's max)."""
    for n in range(x.shape[0]):
        row = x[n]
        top = row[0]
        for c in range(1, row.shape[0]):
            value = row[c]
            if value > top or value != value:  # NaN wins, as in np.max
                top = value
        total = x.dtype.type(0)
        for c in range(row.shape[0]):
            total += math.exp(row[c] - top)
        shift = top + math.log(total)
        lse[n, 0] = shift
        for c in range(row.shape[0]):
            out[n, c] = row[c] - shift


@_fast.kernel()
def log_softmax_rows_backward(y, grad_out, grad_in):  # pragma: no cover - compiled
    """grad_in[n, c] = grad_out[n, c] - exp(y[n, c]) * sum_k grad_out[n, k]."""
    for n in range(y.shape[0]):
        total = y.dtype.type(0)
        for c in range(y.shape[1]):
            total += grad_out[n, c]
        for c in range(y.shape[1]):
            grad_in[n, c] = grad_out[n, c] - math.exp(y[n, c]) * total


@_fast.kernel()
def pick_classes(x, target, picked):  # pragma: no cover - compiled
    """picked[n] = x[n, target[n]]; False (stopping early) at the first label outside
    [0, C), for the NumPy code to handle (ignore_index) or report."""
    classes = x.shape[1]
    for n in range(x.shape[0]):
        label = target[n]
        if label < 0 or label >= classes:
            return False
        picked[n] = x[n, label]
    return True


@_fast.kernel()
def write_class_gradient(target, value, grad_in):  # pragma: no cover - compiled
    """grad_in = 0 except grad_in[n, target[n]] = value; False (grad_in half written) at
    the first label outside [0, C)."""
    classes = grad_in.shape[1]
    for n in range(grad_in.shape[0]):
        label = target[n]
        if label < 0 or label >= classes:
            return False
        for c in range(classes):
            grad_in[n, c] = 0
        grad_in[n, label] = value
    return True


def labels_ready(target, n: int) -> bool:
    """True when ``target`` is a 1-D NumPy integer array of ``n`` labels."""
    return isinstance(target, np.ndarray) and target.dtype.kind in "iu" and target.shape == (n,)
