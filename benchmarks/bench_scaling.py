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


def train(model, ranks, limit, folder, blocking=False):
    """(samples, epoch seconds, allreduce ms per call or None) of one ``ember train`` run
    (``blocking``: with ``EMBER_DIST_BLOCKING=1``)."""
    cmd = [sys.executable, "-m", "ember", "train", "--model", model, "--epochs", "1", "--seed", "1", "--no-progress",
           "--threads", "1", "--log", "scaling.csv", *(["--limit", str(limit)] if limit else [])]  # fmt: skip
    if ranks > 1:
        cmd = [mpirun(), "--oversubscribe", "-np", str(ranks), "-x", "EMBER_DIST_BLOCKING", *cmd]
    env = {**ENV, "EMBER_DIST_BLOCKING": "1" if blocking else "0"}
    out = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, check=True).stdout
    samples = int(re.search(r"\((\d+) train", out).group(1))
    with open(os.path.join(folder, "scaling.csv")) as f:  # the epoch's time at full precision
        rows = list(csv.DictReader(f))
    seconds = float(rows[-1]["time"])
    reduce = re.search(r"MB and ([\d.]+) ms per call", out)
    return samples, seconds, float(reduce.group(1)) if reduce else None


def allreduce(model, ranks, option=None):
    """(MB, median ms, 10th percentile ms) of bench_allreduce.py (``option``: --watched, --blocking)."""
    cmd = [mpirun(), "--oversubscribe", "-np", str(ranks), sys.executable, os.path.join(HERE, "bench_allreduce.py"),
           "--model", model, "--repeats", "200", *([option] if option else [])]  # fmt: skip
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
    kinds = [(r, False) for r in args.ranks] + [(r, True) for r in args.ranks if r > 1]  # True: EMBER_DIST_BLOCKING=1
    runs: dict[tuple, list] = {k: [] for k in kinds}
    alone: dict[tuple, list] = {(r, o): [] for r in args.ranks if r > 1 for o in (None, "--watched", "--blocking")}
    with tempfile.TemporaryDirectory(prefix="ember-scaling-") as folder:
        for _ in range(args.rounds):  # interleaved, so a change of load hits every kind alike
            for ranks, blocking in kinds:
                runs[ranks, blocking].append(train(args.model, ranks, args.limit, folder, blocking))
            for ranks, option in alone:
                alone[ranks, option].append(allreduce(args.model, ranks, option))
    print(f"{args.model}, 1 epoch, batch 64, --threads 1, median of {args.rounds} rounds "
          f"(load average at the start {load:.2f}, at the end {os.getloadavg()[0]:.2f})")  # fmt: skip
    print("| ranks | samples/s | epoch time | allreduce per step in training (waits included) |")
    print("|---|---|---|---|")
    for ranks, blocking in kinds:
        samples = runs[ranks, blocking][0][0]
        seconds = float(np.median([s for _, s, _ in runs[ranks, blocking]]))
        label = f"{ranks}" + (" (EMBER_DIST_BLOCKING=1)" if blocking else "")
        per_call = "-" if ranks == 1 else f"{np.median([t for _, _, t in runs[ranks, blocking]]):.2f} ms"
        print(f"| {label} | {samples / seconds:,.0f} | {seconds:.1f} s | {per_call} |")
    print()
    names = {None: "polled Iallreduce (default)", "--watched": "watched MPI_Allreduce (EMBER_DIST_BLOCKING=1)",
             "--blocking": "plain MPI_Allreduce (no watchdog)"}  # fmt: skip
    for (ranks, option), results in alone.items():
        median, p10 = np.median([r[1] for r in results]), np.median([r[2] for r in results])
        print(f"allreduce alone, {ranks} ranks, {results[0][0]:.2f} MB, {names[option]}: median "
              f"{median:.2f} ms, 10th percentile {p10:.2f} ms")


if __name__ == "__main__":
    main()
