"""Reproducible reduction: a batch gradient whose float32 bits do not depend on the number
of ranks (``ember train --grad-shards S``).

The batch gradient is *defined* as a fixed binary-tree sum of ``S`` chunk gradients: the
global batch of ``B`` samples is cut into ``S`` contiguous chunks (:func:`chunk_bounds`,
sizes differing by at most one); chunk ``c``'s gradient is its mean gradient times
``len(c) / B`` (its part of the batch mean; 1 for criteria that sum; the factor is applied
to dE/d(output) before the chunk's backward); the batch gradient is

    g = (...((g_0 + g_1) + (g_2 + g_3)) + ...)          (a perfect binary tree over S = 2^k)

One process computes the ``S`` chunks one after the other (:class:`TreeSum` adds them
as they come, keeping one buffer per tree level). ``N`` ranks (``N`` a power of two
dividing ``S``) take ``S / N`` consecutive chunks each, a whole subtree; they sum it
the same way, then combine the subtrees by recursive doubling (:func:`tree_allreduce`:
at level ``k`` rank ``r`` exchanges its partial sum with rank ``r xor 2^k`` and adds it;
``a + b == b + a`` exactly in IEEE arithmetic, so both partners hold the same bits).
Every addition of the tree is then the same addition in every layout, and every chunk
gradient is computed with the same shapes and the same code, **on one BLAS thread**
(OpenBLAS sums in another order with 2 threads: :func:`one_blas_thread`). So the
gradient, hence the whole run, is bit for bit the same on 1, 2, 4, ... ranks with the
same ``S`` (measured in docs/distributed.md).

What the tree cannot cover: batch normalization (statistics per chunk would change the
model; refused), and a GPU (CuPy kernels are not checked for it). Dropout draws the noise
of the whole global batch once per gradient evaluation and each chunk keeps its rows
(:class:`ChunkNoise`), the same masks as one process without chunks.
"""

from __future__ import annotations

import ctypes
import contextlib
from typing import Any, Callable, Iterator

import numpy as np

from .group import share_of


def check_shards(shards: int, ranks: int = 1) -> None:
    """Raise ValueError unless ``shards`` is a power of two that ``ranks`` (a power of
    two) divides."""
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1 or shards & (shards - 1):
        raise ValueError(f"grad_shards must be a power of two (1, 2, 4, 8, ...), got {shards!r}")
    if ranks & (ranks - 1) or shards % ranks:
        raise ValueError(f"grad_shards {shards} needs a number of ranks that is a power of two dividing it, "
                         f"but {ranks} ranks run; use --grad-shards {_fitting(ranks)} or a power-of-two rank count")


def _fitting(ranks: int) -> int:
    power = 1
    while power < ranks:
        power *= 2
    return power


def chunk_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the ``shards`` contiguous chunks of a batch of ``n`` samples
    (sizes differing by at most one; empty chunks when ``n < shards``)."""
    return [share_of(c, shards, n) for c in range(shards)]


def rank_chunks(rank: int, ranks: int, n: int, shards: int) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Rank ``rank``'s part of a batch of ``n``: ``(start, stop, chunks)``, its rows of
    the batch and its chunks as ``(global chunk index, start, stop)`` relative to
    ``start``."""
    per = shards // ranks
    bounds = chunk_bounds(n, shards)[rank * per : (rank + 1) * per]
    start, stop = bounds[0][0], bounds[-1][1]
    return start, stop, [(rank * per + i, lo - start, hi - start) for i, (lo, hi) in enumerate(bounds)]


