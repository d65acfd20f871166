"""Convolutional modules beyond the per-case tests: errors, layouts, max-pool ties on real
MNIST, connection tables, batch-norm statistics, and the whole LeNet-5 against PyTorch."""

import numpy as np
import pytest

from ember import ShapeError, image, io, nn
from ember.data import load_mnist
from ember.nn._layout import CHWN, axis_order
from ember.testing import check_gradients

F64 = "numpy:float64"


# ---------------------------------------------------------------- clear errors
@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.SpatialConvolution(3, 16, 5, 5), (8, 1, 32, 32)),
        (nn.SpatialConvolutionMap(nn.tables.full(3, 2), 3, 3), (2, 4, 8, 8)),
        (nn.SpatialFullConvolution(3, 2, 3, 3), (2, 2, 4, 4)),
        (nn.SpatialContrastiveNormalization(3, image.gaussian1d(5)), (2, 1, 9, 9)),
        (nn.SpatialSubtractiveNormalization(2), (2, 3, 9, 9)),
        (nn.SpatialLPPooling(4, 2, 2, 2), (2, 3, 8, 8)),
        (nn.SpatialBatchNormalization(3), (4, 2, 5, 5)),
        (nn.TemporalConvolution(4, 3, 2), (2, 9, 5)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(v),
)
def test_wrong_number_of_planes_names_the_module(module, shape):
    with pytest.raises(ShapeError) as info:
        module.forward(np.zeros(shape, dtype=np.float32))
    message = str(info.value)
    assert message.startswith(repr(module)), message
    assert str(shape) in message


@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.SpatialConvolution(3, 16, 5, 5), (8, 3, 4, 32)),
        (nn.SpatialConvolution(1, 2, 5, 3, 1, 1, 1, 0), (2, 1, 2, 3)),
        (nn.SpatialDilatedConvolution(1, 2, 3, 3, 1, 1, 0, 0, 2, 2), (1, 4, 4)),
        (nn.SpatialMaxPooling(3, 3), (2, 3, 2, 9)),
        (nn.SpatialAveragePooling(4, 2), (2, 3, 9, 3)),
        (nn.SpatialLogSumExpPooling(3, 3), (1, 2, 2)),
        (nn.TemporalMaxPooling(4), (3, 2)),
        (nn.SpatialAdaptiveMaxPooling(5, 5), (1, 3, 4, 9)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(v),
)
def test_input_smaller_than_the_kernel_names_the_module(module, shape):
    with pytest.raises(ShapeError) as info:
        module.forward(np.zeros(shape, dtype=np.float32))
    assert str(info.value).startswith(repr(module)), str(info.value)


@pytest.mark.parametrize("cls", [nn.SpatialSubtractiveNormalization, nn.SpatialDivisiveNormalization,
                                 nn.SpatialContrastiveNormalization])  # fmt: skip
@pytest.mark.parametrize("kernel", [np.ones(4), np.ones((3, 4)), np.ones((2, 2))])
def test_even_lcn_kernel_is_refused_naming_the_module(cls, kernel):
    with pytest.raises(ValueError, match=f"^{cls.__name__}: the kernel must .* odd sizes"):
        cls(1, kernel)


def test_error_inside_a_network_says_where():
    net = nn.Sequential(nn.SpatialConvolution(1, 4, 5, 5), nn.ReLU(), nn.SpatialConvolution(3, 8, 3, 3))
    with pytest.raises(ShapeError) as info:
        net.forward(np.zeros((2, 1, 12, 12), dtype=np.float32))
    assert "in module 2 (SpatialConvolution(3 -> 8, 3x3)) of Sequential" in "".join(info.value.__notes__)


@pytest.mark.parametrize(
    "build",
    [
        lambda: nn.SpatialConvolution(0, 3, 3, 3),
        lambda: nn.SpatialConvolution(1, 3, 3, 3, pad_w=-1),
        lambda: nn.SpatialMaxPooling(2, 2, pad_w=2),
        lambda: nn.SpatialFullConvolution(1, 1, 3, 3, 2, 2, adj_w=2),
        lambda: nn.SpatialConvolutionMap(np.array([[0, 0], [0, 0]]), 3, 3),
        lambda: nn.SpatialLPPooling(1, 0.5, 2, 2),
        lambda: nn.SpatialLogSumExpPooling(2, 2, beta=0),
        lambda: nn.SpatialDropout(1.0),
        lambda: nn.tables.random(3, 2, 4),
    ],
)
def test_bad_constructor_arguments_raise_value_errors(build):
    with pytest.raises(ValueError):
        build()


