"""The optimizers of ember.optim: Rosenbrock, PyTorch parity, validation, documented
state, allocation-free steps, checkgrad."""


import numpy as np
import pytest
from allocation import allocations

from ember import optim

# (optimizer, config, calls) that take Rosenbrock from f(0, 0) = 1 to near its minimum
ROSENBROCK = {
    "sgd": ({"learning_rate": 1e-3, "momentum": 0.9}, 20000),
    "nag": ({"learning_rate": 1e-3, "momentum": 0.9}, 4000),
    "adam": ({"learning_rate": 2e-2}, 3000),
    "adamw": ({"learning_rate": 2e-2, "weight_decay": 0.0}, 3000),
    "adagrad": ({"learning_rate": 0.5}, 3000),
    "adadelta": ({"eps": 1e-10}, 10001),  # Torch7's own test
    "rmsprop": ({"learning_rate": 5e-4}, 10001),  # Torch7's own test
    "adamax": ({"learning_rate": 2e-2}, 6000),
    "asgd": ({"eta0": 1e-3, "t0": 1e4}, 15000),
    "rprop": ({"stepsize": 0.01}, 2000),
    "lbfgs": ({"max_iter": 200, "learning_rate": 0.1}, 1),
    "cg": ({"max_eval": 200}, 1),
}


@pytest.mark.parametrize("name", sorted(ROSENBROCK))
def test_minimises_rosenbrock(name):
    config, calls = ROSENBROCK[name]
    x, state = np.zeros(2), {}
    for _ in range(calls):
        optim.OPTIMIZERS[name](optim.rosenbrock, x, dict(config), state)
    assert optim.rosenbrock(x)[0] < 1e-3, f"{name} ended at {x}"
    assert np.allclose(x, 1, atol=0.05)


def test_lbfgs_with_wolfe_line_search_needs_few_evaluations():
    x = np.zeros(2)
    x, history, evals = optim.lbfgs(optim.rosenbrock, x, {"max_iter": 100, "line_search": optim.lswolfe})
    assert optim.rosenbrock(x)[0] < 1e-10
    assert evals < 60 and history[0] == 1.0 and history[-1] < 1e-10


def test_cg_reports_history_and_evaluations():
    x = np.zeros(2)
    x, history, evals = optim.cg(optim.rosenbrock, x, {"max_iter": 50})
    assert history[0] == 1.0 and history[-1] == optim.rosenbrock(x)[0] < 1e-8
    assert all(b <= a for a, b in zip(history, history[1:])) and evals <= 64  # max_eval 62.5, checked between line-search steps


# ---------------------------------------------------------------- PyTorch as an oracle
try:
    import torch
except ImportError:  # only the parity tests below need it; the rest of the file runs anyway
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")


def _problem():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 6))
    a = a @ a.T / 6 + np.eye(6)
    b = rng.standard_normal(6)
    return a, b, rng.standard_normal(6)


def _run_both(name, config, torch_cls, torch_kw, steps=20, rosen=False):
    a, b, x0 = _problem()

    def feval(x):
        return (optim.rosenbrock(x) if rosen else (float(0.5 * x @ a @ x - b @ x), a @ x - b))

    x, state = x0.copy(), {}
    result = None
    for _ in range(steps if name not in ("lbfgs",) else 1):
        result = optim.OPTIMIZERS[name](feval, x, dict(config), state)
    p = torch.tensor(x0.copy(), requires_grad=True)
    opt = torch_cls([p], **torch_kw)
    at, bt = torch.tensor(a), torch.tensor(b)

    def closure():
        opt.zero_grad()
        if rosen:
            loss = (100 * (p[1:] - p[:-1] ** 2) ** 2 + (1 - p[:-1]) ** 2).sum()
        else:
            loss = 0.5 * p @ at @ p - bt @ p
        loss.backward()
        return loss

    for _ in range(steps if name not in ("lbfgs",) else 1):
        opt.step(closure) if name == "lbfgs" else (closure(), opt.step())
    return x, state, result, p.detach().numpy(), opt.state[p]


