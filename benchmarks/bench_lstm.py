"""Training-step throughput of an LSTM (or GRU) in ember and in PyTorch, same sizes, same run.

    python benchmarks/bench_lstm.py [--cell LSTM|GRU] [--threads 2] [--configs 128x28x28x128 64x64x64x256]
                                    [--windows 9] [--profile] [--numpy]

Each config is NxTxFxH: N sequences of T steps of F features into an LSTM (GRU) with H units;
the last step feeds Linear(H, 10) -> LogSoftMax -> ClassNLL, and one SGD step with
momentum updates everything (the mnist-lstm network at 128x28x28x128). The input
gradient is skipped in both (the input is data). Prints sequences/s for each and the
ratio ember / PyTorch (median of the per-window ratios of interleaved windows).
ember runs its compiled time loops when Numba is installed (``ember[fast]``); ``--numpy``
forces the NumPy loops (the same as ``EMBER_FAST=0``). ``bench_gru.py`` = ``--cell GRU``.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "src"), HERE]
from common import benchmark_args  # noqa: E402  (imports no NumPy)


def _options(parser):
    parser.add_argument("--configs", nargs="+", default=["128x28x28x128", "64x64x64x256", "32x100x64x512"])
    parser.add_argument("--cell", choices=["LSTM", "GRU"], default="LSTM")
    parser.add_argument("--numpy", action="store_true", help="the NumPy time loops (no compiled kernels)")


ARGS = benchmark_args(__doc__, batches=None, windows=9, seconds=1.0, add=_options) if __name__ == "__main__" else None

# after benchmark_args's ember.configure_threads() (see bench_mlp.py): OpenBLAS's idle threads stop spinning soon
from ember import _fast, nn  # noqa: E402, I001

import numpy as np  # noqa: E402
from common import compare, ember_sgd_step, machine_line, print_ratios, profile, set_threads, torch_sgd_step  # noqa: E402


def ember_step(n, t, f, h, rng, cell="LSTM"):
    net = nn.Sequential(getattr(nn, cell)(f, h, rng=rng), nn.LastStep(), nn.Linear(h, 10, rng=rng), nn.LogSoftMax())
    return ember_sgd_step(net, rng.standard_normal((n, t, f)).astype(np.float32), rng.integers(0, 10, size=n)), net


def torch_step(n, t, f, h, rng, cell="LSTM"):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = getattr(torch.nn, cell)(f, h, batch_first=True)
            self.out = torch.nn.Linear(h, 10)

        def forward(self, x):
            return torch.log_softmax(self.out(self.lstm(x)[0][:, -1]), dim=1)

    return torch_sgd_step(Net(), rng.standard_normal((n, t, f)).astype(np.float32), rng.integers(0, 10, size=n))


def main():
    set_threads(ARGS.threads)
    if ARGS.numpy:
        _fast.set_enabled(False)
    loops = "compiled" if _fast.enabled() else "NumPy"
    print(f"{ARGS.cell} training step ({loops} time loops) (forward, BPTT, SGD), {ARGS.threads} threads; {machine_line()}; "
          f"{ARGS.windows} interleaved windows of {ARGS.seconds:g} s")  # fmt: skip
    print(f"{'N x T x F x H':>16} {'ember seq/s':>16} {'torch seq/s':>16} {'ratio':>6}   per-window ratios")
    for config in ARGS.configs:
        n, t, f, h = (int(v) for v in config.split("x"))
        rng = np.random.default_rng(0)
        mine, net = ember_step(n, t, f, h, rng, ARGS.cell)
        rates = compare({"ember": mine, "torch": torch_step(n, t, f, h, rng, ARGS.cell)}, ARGS.windows, ARGS.seconds, raw=True,
                        max_foreign=ARGS.max_foreign)  # fmt: skip
        print_ratios(f"{config:>16}", n, rates["ember"], rates["torch"], ARGS.windows)
        if ARGS.profile:
            profile(net, mine)


if __name__ == "__main__":
    main()
