"""The MPI ranks of a data-parallel run: collectives that never hang, sharding, a
gradient-reducing ``feval``.

Every wait on another rank is watched: twice a second something checks that the other
ranks on this machine are still alive (their process ids, exchanged at start-up) and
gives up after ``EMBER_DIST_TIMEOUT`` seconds (default 300) without an answer; it then
prints one line naming the rank and calls ``MPI_Abort``, which stops every rank. By
default every wait is a non-blocking request polled with short sleeps (:meth:`Group.wait`):
a rank that waits for a slower one leaves it the core. With ``EMBER_DIST_BLOCKING=1``
the allreduces are a blocking ``MPI_Allreduce`` watched by a daemon thread instead
(needs the ``MPI_THREAD_MULTIPLE`` that mpi4py asks for): about 2 ms a step faster for
3 MB when every rank has its own cores, but Open MPI spins while it waits, which halved
the speed of 2 ranks on a loaded 2-core machine (docs/distributed.md). Ranks on other
machines are covered by the launcher (``mpirun`` and ``srun --kill-on-bad-exit`` end
the job when a rank dies) and by the timeout.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import zlib

import numpy as np

from ..errors import TrainingError

#: environment variables that launchers set in every rank (Open MPI, MPICH/Hydra and
#: Intel MPI, MVAPICH, Slurm's srun)
LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS")


class DistributedError(TrainingError):
    """The ranks of a distributed run disagree or one of them failed."""


def launched_ranks() -> int:
    """How many ranks the launcher started (1 outside ``mpirun``/``srun``), read from
    the environment without importing MPI. ``EMBER_DISTRIBUTED=0`` forces 1."""
    if os.environ.get("EMBER_DISTRIBUTED") == "0":
        return 1
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def check_world(launched: int, size: int) -> None:
    """Raise :class:`DistributedError` when the launcher started ``launched`` ranks but
    MPI's world has ``size``: typically ``srun`` with an mpi4py whose MPI has no Slurm
    (PMI/PMIx) support, where every rank would otherwise train alone and all of them
    would write the same files."""
    if size != launched:
        variable = next((n for n in LAUNCHER_SIZE_VARIABLES if os.environ.get(n, "").isdigit()), "?")
        raise DistributedError(
            f"the launcher started {launched} ranks ({variable}={launched}) but MPI sees {size}: the MPI under "
            "mpi4py cannot talk to this launcher (under srun: use the site's MPI built with Slurm/PMIx support, "
            "`srun --mpi=pmix`, and mpi4py built against it: pip install --no-binary mpi4py mpi4py; or start the "
            "ranks with that MPI's mpirun). EMBER_DISTRIBUTED=0 trains each rank alone on purpose")


def share_of(rank, size, n):
    """``(start, stop)`` of rank ``rank``'s part of ``n`` samples over ``size`` ranks:
    contiguous, in rank order, sizes differing by at most one."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def shard_batches(rank, size, order, batch_size):
    """Yield ``(indices, weight)`` for each global batch of ``order`` (``batch_size``
    consecutive entries): rank ``rank``'s share of it and ``len(share) / len(batch)``,
    the factor that turns its mean gradient into its part of the batch's mean gradient
    (the weights of all ranks sum to 1)."""
    for first in range(0, len(order), batch_size):
        batch = order[first : first + batch_size]
        start, stop = share_of(rank, size, len(batch))
        yield batch[start:stop], (stop - start) / len(batch)


