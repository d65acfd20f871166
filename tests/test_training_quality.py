"""Every optimizer trains the lecture's MNIST network with its recipe
(ember.optim.recipes), on a small budget: a subset of MNIST, two epochs. The full-data
numbers (>= 97.5% in 5 epochs) are in docs/training.md."""

import os

import numpy as np
import pytest

from ember import models, nn, optim
from ember.optim.recipes import MNIST_MLP, command
from ember.training import TORCH_LR, TrainOptions, fit, load_dataset

# (training samples, epochs, recipe overrides that only shrink the budget, min test accuracy)
BUDGET = {name: (4000, 2, {}, 0.86) for name in MNIST_MLP}  # they reach 0.88-0.90
BUDGET["lbfgs"] = (2000, 2, {"batch_size": 500, "optim_config": {"max_iter": 5}}, 0.83)
BUDGET["cg"] = (2000, 2, {"batch_size": 500, "optim_config": {"max_eval": 5}}, 0.83)
BUDGET["rprop"] = (4000, 2, {"batch_size": 1000, "optim_config": {"niter": 5}}, 0.86)


@pytest.fixture(scope="module")
def mnist():
    data = load_dataset((784,), limit=max(b[0] for b in BUDGET.values()))
    data.x_test, data.y_test = data.x_test[:2000], data.y_test[:2000]
    return data


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MNIST_MLP))
def test_each_optimizer_trains_the_mnist_mlp(mnist, name):
    limit, epochs, overrides, threshold = BUDGET[name]
    data = type(mnist)(**{**mnist.__dict__, "x_train": mnist.x_train[:limit], "y_train": mnist.y_train[:limit]})
    recipe = {**MNIST_MLP[name], **overrides}
    if "optim_config" in overrides:
        recipe["optim_config"] = {**MNIST_MLP[name].get("optim_config", {}), **overrides["optim_config"]}
    net = models.build_model("mnist-mlp", rng=np.random.default_rng(0))
    with open(os.devnull, "w") as out:
        history = fit(net, nn.ClassNLLCriterion(), data, TrainOptions(optimizer=name, epochs=epochs, progress=False, **recipe), out=out)
    print(f"{name}: {history[-1]['test_acc']:.4f}")
    assert history[-1]["test_acc"] >= threshold, f"{command(name, epochs, recipe)} on {limit} samples: {history}"
    assert history[-1]["train_loss"] < history[0]["train_loss"]


@pytest.mark.parametrize("name", sorted(TORCH_LR))
def test_default_learning_rates_match_the_optimizers(name):
    """TORCH_LR (what schedules start from when no --lr is given) is each optimizer's default."""
    key = TrainOptions(optimizer=name).lr_key
    runs = []
    for config in ({}, {key: TORCH_LR[name]}):
        x = np.array([0.3, 0.2])
        optim.OPTIMIZERS[name](optim.rosenbrock, x, dict(config, **({"max_iter": 2} if name == "lbfgs" else {})), {})
        runs.append(x)
    np.testing.assert_array_equal(*runs)


def test_recipes_are_valid_ember_train_commands():
    from ember.cli import build_parser, parse_config

    for name in MNIST_MLP:
        args = build_parser().parse_args(command(name).split()[1:])
        assert args.optimizer == name
        assert parse_config(args.optim_config) == {**MNIST_MLP[name].get("optim_config", {})}
