"""ReLU(inplace=True): y is written over x only where no result can change.

A Sequential lets the ReLU overwrite the output of the module just before it when that
module's class declares its output free (``output_free_for_next``: Linear, convolutions).
Everywhere else the ReLU writes its own buffer. These tests check that the switch never
changes a number (forward, input gradient, parameter gradients, bit for bit), that it does
work in place where it may, and that it leaves alone every array someone else still reads.
"""

import numpy as np
import pytest

import ember
from ember import nn
from ember.testing import check_gradients


def _pair(build):
    """The same network built twice (same weights): ReLUs in place and not."""
    a, b = build(True), build(False)
    for (_, pa), (_, pb) in zip(a.named_arrays(), b.named_arrays()):
        pb[...] = pa
    return a, b


def _mlp(inplace, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    return nn.Sequential(nn.Reshape(12), nn.Linear(12, 9, rng=rng), nn.ReLU(inplace=inplace),
                         nn.Linear(9, 4, rng=rng), nn.LogSoftMax())  # fmt: skip


def _run(net, x, go):
    y = net.forward(x).copy()
    gx = net.backward(x, go).copy()
    params, grads = net.parameters()
    return y, gx, [g.copy() for g in grads]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_gives_the_same_bits_and_works_in_place(dtype):
    b = ember.Backend("numpy", dtype)
    fast, plain = (net.to(b) for net in _pair(_mlp))
    rng = np.random.default_rng(1)
    for step in range(3):  # buffers reused across calls
        x = b.asarray(rng.standard_normal((6, 3, 4)))
        go = b.asarray(rng.standard_normal((6, 4)))
        for got, want in zip(_run(fast, x, go), _run(plain, x, go)):
            if isinstance(got, list):
                for g, w in zip(got, want):
                    np.testing.assert_array_equal(g, w)
            else:
                np.testing.assert_array_equal(got, want)
        linear, relu = fast.get(1), fast.get(2)
        assert relu.output is linear.output  # written over the Linear's output
        assert relu.own_output is None  # no buffer of its own was needed
        assert plain.get(2).output is not plain.get(1).output
        assert not relu.overwrite_input  # the leave lasts one call


def test_gradients_of_a_network_with_an_in_place_relu():
    net = _mlp(True).to(ember.Backend("numpy", "float64"))
    x = np.random.default_rng(2).standard_normal((5, 12))
    report = check_gradients(net, x)
    assert report.errors and not report.failures(), report.failures()
    assert set(report.errors) == {"input", "1.weight", "1.bias", "3.weight", "3.bias"}


def test_first_module_leaves_the_callers_array_alone():
    net = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 2, rng=np.random.default_rng(0)))
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    kept = x.copy()
    net.forward(x)
    np.testing.assert_array_equal(x, kept)
    alone = nn.ReLU(inplace=True)
    alone.forward(x)
    np.testing.assert_array_equal(x, kept)
    assert alone.output is not x


def test_after_a_module_that_reads_its_output_the_relu_writes_its_own_buffer():
    # Tanh's backward reads its output: overwriting it would give a wrong gradient
    def build(inplace):
        rng = np.random.default_rng(4)
        return nn.Sequential(nn.Linear(5, 6, rng=rng), nn.Tanh(), nn.ReLU(inplace=inplace), nn.Linear(6, 2, rng=rng))

    fast, plain = _pair(build)
    x = np.random.default_rng(5).standard_normal((4, 5)).astype(np.float32)
    go = np.ones((4, 2), np.float32)
    tanh_out = None
    for got, want in zip(_run(fast, x, go), _run(plain, x, go)):
        tanh_out = fast.get(1).output
        if isinstance(got, list):
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_array_equal(got, want)
    assert fast.get(2).output is not tanh_out and (tanh_out < 0).any()  # the Tanh kept its negatives


def test_a_branch_of_a_table_container_leaves_the_shared_input_alone():
    rng = np.random.default_rng(6)
    branches = nn.ConcatTable().add(nn.ReLU(inplace=True)).add(nn.Identity())
    net = nn.Sequential(nn.Linear(4, 3, rng=rng), branches)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    out = net.forward(x)
    linear = net.get(0).output
    np.testing.assert_array_equal(out[1], linear)
    assert (out[1] < 0).any() and (out[0] >= 0).all()  # the Identity branch still sees the negatives


def test_switching_off_after_an_in_place_call_never_writes_the_other_modules_buffer():
    net = _mlp(True)
    x = np.random.default_rng(7).standard_normal((2, 12)).astype(np.float32)
    net.forward(x)
    linear_out = net.get(1).output
    relu = net.get(2)
    relu.inplace = False
    other = -np.ones_like(linear_out)
    y = relu.forward(other)
    assert y is not linear_out and (y == 0).all()
    relu.inplace = True
    y = relu.forward(other)  # called on its own: no leave from a Sequential
    assert y is not other and (other == -1).all()


def test_the_leave_is_withdrawn_when_the_forward_fails():
    net = nn.Sequential(nn.Linear(3, 2, rng=np.random.default_rng(0)), nn.ReLU(inplace=True))
    relu = net.get(1)
    relu.backend = ember.Backend("numpy", "float64")  # a dtype mismatch the ReLU's checks reject
    with pytest.raises(ember.errors.ShapeError):
        net.forward(np.ones((2, 3), np.float32))
    assert relu.overwrite_input is False


def test_convolution_output_is_free_too():
    def build(inplace):
        rng = np.random.default_rng(8)
        return nn.Sequential(nn.SpatialConvolution(1, 3, 3, 3, rng=rng), nn.ReLU(inplace=inplace), nn.Reshape(3 * 4 * 4),
                             nn.Linear(48, 2, rng=rng))  # fmt: skip

    fast, plain = _pair(build)
    x = np.random.default_rng(9).standard_normal((2, 1, 6, 6)).astype(np.float32)
    go = np.ones((2, 2), np.float32)
    for got, want in zip(_run(fast, x, go)[:2], _run(plain, x, go)[:2]):
        np.testing.assert_array_equal(got, want)
    assert fast.get(1).output is fast.get(0).output


def test_the_switch_is_a_bool_is_shown_and_survives_a_file(tmp_path):
    with pytest.raises(TypeError, match="inplace must be a bool"):
        nn.ReLU(inplace=1)
    assert "inplace" in repr(nn.ReLU(inplace=True)) and "inplace" not in repr(nn.ReLU())
    net = _mlp(True)
    path = tmp_path / "mlp.ember"
    ember.save(net, str(path))
    loaded = ember.load(str(path))
    assert loaded.get(2).inplace is True and loaded.get(2).output is None
    x = np.random.default_rng(10).standard_normal((3, 12)).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), net.forward(x))
