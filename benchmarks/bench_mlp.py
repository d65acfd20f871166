"""Training-step throughput of the lecture's MNIST MLP (784-1000-10, ReLU, LogSoftMax +
ClassNLL, SGD with momentum) in ember and in PyTorch, same batch, same threads, same run.

    python benchmarks/bench_mlp.py [--threads 2] [--batches 1 32 128 512]

Prints samples/s for each and the ratio ember / PyTorch (median of interleaved windows).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import compare, ember_sgd_step, machine_line, set_threads, torch_sgd_step  # noqa: E402

import ember  # noqa: E402


def ember_step(batch, rng):
    net = ember.models.build_model("mnist-mlp", rng=rng)
    return ember_sgd_step(net, rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, size=batch))


def torch_step(batch, rng):
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(784, 1000), torch.nn.ReLU(), torch.nn.Linear(1000, 10), torch.nn.LogSoftmax(dim=1))
    return torch_sgd_step(model, rng.standard_normal((batch, 784)).astype(np.float32), rng.integers(0, 10, size=batch))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32, 128, 512])
    parser.add_argument("--windows", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"MNIST MLP training step, {args.threads} threads; {machine_line()}")
    print(f"{'batch':>6} {'ember samples/s':>16} {'torch samples/s':>16} {'ratio':>6}")
    for batch in args.batches:
        rng = np.random.default_rng(0)
        rates = compare({"ember": ember_step(batch, rng), "torch": torch_step(batch, rng)}, args.windows, args.seconds)
        e, t = rates["ember"] * batch, rates["torch"] * batch
        print(f"{batch:>6} {e:>16.0f} {t:>16.0f} {e / t:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
