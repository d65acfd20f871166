"""A training step's gradients zeroed without a pass over them (nn/_fresh_grads.py): the
first accumulation of a Linear layer writes instead of adding onto zeros. Every test
compares against the plain Torch7 sequence zero_grad_parameters + forward + backward,
starting from gradient memory full of NaN (what a skipped zeroing would leak)."""

import numpy as np
import pytest

from ember import _fast, nn
from ember.nn._fresh_grads import MARK, zeroed_gradients
from ember.training import make_feval


@pytest.fixture(autouse=True)
def _restore_fast():
    previous = _fast.enabled()
    yield
    _fast.set_enabled(previous)


def _mlp(rng, n_in=7, hidden=5, classes=3):
    net = nn.Sequential(nn.Linear(n_in, hidden, rng=rng), nn.ReLU(), nn.Linear(hidden, classes, rng=rng), nn.LogSoftMax())
    return net.to("numpy:float64")


def _reference(net, crit, x, y, scale=1.0):
    """The gradients of zero_grad_parameters + forward + backward, as a flat copy."""
    net.zero_grad_parameters()
    out = net.forward(x)
    crit.forward(out, y)
    net.backward(x, crit.backward(out, y), scale)
    return np.concatenate([g.reshape(-1) for g in net.parameters()[1]])


def _poison(net):
    for grad in net.parameters()[1]:
        grad.fill(np.nan)


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("batch", [1, 2, 6])
@pytest.mark.parametrize("squeeze", [False, True])
def test_feval_gradient_equals_zero_then_accumulate(batch, fast, squeeze):
    _fast.set_enabled(fast)
    rng = np.random.default_rng(batch)
    net, crit = _mlp(rng), nn.ClassNLLCriterion().to("numpy:float64")
    x, y = rng.standard_normal((batch, 7)), rng.integers(0, 3, batch)
    if squeeze and batch == 1:  # one sample as a 1-D input (Reshape's output for a batch of 1)
        x, y = x[0], y[:1]
    params, grads = net.get_parameters()
    expected = _reference(net, crit, x, y)
    grads.fill(np.nan)
    loss, got = make_feval(net, crit, x, y, grads)(params)
    assert got is grads and np.isfinite(loss)
    np.testing.assert_array_equal(got, expected)
    assert not any(MARK in m.__dict__ for m in net.modules())


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("batch", [1, 4])
def test_scaled_first_accumulation_then_a_second_one_adds(batch, fast):
    """scale != 1 is written scaled; a second backward in the same step adds to it."""
    _fast.set_enabled(fast)
    rng = np.random.default_rng(3)
    net, crit = _mlp(rng), nn.ClassNLLCriterion().to("numpy:float64")
    x, y = rng.standard_normal((batch, 7)), rng.integers(0, 3, batch)
    once = _reference(net, crit, x, y, scale=0.5)
    _poison(net)
    with zeroed_gradients(net):
        out = net.forward(x)
        crit.forward(out, y)
        go = crit.backward(out, y)
        net.backward(x, go, 0.5)
        net.backward(x, go, 0.5)
    got = np.concatenate([g.reshape(-1) for g in net.parameters()[1]])
    np.testing.assert_allclose(got, 2 * once, rtol=1e-14, atol=1e-15)


def test_gradients_never_reached_are_zeroed_on_leaving():
    rng = np.random.default_rng(0)
    net = _mlp(rng)
    _poison(net)
    with zeroed_gradients(net):
        assert all(MARK in m.__dict__ for m in net.find_modules(nn.Linear))
    for grad in net.parameters()[1]:
        np.testing.assert_array_equal(grad, 0)
    assert not any(MARK in m.__dict__ for m in net.modules())


def test_an_exception_inside_still_leaves_zeros():
    rng = np.random.default_rng(0)
    net = _mlp(rng)
    _poison(net)
    with pytest.raises(ValueError), zeroed_gradients(net):
        net.forward(rng.standard_normal((2, 6)))  # wrong width
    for grad in net.parameters()[1]:
        np.testing.assert_array_equal(grad, 0)


def test_shared_subclassed_and_repeated_modules_accumulate_correctly():
    """A clone sharing weights and gradients, a Linear subclass and one Linear used twice
    (square layer) are zeroed the plain way or accumulate correctly: each contribution counts."""

    class MyLinear(nn.Linear):
        pass

    rng = np.random.default_rng(1)
    square = nn.Linear(4, 4, rng=rng)
    first = nn.Linear(4, 4, rng=rng)
    twin = first.clone("weight", "bias", "grad_weight", "grad_bias")
    net = nn.Sequential(first, nn.Tanh(), twin, square, nn.Tanh(), square, MyLinear(4, 3, rng=rng), nn.LogSoftMax())
    net.to("numpy:float64")
    crit = nn.ClassNLLCriterion().to("numpy:float64")
    params, grads = net.get_parameters()
    for batch in (1, 3):
        x, y = rng.standard_normal((batch, 4)), rng.integers(0, 3, batch)
        expected = _reference(net, crit, x, y)
        grads.fill(np.nan)
        _, got = make_feval(net, crit, x, y, grads)(params)
        np.testing.assert_array_equal(got, expected)


def test_overlapping_gradients_are_not_marked():
    rng = np.random.default_rng(2)
    a, b = nn.Linear(3, 3, rng=rng), nn.Linear(3, 3, rng=rng)
    b.grad_weight = a.grad_weight  # aliased by hand, not through share()
    net = nn.Sequential(a, b)
    with zeroed_gradients(net):
        assert MARK not in a.__dict__ and MARK not in b.__dict__
        np.testing.assert_array_equal(a.grad_weight, 0)


def test_an_empty_batch_writes_zeros():
    rng = np.random.default_rng(4)
    lin = nn.Linear(3, 2, rng=rng)
    lin.grad_weight.fill(np.nan)
    lin.grad_bias.fill(np.nan)
    x = np.zeros((0, 3), np.float32)
    with zeroed_gradients(lin):
        lin.forward(x)
        lin.backward(x, np.zeros((0, 2), np.float32))
    np.testing.assert_array_equal(lin.grad_weight, 0)
    np.testing.assert_array_equal(lin.grad_bias, 0)


def test_compiled_outer_product_matches_numpy(monkeypatch):
    pytest.importorskip("numba")
    from ember.nn import _linear_fast

    kernel, calls = _linear_fast.outer_write, []
    monkeypatch.setattr(_linear_fast, "outer_write", lambda *args: (calls.append(1), kernel(*args)))
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        lin = nn.Linear(9, 6, rng=rng).to(f"numpy:{np.dtype(dtype).name}")
        x, go = rng.standard_normal((1, 9)).astype(dtype), rng.standard_normal((1, 6)).astype(dtype)
        lin.forward(x)
        results = []
        for fast in (True, False):
            _fast.set_enabled(fast)
            lin.grad_weight.fill(np.nan)
            with zeroed_gradients(lin):
                lin.acc_grad_parameters(x, go, 0.3)
            results.append(lin.grad_weight.copy())
        np.testing.assert_array_equal(results[0], results[1])
        np.testing.assert_allclose(results[0], 0.3 * np.outer(go[0], x[0]), rtol=1e-6)
    assert len(calls) == 2  # the compiled path ran (once per dtype)
