"""The compiled image and optimizer kernels (ember[fast], Numba) against the NumPy reference.

Each test runs the same computation twice, with the compiled path on and forced off
(``_fast.set_enabled(False)``), and checks that results agree: exactly where the
arithmetic is the same, to float rounding where only the order of additions differs
(overlapping pooling windows) or where BLAS and the kernel round differently (SGD).
It also checks that the compiled path really ran, so a silent fallback is caught.
"""

import numpy as np
import pytest
from compiled_paths import both, restore_fast  # noqa: F401  (restore_fast: a fixture)

from ember import _fast, nn, optim
from ember.nn import _conv_fast
from ember.nn._layout import CHWN, empty_with_order

pytest.importorskip("numba")

NCHW, NHWC = (0, 1, 2, 3), (0, 2, 3, 1)


pytestmark = pytest.mark.usefixtures("restore_fast")


def _laid_out(values, order):
    out = empty_with_order(np, values.shape, order, values.dtype)
    out[...] = values
    return out


# ------------------------------------------------------------------ max pooling
GEOMETRIES = [  # kw, kh, dw, dh, pad_w, pad_h, ceil
    (2, 2, 2, 2, 0, 0, False),  # LeNet's: windows tile the input
    (3, 3, 3, 3, 0, 0, True),  # tiles, with a ceil-mode edge
    (3, 3, 2, 2, 1, 1, False),  # overlapping, padded
    (3, 2, 1, 2, 0, 1, True),  # rectangular, stride 1 across, ceil
    (1, 1, 1, 1, 0, 0, False),
    (4, 3, 3, 2, 2, 1, False),
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("order", [NCHW, CHWN, NHWC], ids=["NCHW", "CHWN", "NHWC"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pooling_compiled_matches_numpy(geometry, order, dtype):
    rng = np.random.default_rng(hash((geometry, order, dtype)) % 2**32)
    kw, kh, dw, dh, pw, ph, ceil = geometry
    module = nn.SpatialMaxPooling(kw, kh, dw, dh, pw, ph, ceil).to("numpy:" + dtype)
    # small integers: many ties inside windows, where the first maximum must win
    x = _laid_out(rng.integers(0, 4, (3, 5, 11, 9)).astype(dtype), order)
    g = rng.standard_normal(module.forward(x).shape).astype(dtype)

    def run():
        y = module.forward(x).copy()
        used = module.argmax is not None
        return y, module.backward(x, g).copy(), used

    (y_fast, gx_fast, used), (y_ref, gx_ref, used_ref) = both(run)
    assert used and not used_ref
    np.testing.assert_array_equal(y_fast, y_ref)
    if (dw, dh) == (kw, kh):  # each input element gets at most one term: the same arithmetic
        np.testing.assert_array_equal(gx_fast, gx_ref)
    else:  # overlapping windows add up in another order
        np.testing.assert_allclose(gx_fast, gx_ref, rtol=1e-6, atol=1e-6)


def test_max_pooling_single_image_and_nan():
    module = nn.SpatialMaxPooling(2, 2)
    x = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    x[0, 0, 0] = np.nan
    g = np.ones((2, 2, 3), np.float32)
    (y_fast, gx_fast), (y_ref, gx_ref) = both(lambda: (module.forward(x).copy(), module.backward(x, g).copy()))
    np.testing.assert_array_equal(y_fast, y_ref)  # NaN in the same place: it propagates, as np.maximum does
    assert np.isnan(y_fast[0, 0, 0])
    np.testing.assert_array_equal(gx_fast[1], gx_ref[1])


def test_max_pooling_backward_after_a_switch_uses_what_the_forward_kept():
    """A forward on one path and the backward on the other still give the reference."""
    rng = np.random.default_rng(3)
    module = nn.SpatialMaxPooling(3, 3, 2, 2)
    x = rng.integers(0, 3, (2, 3, 9, 9)).astype(np.float32)
    g = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    _fast.set_enabled(False)
    expected = module.forward(x).copy(), module.backward(x, g).copy()
    _fast.set_enabled(True)
    module.forward(x)
    _fast.set_enabled(False)
    np.testing.assert_allclose(module.backward(x, g), expected[1], rtol=1e-6, atol=1e-6)
    module.forward(x)  # a NumPy forward drops the compiled index
    assert module.argmax is None
    _fast.set_enabled(True)
    np.testing.assert_array_equal(module.backward(x, g), expected[1])


def test_max_pooling_noncontiguous_input_falls_back_to_numpy():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)
    x = base[:, :, :, ::2]  # no (A, H, W, B) view
    module = nn.SpatialMaxPooling(2, 2)
    g = np.ones((2, 3, 5, 3), np.float32)
    (y_fast, gx_fast), (y_ref, gx_ref) = both(lambda: (module.forward(x).copy(), module.backward(x, g).copy()))
    np.testing.assert_array_equal(y_fast, y_ref)
    np.testing.assert_array_equal(gx_fast, gx_ref)


def test_as_ahwb_views():
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert _conv_fast.as_ahwb(x).shape == (6, 4, 5, 1)
    assert _conv_fast.as_ahwb(_laid_out(x, CHWN)).shape == (3, 4, 5, 2)
    assert _conv_fast.as_ahwb(_laid_out(x, NHWC)).shape == (2, 4, 5, 3)
    assert _conv_fast.as_ahwb(x.transpose(0, 1, 3, 2)) is None  # W before H in memory
    assert _conv_fast.as_ahwb(x[:, :, :, 1:]) is None  # not contiguous


# ------------------------------------------------------------------ a convnet, end to end
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [2, 5])
def test_convnet_forward_and_gradients_agree(dtype, batch):
    """Convolutions (odd sizes, stride, padding) and max pooling in a net: output, input
    gradient and every parameter gradient agree between the two paths."""
    rng = np.random.default_rng(5)
    net = nn.Sequential(nn.SpatialConvolution(3, 4, 3, 5, 2, 1, 1, 2, rng=rng), nn.ReLU(),
                        nn.SpatialMaxPooling(3, 3, 2, 2, 1, 1), nn.SpatialConvolution(4, 6, 2, 2, rng=rng), nn.Tanh(),
                        nn.SpatialMaxPooling(2, 2).ceil(), nn.Reshape(6 * 3 * 1), nn.Linear(18, 3, rng=rng))
    net = net.to("numpy:" + dtype)
    x = rng.standard_normal((batch, 3, 13, 9)).astype(dtype)
    g = rng.standard_normal((batch, 3)).astype(dtype)
    _, grads = net.get_parameters()

    def run():
        net.zero_grad_parameters()
        y = net.forward(x).copy()
        return y, net.backward(x, g).copy(), grads.copy()

    fast, reference = both(run)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for a, b in zip(fast, reference):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


# ------------------------------------------------------------------ the SGD update
CONFIGS = [
    {"learning_rate": 0.1, "momentum": 0.9},  # Torch7's dampening = momentum
    {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0},
    {"learning_rate": 0.05, "momentum": 0.5, "weight_decay": 0.1, "learning_rate_decay": 0.01},
    {"learning_rate": 0.1, "momentum": 0.9, "dampening": 0.0, "nesterov": True, "weight_decay": 1e-3},
    {"learning_rate": 0.1, "momentum": 0.9, "l1_weight_decay": 1e-3},  # not compiled: the NumPy code runs
    {"learning_rate": 0.1, "weight_decay": 1e-2},  # no momentum: not compiled
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sgd_update_matches_numpy(config, dtype):
    """Five steps (the first one sets up the momentum buffer): parameters, momentum,
    the caller's gradient buffer (changed in place by weight decay and Nesterov, as in
    Torch7) and the evaluation counter agree."""
    x0 = np.random.default_rng(6).standard_normal(1001).astype(dtype)

    def run():
        x, state, seen = x0.copy(), {}, []
        grad = np.empty_like(x)

        def feval(p):
            grad[...] = np.sin(p) * 3 + p
            return float(p @ p), grad

        for _ in range(5):
            _, (fx,) = optim.sgd(feval, x, dict(config), state)
            seen.append((fx, grad.copy()))
        return x, state, seen

    (x_fast, s_fast, seen_fast), (x_ref, s_ref, seen_ref) = both(run)
    rtol = 2e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(x_fast, x_ref, rtol=rtol, atol=rtol)
    assert s_fast["eval_counter"] == s_ref["eval_counter"] == 5
    if "dfdx" in s_ref:
        np.testing.assert_allclose(s_fast["dfdx"], s_ref["dfdx"], rtol=rtol, atol=rtol)
    for (f_a, g_a), (f_b, g_b) in zip(seen_fast, seen_ref):
        assert f_a == pytest.approx(f_b, rel=rtol)
        np.testing.assert_allclose(g_a, g_b, rtol=rtol, atol=rtol)


def test_fused_sgd_update_runs_when_it_should():
    from ember.optim import _fast_update

    x, g, v = (np.ones(10, np.float32) for _ in range(3))
    assert _fast_update.momentum_step(x, g, v, 0.0, 0.9, 0.0, False, 0.1)
    np.testing.assert_allclose(v, 1.9)  # 0.9 * 1 + 1 * 1
    np.testing.assert_allclose(x, 1 - 0.1 * 1.9, rtol=1e-6)
    assert not _fast_update.momentum_step(x, g, v.astype(np.float64), 0.0, 0.9, 0.0, False, 0.1)  # mixed dtypes
    assert not _fast_update.momentum_step(x, x, v, 0.0, 0.9, 0.0, False, 0.1)  # aliasing
    assert not _fast_update.momentum_step(x[::2], g[::2], v[::2], 0.0, 0.9, 0.0, False, 0.1)  # strided
    _fast.set_enabled(False)
    assert not _fast_update.momentum_step(x, g, v, 0.0, 0.9, 0.0, False, 0.1)


# ------------------------------------------------------------------ ReLU's input gradient
@pytest.mark.parametrize("order", [NCHW, CHWN], ids=["NCHW", "CHWN"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_backward_compiled_matches_numpy(order, dtype):
    from ember.nn import _pointwise_fast

    rng = np.random.default_rng(7)
    x = _laid_out(rng.standard_normal((3, 4, 5, 6)).astype(dtype), order)
    x[0, 0, 0, :3] = 0  # the kink: no gradient at 0, on both paths
    g = _laid_out(rng.standard_normal(x.shape).astype(dtype), order)
    g[0, 0, 0, 3] = np.inf
    module = nn.ReLU().to("numpy:" + dtype)
    module.forward(x)
    assert _pointwise_fast.flat_views(module.output, g, module.output) is not None  # the compiled path runs
    with np.errstate(invalid="ignore"):  # inf * 0 where y <= 0: NaN on both paths
        fast, reference = both(lambda: module.update_grad_input(x, g).copy())
    np.testing.assert_array_equal(fast, reference)
    mixed = np.ascontiguousarray(g) if order == CHWN else _laid_out(g, CHWN)  # another layout: NumPy code
    with np.errstate(invalid="ignore"):
        fast, reference = both(lambda: module.update_grad_input(x, mixed).copy())
    np.testing.assert_array_equal(fast, reference)
