"""SGEMM speed of each available BLAS library on the products ember's training steps make,
side by side in one process (ctypes), 1 and 2 threads, medians of interleaved windows.

Libraries: NumPy's own OpenBLAS and, when installed, ``scipy-openblas32`` /
``scipy-openblas64`` (newer OpenBLAS builds, pip packages), ``mkl`` (Intel MKL's
``libmkl_rt``, pip package ``mkl``; found under ``sys.prefix/lib`` or ``LD_LIBRARY_PATH``)
and any ``--lib /path/libblas.so``: the names :func:`ember.configure_blas` accepts.

Products (float32, row-major, the shapes and transposes ember passes to BLAS):
MLP 784-1000-10 at batch 1 (rank-1 weight gradient, ``ger``) / 32 / 128 / 512: forward,
weight gradient (accumulated, beta = 1), input gradient; LSTM 128x28x28x128,
64x64x64x256, 32x100x64x512 (batch x steps x inputs x hidden): the per-step products
through W_hh (4H x H) forward and backward (beta = 1, leading dimension steps x batch),
the input projection of all steps, the W_hh gradient; LeNet-5 batch 64 / 128: the
im2col products of both convolutions and the 800->500 Linear layer.

    python benchmarks/bench_blas.py [--threads-list 1 2] [--lib NAME_OR_PATH ...] [--windows 5] [--seconds 0.05]
    python benchmarks/bench_blas.py --steps --seconds 0.4 --windows 9   # whole training steps

``--steps`` times whole ember training steps (MLP, LeNet-5) with ember's ctypes calls
bound to each library in turn (what ``ember.configure_blas`` changes; NumPy's own
``matmul`` calls stay on NumPy's library), interleaved windows in one process.

Prints GFLOP/s per library and each library's time relative to NumPy's (> 1: faster than
NumPy's), then the geometric mean per group. MKL's OpenMP threads are told not to spin
after a call (``KMP_BLOCKTIME=0`` unless set), as OpenBLAS's are (ember's default), so
the libraries' idle threads do not steal the next one's window.
"""

from __future__ import annotations

import math
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), HERE]

from common import benchmark_args, compare, cpu_model  # noqa: E402


def _add(parser):
    parser.add_argument("--threads-list", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--lib", action="append", default=None,
                        help="library name or path (repeatable; default: numpy and every installed one)")  # fmt: skip
    parser.add_argument("--only", default=None, help="run only the groups whose name contains this (mlp, lstm, lenet)")
    parser.add_argument("--steps", action="store_true",
                        help="time whole ember training steps instead (MLP batch 32/128/512, LeNet-5 batch 64/128), "
                             "the library switched between windows")  # fmt: skip


ARGS = benchmark_args(__doc__, batches=None, windows=5, seconds=0.05, add=_add) if __name__ == "__main__" else None
os.environ.setdefault("KMP_BLOCKTIME", "0")

import numpy as np  # noqa: E402
from ember import _blas  # noqa: E402
from ember.backend import transposed_product_is_faster  # noqa: E402

ROW_MAJOR, NO, T = 101, 111, 112


