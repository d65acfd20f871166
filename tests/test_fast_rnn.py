"""The compiled LSTM/GRU time loops (ember[fast], :mod:`ember.nn._rnn_fast`) against the
NumPy loops, which are the reference: outputs, final states, input and state gradients,
parameter gradients; float32 and float64; one and two layers, both directions, masks,
initial states, no bias, the batch split over two threads. The comparison with PyTorch
runs on both paths in tests/test_recurrent_random.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from allocation import warm_recurrent_step

from ember import _fast, nn
from ember.nn import _parallel, _rnn_fast

pytest.importorskip("numba")
if not _fast.available():  # pragma: no cover
    pytest.skip("the compiled path is off (EMBER_FAST=0)", allow_module_level=True)
if not _rnn_fast.ready():  # pragma: no cover - NumPy on another BLAS
    pytest.skip("the compiled loops need NumPy's OpenBLAS", allow_module_level=True)

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
TOL = {"float64": dict(rtol=1e-9, atol=1e-12), "float32": dict(rtol=2e-4, atol=2e-5)}


@pytest.fixture
def threads():
    """Run with ember's helper thread allowed (the batch split), then restore."""
    before = _parallel.get_num_threads()
    yield lambda n: _parallel.set_num_threads(n)
    _parallel.set_num_threads(before)


@pytest.fixture(autouse=True)
def _restore_switch():
    before = _fast.set_enabled(True)
    yield
    _fast.set_enabled(before)


def _run(module, x, state, mask, probe, compiled):
    """forward + backward on one path; returns copies of everything that must agree."""
    _fast.set_enabled(compiled)
    nn.set_mask(module, mask)
    inp = x if state is None else [x, state if len(state) > 1 else state[0]]
    out = module.forward(inp).copy()
    final = [s.copy() for s in ([module.final_state] if isinstance(module.final_state, np.ndarray) else module.final_state)]
    module.zero_grad_parameters()
    gin = module.backward(inp, probe)
    gx = gin if state is None else gin[0]
    g_state = [] if state is None else ([gin[1]] if len(state) == 1 else gin[1])
    grads = {name: getattr(module, "grad_" + name).copy() for name in module._param_names}
    assert all(k.compiled == compiled for k in module.kernels), "the expected path did not run"
    return out, final, gx.copy(), [g.copy() for g in g_state], grads


def _compare(a, b, dtype):
    tol = TOL[dtype]
    out_a, final_a, gx_a, gs_a, grads_a = a
    out_b, final_b, gx_b, gs_b, grads_b = b
    np.testing.assert_allclose(out_a, out_b, **tol)
    for u, v in zip(final_a, final_b):
        np.testing.assert_allclose(u, v, **tol)
    np.testing.assert_allclose(gx_a, gx_b, **tol)
    for u, v in zip(gs_a, gs_b):
        np.testing.assert_allclose(u, v, **tol)
    for name in grads_a:
        np.testing.assert_allclose(grads_a[name], grads_b[name], err_msg=name, **tol)


SHAPES = [  # (N, T, F, H, layers, bidirectional, bias, masked, state given)
    (1, 5, 3, 4, 1, False, True, False, False),
    (7, 6, 5, 3, 2, True, True, True, True),
    (40, 9, 6, 8, 1, False, True, False, True),  # two halves of 24 and 16 columns
    (33, 4, 2, 5, 2, False, False, True, False),  # halves of 24 and 9, no bias
    (64, 12, 16, 32, 1, True, True, True, False),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:4])) + f"-L{s[4]}")
@pytest.mark.parametrize("n_threads", [1, 2])
def test_compiled_loops_match_the_numpy_loops(kind, dtype, shape, n_threads, threads):
    n, t, f, h, layers, bidirectional, bias, masked, given = shape
    threads(n_threads)
    rng = np.random.default_rng(n * 100 + t)
    module = getattr(nn, kind)(f, h, num_layers=layers, bidirectional=bidirectional, bias=bias, rng=1)
    module.to(f"numpy:{dtype}")
    x = rng.standard_normal((n, t, f)).astype(dtype)
    mask = None
    if masked:
        mask = np.arange(t)[None, :] < rng.integers(1, t + 1, size=n)[:, None]
    parts = 2 if kind == "LSTM" else 1
    state = None
    if given:
        state = [rng.standard_normal((layers * module.directions, n, h)).astype(dtype) for _ in range(parts)]
    probe = rng.standard_normal((n, t, module.directions * h)).astype(dtype)
    if mask is not None:
        probe *= mask[:, :, None]
    reference = _run(module, x, state, mask, probe, compiled=False)
    _compare(_run(module, x, state, mask, probe, compiled=True), reference, dtype)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_switching_paths_between_calls_changes_nothing(kind, threads):
    """Buffers left by one path (views of the compiled layout) do not leak into the other,
    also when the shapes change between calls: each call equals a fresh module's NumPy call."""
    threads(2)
    module = getattr(nn, kind)(4, 6, rng=0).to("numpy:float64")
    calls = [(True, 16, 5), (False, 16, 5), (True, 20, 3), (True, 16, 5), (False, 20, 3), (True, 20, 3)]
    for index, (compiled, n, t) in enumerate(calls):
        x = np.random.default_rng(index).standard_normal((n, t, 4))
        probe = np.random.default_rng(index + 10).standard_normal((n, t, 6))
        fresh = getattr(nn, kind)(4, 6, rng=0).to("numpy:float64")
        _compare(_run(module, x, None, None, probe, compiled), _run(fresh, x, None, None, probe, False), "float64")


