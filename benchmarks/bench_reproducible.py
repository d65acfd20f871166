"""The cost of the reproducible gradient (``--grad-shards S``) in one process: the time of one
sgd step (batch 64, MNIST) with the plain whole-batch ``feval`` and with the chunked one
for each S, interleaved step by step in one process (so load from other jobs hits all
variants alike), medians.

    python benchmarks/bench_reproducible.py [--model mnist-mlp] [--shards 2,4,8] [--steps 200] [--threads 1]

With ``--threads 2`` the plain step uses 2 BLAS threads while the chunked one pins BLAS
to one (as ``ember train --grad-shards`` does): the full price of the mode on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from ember import runtime  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mnist-mlp")
    p.add_argument("--shards", default="2,4,8")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    a = p.parse_args()
    runtime.configure_threads(a.threads)
    import numpy as np

    from ember import nn, optim
    from ember.distributed.reproducible import ChunkedFeval
    from ember.models import get_model
    from ember.training import load_dataset, make_feval

    spec = get_model(a.model)
    model = spec.build(n_classes=10, rng=np.random.default_rng(1))
    crit = nn.ClassNLLCriterion()
    data = load_dataset(spec.input_shape)
    params, grads = model.get_parameters()
    xb = np.empty((a.batch,) + tuple(spec.input_shape), dtype=np.float32)
    yb = np.empty(a.batch, dtype=np.int64)
    shards = [int(s) for s in a.shards.split(",")]
    fevals = {0: make_feval(model, crit, xb, yb, grads)}
    fevals.update({s: ChunkedFeval(model, crit, xb, yb, grads, a.batch, s) for s in shards})
    times: dict[int, list[float]] = {k: [] for k in fevals}
    order = np.random.default_rng(1).permutation(len(data.y_train))
    config, state = {"learning_rate": 0.01, "momentum": 0.9}, {}
    for step in range(a.steps):
        index = order[(step * a.batch) % (len(order) - a.batch) :][: a.batch]
        data.x_train.gather(index, xb)
        np.take(data.y_train, index, out=yb)
        for key in (list(fevals) if step % 2 else list(fevals)[::-1]):
            start = time.perf_counter()
            optim.sgd(fevals[key], params, config, state)
            times[key].append(time.perf_counter() - start)
    base = float(np.median(times[0][10:]))
    load = os.getloadavg()[0]
    print(f"{a.model}, batch {a.batch}, --threads {a.threads}, {a.steps} interleaved steps, load {load:.1f}: median "
          f"step plain {base * 1e3:.2f} ms ({a.batch / base:.0f} samples/s)")  # fmt: skip
    for s in shards:
        t = float(np.median(times[s][10:]))
        print(f"  --grad-shards {s}: {t * 1e3:.2f} ms ({a.batch / t:.0f} samples/s), {t / base:.2f}x the plain step")


if __name__ == "__main__":
    main()