PARITY = [
    # eps tiny: Torch7 adds eps before the bias correction, PyTorch after
    ("adam", {"learning_rate": 0.1, "epsilon": 1e-12, "weight_decay": 0.1}, "Adam", {"lr": 0.1, "eps": 1e-12, "weight_decay": 0.1}, 1e-10),
    ("adamw", {"learning_rate": 0.1, "epsilon": 1e-12, "weight_decay": 0.1}, "AdamW", {"lr": 0.1, "eps": 1e-12, "weight_decay": 0.1}, 1e-10),
    ("adagrad", {"learning_rate": 0.1, "learning_rate_decay": 0.01, "weight_decay": 0.1}, "Adagrad",
     {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1}, 1e-14),
    ("rmsprop", {"learning_rate": 0.01, "weight_decay": 0.1}, "RMSprop", {"lr": 0.01, "weight_decay": 0.1}, 1e-14),
    ("adadelta", {"learning_rate": 0.5, "weight_decay": 0.1}, "Adadelta", {"lr": 0.5, "weight_decay": 0.1}, 1e-14),
    ("adamax", {"learning_rate": 0.01, "epsilon": 1e-8, "weight_decay": 0.1}, "Adamax",
     {"lr": 0.01, "eps": 1e-8, "weight_decay": 0.1}, 1e-14),
    ("rprop", {"stepsize": 0.01}, "Rprop", {"lr": 0.01}, 0.0),
    ("asgd", {"eta0": 0.05, "t0": 5}, "ASGD", {"lr": 0.05, "t0": 5}, 1e-8),
    ("lbfgs", {"max_iter": 15, "tol_fun": 0, "tol_x": 0, "learning_rate": 0.5}, "LBFGS",
     {"lr": 0.5, "max_iter": 15, "tolerance_grad": 0, "tolerance_change": 0}, 1e-13),
]


@needs_torch
@pytest.mark.parametrize("name,config,cls,kw,tol", PARITY, ids=[p[0] for p in PARITY])
def test_matches_pytorch(name, config, cls, kw, tol):
    x, state, result, expected, torch_state = _run_both(name, config, getattr(torch.optim, cls), kw)
    np.testing.assert_allclose(x, expected, rtol=0, atol=tol)
    if name == "asgd":
        np.testing.assert_allclose(result[2], torch_state["ax"].numpy(), atol=1e-8)


@needs_torch
def test_lbfgs_strong_wolfe_matches_pytorch_on_rosenbrock():
    config = {"max_iter": 30, "tol_fun": 0, "tol_x": 0, "line_search": optim.lswolfe}
    kw = {"lr": 1, "max_iter": 30, "tolerance_grad": 0, "tolerance_change": 0, "line_search_fn": "strong_wolfe"}
    x, state, _, expected, torch_state = _run_both("lbfgs", config, torch.optim.LBFGS, kw, rosen=True)
    np.testing.assert_allclose(x, expected, atol=1e-12)
    assert state["func_eval"] == torch_state["func_evals"]


@needs_torch
def test_nag_is_pytorch_nesterov_at_the_look_ahead_point():
    """Sutskever's form keeps x; PyTorch's nesterov SGD keeps y = x + mu v (same iterates)."""
    config = {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0}
    x, state, _, expected, _ = _run_both("nag", config, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True})
    np.testing.assert_allclose(x + 0.9 * state["dfdx"], expected, atol=1e-13)


# ---------------------------------------------------------------- validation and state
BAD = [
    ("adam", {"beta1": 1.0}), ("adam", {"learning_rate": -1}), ("adam", {"epsilon": float("nan")}),
    ("nag", {"momentum": 0}), ("rmsprop", {"alpha": 1.5}), ("adadelta", {"rho": -0.1}),
    ("rprop", {"etaplus": 0.9}), ("rprop", {"etaminus": 1.0}), ("rprop", {"niter": 0}),
    ("rprop", {"stepsizemin": 1.0, "stepsizemax": 0.5}), ("lbfgs", {"max_iter": 2.5}),
    ("lbfgs", {"line_search": "wolfe"}), ("cg", {"rho": 0.6, "sig": 0.5}), ("asgd", {"t0": -1}),
    ("adagrad", {"learnig_rate": 0.1}), ("adamw", {"momentum": 0.9}),
]  # fmt: skip


@pytest.mark.parametrize("name,config", BAD, ids=[f"{n}-{sorted(c)[0]}" for n, c in BAD])
def test_rejects_bad_hyperparameters_before_touching_x(name, config):
    x = np.zeros(2)
    with pytest.raises(ValueError, match=f"optim.{name}"):
        optim.OPTIMIZERS[name](optim.rosenbrock, x, config, {})
    assert (x == 0).all()


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_rejects_a_feval_with_a_wrong_gradient(name):
    with pytest.raises(ValueError, match="gradient"):
        optim.OPTIMIZERS[name](lambda x: (0.0, np.zeros(3)), np.zeros(2), {}, {})


