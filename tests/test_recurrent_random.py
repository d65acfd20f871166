"""Randomized differential test of the recurrent layers against PyTorch: random sizes,
layers, directions, batch size 1, non-contiguous inputs, masks and initial states, and two
calls with different shapes per module (a later call must not depend on an earlier one).

Float64 throughout; the seeds are fixed, so a failure reproduces."""

import numpy as np
import pytest

from ember import _fast, nn

torch = pytest.importorskip("torch")

F64 = "numpy:float64"
KINDS = {"RNN": (nn.RNN, 1), "LSTM": (nn.LSTM, 2), "GRU": (nn.GRU, 1)}
CELLS = {"RNNCell": nn.RNNCell, "LSTMCell": nn.LSTMCell, "GRUCell": nn.GRUCell}


def _strided(rng, shape):
    """A non-contiguous array of ``shape``: every other entry of a wider one, or a transposed copy."""
    if rng.random() < 0.5:
        wide = rng.standard_normal(shape[:-1] + (2 * shape[-1],))
        return wide[..., ::2]
    return np.ascontiguousarray(rng.standard_normal(shape[::-1])).transpose(*range(len(shape) - 1, -1, -1))


def _torch_rnn(kind, module):
    extra = {"nonlinearity": module.nonlinearity} if kind == "RNN" else {}
    layer = getattr(torch.nn, kind)(module.input_size, module.hidden_size, num_layers=module.num_layers,
                                    bias=module.bias, batch_first=True, bidirectional=module.bidirectional,
                                    **extra).double()
    for name in module._param_names:
        getattr(layer, name).data = torch.tensor(getattr(module, name))
    return layer


def _torch_run(layer, x, state, mask):
    """PyTorch's output for ``x`` (packed when masked) and the tensors to differentiate."""
    tx = torch.tensor(x, requires_grad=True)
    ts = None if state is None else [torch.tensor(s, requires_grad=True) for s in state]
    hx = None if ts is None else (ts[0] if len(ts) == 1 else tuple(ts))
    if mask is None:
        return layer(tx, hx)[0], tx, ts
    utils = torch.nn.utils.rnn
    packed = utils.pack_padded_sequence(tx, torch.tensor(mask.sum(1)), batch_first=True, enforce_sorted=False)
    out = utils.pad_packed_sequence(layer(packed, hx)[0], batch_first=True, total_length=x.shape[1])[0]
    return out, tx, ts


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def _check_call(module, layer, rng, n, t, masked, given):
    """One forward + backward of ``module`` against ``layer`` on fresh random data."""
    x = _strided(rng, (n, t, module.input_size))
    mask = None
    if masked:
        lengths = rng.integers(1, t + 1, size=n)
        mask = np.arange(t)[None, :] < lengths[:, None]
    nn.set_mask(module, mask)
    parts = 2 if isinstance(module, nn.LSTM) else 1
    state = None
    if given:
        shape = (module.num_layers * module.directions, n, module.hidden_size)
        state = [_strided(rng, shape) for _ in range(parts)]
    inp = x if state is None else [x, state[0] if parts == 1 else state]
    out = module.forward(inp)
    ty, tx, ts = _torch_run(layer, x, state, mask)
    _close(out, ty.detach().numpy())
    probe = rng.standard_normal(out.shape)
    if mask is not None:
        probe *= mask[:, :, None]  # PyTorch's padded outputs are constant zeros
    module.zero_grad_parameters()
    layer.zero_grad()
    gin = module.backward(inp, probe)
    ty.backward(torch.tensor(probe))
    gx = gin if state is None else gin[0]
    _close(gx, tx.grad.numpy())
    if state is not None:
        g_state = [gin[1]] if parts == 1 else gin[1]
        for ours, theirs in zip(g_state, ts):
            _close(ours, theirs.grad.numpy())
    for name in module._param_names:
        _close(getattr(module, "grad_" + name), getattr(layer, name).grad.numpy())


@pytest.fixture(params=["numpy", "compiled"])
def loop(request):
    """Each fused-layer case on both time loops: NumPy, and the compiled one (ember[fast],
    where Numba is installed; it covers LSTM and GRU)."""
    compiled = request.param == "compiled"
    if compiled and not _fast.available():
        pytest.skip("Numba is not installed, or EMBER_FAST=0")
    before = _fast.set_enabled(compiled)
    yield request.param
    _fast.set_enabled(before)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kind", list(KINDS))
def test_fused_layers_match_pytorch_on_random_shapes(kind, seed, loop):
    rng = np.random.default_rng(1000 * seed + len(kind))
    make, _ = KINDS[kind]
    extra = {"nonlinearity": "relu" if rng.random() < 0.5 else "tanh"} if kind == "RNN" else {}
    module = make(int(rng.integers(1, 5)), int(rng.integers(1, 6)), num_layers=int(rng.integers(1, 3)),
                  bias=bool(rng.random() < 0.8), bidirectional=bool(rng.random() < 0.5), rng=seed, **extra).to(F64)
    layer = _torch_rnn(kind, module)
    # two calls with other shapes: batch size 1 first, then a larger batch and length
    for n, t in ((1, int(rng.integers(1, 5))), (int(rng.integers(2, 5)), int(rng.integers(2, 7)))):
        _check_call(module, layer, rng, n, t, masked=bool(rng.random() < 0.5), given=bool(rng.random() < 0.5))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", list(CELLS))
def test_recurrent_cells_match_pytorch_layers_on_random_shapes(kind, seed):
    """Recurrent(cell) unfolds the same equations as PyTorch's one-layer RNN / LSTM / GRU."""
    rng = np.random.default_rng(2000 * seed + len(kind))
    n_in, hs = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    cell = CELLS[kind](n_in, hs, rng=seed)
    module = nn.Recurrent(cell).to(F64)
    base = kind[:-4]
    layer = getattr(torch.nn, base)(n_in, hs, batch_first=True).double()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(layer, name + "_l0").data = torch.tensor(getattr(cell, name))
    for n, t in ((1, int(rng.integers(1, 5))), (int(rng.integers(2, 5)), int(rng.integers(2, 7)))):
        x = _strided(rng, (n, t, n_in))
        mask = None
        if rng.random() < 0.5:
            mask = np.arange(t)[None, :] < rng.integers(1, t + 1, size=n)[:, None]
        nn.set_mask(module, mask)
        out = module.forward(x)
        ty, tx, _ = _torch_run(layer, x, None, mask)
        _close(out, ty.detach().numpy())
        probe = rng.standard_normal(out.shape) * (1 if mask is None else mask[:, :, None])
        module.zero_grad_parameters()
        layer.zero_grad()
        _close(module.backward(x, probe), (ty.backward(torch.tensor(probe)), tx.grad.numpy())[1])
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            _close(getattr(cell, "grad_" + name), getattr(layer, name + "_l0").grad.numpy())
