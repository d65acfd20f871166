"""Which form of Linear's forward product is faster for a given layer and batch size:
y = x W^T (bias first, accumulated by GEMM) or y^T = W x^T followed by one transposed
copy that adds the bias. ``ember.backend.transposed_product_is_faster`` encodes the crossover this
measures; rerun it to check the rule on another machine or BLAS.

    python benchmarks/bench_linear_forward.py [--threads 2]

Prints, per layer shape, time(y = x W^T) / time(y^T = W x^T) for each batch size
(> 1: the transposed form is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), HERE]

import ember  # noqa: E402, I001

if __name__ == "__main__":
    ember.configure_threads()  # before NumPy, as the `ember` command does: see bench_mlp.py

import numpy as np  # noqa: E402
from ember import _blas  # noqa: E402
from common import set_threads  # noqa: E402

SHAPES = [(784, 1000), (800, 500), (256, 256), (1000, 10), (100, 1000), (4096, 4096)]
BATCHES = [2, 8, 32, 64, 128, 256]


def median_ms(fn, repeats=200):
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    if not _blas.AVAILABLE:
        sys.exit("needs NumPy's bundled OpenBLAS (ember._blas.AVAILABLE is False)")
    print(f"{args.threads} threads; time(y = x W^T) / time(y^T = W x^T), by batch size")
    print(f"{'in -> out':>12} " + " ".join(f"{b:>6}" for b in BATCHES))
    for n_in, n_out in SHAPES:
        row = []
        for batch in BATCHES:
            rng = np.random.default_rng(0)
            x = rng.standard_normal((batch, n_in), dtype=np.float32)
            w = rng.standard_normal((n_out, n_in), dtype=np.float32)
            b = rng.standard_normal(n_out, dtype=np.float32)
            y, y_t = np.empty((batch, n_out), np.float32), np.empty((n_out, batch), np.float32)
            direct = median_ms(lambda: (np.copyto(y, b), _blas.gemm(x, w.T, y, 1.0, 1.0)))
            transposed = median_ms(lambda: (_blas.gemm(w, x.T, y_t, 1.0, 0.0), np.add(y_t.T, b, out=y)))
            row.append(direct / transposed)
        print(f"{f'{n_in} -> {n_out}':>12} " + " ".join(f"{r:6.2f}" for r in row), flush=True)


if __name__ == "__main__":
    main()
