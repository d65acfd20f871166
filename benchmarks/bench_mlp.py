"""Training-step throughput of the lecture's MNIST MLP (784-1000-10, ReLU, LogSoftMax +
ClassNLL, SGD with momentum 0.9) in ember and in PyTorch: same network, same batch, same
number of threads, same process, interleaved timing windows.

    python benchmarks/bench_mlp.py [--threads 2] [--batches 1 32 128 512] [--windows 15] [--seconds 0.4]
    python benchmarks/bench_mlp.py --device cuda      # CuPy against PyTorch on the GPU

Prints samples/s (median over windows) and the ratio ember / PyTorch (median of the
per-window ratios, each window pair timed back to back). Windows during which other
processes used the CPUs are dropped (``--max-foreign``). ``--profile`` adds ember's time
per module. ``--floor`` also times the same step written by hand as a few NumPy and BLAS
calls on preallocated arrays, with no module system at all: a lower bound on the time of
any NumPy library on this machine, to read the ratios against ("e/fl": ember / floor).
``--numpy-too`` also times ember with its compiled kernels off ("numpy" row; "f/np": ember
with them / without them, same run). ``--memory-variants`` (with ``--floor``) also times ember
without its 2 MB pages, without its in-place ReLU, and without either, each against the floor
(rows "-pages", "-inpl", "-both"; docs/benchmarks.md, "Memory pages and the in-place ReLU").
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), HERE]
from common import benchmark_args  # noqa: E402  (imports no NumPy)


def _options(parser):
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: ember on CuPy, PyTorch on CUDA")
    parser.add_argument("--floor", action="store_true", help="also time the hand-written NumPy step (lower bound)")
    parser.add_argument("--memory-variants", action="store_true",
                        help="with --floor: also time ember without 2 MB pages / in-place ReLU / both")


ARGS = benchmark_args(__doc__, batches=[1, 32, 128, 512], windows=15, seconds=0.4, add=_options) if __name__ == "__main__" else None

# benchmark_args made the `ember` command's ember.configure_threads() call before NumPy was
# imported: it shortens the time OpenBLAS's idle threads spin after a product (see
# src/ember/runtime.py). Left spinning, they would eat into the next timing window, which
# is PyTorch's half the time.
import ember  # noqa: E402, I001

import numpy as np  # noqa: E402
from common import compare, ember_sgd_step, machine_line, numpy_path, print_ratios, profile  # noqa: E402
from common import set_threads, torch_sgd_step  # noqa: E402


def data(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, size=batch)


def ember_step(batch, device="cpu"):
    net = ember.models.build_model("mnist-mlp", rng=np.random.default_rng(0))
    if device == "cpu":
        return ember_sgd_step(net, *data(batch)), net
    import cupy

    step = ember_sgd_step(net.to(ember.Backend("cupy")), *data(batch))
    done = cupy.cuda.Device().synchronize

    def synchronized():  # kernels run asynchronously: a step ends when the GPU is done
        step()
        done()

    return synchronized, net


def ember_variant(batch, pages, inplace):
    """ember's CPU step with its flat vectors on 2 MB pages or not (``ember._pages``) and its
    ReLU in place or not: the same numbers, other memory traffic."""
    from ember import _pages

    _pages.set_enabled(pages)
    try:
        step, net = ember_step(batch)
        step()  # the momentum vector is made in the first step
    finally:
        _pages.set_enabled(True)
    for relu in net.find_modules("ReLU"):
        relu.inplace = inplace
    return step


def torch_step(batch, device="cpu"):
    import torch

    torch.manual_seed(0)
    T = torch.nn
    model = T.Sequential(T.Linear(784, 1000), T.ReLU(), T.Linear(1000, 10), T.LogSoftmax(dim=1))
    return torch_sgd_step(model, *data(batch), device=device)


def floor_step(batch):
    """The same training step as a flat script: preallocated arrays, in-place ufuncs,
    BLAS products that write (beta = 0) instead of zeroing and accumulating, no checks."""
    from ember import _blas

    x, y = data(batch)
    rng = np.random.default_rng(0)
    sizes = [(1000, 784), (1000,), (10, 1000), (10,)]
    flat_p, flat_g, flat_v = (np.zeros(sum(int(np.prod(shape)) for shape in sizes), np.float32) for _ in range(3))
    offsets = np.cumsum([0] + [int(np.prod(shape)) for shape in sizes])
    w1, b1, w2, b2 = (flat_p[a:b].reshape(shape) for a, b, shape in zip(offsets, offsets[1:], sizes))
    gw1, gb1, gw2, gb2 = (flat_g[a:b].reshape(shape) for a, b, shape in zip(offsets, offsets[1:], sizes))
    w1[...] = rng.uniform(-1, 1, w1.shape) / np.sqrt(784)
    w2[...] = rng.uniform(-1, 1, w2.shape) / np.sqrt(1000)
    h, dh = np.empty((batch, 1000), np.float32), np.empty((batch, 1000), np.float32)
    probs, rows = np.empty((batch, 10), np.float32), np.arange(batch)
    top, total = np.empty((batch, 1), np.float32), np.empty((batch, 1), np.float32)

    def affine(a, w, b, out):
        if batch == 1:  # one sample: a matrix-vector product (OpenBLAS's GEMM with M = 1 is ~5x slower)
            np.matmul(w, a[0], out=out[0])
            np.add(out, b, out=out)
        else:
            np.copyto(out, b)
            _blas.gemm(a, w.T, out, 1.0, 1.0)

    def step():
        affine(x, w1, b1, h)
        np.maximum(h, 0, out=h)  # in place: h is both the pre- and post-activation
        affine(h, w2, b2, probs)
        np.max(probs, axis=1, keepdims=True, out=top)
        np.subtract(probs, top, out=probs)
        np.exp(probs, out=probs)
        np.sum(probs, axis=1, keepdims=True, out=total)
        np.divide(probs, total, out=probs)  # softmax; (p - onehot) / N is dloss/dlogits
        probs[rows, y] -= 1
        np.multiply(probs, 1.0 / batch, out=probs)
        _blas.gemm(probs.T, h, gw2, 1.0, 0.0)
        np.sum(probs, axis=0, out=gb2)
        _blas.gemm(probs, w2, dh, 1.0, 0.0)
        np.greater(h, 0, out=h)
        np.multiply(dh, h, out=dh)
        _blas.gemm(dh.T, x, gw1, 1.0, 0.0) if batch > 1 else (gw1.fill(0), _blas.ger(1.0, dh[0], x[0], gw1))
        np.sum(dh, axis=0, out=gb1)
        _blas.axpby(1.0, flat_g, 0.9, flat_v)  # momentum, then the update
        _blas.axpby(-0.01, flat_v, 1.0, flat_p)

    return step


def main():
    set_threads(ARGS.threads)
    if ARGS.device == "cpu":
        where = f"{ARGS.threads} threads"
    else:
        import torch

        where = torch.cuda.get_device_name()
    print(f"MNIST MLP training step, {where}; {machine_line()}; "
          f"{ARGS.windows} interleaved windows of {ARGS.seconds:g} s")  # fmt: skip
    print(f"{'batch':>5} {'ember samples/s':>16} {'torch samples/s':>16} {'ratio':>6}   per-window ratios")
    for batch in ARGS.batches:
        mine, net = ember_step(batch, ARGS.device)
        steps = {"ember": mine, "torch": torch_step(batch, ARGS.device)}
        if ARGS.floor and ARGS.device == "cpu":
            steps["floor"] = floor_step(batch)
        if ARGS.numpy_too and ARGS.device == "cpu":
            steps["numpy"] = numpy_path(ember_step(batch)[0])
        variants = {"-pages": (False, True), "-inpl": (True, False), "-both": (False, False)}
        if ARGS.memory_variants and "floor" in steps:
            steps.update({name: ember_variant(batch, *switches) for name, switches in variants.items()})
        rates = compare(steps, ARGS.windows, ARGS.seconds, raw=True, max_foreign=ARGS.max_foreign)
        print_ratios(f"{batch:5d}", batch, rates["ember"], rates["torch"], ARGS.windows)
        if "floor" in steps:
            print_ratios(f"{'floor':>5}", batch, rates["floor"], rates["torch"], ARGS.windows)
            print_ratios(f"{'e/fl':>5}", batch, rates["ember"], rates["floor"], ARGS.windows)
        if "numpy" in steps:
            print_ratios(f"{'numpy':>5}", batch, rates["numpy"], rates["torch"], ARGS.windows)
            print_ratios(f"{'f/np':>5}", batch, rates["ember"], rates["numpy"], ARGS.windows)
        for name in variants:
            if name in steps:  # e/fl of ember without that change
                print_ratios(f"{name:>5}", batch, rates[name], rates["floor"], ARGS.windows)
        if ARGS.profile:
            profile(net, mine)


if __name__ == "__main__":
    main()
