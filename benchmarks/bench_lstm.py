"""Training-step throughput of an LSTM in ember and in PyTorch, same sizes, same run.

    python benchmarks/bench_lstm.py [--threads 2] [--configs 128x28x28x128 64x64x64x256]

Each config is NxTxFxH: N sequences of T steps of F features into an LSTM with H units;
the last step feeds Linear(H, 10) -> LogSoftMax -> ClassNLL, and one SGD step with
momentum updates everything (the mnist-lstm network at 128x28x28x128). The input
gradient is skipped in both (the input is data). Prints sequences/s for each and the
ratio ember / PyTorch (median of interleaved windows).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import compare, ember_sgd_step, machine_line, set_threads, torch_sgd_step  # noqa: E402

from ember import nn  # noqa: E402


def ember_step(n, t, f, h, rng):
    net = nn.Sequential(nn.LSTM(f, h, rng=rng), nn.LastStep(), nn.Linear(h, 10, rng=rng), nn.LogSoftMax())
    return ember_sgd_step(net, rng.standard_normal((n, t, f)).astype(np.float32), rng.integers(0, 10, size=n))


def torch_step(n, t, f, h, rng):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(f, h, batch_first=True)
            self.out = torch.nn.Linear(h, 10)

        def forward(self, x):
            return torch.log_softmax(self.out(self.lstm(x)[0][:, -1]), dim=1)

    return torch_sgd_step(Net(), rng.standard_normal((n, t, f)).astype(np.float32), rng.integers(0, 10, size=n))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=["128x28x28x128", "64x64x64x256", "32x100x64x512"])
    parser.add_argument("--windows", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"LSTM training step (forward, BPTT, SGD), {args.threads} threads; {machine_line()}")
    print(f"{'N x T x F x H':>16} {'ember seq/s':>12} {'torch seq/s':>12} {'ratio':>6}")
    for config in args.configs:
        n, t, f, h = (int(v) for v in config.split("x"))
        rng = np.random.default_rng(0)
        rates = compare({"ember": ember_step(n, t, f, h, rng), "torch": torch_step(n, t, f, h, rng)},
                        args.windows, args.seconds)
        e, tr = rates["ember"] * n, rates["torch"] * n
        print(f"{config:>16} {e:>12.0f} {tr:>12.0f} {e / tr:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
