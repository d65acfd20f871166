"""What a module keeps between calls never changes a result, and ``clear_state`` drops it.

Over every case of ``tests/cases.py``:

* a module called first on a larger input (more samples, larger images or sequences),
  then on the case's input, then on a non-contiguous view of it, then on a single
  sample, gives at each call what a fresh module gives (output, input gradient,
  parameter gradients): buffers reused across calls hold nothing that leaks into the next;
* after ``clear_state()`` the module tree holds no per-call array: walking every module's
  attributes (through lists, tuples and dicts), the only arrays left are parameters, their
  gradients, ``_buffer_names`` and ``_constant_names``.
"""

import numpy as np
import pytest
from cases import CASES

from ember import nn
from ember.errors import ShapeError
from ember.nn.module import Module
from ember.testing import float_leaves, map_structure

def _mark(case):
    return pytest.param(case, id=case.name)


def _copy(value):
    return map_structure(lambda v: v.copy() if hasattr(v, "copy") else v, value)


def _probe(out):
    return map_structure(lambda o: np.random.default_rng(3).standard_normal(o.shape) if hasattr(o, "shape") else o, out)


def _call(case, module, x, t):
    """(output, input gradient, parameter gradients) of one forward/backward on fresh grads."""
    module.zero_grad_parameters()
    if case.is_criterion:
        out = module.forward(x, t)
        return out, _copy(module.backward(x, t)), []
    if case.reseed:
        case.reseed(module)
    out = _copy(module.forward(x))
    gin = _copy(module.backward(x, _probe(out)))
    return out, gin, [g.copy() for g in module.parameters()[1]]


def _leaves(value):
    return [np.asarray(value)] if np.isscalar(value) else float_leaves(value)


def _same(got, expected, what):
    (out, gin, grads), (out2, gin2, grads2) = got, expected
    pairs = [("output", out, out2), ("input gradient", gin, gin2)] + [("parameter gradient", a, b) for a, b in zip(grads, grads2)]
    for name, a, b in pairs:
        leaves, fresh = _leaves(a), _leaves(b)
        assert len(leaves) == len(fresh) and (leaves or name != "output")
        for u, v in zip(leaves, fresh):
            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12, err_msg=f"{what}: {name}")


def _map_arrays(fn, value):
    if isinstance(value, (list, tuple)):
        return type(value)(_map_arrays(fn, v) for v in value)
    return fn(value) if isinstance(value, np.ndarray) and value.ndim >= 1 else value


def _larger(x, t, rng):
    """Candidates of a larger call: twice the samples (the originals and a perturbed copy),
    and, for plain arrays, one more row/column/frame on the trailing axes."""

    def more_samples(a):
        extra = a + 0.25 * rng.standard_normal(a.shape) if a.dtype.kind == "f" else a[::-1]
        return np.concatenate([a, extra])

    candidates = [(_map_arrays(more_samples, x), _map_arrays(more_samples, t))]
    if isinstance(x, np.ndarray) and x.ndim >= 2:
        for axes in ((-1,), (-2,), (-2, -1)):
            pad = [(0, 0)] * x.ndim
            for axis in axes:
                pad[axis] = (0, 1)
            grown = np.pad(x, pad)
            grown[np.pad(np.zeros(x.shape, bool), pad, constant_values=True)] = 5.0 + rng.standard_normal()
            candidates.insert(0, (grown, t))
    return candidates


def _strided(x):
    """The same values in a non-contiguous layout: transposed storage, every other element."""

    def view(a):
        if a.dtype.kind != "f":
            return a
        base = np.zeros(a.shape[::-1] + (2,), a.dtype)
        base[..., 0] = a.T
        return base[..., 0].T

    return _map_arrays(view, x)


def _single(x, t):
    one = _map_arrays(lambda a: a[:1], x)
    return one, (_map_arrays(lambda a: a[:1], t) if t is not None else None)


def _accepted(case, x, t):
    """Whether a fresh module takes this input (some need fixed sizes)."""
    try:
        _call(case, case.build(), x, t)
    except (ShapeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_results_do_not_depend_on_earlier_calls_with_other_shapes(case):
    x, t = case.sample()
    rng = np.random.default_rng(11)
    module = case.build()
    reference = _call(case, case.build(), x, t)
    larger = [(a, b) for a, b in _larger(x, t, rng) if _accepted(case, a, b)]
    for big, big_t in larger:
        _call(case, module, big, big_t)
        _same(_call(case, module, x, t), reference, f"after a call on shape {np.shape(big) if hasattr(big, 'shape') else 'table'}")
    if not case.reseed:  # noise is drawn in memory order: another layout, another (valid) draw
        _same(_call(case, module, _strided(x), t), reference, "on a non-contiguous view of the input")
    one, one_t = _single(x, t)
    if _accepted(case, one, one_t):
        _same(_call(case, module, one, one_t), _call(case, case.build(), one, one_t), "on one sample")
        _same(_call(case, module, x, t), reference, "back on the case's input")


def _allowed(module):
    names = set(module._param_names) | set(module._buffer_names) | set(module._constant_names)
    return names | {"grad_" + name for name in module._param_names}


def _arrays_in(value, path, seen):
    if id(value) in seen or isinstance(value, Module):
        return []
    seen.add(id(value))
    if isinstance(value, np.ndarray):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _arrays_in(v, f"{path}[{k!r}]", seen)]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _arrays_in(v, f"{path}[{i}]", seen)]
    return []


@pytest.mark.parametrize("case", [_mark(c) for c in CASES])
def test_clear_state_leaves_no_per_call_array(case):
    module = case.build()
    x, t = case.sample()
    _call(case, module, x, t)
    module.clear_state()
    left = []
    for sub in module.modules():
        allowed = _allowed(sub)
        for name, value in vars(sub).items():
            # constructor arguments, as given; the padding mask is the user's setting (set_mask)
            if name not in allowed and name not in ("_spec_args", "mask"):
                left += [f"{type(sub).__name__}.{p}" for p in _arrays_in(value, name, set())]
    assert not left, f"arrays left after clear_state(): {left}"


@pytest.mark.parametrize("pooling", ["max", "average"])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_padded_pooling_after_a_larger_input(pooling, ceil_mode):
    # issue 11: a 6x1 image of 5s, then arange(5) - 10 as 5x1, returned [-9, -7, 5] (a 5 of
    # the earlier image left in the padding border) instead of [-9, -7, -6]
    make = {"max": lambda: nn.SpatialMaxPooling(1, 3, 1, 2, 0, 1, ceil_mode=ceil_mode),
            "average": lambda: nn.SpatialAveragePooling(1, 3, 1, 2, 0, 1, ceil_mode=ceil_mode)}[pooling]  # fmt: skip
    module = make().to("numpy:float64")
    module.forward(np.full((1, 6, 1), 5.0))
    x = (np.arange(5.0) - 10).reshape(1, 5, 1)
    got = module.forward(x).ravel()
    np.testing.assert_array_equal(got, make().to("numpy:float64").forward(x).ravel())
    padded = np.concatenate([[np.nan], x.ravel(), [np.nan] * 2])  # top padding, bottom padding/ceil edge
    windows = [padded[2 * i : 2 * i + 3] for i in range(len(got))]
    if pooling == "max":
        np.testing.assert_array_equal(got, [np.nanmax(w) for w in windows])
    else:  # count_include_pad: the padding counts (rows 0..6 of the padded column), the ceil-mode edge does not
        divisors = [min(2 * i + 3, 7) - 2 * i for i in range(len(got))]
        np.testing.assert_allclose(got, [np.nansum(w) / d for w, d in zip(windows, divisors)], rtol=1e-12)
