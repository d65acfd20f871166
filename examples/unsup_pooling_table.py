"""What pooling buys: the same k-means codes, classified without pooling and with pooling
(sum, max, L2, log-sum-exp over a 3x3 grid; quadrants; the whole image), on the MNIST test
set and on the test set shifted by 2 pixels (which the classifier never saw):

    PYTHONPATH=src python examples/unsup_pooling_table.py [--k 32] [--limit 10000]

Prints a Markdown table (docs/unsupervised.md). "none" keeps every one of the 23x23 code
positions (23*23*K features): it sees the most detail, but a digit moved by two pixels
lands on other features; pooling over regions trades position for invariance.
"""

import argparse
import sys
import time

import ember

ember.configure_threads(1)

import numpy as np  # noqa: E402

from ember.data.mnist import load_mnist  # noqa: E402
from ember.unsup.pipeline import FeaturePipeline, accuracy, fit_kmeans_pipeline, train_linear  # noqa: E402

ROWS = [("none (23x23 positions)", 23, "sum"), ("sum, 3x3 grid", 3, "sum"), ("max, 3x3 grid", 3, "max"),
        ("L2, 3x3 grid", 3, "lp"), ("log-sum-exp (beta 10), 3x3", 3, "lse"), ("sum, quadrants", 2, "sum"),
        ("sum, whole image", 1, "sum")]  # fmt: skip


def shifted(images, dx, dy):
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        images[:, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]  # fmt: skip
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--limit", type=int, default=10000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    data = load_mnist()
    (x, y), (xt, yt) = data["train"], data["test"]
    x, y = x[: args.limit], y[: args.limit]
    moved = np.concatenate([shifted(xt[i::4], *d) for i, d in enumerate([(2, 0), (-2, 0), (0, 2), (0, -2)])])
    moved_y = np.concatenate([yt[i::4] for i in range(4)])
    base = fit_kmeans_pipeline(x, k=args.k, n_patches=100000, seed=args.seed)
    print(f"| pooling | features | test accuracy | test shifted by 2 px |\n| --- | ---: | ---: | ---: |")
    for name, grid, mode in ROWS:
        start = time.perf_counter()
        pipe = FeaturePipeline(base.encoder, base.whitening, grid=grid, pool=mode, beta=10.0)
        f, ft, fm = pipe.transform(x), pipe.transform(xt), pipe.transform(moved)
        model, standardize = train_linear(f, y, epochs=args.epochs, seed=args.seed)
        acc, acc_moved = accuracy(model, standardize, ft, yt), accuracy(model, standardize, fm, moved_y)
        print(f"| {name} | {pipe.n_features} | {acc * 100:.2f}% | {acc_moved * 100:.2f}% |", flush=True)
        print(f"  ({time.perf_counter() - start:.0f}s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