# ---------------------------------------------------------------- layouts
def test_conv_outputs_are_chwn_views_that_flow_through_the_stage():
    rng = np.random.default_rng(0)
    net = nn.Sequential(nn.SpatialConvolution(1, 4, 3, 3, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
                        nn.Reshape(4 * 3 * 3))  # fmt: skip
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    y = net.forward(x)
    for index in range(3):
        assert axis_order(net.get(index).output) == CHWN
    assert np.shares_memory(y, net.get(2).output), "Reshape of a CHWN batch should be a view"
    assert net.backward(x, np.ones_like(y)).shape == x.shape


def test_any_input_layout_gives_the_same_result():
    rng = np.random.default_rng(1)
    conv = nn.SpatialConvolution(3, 4, 3, 3, rng=rng).to(F64)
    x = rng.standard_normal((4, 3, 7, 6))
    chwn = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    strided = np.zeros((4, 3, 14, 6))[:, :, ::2]
    strided[...] = x
    reference = conv.forward(x).copy()
    for variant in (chwn, strided, np.asfortranarray(x)):
        np.testing.assert_allclose(conv.forward(variant), reference, rtol=1e-12, atol=1e-12)


def test_ceil_mode_survives_a_save_load_round_trip(tmp_path):
    pool = nn.SpatialMaxPooling(3, 3, 2, 2).ceil()
    io.save(nn.Sequential(pool), tmp_path / "m.safetensors")
    again = io.load(tmp_path / "m.safetensors").get(0)
    assert again.ceil_mode and again.forward(np.zeros((1, 1, 8, 8), dtype=np.float32)).shape == (1, 1, 4, 4)
    assert pool.floor().forward(np.zeros((1, 8, 8), dtype=np.float32)).shape == (1, 3, 3)


# ---------------------------------------------------------------- max-pool ties on real MNIST
def _mnist_batch(n=16):
    images, labels = load_mnist()["test"]
    return (images[:n, None] / 255.0).astype(np.float64), labels[:n]


def test_max_pool_ties_on_mnist_go_to_the_first_maximum_like_pytorch():
    torch = pytest.importorskip("torch")
    x, _ = _mnist_batch()
    pool = nn.SpatialMaxPooling(2, 2).to(F64)
    y = pool.forward(x)
    assert (x == 0).mean() > 0.5  # MNIST's background: tied zeros in most windows
    go = np.random.default_rng(0).standard_normal(y.shape)
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(tx, 2).backward(torch.tensor(go))
    np.testing.assert_array_equal(pool.backward(x, go), tx.grad.numpy())


def test_lenet_conv1_weight_gradient_on_mnist_matches_pytorch():
    """The REFERENCE pitfall: sending the gradient to every tied maximum gave 25% error in
    conv1's weight gradient. Here both conv layers and the ties come from real digits."""
    torch = pytest.importorskip("torch")
    x, labels = _mnist_batch(32)
    rng = np.random.default_rng(0)
    net = nn.Sequential(
        nn.SpatialConvolution(1, 20, 5, 5, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.SpatialConvolution(20, 50, 5, 5, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.Reshape(800), nn.Linear(800, 500, rng=rng), nn.ReLU(), nn.Linear(500, 10, rng=rng), nn.LogSoftMax(),
    ).to(F64)  # fmt: skip
    crit = nn.ClassNLLCriterion()
    net.zero_grad_parameters()
    out = net.forward(x)
    net.backward(x, crit.backward(out, labels))
    F = torch.nn.functional
    t = [torch.tensor(np.array(p), requires_grad=True) for p in net.parameters()[0]]
    h = F.max_pool2d(F.relu(F.conv2d(torch.tensor(x), t[0], t[1])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, t[2], t[3])), 2).reshape(len(x), 800)
    loss = F.nll_loss(F.log_softmax(F.linear(F.relu(F.linear(h, t[4], t[5])), t[6], t[7]), dim=1), torch.tensor(labels))
    loss.backward()
    np.testing.assert_allclose(out, F.log_softmax(F.linear(F.relu(F.linear(h, t[4], t[5])), t[6], t[7]), dim=1).detach(),
                               rtol=1e-10, atol=1e-12)  # fmt: skip
    for ours, theirs in zip(net.parameters()[1], t):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_pool_then_relu_equals_relu_then_pool_forward_and_backward():
    x, _ = _mnist_batch(8)
    x = x - 0.3  # negative windows too
    a = nn.Sequential(nn.ReLU(), nn.SpatialMaxPooling(2, 2)).to(F64)
    b = nn.Sequential(nn.SpatialMaxPooling(2, 2), nn.ReLU()).to(F64)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    go = np.random.default_rng(0).standard_normal(a.output.shape)
    np.testing.assert_array_equal(a.backward(x, go), b.backward(x, go))


# ---------------------------------------------------------------- tables, maps, kernels
def test_connection_tables():
    assert nn.tables.full(3, 2).tolist() == [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]
    assert nn.tables.one_to_one(3).tolist() == [[0, 0], [1, 1], [2, 2]]
    table = nn.tables.random(6, 10, 3, rng=0)
    assert table.shape == (30, 2)
    for out in range(10):
        inputs = table[table[:, 1] == out, 0]
        assert len(set(inputs.tolist())) == 3
    assert np.bincount(table[:, 0], minlength=6).tolist() == [5] * 6  # dealt evenly
    c3 = nn.tables.lenet5_c3()
    assert c3.shape == (60, 2) and np.bincount(c3[:, 1]).tolist() == [3] * 6 + [4] * 9 + [6]
    assert sorted(c3[c3[:, 1] == 14, 0].tolist()) == [0, 2, 3, 5]


def test_convolution_map_with_a_full_table_is_a_convolution():
    rng = np.random.default_rng(0)
    conv_map = nn.SpatialConvolutionMap(nn.tables.full(3, 2), 3, 2, 2, 1, rng=rng).to(F64)
    conv = nn.SpatialConvolution(3, 2, 3, 2, 2, 1).to(F64)
    for k, (i, o) in enumerate(conv_map.conn_table):
        conv.weight[o, i] = conv_map.weight[k]
    conv.bias[...] = conv_map.bias
    x = rng.standard_normal((2, 3, 6, 7))
    np.testing.assert_allclose(conv_map.forward(x), conv.forward(x), rtol=1e-12)
    # Torch7's init: bound 1/sqrt(kw kh fan_in) per output plane
    assert np.abs(conv_map.weight).max() <= 1 / np.sqrt(3 * 2 * 3)


def test_gaussian_kernels_follow_torch7():
    g = image.gaussian1d(3)  # sigma 0.25 of the size, centre at i = 2 (1-based)
    np.testing.assert_allclose(g, [np.exp(-((1 / 0.75) ** 2) / 2), 1.0, np.exp(-((1 / 0.75) ** 2) / 2)])
    np.testing.assert_allclose(image.gaussian(5), np.outer(image.gaussian1d(5), image.gaussian1d(5)))
    assert image.gaussian1d(7, normalize=True).sum() == pytest.approx(1.0)
    assert image.gaussian(width=5, height=3).shape == (3, 5)
    with pytest.raises(ValueError, match="image.gaussian1d"):
        image.gaussian1d(0)


def test_batch_norm_running_statistics_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours, theirs = nn.SpatialBatchNormalization(3, momentum=0.2).to(F64), torch.nn.BatchNorm2d(3, momentum=0.2).double()
    for _ in range(4):
        x = rng.standard_normal((4, 3, 5, 5)) * 3 + 1
        ours.forward(x)
        theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    ours.evaluate()
    theirs.eval()
    x = rng.standard_normal((2, 3, 5, 5))
    np.testing.assert_allclose(ours.forward(x), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-10)
    with pytest.raises(ShapeError, match="more than one value"):
        nn.BatchNormalization(3).forward(np.zeros((1, 3), dtype=np.float32))


# ---------------------------------------------------------------- fast paths agree with the plain ones
def test_chunked_small_k_products_match_the_plain_gemm(monkeypatch):
    from ember import backend

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 1, 40, 40))  # 38*38*4 = 5776 columns: 8 chunks of 722
    assert backend.column_chunks(10, 5776) == 8
    results = []
    for small_k in (backend.SMALL_K, 0):
        monkeypatch.setattr(backend, "SMALL_K", small_k)
        conv = nn.SpatialConvolution(1, 6, 3, 3, rng=np.random.default_rng(0)).to(F64)
        y = conv.forward(x).copy()
        conv.backward(x, np.cos(y))
        results.append((y, conv.grad_weight.copy(), conv.grad_bias.copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: nn.SpatialConvolution(8, 6, 3, 3, rng=0), lambda: nn.SpatialMaxPooling(2, 2),
                                  lambda: nn.SpatialMaxPooling(3, 3, 2, 2), lambda: nn.SpatialLPPooling(8, 2, 2, 2),
                                  lambda: nn.SpatialLogSumExpPooling(3, 3, 1, 1)])  # fmt: skip
