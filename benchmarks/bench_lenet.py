"""Training-step throughput of LeNet-5 in ember and in PyTorch: same network, same batch,
same number of threads, same process, interleaved timing windows, medians.

Network (both): conv 5x5 1->20, ReLU, max 2x2, conv 5x5 20->50, ReLU, max 2x2,
Linear 800->500, ReLU, Linear 500->10, LogSoftMax; ClassNLL loss; SGD, momentum 0.9.
"spec" runs the modules in that order; "pool-relu" swaps each ReLU and max pooling
(the same function: max and ReLU commute), as ember's ``lenet5`` model does. Each
framework runs both orders, so every pairing can be compared.

    python benchmarks/bench_lenet.py [--threads 2] [--batches 64 128] [--windows 9] [--seconds 1]

Prints samples/s (median over windows) and ratios ember / PyTorch (median of the
per-window ratios). ``--profile`` adds ember's time per module. ``--numpy-too`` also
times the pool-relu order with ember's compiled kernels off ("numpy": against PyTorch;
"fast/numpy": ember with them / without them, same run).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), HERE]
from common import benchmark_args  # noqa: E402  (imports no NumPy)

ARGS = benchmark_args(__doc__, batches=[64, 128], windows=9, seconds=1.0) if __name__ == "__main__" else None

# benchmark_args made the `ember` command's ember.configure_threads() call before NumPy was
# imported: OpenBLAS (loaded with NumPy) does not leave idle threads spinning (src/ember/runtime.py)
from ember import nn, optim  # noqa: E402, I001
from ember.training import make_feval  # noqa: E402

import numpy as np  # noqa: E402
from common import compare, ember_sgd_step, machine_line, numpy_path, print_ratios, profile  # noqa: E402
from common import set_threads, torch_sgd_step  # noqa: E402

ORDERS = ("spec", "pool-relu")


def ember_lenet(rng, order="spec"):
    stage = (lambda: [nn.ReLU(), nn.SpatialMaxPooling(2, 2)]) if order == "spec" else \
        (lambda: [nn.SpatialMaxPooling(2, 2), nn.ReLU()])  # fmt: skip
    net = nn.Sequential(nn.SpatialConvolution(1, 20, 5, 5, rng=rng), *stage(),
                        nn.SpatialConvolution(20, 50, 5, 5, rng=rng), *stage(),
                        nn.Reshape(800), nn.Linear(800, 500, rng=rng), nn.ReLU(), nn.Linear(500, 10, rng=rng),
                        nn.LogSoftMax())  # fmt: skip
    net.compute_grad_input = False  # the images need no gradient (PyTorch skips it too)
    return net


def ember_step(batch, order="spec", seed=0):
    rng = np.random.default_rng(seed)
    net = ember_lenet(rng, order)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    return ember_sgd_step(net, x, rng.integers(0, 10, size=batch)), net


def torch_step(batch, order="spec", seed=0):
    import torch

    torch.manual_seed(seed)
    T = torch.nn
    stage = (lambda: [T.ReLU(), T.MaxPool2d(2)]) if order == "spec" else (lambda: [T.MaxPool2d(2), T.ReLU()])
    model = T.Sequential(T.Conv2d(1, 20, 5), *stage(), T.Conv2d(20, 50, 5), *stage(), T.Flatten(),
                         T.Linear(800, 500), T.ReLU(), T.Linear(500, 10), T.LogSoftmax(dim=1))  # fmt: skip
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    return torch_sgd_step(model, x, rng.integers(0, 10, size=batch))


def main():
    import torch

    set_threads(ARGS.threads)
    print(f"LeNet-5 training step, {ARGS.threads} threads; {machine_line()}; "
          f"{ARGS.windows} interleaved windows of {ARGS.seconds:g} s")  # fmt: skip
    print(f"{'batch':>5} {'order':>10} {'ember samples/s':>16} {'torch samples/s':>16} {'ratio':>6}   per-window ratios")
    for batch in ARGS.batches:
        steps, nets = {}, {}
        for order in ORDERS:
            steps["ember " + order], nets[order] = ember_step(batch, order)
            steps["torch " + order] = torch_step(batch, order)
        if ARGS.numpy_too:
            steps["ember numpy"] = numpy_path(ember_step(batch, "pool-relu")[0])
        rates = compare(steps, ARGS.windows, ARGS.seconds, raw=True, max_foreign=ARGS.max_foreign)
        for mine, theirs in [("spec", "spec"), ("pool-relu", "pool-relu"), ("pool-relu", "spec")]:
            label = mine if mine == theirs else f"{mine}/{theirs}"
            print_ratios(f"{batch:5d} {label:>10}", batch, rates["ember " + mine], rates["torch " + theirs], ARGS.windows)
        if ARGS.numpy_too:
            fast, plain, theirs = rates["ember pool-relu"], rates["ember numpy"], rates["torch pool-relu"]
            print_ratios(f"{batch:5d} {'numpy':>10}", batch, plain, theirs, ARGS.windows)
            print_ratios(f"{batch:5d} {'fast/numpy':>10}", batch, fast, plain, ARGS.windows)
        if ARGS.profile:
            profile(nets["pool-relu"], steps["ember pool-relu"])
    del torch


if __name__ == "__main__":
    main()
