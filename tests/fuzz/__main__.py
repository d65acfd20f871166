"""``python -m tests.fuzz [--models N] [--checkpoints N] [--data N] [--kills N] [--log FILE]``

The full campaign of issue 13 by default (5,000 model files, 2,000 checkpoints, 1,000
IDX/npz files, 50 kill -9 resumes); prints the outcome table and exits 1 on any crash,
hang, escaped exception, silent wrong load, memory overrun or inexact resume."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n\n")[1])
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--checkpoints", type=int, default=2000)
    parser.add_argument("--data", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", help="one JSON line per case")
    args = parser.parse_args(argv)
    from .resume import kill_and_resume
    from .runner import campaign, format_table

    log = open(args.log, "w") if args.log else None  # noqa: SIM115 - closed below
    try:
        table, bad, peak = campaign(args.models, args.checkpoints, args.data, args.seed, log)
    finally:
        if log:
            log.close()
    print(format_table(table))
    print(f"peak memory above the child's baseline: refused loads {peak['refused'] / 2**20:.1f} MiB, "
          f"any load {peak['any'] / 2**20:.1f} MiB")  # fmt: skip
    for case in bad[:20]:
        print("BAD", case)
    failures = len(bad)
    if args.kills:
        results = kill_and_resume(args.kills, seed=args.seed)
        exact = sum(r["exact"] and not r["leftovers"] for r in results)
        print(f"kill -9 and resume: {exact} of {len(results)} bit-identical with no temporary file left; "
              f"kills after {min(r['killed_after'] for r in results):.2f}..{max(r['killed_after'] for r in results):.2f}s")  # fmt: skip
        failures += len(results) - exact
        for result in results:
            if not result["exact"] or result["leftovers"]:
                print("BAD RESUME", result)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
