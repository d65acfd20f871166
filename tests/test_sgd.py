"""optim.sgd: Torch7 semantics and order, validation, and PyTorch where they agree."""

import numpy as np
import pytest

from ember import optim


def quadratic(target):
    """f(x) = 1/2 |x - target|^2, gradient x - target (a fresh array each call)."""

    def feval(x):
        g = x - target
        return 0.5 * float(g @ g), g

    return feval


def reference_sgd(x, grads, lr, lrd=0.0, wd=0.0, mom=0.0, damp=None, nesterov=False, l1=0.0):
    """Straight transcription of torch/optim sgd.lua (plus L1), for a list of gradients."""
    damp = mom if damp is None else damp
    v = None
    for n, g in enumerate(grads):
        g = g(x) if callable(g) else g.copy()
        g = g + wd * x + l1 * np.sign(x)
        if mom:
            v = g.copy() if v is None else mom * v + (1 - damp) * g
            g = g + mom * v if nesterov else v
        x = x - lr / (1 + n * lrd) * g
    return x


@pytest.mark.parametrize(
    "config",
    [
        {"learning_rate": 0.1},
        {"learning_rate": 0.1, "learning_rate_decay": 0.5},
        {"learning_rate": 0.1, "momentum": 0.9},  # Torch7: dampening defaults to momentum
        {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0},
        {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True},
        {"learning_rate": 0.1, "weight_decay": 0.01, "l1_weight_decay": 0.02, "momentum": 0.5},
    ],
)
def test_matches_the_torch7_recurrence(config):
    target = np.array([1.0, -2.0, 3.0])
    x = np.array([0.5, 0.5, 0.5])
    expected = reference_sgd(
        x.copy(), [lambda z: z - target] * 5, config["learning_rate"], config.get("learning_rate_decay", 0),
        config.get("weight_decay", 0), config.get("momentum", 0), config.get("dampening"),
        config.get("nesterov", False), config.get("l1_weight_decay", 0),
    )  # fmt: skip
    state = {}
    for _ in range(5):
        x, (fx,) = optim.sgd(quadratic(target), x, dict(config), state)
    np.testing.assert_allclose(x, expected, rtol=1e-12)
    assert state["eval_counter"] == 5


def test_returns_loss_before_the_update_and_updates_in_place():
    x = np.zeros(2)
    same = x
    x, (fx,) = optim.sgd(quadratic(np.array([1.0, 1.0])), x, {"learning_rate": 0.5})
    assert fx == pytest.approx(1.0)
    assert x is same
    np.testing.assert_allclose(x, [0.5, 0.5])


def test_per_parameter_learning_rates_and_decays():
    x = np.ones(3)
    lrs = np.array([1.0, 0.0, 2.0])
    wds = np.array([0.0, 1.0, 0.0])
    optim.sgd(lambda z: (0.0, np.ones(3)), x, {"learning_rate": 0.1, "learning_rates": lrs, "weight_decays": wds})
    np.testing.assert_allclose(x, [0.9, 1.0, 0.8])


def test_matches_pytorch_sgd_with_classical_momentum():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    target = rng.standard_normal(5)
    x = rng.standard_normal(5)
    t = torch.tensor(x.copy(), requires_grad=True)
    opt = torch.optim.SGD([t], lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    state = {}
    config = {"learning_rate": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": True}
    for _ in range(6):
        opt.zero_grad()
        (0.5 * ((t - torch.tensor(target)) ** 2).sum()).backward()
        opt.step()
        optim.sgd(quadratic(target), x, config, state)
    np.testing.assert_allclose(x, t.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"learning_rate": -1}, "learning_rate must be >= 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
        ({"momentum": 1.5}, "momentum must be <= 1"),
        ({"learning_rate": "0.1"}, "learning_rate must be a finite number"),
        ({"nesterov": True, "momentum": 0.9}, "nesterov needs momentum > 0 and dampening 0"),
        ({"lr": 0.1}, "unknown hyperparameter"),
        ({"learning_rates": np.ones(2)}, "learning_rates must be an array of shape"),
    ],
)
def test_bad_hyperparameters_are_rejected_clearly(config, message):
    with pytest.raises(ValueError, match=message):
        optim.sgd(quadratic(np.zeros(3)), np.zeros(3), config)


def test_bad_feval_result_is_rejected():
    with pytest.raises(ValueError, match="feval must return"):
        optim.sgd(lambda x: (0.0, np.zeros(2)), np.zeros(3), {})
