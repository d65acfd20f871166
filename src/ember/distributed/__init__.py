"""Data-parallel training over MPI (``pip install ember[mpi]``; mpi4py is imported only
when more than one rank runs).

``mpirun -np 4 ember train ...`` (or ``srun``) trains one model on 4 ranks: every rank
starts from rank 0's parameters, optimizer state and random generators; each global
batch (``--batch-size``) is split evenly over the ranks; one in-place allreduce of the
flat gradient per step makes every optimizer of :mod:`ember.optim` (lbfgs and cg
included) take the single-process step; batch normalization and dropout see the
global batch; rank 0 alone prints and writes files. Ranks that disagree stop at once
with one message, a rank that dies stops the others within seconds, and the replicas
are checked to be bitwise identical every ``EMBER_DIST_CHECK_EVERY`` (100) steps.
With ``--grad-shards S`` the gradient is a fixed tree sum of S chunk gradients
(:mod:`ember.distributed.reproducible`): float32 runs on 1 process and on N ranks (N a
power of two dividing S) are then bit for bit the same. See docs/distributed.md.

In your own loop (five lines; run it with ``mpirun -np N python train.py``)::

    group = distributed.init()                       # MPI ranks (rank, size, is_root)
    group.broadcast(params)                          # every replica starts from rank 0's weights
    for index, weight in group.batches(rng.permutation(n), 64):     # my share of each batch of 64
        feval = group.reduce_feval(make_feval(model, crit, x[index], y[index], grads), grads, weight)
        optim.sgd(feval, params, config, state)      # the same step on every rank

(``rng`` seeded alike on every rank, so all ranks use the same permutation.)
"""

from __future__ import annotations

import sys

from .group import DistributedError, Group, check_world, launched_ranks, local_rank, shard_batches, share_of

_GROUP = None


def init(comm=None) -> Group:
    """The :class:`Group` of this process's MPI ranks (created once; needs mpi4py)."""
    global _GROUP
    if _GROUP is None or comm is not None:
        try:
            import mpi4py  # noqa: F401
        except ImportError as exc:
            need = "distributed training needs mpi4py and an MPI: pip install 'ember[mpi]'"
            raise ImportError(f"{need} ({exc})") from exc
        _GROUP = Group(comm)
    return _GROUP


def active() -> Group | None:
    """The group when this process is one of several launched ranks, else None. Raises
    :class:`DistributedError` if MPI sees another number of ranks than the launcher
    started (:func:`~ember.distributed.group.check_world`)."""
    launched = launched_ranks()
    if launched <= 1:
        return None
    group = init()
    check_world(launched, group.size)
    return group


def start_rank(device="cpu"):
    """Hook of ``ember train``: on several ranks, every rank but 0 prints nothing to
    stdout, and with ``device="cuda"`` each rank of a machine takes its own GPU (local
    rank modulo the GPU count). Returns the group, or None on one rank."""
    group = active()
    if group is None:
        return None
    if not group.is_root:
        import os

        sys.stdout = open(os.devnull, "w")
    if device == "cuda":  # untested here (no GPU on the build machine)
        import cupy

        cupy.cuda.Device(local_rank() % cupy.cuda.runtime.getDeviceCount()).use()
    return group


__all__ = ["DistributedError", "Group", "check_world", "init", "active", "start_rank", "launched_ranks", "local_rank",
           "shard_batches", "share_of"]
