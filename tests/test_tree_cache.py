"""Containers keep the walks of their trees between steps (which child is the lowest
with parameters, which graph nodes need an input gradient); every change of structure or
parameters made after the first step is seen by the next one."""

import numpy as np
import pytest

import ember
from ember import nn
from ember.nn import _tree
from ember.nn.module import Module, TreeVersion, structure_changed

F64 = "numpy:float64"


def _step(net, x, rng=None):
    """Zero, forward, backward with a fixed probe; returns the parameter gradients."""
    net.zero_grad_parameters()
    out = net.forward(x)
    probe = np.random.default_rng(5).standard_normal(out.shape)
    net.backward(x, probe)
    return [g.copy() for g in net.parameters()[1]]


def _assert_same_grads(net, x):
    """``net`` with ``compute_grad_input = False`` gives the gradients of the full sweep."""
    net.compute_grad_input = False
    skipped = _step(net, x)
    net.compute_grad_input = True
    full = _step(net, x)
    net.compute_grad_input = False
    assert len(skipped) == len(full)
    for a, b in zip(skipped, full):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert all(np.any(g != 0) for g in skipped)


def _x(n=4):
    return np.random.default_rng(1).standard_normal((2, n))


def test_the_lowest_parametrised_child_is_walked_once_then_kept(monkeypatch):
    net = nn.Sequential(nn.Tanh(), nn.Linear(4, 4, rng=0), nn.Tanh(), nn.Linear(4, 3, rng=1)).to(F64)
    net.compute_grad_input = False
    _step(net, _x())
    calls = []
    real = _tree.has_parameters
    monkeypatch.setattr(_tree, "has_parameters", lambda m: calls.append(m) or real(m))
    _step(net, _x())
    _step(net, _x())
    assert calls == []  # no walk on a warm step
    net.add(nn.Tanh().to(F64))
    _step(net, _x())
    assert calls  # walked again after the change


@pytest.mark.parametrize("change", ["insert", "add-inside", "remove", "nested-insert"])
def test_a_change_of_structure_after_the_first_step_is_seen(change):
    inner, deeper = nn.Sequential(nn.Tanh()).to(F64), nn.Sequential(nn.Tanh()).to(F64)
    new = [nn.Linear(4, 4, rng=k).to(F64) for k in (2, 3)]  # built (and moved) before the first step
    net = nn.Sequential(inner, nn.Tanh(), nn.Linear(4, 4, rng=0), nn.Tanh(), nn.Linear(4, 3, rng=1)).to(F64)
    if change == "nested-insert":
        inner.add(deeper)
    _assert_same_grads(net, _x())  # caches "lowest = 2"
    if change == "insert":  # a parametrised module below the cached lowest one
        net.insert(new[0], 0)
    elif change == "add-inside":  # a grandchild: only the inner container changes
        inner.add(new[0])
    elif change == "remove":
        net.remove(2)
        net.insert(new[0], 1)
    else:  # a great-grandchild
        deeper.insert(new[0], 0)
    _assert_same_grads(net, _x())


def test_a_graph_sees_a_parametrised_module_added_on_its_data_side():
    x = nn.Input()
    front, late = nn.Sequential(nn.Tanh()), nn.Linear(4, 4, rng=2).to(F64)
    h = front(x)  # the graph is moved to float64 below, front with it
    y = nn.CAddTable()(nn.Linear(4, 4, rng=0)(h), nn.Tanh()(h))
    net = nn.Graph(x, nn.Linear(4, 3, rng=1)(y)).to(F64)
    _assert_same_grads(net, _x())
    front.add(late)
    _assert_same_grads(net, _x())


class _Scale(Module):
    """y = w * x when ``weight`` is set, else y = x (a module whose parameter comes later)."""

    _param_names = ("weight",)

    def __init__(self):
        super().__init__()
        self.weight = self.grad_weight = None

    def update_output(self, input):
        self.output = input * self.weight if self.weight is not None else input.copy()
        return self.output

    def update_grad_input(self, input, grad_output):
        self.grad_input = grad_output * self.weight if self.weight is not None else grad_output.copy()
        return self.grad_input

    def acc_grad_parameters(self, input, grad_output, scale=1.0):
        if self.weight is not None:
            self.grad_weight += scale * (grad_output * input).sum(axis=0)


def test_a_parameter_created_by_hand_is_seen_after_structure_changed():
    scale = _Scale()
    net = nn.Sequential(scale, nn.Tanh(), nn.Linear(4, 3, rng=1)).to(F64)
    _assert_same_grads(net, _x())
    scale.weight, scale.grad_weight = np.full(4, 0.5), np.zeros(4)
    structure_changed()
    _assert_same_grads(net, _x())
    assert np.any(scale.grad_weight != 0)


def _version_moves(action):
    before = TreeVersion.value
    action()
    return TreeVersion.value > before


def test_every_mutation_path_moves_the_tree_version(tmp_path):
    net = nn.Sequential(nn.Linear(4, 4, rng=0), nn.Tanh())
    twin = nn.Linear(4, 4, rng=1)
    path = tmp_path / "m.st"
    ember.save(net, path)
    mapped = nn.MapTable(nn.Linear(4, 2, rng=2))
    actions = {
        "add": lambda: net.add(nn.Tanh()),
        "insert": lambda: net.insert(nn.Tanh(), 0),
        "remove": lambda: net.remove(0),
        "get_parameters": net.get_parameters,
        "share": lambda: twin.share(net.get(0), "weight", "bias"),
        "clone sharing": lambda: net.clone("weight", "bias"),
        "to": lambda: net.to(F64),
        "type": lambda: net.type("float32"),
        "double": net.double,
        "load": lambda: ember.load(path),
        "a new replica": lambda: mapped.forward([np.ones((1, 4), np.float32)] * 3),
        "by hand": structure_changed,
    }
    assert [name for name, action in actions.items() if not _version_moves(action)] == []


def test_a_warm_step_leaves_the_tree_version_alone():
    net = nn.Sequential(nn.Linear(4, 4, rng=0), nn.Tanh(), nn.Linear(4, 3, rng=1))
    net.get_parameters()
    x = _x().astype(np.float32)
    net.compute_grad_input = False
    _step(net, x)
    assert not _version_moves(lambda: [_step(net, x) for _ in range(3)])
