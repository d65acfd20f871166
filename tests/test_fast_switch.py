"""The switch for optional compiled kernels (ember._fast): NumPy stays the reference."""

import os
import subprocess
import sys

import numpy as np
import pytest

from ember import _fast


def test_set_enabled_returns_the_previous_setting_and_use_follows_it():
    compiled = object()
    previous = _fast.set_enabled(False)
    try:
        assert not _fast.use(compiled)
        assert not _fast.enabled()
        assert _fast.set_enabled(True) is False
        assert _fast.use(compiled)
        assert _fast.enabled() == _fast.available()
    finally:
        _fast.set_enabled(previous)


def test_a_missing_kernel_is_never_used():
    assert not _fast.use(None)


def test_kernel_compiles_with_numba_and_is_none_without(monkeypatch):
    def add_one(x):
        for i in range(x.shape[0]):
            x[i] += 1.0

    if _fast.available():
        compiled = _fast.kernel()(add_one)
        x = np.zeros(3)
        compiled(x)
        np.testing.assert_array_equal(x, np.ones(3))
    monkeypatch.setattr(_fast, "_numba", None)
    monkeypatch.setattr(_fast, "_checked", True)
    assert _fast.kernel()(add_one) is None
    assert not _fast.enabled()


def test_ember_fast_0_never_imports_numba():
    code = "import ember._fast as f, sys; print(f.enabled(), 'numba' in sys.modules)"
    env = dict(os.environ, EMBER_FAST="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(not _fast.available(), reason="numba not installed (the ember[fast] extra)")
def test_compiled_files_go_to_a_writable_cache():
    assert os.environ.get("NUMBA_CACHE_DIR")
