"""Randomized differential test against PyTorch: convolution, pooling, batch normalization.

Each seeded trial draws a module's geometry (kernel, stride, padding, dilation, ceil mode,
count_include_pad) and then calls one module twice, on two inputs of different batch
(1 included) and image sizes in random memory layouts (C-contiguous, CHWN, strided,
reversed batch): output, input gradient and parameter gradients (and batch normalization's
running statistics) must match PyTorch's at every call. Float64; skipped without torch.
"""

import numpy as np
import pytest

from ember import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional
F64 = "numpy:float64"
TRIALS = range(12)
TOL = {"rtol": 1e-9, "atol": 1e-10}


def _layout(rng, x):
    """``x``'s values in a random memory layout."""
    kind = rng.choice(["c", "chwn", "strided", "reversed"])
    if kind == "chwn" and x.ndim == 4:
        return np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)
    if kind == "strided":
        wide = np.zeros(x.shape[:-1] + (2 * x.shape[-1],))
        wide[..., ::2] = x
        return wide[..., ::2]
    if kind == "reversed":
        return np.ascontiguousarray(x[::-1])[::-1]
    return x


def _compare(ours, theirs, what):
    np.testing.assert_allclose(ours, theirs.detach().numpy(), err_msg=what, **TOL)


def _call(rng, module, torch_fn, torch_params, x):
    """One call of ``module`` and of ``torch_fn`` on ``x`` (ours in a random layout):
    output, input gradient and parameter gradients must agree."""
    x_in = _layout(rng, x)
    module.zero_grad_parameters()
    for p in torch_params:
        p.grad = None
    xt = torch.tensor(np.array(x), requires_grad=True)
    yt = torch_fn(xt)
    y = module.forward(x_in)
    _compare(y, yt, "output")
    probe = rng.standard_normal(tuple(y.shape))
    yt.backward(torch.tensor(probe))
    gx = module.backward(x_in, _layout(rng, probe))
    _compare(gx, xt.grad, "input gradient")
    grads = module.parameters()[1]
    assert len(grads) == len(torch_params)
    for ours, p in zip(grads, torch_params):
        _compare(ours, p.grad, "parameter gradient")


def _params(module):
    return [torch.tensor(np.array(p), requires_grad=True) for p in module.parameters()[0]]


def _images(rng, c, min_h, min_w):
    """Inputs of the two calls: random sizes, or the second one row and column smaller than
    the first (whose larger values would show through buffers reused without care)."""
    n = int(rng.choice([1, 2, 3]))
    h, w = min_h + int(rng.integers(1, 5)), min_w + int(rng.integers(1, 5))
    first = rng.standard_normal((n, c, h, w)) + 3
    if rng.integers(0, 2):
        return first, rng.standard_normal((n, c, h - 1, w - 1))
    n = int(rng.choice([1, 2, 3]))
    return first, rng.standard_normal((n, c, min_h + int(rng.integers(0, 5)), min_w + int(rng.integers(0, 5))))


@pytest.mark.parametrize("seed", TRIALS)
def test_convolutions_match_torch(seed):
    rng = np.random.default_rng(seed)
    c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kw, kh, dw, dh = (int(v) for v in rng.integers(1, 4, size=4))
    pw, ph = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    dil_w, dil_h = (int(v) for v in rng.integers(1, 3, size=2))
    bias = bool(rng.integers(0, 2))
    module = nn.SpatialDilatedConvolution(c_in, c_out, kw, kh, dw, dh, pw, ph, dil_w, dil_h, bias=bias,
                                          rng=seed).to(F64)  # fmt: skip
    params = _params(module)
    weight, b = params[0], (params[1] if bias else None)

    def fn(x):
        return F.conv2d(x, weight, b, stride=(dh, dw), padding=(ph, pw), dilation=(dil_h, dil_w))

    eff_h, eff_w = dil_h * (kh - 1) + 1, dil_w * (kw - 1) + 1
    for x in _images(rng, c_in, max(eff_h - 2 * ph, 1), max(eff_w - 2 * pw, 1)):
        _call(rng, module, fn, params, x)