def cases():
    """(group, label, kind, args): kind "gemm" args (m, n, k, trans_a, trans_b, beta, ldb, ldc)
    (ldb/ldc None: tight), kind "ger" args (m, n)."""
    out = [("mlp b1", "784x1000 weight grad (ger)", "ger", (1000, 784))]
    for b in (32, 128, 512):
        g = f"mlp b{b}"
        for inp, hid in ((784, 1000), (1000, 10)):
            if transposed_product_is_faster(b, inp, hid):
                out.append((g, f"{inp}->{hid} forward W x^T", "gemm", (hid, b, inp, NO, T, 0.0, None, None)))
            else:
                out.append((g, f"{inp}->{hid} forward x W^T", "gemm", (b, hid, inp, NO, T, 1.0, None, None)))
            out.append((g, f"{inp}->{hid} weight grad", "gemm", (hid, inp, b, T, NO, 1.0, None, None)))
            out.append((g, f"{inp}->{hid} input grad", "gemm", (b, inp, hid, NO, NO, 0.0, None, None)))
    for n, t, i, h in ((128, 28, 28, 128), (64, 64, 64, 256), (32, 100, 64, 512)):
        g = f"lstm {n}x{t}x{i}x{h}"
        out.append((g, "step forward W_hh h", "gemm", (4 * h, n, h, NO, NO, 1.0, None, t * n)))
        out.append((g, "step backward W_hh^T dg", "gemm", (h, n, 4 * h, T, NO, 1.0, t * n, None)))
        out.append((g, "input projection", "gemm", (4 * h, t * n, i, NO, NO, 0.0, None, None)))
        out.append((g, "W_hh grad", "gemm", (4 * h, h, t * n, NO, T, 1.0, None, None)))
    for b in (64, 128):
        g = f"lenet b{b}"
        out.append((g, "conv1 forward", "gemm", (20, 576 * b, 26, NO, NO, 0.0, None, None)))
        out.append((g, "conv1 weight grad", "gemm", (20, 26, 576 * b, NO, T, 1.0, None, None)))
        out.append((g, "conv2 forward", "gemm", (50, 64 * b, 501, NO, NO, 0.0, None, None)))
        out.append((g, "conv2 dcols W^T dy", "gemm", (500, 64 * b, 50, T, NO, 0.0, None, None)))
        out.append((g, "conv2 weight grad", "gemm", (50, 501, 64 * b, NO, T, 1.0, None, None)))
        out.append((g, "800->500 forward", "gemm", (b, 500, 800, NO, T, 1.0, None, None)))
        out.append((g, "800->500 weight grad", "gemm", (500, 800, b, T, NO, 1.0, None, None)))
        out.append((g, "800->500 input grad", "gemm", (b, 800, 500, NO, NO, 0.0, None, None)))
    return out


def make_call(lib, kind, args, rng):
    """(a no-argument call of ``lib``'s routine on fresh operands, flops per call)."""
    addr = _blas._address
    if kind == "ger":
        m, n = args
        x, y = rng.random(m, np.float32), rng.random(n, np.float32)
        c = np.zeros((m, n), np.float32)
        fn = lib.function("sger")
        keep = (x, y, c)
        return (lambda: fn(ROW_MAJOR, m, n, 1e-3, addr(keep[0]), 1, addr(keep[1]), 1, addr(keep[2]), n)), 2.0 * m * n
    m, n, k, ta, tb, beta, ldb, ldc = args
    a = rng.random((k, m) if ta == T else (m, k), np.float32)
    rows_b, cols_b = (n, k) if tb == T else (k, n)
    b = rng.random((rows_b, max(cols_b, ldb or 0)), np.float32)
    c = np.zeros((m, max(n, ldc or 0)), np.float32)
    lda, ldb, ldc = a.shape[1], b.shape[1], c.shape[1]
    fn = lib.function("sgemm")
    keep = (a, b, c)
    return (lambda: fn(ROW_MAJOR, ta, tb, m, n, k, 1e-3, addr(keep[0]), lda, addr(keep[1]), ldb, beta,
                       addr(keep[2]), ldc)), 2.0 * m * n * k  # fmt: skip


def libraries(names):
    found = {}
    for name in names or ["numpy", "scipy-openblas32", "scipy-openblas64", "mkl"]:
        try:
            lib = _blas.open_library(name)
        except ValueError as error:
            if names:
                sys.exit(str(error))
            print(f"  (skipped {name}: {error})")
            continue
        found[name] = lib
    return found


def with_library(lib, step):
    """``step`` run with ember's ctypes calls bound to ``lib`` (swapped in per call: cheap)."""
    funcs = {kind + name: lib.function(kind + name) for kind in "sd" for name in ("gemm", "ger", "axpy", "axpby")}

    def run():
        _blas._FUNCS.update(funcs)
        step()

    return run


