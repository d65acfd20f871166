"""Launched by tests/test_distributed.py with ``mpirun -np 2 python distributed_helper.py
SCENARIO OUTDIR``; imported by it for the single-process reference runs.

Scenarios: ``exact`` (train a small net with batch norm and dropout, with sgd + weight
decay + clipping, adam, lbfgs and cg, then the library example's loop; rank 0 saves
the parameters), ``kill`` (rank 1 SIGKILLs itself at its 4th step, after writing
the time), ``diverge`` (rank 1 nudges its parameters from its 3rd step on).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from ember import nn, optim  # noqa: E402
from ember.training import TrainOptions, fit, make_dataset  # noqa: E402

#: optimizer settings of the ``exact`` scenario (clip_grad: a non-linear step on the global gradient)
CONFIGS = {
    "sgd": {"optimizer": "sgd", "lr": 0.1, "weight_decay": 1e-3, "clip_grad": 2.0},
    "adam": {"optimizer": "adam"},
    "lbfgs": {"optimizer": "lbfgs", "optim_config": {"max_iter": 3}, "max_steps": 6},  # it soon blows up here
    "cg": {"optimizer": "cg", "optim_config": {"max_iter": 4}, "max_steps": 6},
}


def synthetic_data(n_train=95):
    """Three Gaussian blobs in 12 dimensions (float32), seeded."""
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(3, 12))
    y = rng.integers(0, 3, size=n_train + 60)
    x = (centers[y] + rng.normal(size=(len(y), 12))).astype(np.float32)
    return make_dataset("blobs", x[:n_train], y[:n_train], x[n_train:], y[n_train:], (12,), preprocess="none")


def small_net(seed):
    """Linear, ReLU, batch norm, dropout, Linear, LogSoftMax: every cross-rank path. (Batch
    norm right after a Linear would leave that bias a gradient of pure rounding noise,
    which adam magnifies: no test of anything.)"""
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(12, 16, rng=rng), nn.ReLU(), nn.BatchNormalization(16), nn.Dropout(0.3, rng=rng),
                         nn.Linear(16, 3, rng=rng), nn.LogSoftMax())  # fmt: skip


def train(config, epochs=2, n_train=95, batch_size=11):
    """Train :func:`small_net` in float64 (batches of 11: shares of 6 and 5, a last batch
    of 7); returns (flat parameters, running mean of the batch norm, history).

    float64 because training amplifies rounding differences exponentially (lbfgs within
    a dozen steps, sgd over hundreds: one process with 1 or 2 BLAS threads drifts as far
    apart as 1 and 2 ranks do); in float64 the rounding stays far below the tolerance."""
    model = small_net(3).double()
    options = TrainOptions(epochs=epochs, batch_size=batch_size, seed=3, progress=False, **CONFIGS[config])
    with open(os.devnull, "w") as quiet:
        history = fit(model, nn.ClassNLLCriterion(), synthetic_data(n_train), options, out=quiet)
    return model.get_parameters()[0].copy(), model.find_modules(nn.BatchNormalization)[0].running_mean.copy(), history


def library_loop(group=None, steps=9):
    """The five-line example of ember.distributed's docstring (float64, no batch norm:
    a user's plain loop); ``group`` None: the same loop in one process."""
    from ember.training import make_feval

    rng = np.random.default_rng(11)
    model = nn.Sequential(nn.Linear(12, 16, rng=rng), nn.Tanh(), nn.Linear(16, 3, rng=rng), nn.LogSoftMax()).double()
    crit, data = nn.ClassNLLCriterion().double(), synthetic_data()
    x, y, n = data.x_train[:].astype(np.float64), data.y_train, len(data.y_train)  # the preprocessed images
    params, grads = model.get_parameters()
    config, state = {"learning_rate": 0.1, "momentum": 0.9}, {}
    if group is not None:
        group.broadcast(params)  # every replica starts from rank 0's weights
        batches = group.batches(rng.permutation(n), 10)  # my share of each batch of 10
    else:
        order = rng.permutation(n)
        batches = ((order[i : i + 10], 1.0) for i in range(0, n, 10))
    for index, weight in batches:
        feval = make_feval(model, crit, x[index], y[index], grads)
        if group is not None:
            feval = group.reduce_feval(feval, grads, weight)
        optim.sgd(feval, params, config, state)
    return params.copy()


def _sabotage(after_steps, act):
    """Make rank 1 run ``act(params)`` at its ``after_steps``-th sgd step and every step after."""
    from ember import distributed

    plain, calls = optim.OPTIMIZERS["sgd"], []

    def step(feval, params, config, state):
        calls.append(1)
        if distributed.init().rank == 1 and len(calls) >= after_steps:  # from then on (a resume check may dry-run a step)
            act(params)
        return plain(feval, params, config, state)

    optim.OPTIMIZERS["sgd"] = step


def main(scenario, outdir):
    from ember import distributed

    rank = distributed.init().rank
    if scenario == "exact":
        for name in CONFIGS:
            params, running_mean, history = train(name)
            if rank == 0:
                last = history[-1] if history else {"train_loss": 0.0, "train_acc": 0.0}  # lbfgs: no epoch ends
                np.savez(os.path.join(outdir, f"{name}.npz"), params=params, running_mean=running_mean,
                         train_loss=last["train_loss"], train_acc=last["train_acc"])  # fmt: skip
        params = library_loop(distributed.init())
        if rank == 0:
            np.save(os.path.join(outdir, "library.npy"), params)
    elif scenario == "kill":

        def die(params):
            with open(os.path.join(outdir, "killed_at"), "w") as f:
                f.write(repr(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)

        _sabotage(4, die)
        train("sgd", epochs=200)
    elif scenario == "diverge":
        _sabotage(3, lambda params: params.__setitem__(0, params[0] + 1e-3))
        train("sgd", epochs=3)
    else:
        sys.exit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