@pytest.mark.parametrize("seed", TRIALS)
def test_full_convolution_matches_torch(seed):
    rng = np.random.default_rng(100 + seed)
    c_in, c_out = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    kw, kh, dw, dh = (int(v) for v in rng.integers(1, 4, size=4))
    pw, ph = int(rng.integers(0, min(kw, 2))), int(rng.integers(0, min(kh, 2)))
    adj_w, adj_h = int(rng.integers(0, dw)), int(rng.integers(0, dh))
    module = nn.SpatialFullConvolution(c_in, c_out, kw, kh, dw, dh, pw, ph, adj_w, adj_h, rng=seed).to(F64)
    params = _params(module)

    def fn(x):
        return F.conv_transpose2d(x, params[0], params[1], stride=(dh, dw), padding=(ph, pw), output_padding=(adj_h, adj_w))

    for x in _images(rng, c_in, 1 + ph, 1 + pw):
        _call(rng, module, fn, params, x)


def _window(rng):
    kw, kh = (int(v) for v in rng.integers(1, 5, size=2))
    dw, dh = (int(v) for v in rng.integers(1, 4, size=2))
    pw, ph = int(rng.integers(0, kw // 2 + 1)), int(rng.integers(0, kh // 2 + 1))
    return kw, kh, dw, dh, pw, ph, bool(rng.integers(0, 2))


@pytest.mark.parametrize("seed", TRIALS)
def test_max_pooling_matches_torch(seed):
    rng = np.random.default_rng(200 + seed)
    kw, kh, dw, dh, pw, ph, ceil = _window(rng)
    module = nn.SpatialMaxPooling(kw, kh, dw, dh, pw, ph, ceil_mode=ceil).to(F64)

    def fn(x):
        return F.max_pool2d(x, (kh, kw), (dh, dw), (ph, pw), ceil_mode=ceil)

    for x in _images(rng, int(rng.integers(1, 4)), max(kh - 2 * ph, 1), max(kw - 2 * pw, 1)):
        _call(rng, module, fn, [], x)


@pytest.mark.parametrize("seed", TRIALS)
def test_average_pooling_matches_torch(seed):
    rng = np.random.default_rng(300 + seed)
    kw, kh, dw, dh, pw, ph, ceil = _window(rng)
    include = bool(rng.integers(0, 2))
    module = nn.SpatialAveragePooling(kw, kh, dw, dh, pw, ph, ceil_mode=ceil, count_include_pad=include).to(F64)

    def fn(x):
        return F.avg_pool2d(x, (kh, kw), (dh, dw), (ph, pw), ceil_mode=ceil, count_include_pad=include)

    for x in _images(rng, int(rng.integers(1, 4)), max(kh - 2 * ph, 1), max(kw - 2 * pw, 1)):
        _call(rng, module, fn, [], x)


@pytest.mark.parametrize("seed", TRIALS)
@pytest.mark.parametrize("spatial", [False, True])
def test_batch_normalization_matches_torch(seed, spatial):
    rng = np.random.default_rng(400 + seed)
    c = int(rng.integers(1, 5))
    momentum, affine = float(rng.uniform(0.05, 0.5)), bool(rng.integers(0, 2))
    make = nn.SpatialBatchNormalization if spatial else nn.BatchNormalization
    module = make(c, eps=1e-5, momentum=momentum, affine=affine).to(F64)
    if affine:
        module.weight[...] = rng.uniform(0.5, 2.0, c)
        module.bias[...] = rng.standard_normal(c)
    params = _params(module)
    running_mean, running_var = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)

    def fn(train):
        return lambda x: F.batch_norm(x, running_mean, running_var, params[0] if affine else None,
                                      params[1] if affine else None, train, momentum, 1e-5)  # fmt: skip

    for train in (True, True, False, False):
        module.training() if train else module.evaluate()
        if spatial:
            x = _images(rng, c, 1, 2)[0]
        else:
            x = rng.standard_normal((int(rng.integers(2 if train else 1, 6)), c)) * 3 + 1
        _call(rng, module, fn(train), params, x)
        _compare(module.running_mean, running_mean, "running mean")
        _compare(module.running_var, running_var, "running variance")
