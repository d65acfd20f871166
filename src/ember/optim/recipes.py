"""Settings with which each optimizer trains the lecture's MNIST network
(``mnist-mlp``: 784-1000-10, ReLU) to >= 97.5% test accuracy in 5 epochs.

Each entry maps to :class:`ember.training.TrainOptions` fields (and to ``ember train``
flags, see :func:`command`). The full-data results and the command that produced them
are in docs/training.md; tests/test_training_quality.py runs every entry on a subset.
"""

from __future__ import annotations

from typing import Any

MNIST_MLP = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "lr_decay": 2e-4},
    "nag": {"lr": 0.05, "momentum": 0.9, "lr_decay": 2e-4},
    "adam": {"lr": 1e-3},
    "adamw": {"lr": 1e-3, "optim_config": {"weight_decay": 1e-2}},
    "adagrad": {"lr": 0.02},
    "adadelta": {"lr": 1.0},
    "rmsprop": {"lr": 3e-4},
    "adamax": {"lr": 2e-3},
    "asgd": {"lr": 0.1, "optim_config": {"lambda": 1e-5}},
    "rprop": {"batch_size": 2000, "lr": 1e-3, "optim_config": {"stepsizemax": 0.01, "niter": 10}},
    "lbfgs": {"batch_size": 1000, "optim_config": {"max_iter": 10, "n_correction": 10, "line_search": "wolfe"}},
    "cg": {"batch_size": 1000, "optim_config": {"max_eval": 10}},
}


def command(name: str, epochs: int = 5, recipe: Any = None) -> str:
    """The ``ember train`` command line equivalent to ``MNIST_MLP[name]``."""
    recipe = MNIST_MLP[name] if recipe is None else recipe
    flags = [f"--optimizer {name}", f"--epochs {epochs}"]
    names = {"lr": "--lr", "momentum": "--momentum", "lr_decay": "--lr-decay", "batch_size": "--batch-size"}
    for key, flag in names.items():
        if key in recipe:
            flags.append(f"{flag} {recipe[key]:g}")
    if recipe.get("optim_config"):
        flags.append("--optim-config " + ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in recipe["optim_config"].items()))  # fmt: skip
    return "ember train " + " ".join(flags)
