"""The hooks that make ``ember train`` (:class:`ember.loop.TrainingRun`) data-parallel
when it runs under ``mpirun``/``srun`` with more than one rank.

:func:`join_run` checks that all ranks agree (model, data, options), leaves printing,
logs, model files and checkpoints to rank 0, synchronizes batch normalization and
dropout across ranks; :meth:`RunSync.broadcast_run` gives every rank rank 0's whole
state (fresh, or resumed from rank 0's checkpoint file, so ranks need no shared
disk); :meth:`RunSync.shard` and :meth:`RunSync.wrap_feval` split each global batch
and sum the gradient, loss and correct count.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zlib

import numpy as np

from ..io import describe_architecture
from ..nn.batchnorm import BatchNormalization
from ..distributed import active
from ..distributed.group import share_of
from ..distributed.replicas import BatchShare, ShardedGenerator, sync_batchnorm
from ..distributed.reproducible import ChunkedFeval, check_shards, one_blas_thread, rank_chunks, refuse_batchnorm
from ..distributed.reproducible import wrap_noise
from .train import make_feval
from .run_state import load_training, save_training
from .train import evaluate


def _data_digest(data):
    """A cheap fingerprint of the data every rank loaded (labels, every 97th input)."""
    digest = zlib.adler32(np.ascontiguousarray(data.y_train).view(np.uint8))
    images = getattr(data.x_train, "raw", data.x_train)  # the stored images (before preprocessing)
    some_inputs = np.ascontiguousarray(images.reshape(len(data.y_train), -1)[::97])
    digest = zlib.adler32(some_inputs.view(np.uint8), digest)
    return zlib.adler32(np.ascontiguousarray(data.y_test).view(np.uint8), digest)


def _counting(owner, chunked):
    """``chunked`` that also leaves the batch's correct count in ``owner.correct``."""

    def counted(x):
        result = chunked(x)
        owner.correct = chunked.correct
        return result

    return counted