class TreeSum:
    """Adds a power-of-two number of arrays, given one at a time, as a perfect binary tree
    (a binary counter: one buffer per level). ``add(g)`` for all but the last; ``add(g,
    last=True)`` leaves the tree's sum in ``g`` itself. ``g`` may be overwritten between
    calls (it is the model's gradient, reused by every chunk)."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, Any]] = []  # (level, partial sum), levels decreasing upwards
        self.free: list[Any] = []

    def add(self, g: Any, last: bool = False) -> None:
        """Add the next leaf ``g``; with ``last``, the total lands in ``g``."""
        level = 0
        if last:
            while self.stack:
                below, buf = self.stack.pop()
                if below != level:
                    raise ValueError("TreeSum: the number of arrays added is not a power of two")
                g += buf  # (a + b == b + a exactly: the left-right order does not matter)
                self.free.append(buf)
                level += 1
            return
        if self.stack and self.stack[-1][0] == 0:
            _, buf = self.stack.pop()
            buf += g
            level = 1
            while self.stack and self.stack[-1][0] == level:
                _, left = self.stack.pop()
                left += buf
                self.free.append(buf)
                buf, level = left, level + 1
        else:
            buf = self.free.pop() if self.free else g.copy()
            buf[...] = g
        self.stack.append((level, buf))


class _Both:
    """Two MPI requests as one (``Test()`` true when both are complete), for :meth:`Group.wait`."""

    def __init__(self, MPI: Any, requests: list) -> None:
        self.MPI, self.requests = MPI, requests

    def Test(self) -> bool:  # noqa: N802 (mpi4py's name)
        return bool(self.MPI.Request.Testall(self.requests))


def tree_allreduce(group: Any, array: Any, scratch: dict) -> Any:
    """Sum ``array`` over the ranks (a power of two) by recursive doubling, in place: at
    level ``k`` each rank adds the partial sum of rank ``rank xor 2^k``. The result is the
    binary tree over the ranks' arrays in rank order, bitwise the same on every rank."""
    start = group.MPI.Wtime()
    host, staged = group._host_view(array)
    other = scratch.get(host.shape)
    if other is None:
        other = scratch[host.shape] = np.empty_like(host)
    step = 1
    while step < group.size:
        partner = group.rank ^ step
        what = f"the reproducible gradient sum with rank {partner}"
        if group.blocking:
            group.watched(lambda: group.comm.Sendrecv(host, partner, step, other, partner, step), what)
        else:
            requests = [group.comm.Irecv(other, partner, step), group.comm.Isend(host, partner, step)]
            group.wait(_Both(group.MPI, requests), what)
        host += other
        step *= 2
    group.reduce_calls += 1
    group.reduce_bytes += host.nbytes
    group.reduce_seconds += group.MPI.Wtime() - start
    return group._back(array, host, staged)


# ------------------------------------------------------------------ BLAS threads
def _blas_thread_calls() -> tuple[Callable[[], int], Callable[[int], None]] | None:
    from ..runtime import _loaded_blas_libraries

    for path in _loaded_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", ""), ("scipy_openblas", "")):
            get, put = getattr(lib, f"{prefix}_get_num_threads{suffix}", None), getattr(
                lib, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and put is not None:
                return (lambda: int(get())), (lambda n: put(ctypes.c_int(n)))
    return None


_BLAS: dict = {}


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with OpenBLAS on one thread, then restore its thread count. (With 2
    threads OpenBLAS's sgemm rounds differently: the chunk gradients must not depend on
    the thread count.) Without an OpenBLAS it changes nothing: then use the same
    ``--threads`` on every run."""
    if "calls" not in _BLAS:
        _BLAS["calls"] = _blas_thread_calls()
    calls = _BLAS["calls"]
    if calls is None:
        yield
        return
    get, put = calls
    before = get()
    if before != 1:
        put(1)
    try:
        yield
    finally:
        if before != 1:
            put(before)


# ------------------------------------------------------------------ dropout
class ChunkNoise:
    """Stands in for a module's ``numpy.random.Generator`` (Dropout's ``rng``) while a
    batch is computed chunk by chunk: the ``k``-th batch-shaped draw of a chunk takes its
    rows of the ``k``-th draw for the whole global batch, drawn once per gradient
    evaluation (by the first chunk computed here). So the generator advances exactly as
    without chunks, on every rank, and the masks are the unchunked ones. Other calls go to
    the generator unchanged."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.size, self.start, self.stop, self.k = 0, 0, 0, 0
        self.draws: list = []

    def begin_batch(self, size: int) -> None:
        """A new gradient evaluation of a global batch of ``size`` samples."""
        self.size, self.draws = size, []

    def begin_chunk(self, start: int, stop: int) -> None:
        """The next forward computes rows ``start:stop`` of the global batch."""
        self.start, self.stop, self.k = start, stop, 0

    def random(self, size: Any = None, dtype: Any = np.float64, out: Any = None) -> Any:
        """``Generator.random``; into a chunk-shaped ``out``: the chunk's rows of the global batch's draw."""
        if out is None or out.ndim == 0 or not self.size or out.shape[0] != self.stop - self.start:
            return self.generator.random(size, dtype=dtype, out=out)
        if self.k == len(self.draws):
            self.draws.append(self.generator.random((self.size,) + out.shape[1:], dtype=dtype))
        out[...] = self.draws[self.k][self.start : self.stop]
        self.k += 1
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self.generator, name)


def wrap_noise(model: Any) -> list[ChunkNoise]:
    """Replace every module's ``numpy.random.Generator`` by a :class:`ChunkNoise` (one per
    generator); returns them."""
    wrapped: dict[int, ChunkNoise] = {}
    for m in model.modules():
        gen = m.__dict__.get("rng")
        if isinstance(gen, np.random.Generator):
            m.rng = wrapped.setdefault(id(gen), ChunkNoise(gen))
    return list(wrapped.values())


