"""Each case with a PyTorch counterpart matches it (forward, grad input, grad parameters)."""

import numpy as np
import pytest
from cases import CASES

from ember.testing import float_leaves, map_structure

torch = pytest.importorskip("torch")
WITH_TORCH = [c for c in CASES if c.torch is not None]


def _to_torch(value):
    return map_structure(
        lambda v: torch.tensor(v, dtype=torch.float64 if v.dtype.kind == "f" else torch.int64, requires_grad=v.dtype.kind == "f")
        if hasattr(v, "dtype") else v,
        value,
    )


def _torch_leaves(value):
    """The float64 tensors inside a (nested) table, depth first, like float_leaves."""
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _torch_leaves(item)]
    return [value] if hasattr(value, "dtype") and value.dtype == torch.float64 else []


def _grad(leaf):
    """A leaf's gradient; an input that does not influence the result has none (zeros)."""
    return np.zeros(tuple(leaf.shape)) if leaf.grad is None else leaf.grad.numpy()


def _compare_input_grads(gin, tx):
    ours, theirs = float_leaves(gin), _torch_leaves(tx)
    assert len(ours) == len(theirs), f"{len(ours)} input gradients, PyTorch has {len(theirs)} inputs"
    for a, leaf in zip(ours, theirs):
        np.testing.assert_allclose(a, _grad(leaf), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("case", WITH_TORCH, ids=lambda c: c.name)
def test_matches_pytorch(case):
    module = case.build()
    x, t = case.sample()
    fn, pairs = case.torch(module, torch)
    tx = _to_torch(x)
    if case.is_criterion:
        tt = _to_torch(t if isinstance(t, (list, tuple)) else np.asarray(t))
        loss = fn(tx, tt)
        ours = module.forward(x, t)
        assert ours == pytest.approx(loss.item(), rel=1e-9, abs=1e-12)
        loss.backward()
        _compare_input_grads(module.backward(x, t), tx)
        return
    out = fn(*tx) if isinstance(tx, list) else fn(tx)
    ours = module.forward(x)
    ours_leaves, torch_outs = float_leaves(ours), _torch_leaves(out)
    assert len(ours_leaves) == len(torch_outs), f"{len(ours_leaves)} outputs, PyTorch gave {len(torch_outs)}"
    for a, b in zip(ours_leaves, torch_outs):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-9, atol=1e-12)
    probe = map_structure(lambda o: np.random.default_rng(5).standard_normal(o.shape) if hasattr(o, "shape") else o, ours)
    module.zero_grad_parameters()
    gin = module.backward(x, probe)
    torch.autograd.backward(torch_outs, [torch.tensor(p) for p in float_leaves(probe)])
    _compare_input_grads(gin, tx)
    names = {id(p): n for n, p in module.named_arrays()}
    params, grads = module.parameters()
    grad_of = {id(p): g for p, g in zip(params, grads)}
    for ember_param, torch_param in pairs:
        np.testing.assert_allclose(grad_of[id(ember_param)], torch_param.grad.numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=f"gradient of {names.get(id(ember_param))}")
