"""k-means features on MNIST (Coates & Ng 2011, the lecture's "expansion + pooling"):

    PYTHONPATH=src python examples/unsup_kmeans_mnist.py [--k 400] [--grid 3] [--seeds 0 1 2]

6x6 patches, contrast normalization, ZCA (eps 1), k-means (K centroids, triangle code),
every patch position encoded (one GEMM per few images), max pooling over a grid (--pool sum|lp|lse also),
then a linear softmax classifier trained with ember's optim.sgd. Prints one line per seed
and the mean. The same run as a command: ``ember pretrain features --seed S``.
"""

import argparse
import os
import sys
import time

import ember

ember.configure_threads(int(next((a.split("=")[1] for a in sys.argv if a.startswith("--threads=")), 1)))  # before NumPy

import numpy as np  # noqa: E402

from ember.data.mnist import load_mnist  # noqa: E402
from ember.unsup.pipeline import accuracy, fit_kmeans_pipeline, train_linear  # noqa: E402


def features(args, seed, x_train, x_test):
    """Dictionary, then the features of both sets; returns them and the two times."""
    start = time.perf_counter()
    pipe = fit_kmeans_pipeline(x_train, k=args.k, n_patches=args.patches, iterations=args.iterations,
                               whiten_eps=args.whiten_eps, contrast_eps=args.contrast_eps, seed=seed,
                               grid=args.grid, pool=args.pool)
    t_dict = time.perf_counter() - start
    f_train, f_test = pipe.transform(x_train, chunk=5), pipe.transform(x_test, chunk=5)
    return f_train, f_test, t_dict, time.perf_counter() - start - t_dict


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=400)
    p.add_argument("--grid", type=int, default=3)
    p.add_argument("--pool", default="max")  # max: 99.14% mean of 3 seeds, sum 98.95% (docs/unsupervised.md)
    p.add_argument("--patches", type=int, default=400000)
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--whiten-eps", type=float, default=1.0)
    p.add_argument("--contrast-eps", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=3e-3)
    p.add_argument("--loss", default="nll", choices=("nll", "hinge"))
    p.add_argument("--limit", type=int, default=60000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=1, help="BLAS threads, as --threads=N (default 1)")
    p.add_argument("--cache", help="folder to keep each seed's features in (.npz), to try classifiers again")
    args = p.parse_args(argv)
    data = load_mnist()
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    results = []
    for seed in args.seeds:
        start = time.perf_counter()
        cache = (os.path.join(args.cache, f"kmeans_k{args.k}_g{args.grid}_{args.pool}_c{args.contrast_eps:g}_w{args.whiten_eps:g}"
                                   f"_p{args.patches}_i{args.iterations}_n{args.limit}_s{seed}.npz") if args.cache else None)  # fmt: skip
        if cache and os.path.exists(cache):
            with np.load(cache) as saved:
                f_train, f_test, t_dict, t_enc = saved["f_train"], saved["f_test"], float(saved["t_dict"]), float(saved["t_enc"])
            start -= t_dict + t_enc  # the run's total counts the cached steps' measured time
        else:
            f_train, f_test, t_dict, t_enc = features(args, seed, x_train, x_test)
            if cache:
                os.makedirs(args.cache, exist_ok=True)
                np.savez(cache, f_train=f_train, f_test=f_test, t_dict=t_dict, t_enc=t_enc)
        model, standardize = train_linear(f_train, y_train, epochs=args.epochs, lr=args.lr,
                                          weight_decay=args.weight_decay, loss=args.loss, seed=seed)
        acc = accuracy(model, standardize, f_test, y_test)
        total = time.perf_counter() - start
        results.append(acc)
        print(f"seed {seed}: test accuracy {acc * 100:.2f}%  (dictionary {t_dict:.0f}s, encoding {t_enc:.0f}s, "
              f"total {total:.0f}s = {total / 60:.1f} min; this process's CPU time so far "
              f"{time.process_time():.0f}s)", flush=True)  # fmt: skip
    print(f"mean of {len(results)}: {np.mean(results) * 100:.2f}% (min {np.min(results) * 100:.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
