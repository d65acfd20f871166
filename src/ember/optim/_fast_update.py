"""The SGD update over the flat parameter vector in one compiled pass (``ember[fast]``: Numba).

:func:`ember.optim.sgd` with momentum runs, after ``feval``, up to four passes over vectors
as long as the network (weight decay ``g += wd x``, the momentum ``v = mu v + (1 - d) g``,
Nesterov's ``g += mu v``, the step ``x -= clr g``): each reads and writes megabytes, so
the update is bound by memory traffic (REFERENCE §8). :func:`momentum_step` does all of
them element by element in one pass, in the same order and with the same in-place effects
on ``g`` and ``v`` as the NumPy code in ``sgd.py`` (the reference; tests/test_fast_conv.py
compares the two). The scalars are cast to the arrays' dtype first, as BLAS does, so
float32 vectors are updated in float32 arithmetic.

Only the common case is compiled: momentum > 0 after the first call (the first call
copies ``g`` into ``v``), scalar weight decay and learning rate, no per-parameter
vectors, no L1 term, contiguous 1-D NumPy arrays of one dtype. Anything else runs the
NumPy code.
"""

from __future__ import annotations

import weakref

import numpy as np

from .. import _fast


@_fast.kernel()
def _momentum_kernel(x, g, v, wd, mom, keep, nesterov, neg_clr):  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        gi = g[i]
        if wd != 0:
            gi = gi + wd * x[i]  # 2. weight decay, kept in g as Torch7 does
            g[i] = gi
        vi = mom * v[i] + keep * gi  # 3. momentum
        v[i] = vi
        if nesterov:
            gi = gi + mom * vi
            g[i] = gi
        else:
            gi = vi
        x[i] = x[i] + neg_clr * gi  # 5. the step


def _dead() -> None:
    return None


#: the last (x, g, v) that qualified (weak references: the arrays are not kept alive) and
#: their shapes and dtype: a training loop passes the same three arrays every step, checked
#: once rather than every step (the overlap tests cost microseconds)
_last_checked: list = [[_dead, _dead, _dead], None]


def _qualify(x, g, v) -> bool:
    """Whether the kernel can take the arrays: contiguous 1-D NumPy float vectors of one
    dtype and length that share no memory."""
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 and a.flags.c_contiguous for a in (x, g, v)):
        return False
    if not (x.dtype == g.dtype == v.dtype) or x.dtype.kind != "f" or not (x.shape == g.shape == v.shape):
        return False
    return not (np.may_share_memory(x, g) or np.may_share_memory(x, v) or np.may_share_memory(g, v))


def momentum_step(x, g, v, wd: float, mom: float, damp: float, nesterov: bool, clr: float) -> bool:
    """Steps 2, 3 and 5 of Torch7's sgd for momentum ``mom`` > 0 and an existing momentum
    buffer ``v``, in one compiled pass; False (nothing done) when the compiled path is off
    or the arrays do not qualify (the caller then runs its NumPy code)."""
    kernel = _momentum_kernel
    if kernel is None or not _fast.use(kernel):
        return False
    refs, layout = _last_checked
    if not (x is refs[0]() and g is refs[1]() and v is refs[2]() and (x.shape, g.shape, v.shape, x.dtype) == layout):
        if not _qualify(x, g, v):
            return False
        _last_checked[:] = [[weakref.ref(a) for a in (x, g, v)], (x.shape, g.shape, v.shape, x.dtype)]
    real = x.dtype.type
    kernel(x, g, v, real(wd), real(mom), real(1 - damp), bool(nesterov), real(-clr))
    return True
