"""The backward protocol on every case: each half of the backward alone equals the whole,
and ``compute_grad_input = False`` is honoured at any depth of any container."""

import numpy as np
import pytest
from cases import CASES

from ember import nn
from ember.testing import float_leaves, map_structure

MODULES = [c for c in CASES if not c.is_criterion]
WITH_PARAMS = [c for c in MODULES if c.build().parameters()[0]]


def _copy(value):
    return map_structure(lambda v: v.copy() if hasattr(v, "copy") else v, value)


def _probe(output):
    rng = np.random.default_rng(3)
    return map_structure(lambda o: rng.standard_normal(o.shape) if hasattr(o, "shape") else o, output)


def _forward(case, module, x):
    if case.reseed:
        case.reseed(module)
    return module.forward(x)


def _grads(module):
    return [g.copy() for g in module.parameters()[1]]


def _whole(case, scale=1.0):
    """(grad_input, parameter gradients, probe) of one forward + backward of a fresh module."""
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    probe = _probe(_forward(case, module, x))
    gin = _copy(module.backward(x, probe, scale))
    return gin, _grads(module), probe


def _after_forward(case):
    """A fresh module with zero gradients after one forward, and its input."""
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    _forward(case, module, x)
    return module, x


def _assert_all_close(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("case", MODULES, ids=lambda c: c.name)
def test_update_grad_input_alone_equals_backward_and_accumulates_nothing(case):
    gin, _, probe = _whole(case)
    module, x = _after_forward(case)
    alone = module.update_grad_input(x, probe)
    _assert_all_close(float_leaves(alone), float_leaves(gin))
    for g in module.parameters()[1]:
        assert not g.any(), f"{module!r}: update_grad_input accumulated a parameter gradient"


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("case", WITH_PARAMS, ids=lambda c: c.name)
def test_acc_grad_parameters_alone_equals_backward(case, scale):
    _, grads, probe = _whole(case, scale)
    module, x = _after_forward(case)
    module.acc_grad_parameters(x, probe, scale)
    _assert_all_close(_grads(module), grads)


@pytest.mark.parametrize("case", WITH_PARAMS, ids=lambda c: c.name)
def test_acc_grad_parameters_after_update_grad_input_with_another_gradient(case):
    """acc_grad_parameters uses its own grad_output, not one left by an earlier call."""
    _, grads, probe = _whole(case)
    module, x = _after_forward(case)
    module.update_grad_input(x, map_structure(lambda p: 2 * p if hasattr(p, "shape") else p, probe))
    module.acc_grad_parameters(x, probe)
    _assert_all_close(_grads(module), grads)


# ---------------------------------------------------------------- compute_grad_input = False
def _nested_sequential(m, out):
    return nn.Sequential(nn.Sequential(m)), lambda p: p


def _concat_table(m, out):
    return nn.Sequential(nn.ConcatTable(nn.Sequential(m))), lambda p: [p]


def _graph(m, out):
    x = nn.Input()
    return nn.Graph(x, nn.Sequential(m)(x)), lambda p: p


def _concat(m, out):
    return nn.Concat(0, m), lambda p: p


WRAPPERS = {"Sequential(Sequential)": _nested_sequential, "ConcatTable": _concat_table, "Graph": _graph,
            "Concat": _concat}


def _lowest_parametrised_leaves(module):
    """The modules that receive the data directly in ``module`` and have parameters:
    the module itself (a leaf), or the first parametrised child of a Sequential, recursively."""
    if not module.children():
        return [module] if module.parameters()[0] else []
    if isinstance(module, nn.Sequential):
        for child in module.children():
            if child.parameters()[0]:
                return _lowest_parametrised_leaves(child)
    return []


@pytest.mark.parametrize("wrapper", list(WRAPPERS), ids=str)
@pytest.mark.parametrize("case", WITH_PARAMS, ids=lambda c: c.name)
def test_compute_grad_input_false_at_every_depth(case, wrapper):
    _, grads, probe = _whole(case)
    module = case.build()
    x, _ = case.sample()
    out = _forward(case, module, x)
    if wrapper == "Concat" and not hasattr(out, "shape"):
        pytest.skip("Concat joins arrays; this case returns a table")
    net, wrap_grad = WRAPPERS[wrapper](module, out)
    net.compute_grad_input = False
    net.zero_grad_parameters()
    module.grad_input = None
    for m in module.modules():
        m.grad_input = None
    if case.reseed:
        case.reseed(module)
    net.forward(x)
    assert net.backward(x, wrap_grad(probe)) is None and net.grad_input is None
    _assert_all_close(_grads(net), grads)
    for leaf in _lowest_parametrised_leaves(module):
        assert leaf.grad_input is None, f"{leaf!r} computed an input gradient nobody needs"


@pytest.mark.parametrize("case", [c for c in WITH_PARAMS if not c.build().children()], ids=lambda c: c.name)
def test_compute_grad_input_false_on_a_leaf(case):
    _, grads, probe = _whole(case)
    module, x = _after_forward(case)
    module.compute_grad_input = False
    assert module.backward(x, probe) is None and module.grad_input is None
    _assert_all_close(_grads(module), grads)


# ---------------------------------------------------------------- the former divergences
F64 = "numpy:float64"


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _both_halves_alone(make, x, probe):
    """Parameter gradients of backward, and of acc_grad_parameters alone, on fresh copies."""
    whole, alone = make(), make()
    for net in (whole, alone):
        net.zero_grad_parameters()
        net.forward(x)
    whole.backward(x, probe)
    alone.acc_grad_parameters(x, probe)
    return _grads(whole), _grads(alone)


def test_graph_accumulates_without_update_grad_input():
    # was: KeyError '_buf_node_grads' (acc_grad_parameters read the node gradients of an
    # update_grad_input that had not run)
    def make():
        x = nn.Input()
        h = nn.Tanh()(nn.Linear(3, 4, rng=0)(x))
        return nn.Graph(x, nn.CAddTable()(nn.Linear(4, 4, rng=1)(h), h)).to(F64)

    whole, alone = _both_halves_alone(make, _data(2, 3), _data(2, 4, seed=1))
    _assert_all_close(alone, whole)


@pytest.mark.parametrize("cell", [nn.LSTMCell, nn.GRUCell])
def test_recurrent_accumulates_without_update_grad_input(cell):
    # was: zero gradients, silently (it replayed the steps of an update_grad_input that had not run)
    whole, alone = _both_halves_alone(lambda: nn.Recurrent(cell(3, 4, rng=0)).to(F64), _data(2, 5, 3),
                                      _data(2, 5, 4, seed=1))
    assert all(g.any() for g in alone)
    _assert_all_close(alone, whole)


def test_fused_lstm_accumulates_for_the_grad_output_it_is_given():
    # was: acc_grad_parameters reused the BPTT of the last update_grad_input (whatever its
    # grad_output), or reran it when none had run since the forward
    x, probe = _data(2, 5, 3), _data(2, 5, 4, seed=1)
    whole, _ = _both_halves_alone(lambda: nn.LSTM(3, 4, num_layers=2, rng=0).to(F64), x, probe)
    lstm = nn.LSTM(3, 4, num_layers=2, rng=0).to(F64)
    lstm.zero_grad_parameters()
    lstm.forward(x)
    lstm.update_grad_input(x, 3 * probe)
    lstm.acc_grad_parameters(x, probe)
    _assert_all_close(_grads(lstm), whole)


def _convnet():
    return nn.Sequential(nn.Sequential(nn.SpatialConvolution(2, 3, 3, 3, rng=0), nn.Tanh()), nn.Reshape(3 * 4 * 4),
                         nn.Linear(48, 2, rng=1)).to(F64)


@pytest.mark.parametrize("wrap", ["nested Sequential", "Graph", "Concat", "ConcatTable"])
def test_skipping_the_input_gradient_reaches_a_nested_first_convolution(wrap):
    # was: only Sequential's own children skipped; a nested Sequential still computed its
    # first convolution's input gradient, Graph and Concat ignored compute_grad_input
    x, probe = _data(5, 2, 6, 6), _data(5, 2, seed=1)
    reference = _convnet()
    reference.forward(x)
    reference.zero_grad_parameters()
    reference.backward(x, probe)
    inner = _convnet()
    if wrap == "Graph":
        node = nn.Input()
        net = nn.Graph(node, inner(node))
    elif wrap == "Concat":
        net = nn.Concat(1, inner)
    elif wrap == "ConcatTable":
        net, probe = nn.ConcatTable(inner), [probe]
    else:
        net = inner
    net.compute_grad_input = False
    net.zero_grad_parameters()
    net.forward(x)
    assert net.backward(x, probe) is None
    conv = inner.get(0).get(0)
    assert conv.grad_input is None and inner.get(0).grad_input is None
    _assert_all_close(_grads(net), _grads(reference))


# ---------------------------------------------------------------- no hidden global effects
def test_sharing_is_recorded_on_the_modules_themselves():
    import copy
    import weakref

    from ember.nn import module as module_file

    first = nn.Linear(3, 2, rng=0).to(F64)
    twin = first.clone("weight", "bias")
    plain = copy.deepcopy(twin)  # a copy shares nothing until share() links it
    flat, _ = first.get_parameters()
    assert np.shares_memory(twin.weight, flat) and np.shares_memory(twin.grad_bias, _)
    assert not np.shares_memory(plain.weight, flat)
    assert twin._sharing_peers() == [first] and plain._sharing_peers() == []
    registries = (dict, weakref.WeakKeyDictionary, weakref.WeakValueDictionary)
    assert not [k for k, v in vars(module_file).items() if isinstance(v, registries) and not k.startswith("__")]


def test_add_never_converts_a_child_and_a_mixed_tree_is_reported():
    from ember.errors import ShapeError

    shared = nn.Linear(3, 2, rng=0).to(F64)
    twin = shared.clone("weight", "bias")
    net = nn.Sequential(nn.Linear(3, 3, rng=1), twin)  # float32, then a float64 clone
    assert twin.weight is shared.weight and twin.backend == shared.backend
    with pytest.raises(ShapeError, match=r"Linear\(3 -> 2\): expected input of dtype float64.*\.to\("):
        net.forward(np.ones((2, 3), np.float32))
    net.to(F64)
    assert net.forward(np.ones((2, 3))).shape == (2, 2)


# ---------------------------------------------------------------- products through the backend
_NN = __import__("pathlib").Path(__file__).resolve().parents[1] / "src" / "ember" / "nn"


@pytest.mark.parametrize("path", sorted(_NN.glob("*.py")), ids=lambda p: p.name)
def test_no_matrix_product_bypasses_the_backend(path):
    import re

    text = path.read_text()
    found = re.findall(r"\bmatmul\(|\b_blas\b|\bnp\.dot\(|\S @ \S", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    assert not found, f"{path.name}: products past Backend.gemm: {found}"


@pytest.mark.parametrize("make", [
    lambda: nn.RNN(3, 4, num_layers=2, bidirectional=True, rng=0), lambda: nn.LSTM(3, 4, rng=0),
    lambda: nn.GRU(3, 4, rng=0), lambda: nn.Recurrent(nn.LSTMCell(3, 4, rng=0)),
    lambda: nn.Recurrent(nn.GRUCell(3, 4, rng=0)), lambda: nn.Recurrent(nn.RNNCell(3, 4, rng=0))],
    ids=["RNN", "LSTM", "GRU", "LSTMCell", "GRUCell", "RNNCell"])
def test_recurrent_products_reach_the_backend(make, monkeypatch):
    from ember.backend import Backend

    calls = []
    original = Backend.gemm

    def recording(self, a, b, out, *args, **kwargs):
        calls.append((a.shape, b.shape))
        return original(self, a, b, out, *args, **kwargs)

    monkeypatch.setattr(Backend, "gemm", recording)
    module = make().to(F64)
    x = _data(2, 5, 3)
    module.forward(x)
    forward_calls = len(calls)
    module.backward(x, _data(*module.output.shape, seed=1))
    assert forward_calls > 0 and len(calls) > forward_calls