class RunSync:
    """The distributed side of one training run (see the module docstring)."""

    def __init__(self, group, run):
        self.group, self.run = group, run
        o, data, model = run.options, run.data, run.model
        self.size_average = bool(getattr(run.criterion, "size_average", True))
        group.agree({
            **run.fingerprint, "architecture": describe_architecture(model),
            "parameters": int(run.params.size), "dtype": str(run.params.dtype), "epochs": o.epochs,
            "max_steps": o.max_steps, "checkpoint_every": o.checkpoint_every,
            "n_test": len(data.y_test), "data_digest": _data_digest(data), "criterion": type(run.criterion).__name__,
            "size_average": self.size_average, "resume": o.resume, "grad_shards": o.grad_shards,
        })  # fmt: skip
        self.shards = o.grad_shards
        if self.shards:  # the reproducible tree sum (ember.distributed.reproducible)
            check_shards(self.shards, group.size)
            refuse_batchnorm(model)
        norms = [m for m in model.modules() if isinstance(m, BatchNormalization)]
        n, bs = len(data.y_train), o.batch_size
        smallest = min(bs, n % bs or bs)
        if norms and smallest < group.size:
            raise ValueError(f"batch normalization over {group.size} ranks needs every rank to hold a sample of "
                             f"every batch, but a batch has {smallest} samples; use fewer ranks or another "
                             "--batch-size/--limit")  # fmt: skip
        self.share = BatchShare()
        for m in norms:
            sync_batchnorm(m, group, self.share)
        self.noise = wrap_noise(model) if self.shards else []  # (then no Generator is left for the loop below)
        wrapped = {}
        for m in model.modules():
            gen = m.__dict__.get("rng")
            if isinstance(gen, np.random.Generator):
                m.rng = wrapped.setdefault(id(gen), ShardedGenerator(gen, self.share))
        share = -(-bs // group.size)
        how = f" of {self.shards} chunks, tree-summed (reproducible)" if self.shards else ""
        print(f"data-parallel over {group.size} ranks: each batch of {bs} split into shares of at most {share}{how}",
              file=run.out, flush=True)
        if not group.is_root:  # rank 0 alone prints, logs and writes files
            run.options = dataclasses.replace(o, save=None, log=None, checkpoint=None, checkpoint_every=0,
                                              resume=False, progress=False)  # fmt: skip
            run.out = open(os.devnull, "w")

    def broadcast_run(self):
        """Rank 0's state (parameters, buffers, optimizer state, RNGs, schedule, epoch,
        position and data order) on every rank; returns the :class:`RunState`."""
        r, group = self.run, self.group
        with tempfile.TemporaryDirectory(prefix="ember-rank-") as folder:
            path = os.path.join(folder, "state.ckpt")
            if group.is_root:
                save_training(path, r)
                with open(path, "rb") as f:
                    blob = f.read()
            blob = group.broadcast_bytes(blob if group.is_root else b"")
            if group.is_root:
                return r.run
            with open(path, "wb") as f:
                f.write(blob)
            return load_training(path, r)

    def shard(self, index):
        """This rank's rows of the global batch ``index`` (and remember them)."""
        s = self.share
        s.size = len(index)
        if self.shards:  # whole chunks: the rank's subtree
            s.start, s.stop, _ = rank_chunks(self.group.rank, self.group.size, len(index), self.shards)
        else:
            s.start, s.stop = self.group.share(len(index))
        s.weight = (s.stop - s.start) / s.size if self.size_average else 1.0
        return index[s.start : s.stop]

    def feval(self, inputs, targets, regularize):
        """The ``feval`` of a batch of this length (built once per length: it reads the
        batch buffers ``inputs`` and ``targets``, this rank's rows, refilled each step)."""
        r = self.run
        if self.shards:
            chunked = ChunkedFeval(r.model, r.criterion, inputs, targets, r.grads, self.share.size, self.shards,
                                   self.group, regularize, self.size_average, self.noise, r.params)  # fmt: skip
            return _counting(self, chunked)
        return self.wrap_feval(make_feval(r.model, r.criterion, inputs, targets, r.grads), regularize, targets)

    def wrap_feval(self, feval, regularize, targets):
        """``feval`` summed over the ranks; ``regularize`` applied to the global
        gradient; the global count of correct predictions lands in ``self.correct``."""
        model, backend = self.run.model, self.run.model.backend

        def correct():
            if not len(targets):
                return (0,)
            return (int((backend.to_numpy(model.output.argmax(axis=1)) == targets).sum()),)

        g = self.group
        reduced = g.reduce_feval(feval, self.run.grads, self.share.weight, regularize, correct, self.run.params)

        def counted(x):
            result = reduced(x)
            self.correct = int(round(g.metrics[0]))
            return result

        return counted

    def evaluate(self, model, criterion, x, y, batch_size=1000):
        """:func:`ember.train.evaluate` shared by the ranks: each takes a contiguous run of
        its batches of ``batch_size`` (the single-process batches, so the same numbers),
        then the loss sums and correct counts are summed over the ranks. Returns ``(mean
        loss, accuracy, None)``: the predictions stay spread over the ranks."""
        if self.shards:
            with one_blas_thread():
                return self._evaluate(model, criterion, x, y, batch_size)
        return self._evaluate(model, criterion, x, y, batch_size)

    def _evaluate(self, model, criterion, x, y, batch_size):
        n = len(y)
        first, last = share_of(self.group.rank, self.group.size, -(-n // batch_size))
        lo, hi = first * batch_size, min(last * batch_size, n)
        sums = np.zeros(2)
        if hi > lo:
            loss, accuracy, _ = evaluate(model, criterion, x[lo:hi], y[lo:hi], batch_size)
            sums[:] = loss * (hi - lo), round(accuracy * (hi - lo))
        self.group.allreduce(sums, "the evaluation")
        return float(sums[0]) / max(n, 1), float(sums[1]) / max(n, 1), None


class LocalChunks:
    """``--grad-shards S`` on one process: the same interface as :class:`RunSync` for the
    training loop (the whole batch is this process's share), the reproducible tree sum
    over S chunks, evaluation on one BLAS thread."""

    def __init__(self, run):
        self.run, self.shards, self.correct = run, run.options.grad_shards, 0
        check_shards(self.shards)
        refuse_batchnorm(run.model)
        self.noise = wrap_noise(run.model)
        self.size, self.size_average = 0, bool(getattr(run.criterion, "size_average", True))
        print(f"reproducible gradient: each batch of {run.options.batch_size} as {self.shards} chunks, tree-summed, "
              "BLAS on 1 thread", file=run.out, flush=True)  # fmt: skip

    def broadcast_run(self):
        """Nothing to share: the run's own state."""
        return self.run.run

    def shard(self, index):
        """The whole batch (remember its length)."""
        self.size = len(index)
        return index

    def feval(self, inputs, targets, regularize):
        """The chunked ``feval`` of a batch of this length (built once per length)."""
        r = self.run
        chunked = ChunkedFeval(r.model, r.criterion, inputs, targets, r.grads, self.size, self.shards, None,
                               regularize, self.size_average, self.noise)  # fmt: skip
        return _counting(self, chunked)

    def evaluate(self, model, criterion, x, y, batch_size=1000):
        """:func:`ember.train.evaluate` on one BLAS thread (the numbers N ranks get)."""
        with one_blas_thread():
            return evaluate(model, criterion, x, y, batch_size)


def join_run(run):
    """Hook of :class:`ember.training.loop.TrainingRun`: a :class:`RunSync` when running
    on several MPI ranks, a :class:`LocalChunks` on one process with ``grad_shards``, else
    None (nothing changes)."""
    group = active()
    if group is None or group.size == 1:
        return LocalChunks(run) if run.options.grad_shards else None
    return RunSync(group, run)
