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


def _assert_all_close(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("case", MODULES, ids=lambda c: c.name)
def test_update_grad_input_alone_equals_backward_and_accumulates_nothing(case):
    gin, _, probe = _whole(case)
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    _forward(case, module, x)
    alone = module.update_grad_input(x, probe)
    _assert_all_close(float_leaves(alone), float_leaves(gin))
    for g in module.parameters()[1]:
        assert not g.any(), f"{module!r}: update_grad_input accumulated a parameter gradient"


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("case", WITH_PARAMS, ids=lambda c: c.name)
def test_acc_grad_parameters_alone_equals_backward(case, scale):
    _, grads, probe = _whole(case, scale)
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    _forward(case, module, x)
    module.acc_grad_parameters(x, probe, scale)
    _assert_all_close(_grads(module), grads)


@pytest.mark.parametrize("case", WITH_PARAMS, ids=lambda c: c.name)
def test_acc_grad_parameters_after_update_grad_input_with_another_gradient(case):
    """acc_grad_parameters uses its own grad_output, not one left by an earlier call."""
    _, grads, probe = _whole(case)
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    _forward(case, module, x)
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
    _forward(case, net, x)
    assert net.backward(x, wrap_grad(probe)) is None and net.grad_input is None
    _assert_all_close(_grads(net), grads)
    for leaf in _lowest_parametrised_leaves(module):
        assert leaf.grad_input is None, f"{leaf!r} computed an input gradient nobody needs"