def test_the_switch_turns_the_compiled_loops_off():
    module = nn.LSTM(3, 4, rng=0).to("numpy:float32")
    x = np.zeros((2, 3, 3), np.float32)
    _fast.set_enabled(False)
    module.forward(x)
    assert not module.kernels[0].compiled
    _fast.set_enabled(True)
    module.forward(x)
    assert module.kernels[0].compiled


def test_float32_tanh_is_accurate():
    """The rational tanh of the float32 kernels: relative error < 1e-6 over the range used."""
    module = nn.GRU(1, 1, bias=False, rng=0).to("numpy:float32")
    module.weight_ih_l0[...] = [[0.0], [0.0], [1.0]]  # r = z = 1/2, n = tanh(x)
    module.weight_hh_l0[...] = 0.0
    x = np.linspace(-12, 12, 20001, dtype=np.float32).reshape(1, -1, 1)
    h = module.forward(x)[0, :, 0].astype(np.float64)
    # h_t = (1 - z) n_t + z h_{t-1} with z = 1/2: recover n_t
    n = 2 * h - np.concatenate([[0.0], h[:-1]])
    exact = np.tanh(x[0, :, 0].astype(np.float64))
    np.testing.assert_allclose(n, exact, rtol=0, atol=2e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_nan_propagates_like_the_numpy_loop(kind):
    """The float32 tanh clamps its argument with comparisons, so a NaN stays NaN (a
    diverged run must show, not turn into saturated gates)."""
    x = np.zeros((2, 3, 2), np.float32)
    x[0, 1, 0] = np.nan
    for compiled in (False, True):
        _fast.set_enabled(compiled)
        module = getattr(nn, kind)(2, 3, rng=0).to("numpy:float32")
        out = module.forward(x)
        assert module.kernels[0].compiled == compiled
        assert np.isnan(out[0, 1:]).all() and not np.isnan(out[1]).any() and not np.isnan(out[0, 0]).any()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_warm_compiled_step_on_two_threads_allocates_nothing(kind, threads):
    """The batch halves and split products hand views to the helper thread; the arrays
    themselves are all kept across calls."""
    threads(2)
    layer, peak, kept, smallest = warm_recurrent_step(kind)
    assert layer.kernels[0].compiled
    assert peak < smallest / 2, f"a warm compiled {kind} step allocated up to {peak} bytes"
    assert kept < smallest / 2, f"{kept} bytes stayed allocated"


def test_a_new_process_loads_the_kernels_from_the_cache(tmp_path):
    """Numba caches the kernels on disk (they bind BLAS by symbol name, which allows it):
    a second process compiles nothing and its first call is quick (time reported, not asserted)."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import json, time, numpy as np\n"
        "t0 = time.perf_counter()\n"
        "from ember import nn\n"
        "from ember.nn import _rnn_fast\n"
        "for kind in ('LSTM', 'GRU'):\n"
        "    for dtype in ('float32', 'float64'):\n"
        "        m = getattr(nn, kind)(3, 4, rng=0).to('numpy:' + dtype)\n"
        "        x = np.ones((2, 3, 3), dtype)\n"
        "        m.backward(x, m.forward(x))\n"
        "jit = _rnn_fast._jit()\n"
        "stats = {k: [getattr(jit, k).stats.cache_hits, getattr(jit, k).stats.cache_misses] for k in\n"
        "         ('lstm_forward', 'lstm_backward', 'gru_forward', 'gru_backward', 'transpose')}\n"
        "print(json.dumps({'seconds': time.perf_counter() - t0,\n"
        "                  'stats': {k: [sum(v[0].values()), sum(v[1].values())] for k, v in stats.items()}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC, "EMBER_FAST": "1"}
    runs = [subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
            for _ in range(2)]  # the first fills the cache when this process did not already
    assert runs[1].returncode == 0, runs[1].stderr
    result = json.loads(runs[1].stdout.strip().splitlines()[-1])
    for name, (hits, misses) in result["stats"].items():
        assert misses == 0 and hits == 2, f"{name}: {hits} cache hits, {misses} compilations"
    print(f"second process: import + first LSTM/GRU calls in {result['seconds']:.2f} s")
