"""Choosing the BLAS ember's ctypes calls use (``ember.configure_blas`` / ``EMBER_BLAS``):
the switch selects the library, results equal NumPy's, missing libraries fail clearly.

The optional libraries (pip ``scipy-openblas32``, ``scipy-openblas64``, ``mkl``) are
tested when installed and skipped otherwise; NumPy's own library chosen by its path
always runs the path route.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

from ember import _blas

pytestmark = pytest.mark.skipif(not _blas.AVAILABLE or _blas.library() is None, reason="no CBLAS found in NumPy")
OPTIONAL = ["scipy-openblas32", "scipy-openblas64", "mkl"]


@pytest.fixture(autouse=True)
def restore():
    before = _blas.library()
    yield
    if before is not None:
        _blas._bind(before)


def _installed(name):
    try:
        return _blas.find_library(name)
    except ValueError as error:
        pytest.skip(f"{name} not installed: {error}")


def _check_results_equal_numpy(dtype):
    rng = np.random.default_rng(3)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    a, b = rng.standard_normal((37, 53)).astype(dtype), rng.standard_normal((29, 53)).astype(dtype)
    out = rng.standard_normal((37, 29)).astype(dtype)
    expected = 0.5 * a @ b.T + out
    assert _blas.gemm(a, b.T, out, 0.5, 1.0)
    np.testing.assert_allclose(out, expected, **tol)
    x, y = rng.standard_normal(37).astype(dtype), rng.standard_normal(29).astype(dtype)
    expected = out + 2.0 * np.outer(x, y)
    assert _blas.ger(2.0, x, y, out)
    np.testing.assert_allclose(out, expected, **tol)
    v = rng.standard_normal((37, 29)).astype(dtype)
    expected = 0.9 * out - 0.1 * v
    assert _blas.axpby(-0.1, v, 0.9, out)
    np.testing.assert_allclose(out, expected, **tol)


def test_default_is_numpys_own_library():
    lib = _blas.library()
    assert lib is not None and lib.path == _blas.find_library("numpy")
    assert not _blas.describe().startswith("ember:")  # one library: NumPy's line alone
    assert _blas.sgemm_address() != 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpys_library_chosen_by_path(dtype):
    path = _blas.find_library("numpy")
    text = _blas.configure_blas(path, threads=1)
    assert _blas.library().path == path and os.path.basename(path) in text
    _check_results_equal_numpy(dtype)


@pytest.mark.parametrize("name", OPTIONAL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optional_library_is_selected_and_matches_numpy(name, dtype):
    path = _installed(name)
    text = _blas.configure_blas(name, threads=1)
    lib = _blas.library()
    assert lib.path == path
    width = {"scipy-openblas32": ctypes.c_int, "scipy-openblas64": ctypes.c_int64, "mkl": ctypes.c_int64}
    assert lib.int_type is width[name]
    assert _blas.describe() == f"ember: {text} | NumPy: {_blas.open_library('numpy').describe()}"
    assert _blas.sgemm_address() == lib.address("sgemm") != _blas.open_library("numpy").address("sgemm")
    _check_results_equal_numpy(dtype)


@pytest.mark.parametrize("name", OPTIONAL)
def test_linear_layer_under_optional_library_matches_numpy(name):
    import ember.nn as nn

    _installed(name)
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((64, 50)).astype(np.float32), rng.standard_normal((64, 40)).astype(np.float32)
    results = []
    for choice in ("numpy", name):
        _blas.configure_blas(choice)
        layer = nn.Linear(50, 40)
        layer.weight[...] = rng.standard_normal((40, 50)) if not results else results[0][3]
        layer.bias[...] = 0.1
        layer.zero_grad_parameters()
        out = layer.forward(x).copy()
        gin = layer.backward(x, g).copy()
        results.append((out, gin, layer.grad_weight.copy(), layer.weight.copy()))
    for ours, theirs in zip(results[0][:3], results[1][:3]):
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)


def test_missing_library_errors_name_it_and_keep_the_choice(monkeypatch, tmp_path):
    before = _blas.library()
    with pytest.raises(ValueError, match="no such library file '/nonexistent/libblas.so'"):
        _blas.configure_blas("/nonexistent/libblas.so")
    with pytest.raises(ValueError, match="unknown name 'openblas'; known: numpy, scipy-openblas32"):
        _blas.configure_blas("openblas")
    with pytest.raises(TypeError, match="name must be a non-empty str"):
        _blas.configure_blas("")
    with pytest.raises(ValueError, match="threads must be None or a positive int"):
        _blas.configure_blas("numpy", threads=0)
    import importlib

    real_import = importlib.import_module

    def no_openblas(module, *args):
        if module.startswith("scipy_openblas"):
            raise ImportError(module)
        return real_import(module, *args)

    monkeypatch.setattr(importlib, "import_module", no_openblas)
    with pytest.raises(ValueError, match=r"'scipy-openblas32' is not installed \(pip install scipy-openblas32\)"):
        _blas.configure_blas("scipy-openblas32")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(sys, "base_prefix", str(tmp_path))
    monkeypatch.setenv("LD_LIBRARY_PATH", "")
    with pytest.raises(ValueError, match=r"no libmkl_rt.so was found under .*\(pip install mkl\)"):
        _blas.configure_blas("mkl")
    assert _blas.library() is before


def test_a_library_without_cblas_is_refused():
    with open("/proc/self/maps") as maps:
        libm = next((line.split()[-1] for line in maps if "/libm.so" in line or "/libm-" in line), None)
    if libm is None:
        pytest.skip("libm not mapped (not Linux/glibc)")
    with pytest.raises(ValueError, match="exports no CBLAS sgemm"):
        _blas.configure_blas(libm)


def _run_with(value):
    env = dict(os.environ, EMBER_BLAS=value, PYTHONPATH=os.pathsep.join(sys.path))
    code = "from ember import _blas; print(_blas.library().path)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_environment_variable_selects_and_reports_a_missing_library():
    done = _run_with("numpy")
    assert done.returncode == 0 and done.stdout.strip() == _blas.find_library("numpy")
    done = _run_with("/nonexistent/libblas.so")
    assert done.returncode != 0
    assert "ImportError: EMBER_BLAS='/nonexistent/libblas.so': configure_blas: no such library file" in done.stderr
