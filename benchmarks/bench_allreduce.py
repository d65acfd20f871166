"""Time of ember.distributed's gradient allreduce alone (no training, so no waiting for a
slower rank): the flat float32 gradient of a model, summed in place over the ranks
through :meth:`ember.distributed.Group.allreduce` (the polled Iallreduce of training).

    mpirun -np 2 python benchmarks/bench_allreduce.py [--model mnist-mlp] [--repeats 200] [--watched | --blocking]

ember's allreduce is a polled ``MPI_Iallreduce`` (the default); ``--watched`` times the
blocking ``MPI_Allreduce`` watched by a thread (``EMBER_DIST_BLOCKING=1``), ``--blocking``
a plain ``MPI_Allreduce`` with no watchdog, for the cost of the polling.

Rank 0 prints the bytes and the median / 10th percentile of the time per allreduce; the
figures feed the N-machine model of docs/distributed.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from ember import distributed  # noqa: E402
from ember.models import get_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-mlp")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--blocking", action="store_true", help="a plain MPI_Allreduce (no watchdog)")
    parser.add_argument("--watched", action="store_true", help="the watched MPI_Allreduce (EMBER_DIST_BLOCKING=1)")
    args = parser.parse_args()
    if args.watched:
        os.environ["EMBER_DIST_BLOCKING"] = "1"
    group = distributed.init()
    grads = get_model(args.model).build(n_classes=10, rng=np.random.default_rng(0)).get_parameters()[1]
    grads[...] = 1.0
    times = []
    for _ in range(args.repeats + 10):  # 10 warm-up calls
        group.comm.Barrier()  # all ranks start together: the time is the transfer, not a wait
        start = time.perf_counter()
        if args.blocking:
            group.comm.Allreduce(group.MPI.IN_PLACE, grads, op=group.MPI.SUM)
        else:
            group.allreduce(grads, "the benchmark")
        times.append(time.perf_counter() - start)
    times = np.array(times[10:]) * 1e3
    if group.is_root:
        kind = "watched MPI_Allreduce" if group.blocking else "polled Iallreduce"
        kind = "plain MPI_Allreduce" if args.blocking else kind
        print(f"{args.model}: {grads.nbytes / 1e6:.3f} MB per {kind} over {group.size} ranks: "
              f"median {np.median(times):.2f} ms, 10th percentile {np.percentile(times, 10):.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
