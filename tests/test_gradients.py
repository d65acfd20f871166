"""Every case passes the float64 finite-difference gradient check."""

import numpy as np
import pytest
from cases import CASES

from ember.testing import check_criterion, check_gradients


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