STATE_KEYS = {
    "sgd": {"eval_counter"}, "nag": {"eval_counter", "dfdx"}, "adam": {"t", "m", "v"}, "adamw": {"t", "m", "v"},
    "adagrad": {"eval_counter", "param_variance"}, "adadelta": {"eval_counter", "param_variance", "acc_delta"},
    "rmsprop": {"m"}, "adamax": {"t", "m", "u"}, "asgd": {"t", "eta_t", "mu_t", "ax"},
    "rprop": {"delta", "step_sizes"}, "cg": set(),
    "lbfgs": {"func_eval", "n_iter", "d", "t", "g_old", "f_old", "h_diag", "s_history", "y_history",
              "history_size", "history_start"},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_state_holds_exactly_the_documented_keys(name):
    x, state = np.array([0.3, 0.2]), {}
    config = {"max_iter": 3} if name in ("lbfgs", "cg") else {}
    for _ in range(3):
        optim.OPTIMIZERS[name](optim.rosenbrock, x, config, state)
    assert {k for k in state if not k.startswith("_")} == STATE_KEYS[name]
    doc = optim.OPTIMIZERS[name].__doc__
    assert all(f"``{k}``" in doc for k in STATE_KEYS[name]), "every state key is documented"


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_state_can_be_the_config_dict(name):
    """Torch7: ``state = state or config``; the state's keys are then allowed in config."""
    x, config = np.array([0.3, 0.2]), {"max_iter": 2} if name in ("lbfgs", "cg") else {}
    for _ in range(3):
        optim.OPTIMIZERS[name](optim.rosenbrock, x, config)
    assert np.isfinite(x).all()
    assert STATE_KEYS[name] <= set(config), "the optimizer did not keep its state in the config dict"


@pytest.mark.parametrize("name", sorted(set(optim.OPTIMIZERS) - {"lbfgs", "cg"}))
def test_a_warm_step_allocates_no_arrays(name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(100_000).astype(np.float32)
    g = np.empty_like(x)

    def feval(p):
        np.multiply(p, 0.5, out=g)
        return 0.0, g

    state = {}
    for _ in range(3):
        optim.OPTIMIZERS[name](feval, x, {}, state)
    peak, _ = allocations(lambda: optim.OPTIMIZERS[name](feval, x, {}, state))
    assert peak < 40_000, f"optim.{name} allocated {peak} bytes per step (x is 400 kB)"


# ---------------------------------------------------------------- checkgrad
def test_checkgrad_accepts_a_right_gradient_and_flags_a_wrong_one():
    x = np.array([0.3, -0.7, 1.1])
    diff, analytic, numeric = optim.checkgrad(optim.rosenbrock, x)
    assert diff < 1e-8 and np.allclose(analytic, numeric, atol=1e-5)
    assert (x == [0.3, -0.7, 1.1]).all()

    def wrong(z):
        f, g = optim.rosenbrock(z)
        return f, g * 1.1

    assert optim.checkgrad(wrong, x)[0] > 1e-2


def test_checkgrad_copes_with_a_reused_gradient_buffer_and_warns_in_float32():
    buf = np.empty(3)

    def feval(z):
        f, g = optim.rosenbrock(z)
        buf[...] = g
        return f, buf

    assert optim.checkgrad(feval, np.array([0.3, -0.7, 1.1]))[0] < 1e-8
    with pytest.warns(UserWarning, match="float64"):
        optim.checkgrad(lambda z: (float((z * z).sum()), 2 * z), np.ones(2, dtype=np.float32), eps=1e-3)


def test_polyinterp_finds_the_cubic_minimum():
    # f(t) = (t - 1)^2 (exact for a cubic fit): f(0) = 1, f'(0) = -2, f(3) = 4, f'(3) = 4
    assert optim.polyinterp(0, 1, -2, 3, 4, 4) == pytest.approx(1.0)
    # bounded extrapolation stays within the bounds
    assert 2 <= optim.polyinterp(0, 1, -2, 0.5, 0.25, -1, 2, 5) <= 5
