"""Train the lecture's MNIST MLP with every optimizer (settings: ember.optim.recipes)
and print a Markdown table of test accuracy per epoch (docs/training.md).

    python examples/optimizer_table.py                  # all, full MNIST, 5 epochs
    python examples/optimizer_table.py adam sgd --limit 10000 --epochs 2
"""

import argparse
import sys
import time

import numpy as np

from ember import models, nn
from ember.optim.recipes import MNIST_MLP, command
from ember.runtime import configure_threads
from ember.training import TrainOptions, fit, load_dataset


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", default=list(MNIST_MLP))
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--limit", type=int)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    configure_threads(args.threads)
    data = load_dataset((784,), limit=args.limit)
    print(f"| optimizer | {' | '.join(f'epoch {e}' for e in range(1, args.epochs + 1))} | time | command |")
    print("|---" * (args.epochs + 3) + "|")
    for name in args.names:
        net = models.build_model("mnist-mlp", rng=np.random.default_rng(args.seed))
        options = TrainOptions(optimizer=name, epochs=args.epochs, seed=args.seed, progress=False, **MNIST_MLP[name])
        start = time.perf_counter()
        with open("/dev/null", "w") as quiet:
            history = fit(net, nn.ClassNLLCriterion(), data, options, out=quiet)
        accs = " | ".join(f"{row['test_acc'] * 100:.2f}" for row in history)
        print(f"| {name} | {accs} | {time.perf_counter() - start:.0f} s | `{command(name, args.epochs)}` |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