def test_two_threads_give_the_same_numbers_as_one(make):
    from ember.nn import _parallel

    x = np.random.default_rng(4).standard_normal((16, 8, 20, 20)).astype(np.float32)  # above the split size
    before = _parallel.get_num_threads()
    outputs = []
    try:
        for threads in (1, 2):
            _parallel.set_num_threads(threads)
            module = make()
            y = module.forward(x).copy()
            outputs.append((y, module.backward(x, np.sin(y)).copy()))
    finally:
        _parallel.set_num_threads(before)
    for a, b in zip(*outputs):
        np.testing.assert_array_equal(a, b)


def test_an_error_on_the_helper_thread_reaches_the_caller():
    from ember.nn import _parallel

    def work(a, b):
        if a > 0:
            raise RuntimeError("from the second half")

    before = _parallel.get_num_threads()
    _parallel.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="second half"):
            _parallel.split(work, 4)
        _parallel.split(lambda a, b: None, 4)  # still usable afterwards
    finally:
        _parallel.set_num_threads(before)


def test_view_flattens_a_conv_stack_without_a_copy_and_refuses_a_copy():
    net = nn.Sequential(nn.SpatialConvolution(1, 4, 3, 3), nn.SpatialMaxPooling(2, 2), nn.View(36))
    y = net.forward(np.zeros((5, 1, 8, 8), dtype=np.float32))
    assert y.shape == (5, 36) and np.shares_memory(y, net.get(1).output)
    with pytest.raises(ShapeError, match="without a copy"):
        nn.View(12).forward(np.zeros((3, 4), dtype=np.float32).T)


