"""ember._pages: long flat vectors on 2 MB pages where Linux allows it, NumPy arrays otherwise.

Only speed may differ between the two kinds of memory: these tests check the vectors' shape,
dtype, contents and alignment, that the flat parameters, gradients and SGD's momentum use
them, and every fallback (short vectors, no THP, a refused madvise).
"""

import mmap

import numpy as np
import pytest

import ember
from ember import _pages, nn, optim

LONG = _pages.MIN_BYTES // 4 + 1000  # float32 elements: just over the threshold


def _address(a):
    return a.__array_interface__["data"][0]


def _huge_pages_here():
    return _pages.available()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_gives_a_writable_vector_of_the_asked_length_and_dtype(dtype):
    v = _pages.empty(LONG, dtype)
    assert v.shape == (LONG,) and v.dtype == dtype and v.flags.writeable and v.flags.c_contiguous
    v[:] = np.arange(LONG, dtype=dtype)
    assert v[0] == 0 and v[-1] == LONG - 1
    if _huge_pages_here():
        assert _address(v) % _pages.HUGE_PAGE == 0  # starts on a 2 MB boundary
        owner = v
        while isinstance(owner, np.ndarray):
            owner = owner.base
        assert isinstance(getattr(owner, "obj", owner), mmap.mmap)  # the array keeps its mapping alive


def test_like_fills_and_copies():
    x = np.random.default_rng(0).standard_normal(LONG).astype(np.float32)
    np.testing.assert_array_equal(_pages.like(x, None), x)
    assert (_pages.like(x, 0.25) == np.float32(0.25)).all()
    assert _pages.like(x, None).dtype == np.float32


def test_short_vectors_come_from_numpy():
    v = _pages.empty(100, np.float32)
    assert v.base is None and v.shape == (100,)


def test_without_huge_pages_the_vectors_come_from_numpy(monkeypatch):
    monkeypatch.setitem(_pages._state, "available", False)
    v = _pages.empty(LONG, np.float32)
    assert v.base is None and v.shape == (LONG,)


def test_switched_off_by_hand_or_by_the_environment(monkeypatch):
    monkeypatch.setitem(_pages._state, "available", True)
    monkeypatch.setitem(_pages._state, "enabled", True)
    _pages.set_enabled(False)
    assert not _pages.available() and _pages.empty(LONG, np.float32).base is None
    _pages.set_enabled(True)
    assert _pages.available()
    with pytest.raises(TypeError, match="expected a bool"):
        _pages.set_enabled(1)
    monkeypatch.delitem(_pages._state, "enabled")
    monkeypatch.setenv("EMBER_HUGE_PAGES", "0")
    assert not _pages.available()
    monkeypatch.delitem(_pages._state, "enabled")
    monkeypatch.setenv("EMBER_HUGE_PAGES", "1")
    assert _pages.available()


def test_the_kernel_setting_is_read(monkeypatch, tmp_path):
    for text, expected in (("always [madvise] never\n", True), ("[always] madvise never\n", True),
                           ("always madvise [never]\n", False)):  # fmt: skip
        setting = tmp_path / "enabled"
        setting.write_text(text)
        monkeypatch.setattr(_pages, "_THP_SETTING", str(setting))
        assert _pages._kernel_allows_huge_pages() is (expected and hasattr(mmap, "MADV_HUGEPAGE")
                                                        and __import__("sys").platform.startswith("linux"))  # fmt: skip
    monkeypatch.setattr(_pages, "_THP_SETTING", str(tmp_path / "missing"))
    assert _pages._kernel_allows_huge_pages() is False


def test_a_refused_madvise_still_gives_a_working_vector(monkeypatch):
    if not hasattr(mmap, "MADV_HUGEPAGE"):
        pytest.skip("no MADV_HUGEPAGE in this Python")

    class Refusing(mmap.mmap):
        def madvise(self, *args):
            raise OSError("refused")

    class FakeModule:
        MAP_PRIVATE, MAP_ANONYMOUS, MADV_HUGEPAGE = mmap.MAP_PRIVATE, mmap.MAP_ANONYMOUS, mmap.MADV_HUGEPAGE
        mmap = Refusing

    monkeypatch.setitem(_pages._state, "available", True)
    monkeypatch.setattr(_pages, "mmap", FakeModule)
    v = _pages.like(np.zeros(LONG), 0.0)
    v[-1] = 3.0
    assert v.shape == (LONG,) and v.sum() == 3.0


def test_flat_parameters_gradients_and_momentum_use_them():
    net = nn.Sequential(nn.Linear(1000, 600), nn.Tanh(), nn.Linear(600, 10))  # 606 610 parameters, 2.4 MB
    x = np.random.default_rng(1).standard_normal((4, 1000)).astype(np.float32)
    reference = net.clone()
    params, grads = net.get_parameters()
    ref_params, ref_grads = reference.parameters()
    assert params.size * 4 >= _pages.MIN_BYTES
    # the views into the flat vectors hold the same numbers as before flattening
    np.testing.assert_array_equal(net.get(0).weight, ref_params[0])
    state = {"learning_rate": 0.1, "momentum": 0.9}

    def feval(p):
        grads.fill(0)
        net.backward(x, np.ones_like(net.forward(x)))
        return 0.0, grads

    for _ in range(2):
        optim.sgd(feval, params, state)
    if _huge_pages_here():
        for vector in (params, grads, state["dfdx"]):
            assert _address(vector) % _pages.HUGE_PAGE == 0
    assert np.isfinite(params).all() and grads.any()


def test_a_gpu_like_or_short_state_vector_is_an_ordinary_copy():
    from ember.optim._validate import state_vector

    small = np.arange(5.0)
    copy = state_vector(small, None)
    np.testing.assert_array_equal(copy, small)
    assert copy is not small and not np.shares_memory(copy, small)
    assert (state_vector(np.zeros((3, 4)), 2.0) == 2.0).all()  # 2-D: NumPy's own array


def test_backend_flat_vector_fills():
    b = ember.Backend("numpy", "float64")
    assert (b.flat_vector(10, fill=1.5) == 1.5).all() and b.flat_vector(10).dtype == np.float64
    assert b.flat_vector(LONG, fill=None).shape == (LONG,)
