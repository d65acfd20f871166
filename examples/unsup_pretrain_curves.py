"""The pre-training figure of docs/unsupervised.md: test accuracy per epoch of
``convnet-lcn`` pre-trained (stage 1, k-means) against random initialisation, from the
CSV logs of ``ember pretrain convnet --log``:

    PYTHONPATH=src python examples/unsup_pretrain_curves.py \\
        --run "pre-trained, seed 0=pre_s0.csv" --run "random init, seed 0=rand_s0.csv" \\
        [--out docs/img/unsup_pretrain_curves.png]

Each ``--run LABEL=CSV``; runs whose label starts with "random" are drawn dashed.
"""

import argparse
import csv

from ember.optim.plot import pyplot


def read_log(path: str) -> tuple[list[int], list[float]]:
    """Epochs and test accuracies (%) of an ``ember train``/``pretrain convnet`` CSV log."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(r["epoch"]) for r in rows], [100 * float(r["test_acc"]) for r in rows]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="append", required=True, metavar="LABEL=CSV")
    p.add_argument("--out", default="docs/img/unsup_pretrain_curves.png")
    p.add_argument("--ymin", type=float, default=98.0, help="lower end of the accuracy axis")
    args = p.parse_args(argv)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.2), dpi=80)
    for run in args.run:
        label, _, path = run.partition("=")
        if not path:
            p.error(f"--run {run!r}: expected LABEL=CSV")
        epochs, acc = read_log(path)
        ax.plot(epochs, acc, "--" if label.lower().startswith("random") else "-", marker="o", ms=3, label=label)
    ax.axhline(99.47, color="gray", lw=0.8, ls=":", label="Jarrett et al. 2009: 99.47%")
    ax.set_ylim(bottom=args.ymin)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
