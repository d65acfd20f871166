"""The module contract, on every case: accumulation, scale, backward = update_grad_input +
acc_grad_parameters, the input left untouched, a save/load round trip."""

import numpy as np
import pytest
from cases import CASES

import ember
from ember.testing import float_leaves, map_structure

MODULES = [c for c in CASES if not c.is_criterion]


def _copy(value):
    return map_structure(lambda v: v.copy() if hasattr(v, "copy") else v, value)


def _forward_backward(case, module, x, probe=None):
    if case.reseed:
        case.reseed(module)
    out = _copy(module.forward(x))
    if probe is None:
        probe = map_structure(lambda o: np.random.default_rng(3).standard_normal(o.shape) if hasattr(o, "shape") else o, out)
    if case.reseed:
        case.reseed(module)
    module.forward(x)
    gin = _copy(module.backward(x, probe))
    return out, gin, probe


def _grads(module):
    return [g.copy() for g in module.parameters()[1]]


WITH_PARAMS = [c for c in MODULES if c.build().parameters()[0]]


@pytest.mark.parametrize("case", WITH_PARAMS, ids=lambda c: c.name)
def test_gradients_accumulate_and_scale(case):
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    _, _, probe = _forward_backward(case, module, x)
    once = _grads(module)
    _forward_backward(case, module, x, probe)
    twice = _grads(module)
    for a, b in zip(once, twice):
        np.testing.assert_allclose(b, 2 * a, rtol=1e-10, atol=1e-12)
    module.zero_grad_parameters()
    if case.reseed:
        case.reseed(module)
    module.forward(x)
    module.backward(x, probe, scale=0.5)
    for a, b in zip(once, _grads(module)):
        np.testing.assert_allclose(b, 0.5 * a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", MODULES, ids=lambda c: c.name)
def test_backward_is_update_grad_input_plus_acc_grad_parameters(case):
    module = case.build()
    x, _ = case.sample()
    module.zero_grad_parameters()
    _, gin, probe = _forward_backward(case, module, x)
    grads = _grads(module)
    module.zero_grad_parameters()
    if case.reseed:
        case.reseed(module)
    module.forward(x)
    gin2 = _copy(module.update_grad_input(x, probe))
    module.acc_grad_parameters(x, probe, 1.0)
    for a, b in zip(float_leaves(gin), float_leaves(gin2)):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for a, b in zip(grads, _grads(module)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_input_left_untouched(case):
    module = case.build()
    x, t = case.sample()
    before = _copy(x)
    if case.is_criterion:
        module.forward(x, t)
        module.backward(x, t)
    else:
        _forward_backward(case, module, x)
    # every array of the input (integer selectors and labels of tables included)
    assert len(_array_leaves(before)) == len(_array_leaves(x))
    for a, b in zip(_array_leaves(before), _array_leaves(x)):
        np.testing.assert_array_equal(a, b)


def _array_leaves(value):
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _array_leaves(item)]
    return [value] if hasattr(value, "shape") else []


@pytest.mark.parametrize("case", [c for c in CASES if c.roundtrip], ids=lambda c: c.name)
def test_save_load_round_trip(case, tmp_path):
    module = case.build()
    x, t = case.sample()
    path = tmp_path / "m.safetensors"
    ember.save(module, path)
    again = ember.load(path, backend="numpy:float64", classes={type(m) for m in module.modules()})  # e.g. LeakyCell
    assert type(again) is type(module)
    if case.is_criterion:
        assert again.forward(x, t) == pytest.approx(module.forward(x, t), rel=1e-12)
        mine, theirs = float_leaves(module.backward(x, t)), float_leaves(again.backward(x, t))
        assert len(mine) == len(theirs) > 0
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(b, a, rtol=1e-12)
        return
    out, gin, probe = _forward_backward(case, module, x)
    out2, gin2, _ = _forward_backward(case, again, x, probe)
    for a, b in zip(float_leaves(out) + float_leaves(gin), float_leaves(out2) + float_leaves(gin2)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