@pytest.mark.parametrize("make", [lambda: nn.SpatialLPPooling(2, 2, 2, 2), lambda: nn.SpatialLPPooling(2, 3, 2, 2),
                                  lambda: nn.SpatialLogSumExpPooling(2, 2, beta=2.0),
                                  lambda: nn.SpatialLogSumExpPooling(2, 2, mean=False)])  # fmt: skip
def test_smooth_pooling_in_ceil_mode_pools_the_cut_windows_over_the_pixels_inside(make):
    # 5x5 input, 2x2 windows, stride 2, ceil: the last row and column of windows hold one
    # row/column of pixels; the outside counts as absent (|0|^p = 0, exp(-inf) = 0)
    pool = make().ceil()
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))
    pool.to("numpy:float64")
    out = pool.forward(x)
    assert out.shape == (2, 2, 3, 3) and np.isfinite(out).all()
    expected = np.empty_like(out)
    for i in range(3):
        for j in range(3):
            window = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(2, 2, -1)
            if isinstance(pool, nn.SpatialLPPooling):
                expected[:, :, i, j] = (np.abs(window) ** pool.p).sum(-1) ** (1 / pool.p)
            else:
                lse = np.log(np.exp(pool.beta * window).sum(-1)) / pool.beta
                expected[:, :, i, j] = lse - (np.log(4) / pool.beta if pool.mean else 0)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    report = check_gradients(pool, x)
    assert report.ok, report