def local_rank() -> int:
    """This rank's number among the ranks of its machine (launcher variables; 0 if unknown)."""
    for name in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def _flat(facts, prefix=""):
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (so a difference names the inner key)."""
    out = {}
    for key, value in facts.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def device_synchronize() -> None:
    """Wait for the GPU work queued on CuPy's current stream (before MPI reads device memory)."""
    import cupy  # only reached with CuPy arrays and a CUDA-aware MPI

    cupy.cuda.get_current_stream().synchronize()


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a killed child its launcher has not reaped yet is a zombie
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class _Watchdog(threading.Thread):
    """A daemon thread that watches the peers while the main thread is inside a blocking
    MPI call (``armed``); it calls :meth:`Group._check_peers`, which aborts the job."""

    def __init__(self, group):
        super().__init__(name="ember-mpi-watchdog", daemon=True)
        self.group, self.what, self.since = group, None, 0.0

    def arm(self, what):
        self.since = time.monotonic()  # before `what`: the thread reads `what` first
        self.what = what

    def disarm(self):
        self.what = None

    def run(self):
        while True:
            time.sleep(0.5)
            what, since = self.what, self.since
            if what is not None:
                self.group._check_peers(what, time.monotonic() - since)


class Group:
    """The ranks of ``comm`` (default ``MPI.COMM_WORLD``) training one model together.

    ``rank``, ``size``, ``is_root`` (rank 0). All methods are collective: every rank
    calls them in the same order.
    """

    def __init__(self, comm=None, timeout=None, check_every=None):
        from mpi4py import MPI  # the optional dependency, imported only here

        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)  # MPI failures raise instead of killing silently
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        self.timeout = float(timeout if timeout is not None else os.environ.get("EMBER_DIST_TIMEOUT", 300))
        check_every = check_every if check_every is not None else os.environ.get("EMBER_DIST_CHECK_EVERY", 100)
        self.check_every = int(check_every)
        self.host = socket.gethostname()
        self.peers = self.comm.allgather((self.host, os.getpid()))
        self.cuda_aware = os.environ.get("EMBER_MPI_CUDA_AWARE") == "1"
        self.force_staging = os.environ.get("EMBER_MPI_STAGE") == "1"  # exercise the GPU path on NumPy arrays
        self._host_buffers = {}
        # opt-in: blocking allreduces watched by a thread (when MPI lets a second thread call MPI_Abort)
        self.blocking = os.environ.get("EMBER_DIST_BLOCKING") == "1" and MPI.Query_thread() == MPI.THREAD_MULTIPLE
        self._watchdog = None
        self.reduce_calls, self.reduce_bytes, self.reduce_seconds = 0, 0, 0.0
        self._calls = 0

    # ------------------------------------------------------------------ waiting safely
    def abort(self, message):
        """Print ``message`` (naming this rank) and stop every rank of the job."""
        print(f"ember distributed: rank {self.rank} of {self.size}: {message}; stopping all ranks", file=sys.stderr,
              flush=True)  # fmt: skip
        self.comm.Abort(1)

    def _check_peers(self, what, waited):
        for rank, (host, pid) in enumerate(self.peers):
            if rank != self.rank and host == self.host and not _alive(pid):
                self.abort(f"rank {rank} (pid {pid}) died while this rank waited for {what}")
        if waited > self.timeout:
            self.abort(f"no answer from the other ranks for {waited:.0f} s during {what} "
                       f"(EMBER_DIST_TIMEOUT={self.timeout:g})")  # fmt: skip

    def wait(self, request, what):
        """Complete ``request``, watching the other ranks (see the module docstring)."""
        start = time.monotonic()
        next_check, spin_until, pause = start + 0.5, start + 0.01, 2e-5
        try:
            while not request.Test():  # each Test() also moves the transfer on
                if time.monotonic() < spin_until:
                    time.sleep(0)  # the first 10 ms: yield the core but poll at once (a transfer in flight)
                else:
                    time.sleep(pause)  # then short sleeps: a long wait for a slower rank costs no CPU
                    pause = min(pause * 2, 5e-4)
                now = time.monotonic()
                if now >= next_check:
                    self._check_peers(what, now - start)
                    next_check = now + 0.5
        except self.MPI.Exception as exc:
            self._check_peers(what, 0.0)  # a dead peer is the likelier story: say so
            self.abort(f"MPI failed during {what}: {exc}")

    def watched(self, call, what):
        """Run the blocking MPI ``call()`` while the watchdog thread watches the peers."""
        if self._watchdog is None:
            self._watchdog = _Watchdog(self)
            self._watchdog.start()
        self._watchdog.arm(what)
        try:
            call()
        except self.MPI.Exception as exc:
            self._check_peers(what, 0.0)  # a dead peer is the likelier story: say so
            self.abort(f"MPI failed during {what}: {exc}")
        finally:
            self._watchdog.disarm()

    # ------------------------------------------------------------------ collectives
    def _host_view(self, array):
        """``(host array, staged)``: NumPy arrays as they are; device arrays are copied
        to a reused host buffer unless the MPI is CUDA-aware (EMBER_MPI_CUDA_AWARE=1),
        which then reads the device array itself once the GPU's queued work is done."""
        on_device = not isinstance(array, np.ndarray)
        if on_device and self.cuda_aware and not self.force_staging:
            device_synchronize()  # CuPy kernels run asynchronously: MPI must not read a gradient still being written
            return array, False
        if not on_device and not self.force_staging:
            return array, False
        key = (array.shape, str(array.dtype))
        buf = self._host_buffers.get(key)
        if buf is None:
            buf = self._host_buffers[key] = np.empty(array.shape, dtype=array.dtype)
        if on_device:
            array.get(out=buf)  # CuPy: device -> host (untested here: no GPU on the build machine)
        else:
            np.copyto(buf, array)
        return buf, True

    @staticmethod
    def _back(array, host, staged):
        if staged:
            np.copyto(array, host) if isinstance(array, np.ndarray) else array.set(host)  # CuPy: host -> device
        return array

    def allreduce(self, array, what="an allreduce", timed=False):
        """Sum ``array`` over all ranks, in place (a flat contiguous array). ``timed``:
        count it in :meth:`report` (the gradient's)."""
        start = time.perf_counter()
        host, staged = self._host_view(array)
        if self.blocking:
            self.watched(lambda: self.comm.Allreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), what)
        else:
            self.wait(self.comm.Iallreduce(self.MPI.IN_PLACE, host, op=self.MPI.SUM), what)
        if timed:
            self.reduce_calls += 1
            self.reduce_bytes += host.nbytes
            self.reduce_seconds += time.perf_counter() - start
        return self._back(array, host, staged)

    def broadcast(self, array, what="a broadcast from rank 0"):
        """Overwrite ``array`` with rank 0's, in place."""
        host, staged = self._host_view(array)
        self.wait(self.comm.Ibcast(host, root=0), what)
        return self._back(array, host, staged)

    def broadcast_bytes(self, blob):
        """Rank 0's ``bytes`` on every rank."""
        size = self.broadcast(np.array([len(blob) if self.is_root else 0], dtype=np.int64), "a broadcast's size")
        buf = np.frombuffer(blob, dtype=np.uint8).copy() if self.is_root else np.empty(int(size[0]), dtype=np.uint8)
        return self.broadcast(buf, "a broadcast of the training state").tobytes()

    def gather_all(self, value, what):
        """Every rank's JSON-able ``value``, as a list indexed by rank."""
        blob = json.dumps(value, sort_keys=True, default=str).encode()
        sizes = np.zeros(self.size, dtype=np.int64)
        sizes[self.rank] = len(blob)
        self.allreduce(sizes, what)
        out = np.zeros(int(sizes.sum()), dtype=np.uint8)
        offset = int(sizes[: self.rank].sum())
        out[offset : offset + len(blob)] = np.frombuffer(blob, dtype=np.uint8)
        self.allreduce(out, what)  # each rank fills its own slice, the others stay 0
        ends = np.cumsum(sizes)
        return [json.loads(out[e - s : e].tobytes()) for s, e in zip(sizes, ends)]

    def agree(self, facts: dict, what="the training setup"):
        """Stop every rank with one message (printed by rank 0) unless all ranks have
        the same ``facts``; the message names each differing entry per rank."""
        everyone = [_flat(f) for f in self.gather_all(facts, f"the check of {what}")]
        keys = sorted({k for f in everyone for k in f})
        differing = [k for k in keys if any(f.get(k) != everyone[0].get(k) for f in everyone)]
        if not differing:
            return
        detail = "; ".join(k + ": " + ", ".join(f"rank {r} {json.dumps(f.get(k), default=str)[:80]}"
                                                for r, f in enumerate(everyone)) for k in differing)  # fmt: skip
        if not self.is_root:
            raise SystemExit(1)  # rank 0 says it, once
        raise DistributedError(f"the {self.size} ranks disagree on {what}: {detail}")

    # ------------------------------------------------------------------ data parallelism
    def share(self, n):
        """``(start, stop)`` of this rank's part of ``n`` samples (:func:`share_of`)."""
        return share_of(self.rank, self.size, n)

    def batches(self, order, batch_size):
        """This rank's ``(indices, weight)`` of each global batch (:func:`shard_batches`)."""
        return shard_batches(self.rank, self.size, order, batch_size)

    def checksum(self, *arrays) -> int:
        """Adler-32 of the arrays' bytes (cheap: about a millisecond per 3 MB)."""
        value = 1
        for a in arrays:
            host = a if isinstance(a, np.ndarray) else a.get()
            value = zlib.adler32(np.ascontiguousarray(host).view(np.uint8).data, value)  # the buffer, no copy
        return value

    def check_replicas(self, *arrays, what="parameters"):
        """Stop every rank if the ``arrays`` are not bitwise the same on all ranks."""
        sums = np.zeros(self.size, dtype=np.int64)
        sums[self.rank] = self.checksum(*arrays)
        self.allreduce(sums, "the replica check")
        if (sums != sums[0]).any():
            bad = [r for r in range(self.size) if sums[r] != sums[0]]
            self.abort(f"the replicas diverged: the {what} of rank(s) {bad} differ from rank 0's "
                       f"(checksums {[int(s) for s in sums]})")  # fmt: skip

    def reduce_feval(self, feval, grads, weight, after=None, metrics=None, params=None):
        """``feval`` made data-parallel: this rank's loss and gradient (on its share of the
        batch), scaled by ``weight`` (:meth:`batches`; 1 for summed, not averaged,
        criteria) and summed over the ranks with one in-place allreduce of the flat
        ``grads``; then ``after(x, grads)`` (weight decay, clipping: on the global
        gradient). The returned loss is the global one, so line searches (lbfgs, cg)
        take the same decisions on every rank. ``metrics()``, if given, returns local
        numbers (e.g. correct predictions) summed into ``self.metrics``. A rank with an
        empty share (``weight`` 0) contributes zeros. Every ``check_every`` calls the
        ``params`` (default the ``x`` passed in) are checked to be the same on all ranks.
        """

        def reduced(x):
            if weight > 0:
                loss, g = feval(x)
                if g is not grads:
                    raise ValueError("reduce_feval: feval must return the flat gradient it was given (grads)")
                if weight != 1:
                    g *= weight  # in place: g is grads
                loss = float(loss) * weight
            else:
                grads[...] = 0
                loss = 0.0
            local = [loss, *(metrics() if metrics else ())]  # metrics() must also answer for an empty share
            self.allreduce(grads, "the gradient allreduce", timed=True)
            scalars = self.allreduce(np.array(local, dtype=np.float64), "the loss allreduce")
            self.metrics = scalars[1:]
            if after is not None:
                after(x, grads)
            self._calls += 1
            if self.check_every and self._calls % self.check_every == 0:
                self.check_replicas(params if params is not None else x)
            return float(scalars[0]), grads

        return reduced

    def report(self) -> str:
        """One line: allreduce calls, bytes per call and time per call so far."""
        if not self.reduce_calls:
            return "allreduce: not used yet"
        mb = self.reduce_bytes / self.reduce_calls / 1e6
        return (f"gradient allreduce over {self.size} ranks: {self.reduce_calls} calls, {mb:.3f} MB and "
                f"{self.reduce_seconds / self.reduce_calls * 1e3:.2f} ms per call on average "
                f"({self.reduce_seconds:.2f} s in all, waiting for slower ranks included)")  # fmt: skip
