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


@pytest.mark.parametrize("case", WITH_TORCH, ids=lambda c: c.name)
def test_matches_pytorch(case):
    module = case.build()
    x, t = case.sample()
    fn, pairs = case.torch(module, torch)
    tx = _to_torch(x)
    if case.is_criterion:
        tt = _to_torch(np.asarray(t))
        loss = fn(tx, tt)
        ours = module.forward(x, t)
        assert ours == pytest.approx(loss.item(), rel=1e-9, abs=1e-12)
        loss.backward()
        np.testing.assert_allclose(module.backward(x, t), tx.grad.numpy(), rtol=1e-8, atol=1e-12)
        return
    out = fn(*tx) if isinstance(tx, list) else fn(tx)
    ours = module.forward(x)
    for a, b in zip(float_leaves(ours), float_leaves(map_structure(lambda v: v.detach().numpy(), out if isinstance(out, (list, tuple)) else [out]))):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    probe = map_structure(lambda o: np.random.default_rng(5).standard_normal(o.shape) if hasattr(o, "shape") else o, ours)
    module.zero_grad_parameters()
    gin = module.backward(x, probe)
    outs = out if isinstance(out, (list, tuple)) else [out]
    torch.autograd.backward(list(outs), [torch.tensor(p) for p in float_leaves(probe)])
    torch_leaves = [v for v in (tx if isinstance(tx, list) else [tx]) if v.dtype == torch.float64]
    for a, leaf in zip(float_leaves(gin), torch_leaves):
        np.testing.assert_allclose(a, leaf.grad.numpy(), rtol=1e-8, atol=1e-12)
    names = {id(p): n for n, p in module.named_arrays()}
    params, grads = module.parameters()
    grad_of = {id(p): g for p, g in zip(params, grads)}
    for ember_param, torch_param in pairs:
        np.testing.assert_allclose(grad_of[id(ember_param)], torch_param.grad.numpy(), rtol=1e-8, atol=1e-12,
                                   err_msg=f"gradient of {names.get(id(ember_param))}")
