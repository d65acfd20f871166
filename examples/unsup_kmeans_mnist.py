"""k-means features on MNIST (Coates & Ng 2011, the lecture's "expansion + pooling"):

    PYTHONPATH=src python examples/unsup_kmeans_mnist.py [--k 400] [--grid 3] [--seeds 0 1 2]

6x6 patches, contrast normalization, ZCA (eps 1), k-means (K centroids, triangle code),
every patch position encoded (one GEMM per few images), sum pooling over a grid,
then a linear softmax classifier trained with ember's optim.sgd. Prints one line per seed
and the mean. The same run as a command: ``ember pretrain kmeans``.
"""

import argparse
import sys
import time

import ember

ember.configure_threads(int(next((a.split("=")[1] for a in sys.argv if a.startswith("--threads=")), 1)))  # before NumPy

import numpy as np  # noqa: E402

from ember.data.mnist import load_mnist  # noqa: E402
from ember.unsup.pipeline import accuracy, fit_kmeans_pipeline, train_linear  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=400)
    p.add_argument("--grid", type=int, default=3)
    p.add_argument("--pool", default="sum")
    p.add_argument("--patches", type=int, default=400000)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--whiten-eps", type=float, default=1.0)
    p.add_argument("--contrast-eps", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--loss", default="nll", choices=("nll", "hinge"))
    p.add_argument("--limit", type=int, default=60000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS threads, as --threads=N (default 1)")
    args = p.parse_args(argv)
    data = load_mnist()
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    results = []
    for seed in args.seeds:
        start = time.perf_counter()
        pipe = fit_kmeans_pipeline(x_train, k=args.k, n_patches=args.patches, iterations=args.iterations,
                                   whiten_eps=args.whiten_eps, contrast_eps=args.contrast_eps, seed=seed,
                                   grid=args.grid, pool=args.pool)
        t_dict = time.perf_counter() - start
        f_train, f_test = pipe.transform(x_train, chunk=5), pipe.transform(x_test, chunk=5)
        t_enc = time.perf_counter() - start - t_dict
        model, standardize = train_linear(f_train, y_train, epochs=args.epochs, lr=args.lr,
                                          weight_decay=args.weight_decay, loss=args.loss, seed=seed)
        acc = accuracy(model, standardize, f_test, y_test)
        total = time.perf_counter() - start
        results.append(acc)
        print(f"seed {seed}: test accuracy {acc * 100:.2f}%  (dictionary {t_dict:.0f}s, encoding {t_enc:.0f}s, "
              f"total {total:.0f}s = {total / 60:.1f} min)", flush=True)
    print(f"mean of {len(results)}: {np.mean(results) * 100:.2f}% (min {np.min(results) * 100:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
