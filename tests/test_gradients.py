"""Every case passes the float64 finite-difference gradient check."""

import numpy as np
import pytest
from cases import CASES

from ember.testing import check_criterion, check_gradients, check_random_directions


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradient_check(case):
    module = case.build()
    x, t = case.sample()
    if case.is_criterion:
        report = check_criterion(module, x, t, eps=case.eps)
    else:
        report = check_gradients(module, x, eps=case.eps, reseed=case.reseed, params=case.params_fd)
    report.atol = case.atol
    assert report.errors, "the check compared nothing"
    assert report.ok, f"{module!r}: {report}"


def test_checker_catches_a_wrong_gradient():
    """A module with a deliberately wrong bprop must fail the check."""
    from ember import nn

    class WrongTanh(nn.Tanh):
        def bprop(self, xp, x, y, go, gx):
            super().bprop(xp, x, y, go, gx)
            gx *= 1.01

    report = check_gradients(WrongTanh().to("numpy:float64"), np.random.default_rng(0).standard_normal((3, 4)))
    assert not report.ok


def test_random_direction_check_for_large_inputs():
    from ember import nn

    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.Linear(200, 50, rng=rng), nn.Tanh(), nn.Linear(50, 10, rng=rng), nn.LogSoftMax())
    net = net.to("numpy:float64")
    report = check_random_directions(net, rng.standard_normal((16, 200)), directions=4)
    assert len(report.errors) == 4 and report.ok, report

    class WrongLinear(nn.Linear):
        def acc_grad_parameters(self, input, grad_output, scale=1.0):
            super().acc_grad_parameters(input, grad_output, scale * 1.001)

    wrong = nn.Sequential(WrongLinear(200, 10, rng=rng), nn.Tanh()).to("numpy:float64")
    assert not check_random_directions(wrong, rng.standard_normal((16, 200)), directions=2).ok


def test_float32_check_warns():
    from ember import nn

    with pytest.warns(UserWarning, match="need float64"):
        check_gradients(nn.Tanh(), np.zeros((2, 2), np.float32))