def refuse_batchnorm(model: Any) -> None:
    """Raise ValueError if ``model`` has batch normalization (its statistics would be
    per chunk: another model than without chunks)."""
    from ..nn.batchnorm import BatchNormalization

    if any(isinstance(m, BatchNormalization) for m in model.modules()):
        raise ValueError("--grad-shards (reproducible reduction) does not support batch normalization: its "
                         "statistics would be taken per chunk; train without --grad-shards (on N ranks the "
                         "statistics are those of the global batch)")  # fmt: skip


class ChunkedFeval:
    """The reproducible ``feval`` of one global batch length ``batch``: the tree sum of
    the ``shards`` chunk gradients (module docstring), this rank's chunks computed here
    (``group`` None: all of them), the ranks' subtrees combined by :func:`tree_allreduce`;
    then ``regularize(x, grads)`` on the global gradient. ``inputs`` and ``targets`` are
    this rank's rows of the batch (buffers refilled in place before each step: the
    closure is built once per batch length). The loss returned is the sum of the chunk
    losses (times their weights) in chunk order, and ``correct`` the batch's count of
    correct predictions, both the same on every rank. Built once, called every step."""

    def __init__(self, model: Any, criterion: Any, inputs: Any, targets: Any, grads: Any, batch: int, shards: int,
                 group: Any = None, regularize: Any = None, size_average: bool = True,
                 noise: list[ChunkNoise] | tuple = (), params: Any = None) -> None:  # fmt: skip
        rank, ranks = (group.rank, group.size) if group is not None else (0, 1)
        check_shards(shards, ranks)
        self.start, self.stop, self.chunks = rank_chunks(rank, ranks, batch, shards)
        if len(inputs) != self.stop - self.start or len(targets) != len(inputs):
            raise ValueError(f"ChunkedFeval: inputs and targets must hold this rank's {self.stop - self.start} rows "
                             f"of the batch, got {len(inputs)} and {len(targets)}")  # fmt: skip
        self.model, self.criterion, self.inputs, self.targets, self.grads = model, criterion, inputs, targets, grads
        self.batch, self.shards, self.group, self.regularize = batch, shards, group, regularize
        self.size_average, self.noise, self.params = size_average, list(noise), params
        self.parts = np.zeros(2 * shards)  # weighted chunk losses, then chunk correct counts (global chunk index)
        self.tree, self.correct = TreeSum(), 0
        self.scratch: dict = {}  # the receive buffer of tree_allreduce

    def _chunk(self, c: int, lo: int, hi: int) -> None:
        model, criterion, backend = self.model, self.criterion, self.model.backend
        for n in self.noise:
            n.begin_chunk(self.start + lo, self.start + hi)
        x, t = self.inputs[lo:hi], self.targets[lo:hi]
        out = model.forward(x)
        loss = criterion.forward(out, t)
        weight = (hi - lo) / self.batch if self.size_average else 1.0
        grad_out = criterion.backward(out, t)
        if weight != 1:  # scale dE/d(output) (batch x classes), not the whole gradient afterwards: cheaper
            grad_out = grad_out * weight
        model.backward(x, grad_out)
        self.parts[c] = float(loss) * weight
        self.parts[self.shards + c] = int((backend.to_numpy(out.argmax(axis=1)) == backend.to_numpy(t)).sum())

    def __call__(self, x: Any) -> tuple[float, Any]:
        group, grads, parts = self.group, self.grads, self.parts
        with one_blas_thread():
            parts[:] = 0
            for n in self.noise:
                n.begin_batch(self.batch)
            for i, (c, lo, hi) in enumerate(self.chunks):
                self.model.zero_grad_parameters()
                if hi > lo:  # (an empty chunk, batch < shards, adds zeros)
                    self._chunk(c, lo, hi)
                self.tree.add(grads, last=i == len(self.chunks) - 1)
            if group is not None:
                tree_allreduce(group, grads, self.scratch)
                group.allreduce(parts, "the loss allreduce")  # one rank fills each entry: exact
            loss = 0.0
            for value in parts[: self.shards]:  # chunk order, on every rank
                loss += float(value)
            self.correct = int(round(float(parts[self.shards :].sum())))
            if self.regularize is not None:
                self.regularize(x, grads)
        if group is not None:
            group._calls += 1
            if group.check_every and group._calls % group.check_every == 0:
                group.check_replicas(self.params if self.params is not None else x)
        return loss, grads