def whole_steps(libs, names):
    """Interleaved windows of ember's MLP and LeNet-5 training steps under each library."""
    import bench_lenet
    import bench_mlp

    models = [(f"mlp b{b}", lambda b=b: bench_mlp.ember_step(b)[0]) for b in (32, 128, 512)]
    models += [(f"lenet b{b}", lambda b=b: bench_lenet.ember_step(b)[0]) for b in (64, 128)]
    for threads in ARGS.threads_list:
        from common import set_threads

        set_threads(threads)
        for lib in libs.values():
            lib.set_num_threads(threads)
        print(f"\n## whole training steps, {threads} thread(s): steps/s; in brackets steps/s / NumPy's BLAS\n")
        print("| model | " + " | ".join(names) + " |")
        print("| --- |" + " --- |" * len(names))
        for label, make in models:
            if ARGS.only and ARGS.only not in label:
                continue
            rates = compare({name: with_library(lib, make()) for name, lib in libs.items()}, windows=ARGS.windows,
                            seconds=ARGS.seconds, warmup=3, max_foreign=ARGS.max_foreign)  # fmt: skip
            base = rates.get("numpy", float("nan"))
            cells = [f"{rates[n]:.1f}" + ("" if n == "numpy" else f" ({rates[n] / base:.2f})") for n in names]
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    _blas._bind(_blas.open_library("numpy"))


def main():
    libs = libraries(ARGS.lib)
    for lib in libs.values():  # loaded now: MKL maps its CPU kernel on the first call
        make_call(lib, "gemm", (8, 8, 8, NO, NO, 0.0, None, None), np.random.default_rng(0))[0]()
    print(f"bench_blas: CPU {cpu_model()}, {os.cpu_count()} cpus, numpy {np.__version__}, "
          f"{ARGS.windows} windows x {ARGS.seconds} s, medians")  # fmt: skip
    for name, lib in libs.items():
        print(f"  {name}: {lib.describe()}")
    names = list(libs)
    if ARGS.steps:
        return whole_steps(libs, names)
    rng = np.random.default_rng(0)
    summary = {}
    for threads in ARGS.threads_list:
        for lib in libs.values():
            lib.set_num_threads(threads)
        print(f"\n## {threads} thread(s): GFLOP/s per library; in brackets time(numpy) / time(library)\n")
        print("| group | product (m x n x k) | " + " | ".join(names) + " |")
        print("| --- | --- |" + " --- |" * len(names))
        for group, label, kind, args in cases():
            if ARGS.only and ARGS.only not in group:
                continue
            calls = {name: make_call(lib, kind, args, rng) for name, lib in libs.items()}
            flops = next(iter(calls.values()))[1]
            rates = compare({name: call for name, (call, _) in calls.items()}, windows=ARGS.windows,
                            seconds=ARGS.seconds, warmup=3, max_foreign=ARGS.max_foreign)  # fmt: skip
            base = rates.get("numpy", float("nan"))
            cells = []
            for name in names:
                ratio = rates[name] / base
                summary.setdefault((threads, group, name), []).append(ratio)
                cells.append(f"{rates[name] * flops / 1e9:.1f}" + ("" if name == "numpy" else f" ({ratio:.2f})"))
            shape = "x".join(str(v) for v in (args[:3] if kind == "gemm" else args))
            print(f"| {group} | {label} ({shape}) | " + " | ".join(cells) + " |", flush=True)
    print("\n## geometric mean of time(numpy) / time(library) per group\n")
    print("| threads | group | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for threads in ARGS.threads_list:
        groups = dict.fromkeys(g for (t, g, _) in summary if t == threads)
        for group in groups:
            cells = []
            for name in names:
                ratios = [r for r in summary[(threads, group, name)] if r == r]
                cells.append(f"{math.exp(statistics.fmean(map(math.log, ratios))):.2f}" if ratios else "n/a")
            print(f"| {threads} | {group} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
