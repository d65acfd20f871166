"""Module inputs (issue 13, part 4): every module and criterion refuses a non-array or
``None`` gradient, an out-of-domain target, an empty batch or a zero-length sequence
with a clear error (ShapeError/ValueError/TypeError) naming the user-facing module --
never a raw AttributeError/IndexError from deep inside, never a silent success.

Each case was a strict xfail until the module checked it (a test per case of the issue)."""

import numpy as np
import pytest

from ember import nn
from ember.errors import ShapeError

CLEAR = (ShapeError, ValueError, TypeError)


def x32(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def refuses(call, *names):
    """``call()`` raises a clear error whose message names one of ``names``."""
    with pytest.raises(CLEAR) as info:
        call()
    assert any(name in str(info.value) for name in names), f"the error does not name {names}: {info.value}"


def _linear():
    return nn.Linear(3, 2, rng=0), x32(4, 3)


def _reshape():
    return nn.Reshape(6), x32(4, 2, 3)


def _view():
    return nn.View(6), x32(4, 2, 3)


@pytest.mark.parametrize("make", [_linear, _reshape, _view], ids=["Linear", "Reshape", "View"])
@pytest.mark.parametrize("grad", [None, "list"])
def test_backward_refuses_a_non_array_gradient(make, grad):
    module, x = make()
    out = module.forward(x)
    bad = None if grad is None else out.tolist()
    refuses(lambda: module.backward(x, bad), type(module).__name__)


def test_graph_backward_refuses_a_missing_gradient():
    inp = nn.Input()
    out = nn.Linear(3, 2, rng=0)(inp)
    graph = nn.Graph([inp], [out])
    x = x32(4, 3)
    graph.forward(x)
    refuses(lambda: graph.backward(x, None), "Graph")


@pytest.mark.parametrize("value", [2.0, -1.0])
def test_bce_refuses_targets_outside_0_1(value):
    criterion = nn.BCECriterion()
    probabilities = np.full((4,), 0.5, dtype=np.float32)
    target = np.full((4,), value, dtype=np.float32)
    refuses(lambda: criterion.forward(probabilities, target), "BCECriterion")


def test_cross_entropy_errors_name_cross_entropy():
    criterion = nn.CrossEntropyCriterion()
    refuses(lambda: criterion.forward(x32(4, 3), np.array([0, 1, 2, 7])), "CrossEntropyCriterion")


def test_zero_time_steps_then_last_step_is_refused_clearly():
    net = nn.Sequential(nn.LSTM(3, 4, rng=0), nn.LastStep())
    refuses(lambda: net.forward(np.zeros((2, 0, 3), dtype=np.float32)), "LSTM", "LastStep")


def test_temporal_convolution_refuses_an_empty_batch_clearly():
    conv = nn.TemporalConvolution(3, 4, 2, rng=0)
    refuses(lambda: conv.forward(np.zeros((0, 5, 3), dtype=np.float32)), "TemporalConvolution")
