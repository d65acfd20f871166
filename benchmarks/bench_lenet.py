"""Training-step throughput of LeNet-5 in ember and in PyTorch: same network, same batch,
same number of threads, same process, interleaved timing windows, medians.

Network (both): conv 5x5 1->20, ReLU, max 2x2, conv 5x5 20->50, ReLU, max 2x2,
Linear 800->500, ReLU, Linear 500->10, LogSoftMax; ClassNLL loss; SGD with momentum 0.9.

    python benchmarks/bench_lenet.py [--threads 2] [--batches 64 128] [--windows 9] [--seconds 1]

Prints samples/s for each and the ratio ember / PyTorch (median over windows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--windows", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true", help="also print ember's time per module")
    return parser.parse_args()


ARGS = parse()
# BLAS reads its thread count when NumPy is first imported
os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(ARGS.threads)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import numpy as np  # noqa: E402

from ember import nn, optim  # noqa: E402


def ember_lenet(rng):
    net = nn.Sequential(
        nn.SpatialConvolution(1, 20, 5, 5, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.SpatialConvolution(20, 50, 5, 5, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.Reshape(800), nn.Linear(800, 500, rng=rng), nn.ReLU(), nn.Linear(500, 10, rng=rng), nn.LogSoftMax(),
    )  # fmt: skip
    net.get(0).need_grad_input = False  # the images need no gradient (PyTorch skips it too)
    return net


def ember_step(batch, seed=0):
    rng = np.random.default_rng(seed)
    net = ember_lenet(rng)
    crit = nn.ClassNLLCriterion()
    params, grads = net.get_parameters()
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=batch)
    config = {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0}

    def feval(_):
        grads.fill(0)
        out = net.forward(x)
        loss = crit.forward(out, y)
        net.backward(x, crit.backward(out, y))
        return loss, grads

    return (lambda: optim.sgd(feval, params, config)), net


def torch_step(batch, seed=0):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 20, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(20, 50, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(800, 500), torch.nn.ReLU(), torch.nn.Linear(500, 10),
        torch.nn.LogSoftmax(dim=1),
    )  # fmt: skip
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = torch.tensor(rng.integers(0, 10, size=batch))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(model(x), y)
        loss.backward()
        opt.step()

    return step


def window(step, seconds):
    count, start = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def compare(steps, windows, seconds, warmup=3):
    """Interleave timing windows of each named step; return {name: [steps/s per window]}."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    rates = {name: [] for name in steps}
    for _ in range(windows):
        for name, step in steps.items():
            rates[name].append(window(step, seconds))
    return rates


def profile(net, step, repeats=20):
    """Time each module's forward and backward inside a real step (wraps the methods)."""
    totals = {}

    def wrap(module, method, index):
        original = getattr(module, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = original(*args, **kwargs)
            key = (index, f"{module!r}"[:40], method)
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start
            return result

        setattr(module, method, timed)

    for index, module in enumerate(net.children()):
        wrap(module, "forward", index)
        wrap(module, "backward", index)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    total = (time.perf_counter() - start) / repeats
    print(f"  ember step {total * 1e3:.2f} ms; per module (ms):")
    for key in sorted(totals):
        print(f"    {key[0]:2d} {key[1]:40s} {key[2]:8s} {totals[key] / repeats * 1e3:7.3f}")
    for module in net.children():
        for method in ("forward", "backward"):
            del module.__dict__[method]


def main():
    import torch

    torch.set_num_threads(ARGS.threads)
    print(f"LeNet-5 training step, {ARGS.threads} threads, numpy {np.__version__}, torch {torch.__version__}, "
          f"{os.cpu_count()} cpus; {ARGS.windows} interleaved windows of {ARGS.seconds:g} s")  # fmt: skip
    print(f"{'batch':>5} {'ember samples/s':>16} {'torch samples/s':>16} {'ratio':>6}   per-window ratios")
    for batch in ARGS.batches:
        estep, net = ember_step(batch)
        rates = compare({"ember": estep, "torch": torch_step(batch)}, ARGS.windows, ARGS.seconds)
        ratios = [e / t for e, t in zip(rates["ember"], rates["torch"])]
        e, t = statistics.median(rates["ember"]) * batch, statistics.median(rates["torch"]) * batch
        print(f"{batch:5d} {e:16.0f} {t:16.0f} {statistics.median(ratios):6.2f}   "
              + " ".join(f"{r:.2f}" for r in ratios))  # fmt: skip
        if ARGS.profile:
            profile(net, estep)


if __name__ == "__main__":
    main()
