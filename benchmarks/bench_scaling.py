"""The scaling table of docs/distributed.md: ``ember train`` on 1 process and on
``mpirun -np 2`` (one epoch, ``--threads 1``, the same seed), then the gradient
allreduce alone (:mod:`bench_allreduce`), interleaved ``--rounds`` times; prints the
medians as the table's rows.

    python benchmarks/bench_scaling.py [--model mnist-mlp] [--rounds 3] [--ranks 1 2] [--limit N]

Run it on a quiet machine (nothing else running: ``uptime`` load well under 1): two
ranks on a 2-core machine need both cores. As root it sets the two Open MPI variables
itself. samples/s = training samples / the epoch's ``time`` (evaluation and start-up
excluded).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
ENV = {**os.environ, "PYTHONPATH": SRC, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMP_NUM_THREADS": "1"}  # fmt: skip


def mpirun() -> str:
    found = shutil.which("mpirun") or shutil.which("mpirun", path=os.path.dirname(sys.executable))
    if not found:
        sys.exit("no mpirun (pip install 'ember[mpi]')")
    return found


def train(model, ranks, limit, folder):
    """(samples, epoch seconds, allreduce ms per call or None) of one ``ember train`` run."""
    cmd = [sys.executable, "-m", "ember", "train", "--model", model, "--epochs", "1", "--seed", "1", "--no-progress",
           "--threads", "1", "--log", "scaling.csv", *(["--limit", str(limit)] if limit else [])]  # fmt: skip
    if ranks > 1:
        cmd = [mpirun(), "--oversubscribe", "-np", str(ranks), *cmd]
    out = subprocess.run(cmd, cwd=folder, env=ENV, capture_output=True, text=True, check=True).stdout
    samples = int(re.search(r"\((\d+) train", out).group(1))
    with open(os.path.join(folder, "scaling.csv")) as f:  # the epoch's time at full precision
        rows = list(csv.DictReader(f))
    seconds = float(rows[-1]["time"])
    reduce = re.search(r"MB and ([\d.]+) ms per call", out)
    return samples, seconds, float(reduce.group(1)) if reduce else None


def allreduce(model, ranks, blocking=False):
    """(MB, median ms, 10th percentile ms) of bench_allreduce.py."""
    cmd = [mpirun(), "--oversubscribe", "-np", str(ranks), sys.executable, os.path.join(HERE, "bench_allreduce.py"),
           "--model", model, "--repeats", "200", *(["--blocking"] if blocking else [])]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
    mb, median, p10 = re.search(r"([\d.]+) MB .* median ([\d.]+) ms, 10th percentile ([\d.]+) ms", out).groups()
    return float(mb), float(median), float(p10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mnist-mlp")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, help="train on the first N samples only (a quicker check)")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    runs: dict[int, list] = {r: [] for r in args.ranks}
    alone: dict[int, list] = {r: [] for r in args.ranks if r > 1}
    with tempfile.TemporaryDirectory(prefix="ember-scaling-") as folder:
        for _ in range(args.rounds):
            for r in args.ranks:
                runs[r].append(train(args.model, r, args.limit, folder))
                if r > 1:
                    alone[r].append((allreduce(args.model, r), allreduce(args.model, r, blocking=True)))
    print(f"{args.model}, 1 epoch, batch 64, --threads 1, median of {args.rounds} rounds "
          f"(load average at the start {load:.2f})")  # fmt: skip
    print("| ranks | samples/s | epoch time | allreduce per step in training | allreduce alone (polled; blocking) |")
    print("|---|---|---|---|---|")
    for r in args.ranks:
        samples = runs[r][0][0]
        seconds = float(np.median([s for _, s, _ in runs[r]]))
        if r == 1:
            print(f"| 1 | {samples / seconds:,.0f} | {seconds:.1f} s | - | - |")
            continue
        in_training = float(np.median([t for _, _, t in runs[r]]))
        mb = alone[r][0][0][0]
        polled = np.median([p[1] for p, _ in alone[r]]), np.median([p[2] for p, _ in alone[r]])
        blocking = np.median([b[1] for _, b in alone[r]]), np.median([b[2] for _, b in alone[r]])
        print(f"| {r} | {samples / seconds:,.0f} | {seconds:.1f} s | {mb:.2f} MB, {in_training:.2f} ms (waits included) "
              f"| median {polled[0]:.2f} ms (p10 {polled[1]:.2f}); {blocking[0]:.2f} ms (p10 {blocking[1]:.2f}) |")


if __name__ == "__main__":
    main()
