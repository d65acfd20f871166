"""The compiled classifier head (ember[fast]: LogSoftMax rows, ClassNLL) and the compiled
BLAS product (``_blas_jit.gemm``) against their NumPy / ctypes references.

Each computation runs with the compiled path on and forced off (``_fast.set_enabled``);
results must agree bit for bit where the arithmetic is the same (ClassNLL, the product:
one BLAS call with the same arguments) and to float rounding where only the order of a
row's additions differs (LogSoftMax). Each test also checks that the compiled path ran.
"""

import numpy as np
import pytest
from compiled_paths import both, restore_fast  # noqa: F401  (restore_fast: a fixture)

from ember import _blas, _fast, nn
from ember.nn import _softmax_fast

pytest.importorskip("numba")

DTYPES = ["float32", "float64"]
TOLERANCE = {"float32": 2e-6, "float64": 1e-14}


pytestmark = pytest.mark.usefixtures("restore_fast")


def _scores(dtype, n=7, c=10, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, c)).astype(dtype) * 4
    x[1, -1] = 80  # a dominant score: the shift by the row maximum matters
    x[2] = -1e4
    return x


# ------------------------------------------------------------------ LogSoftMax
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("classes", [1, 2, 10, 37])
def test_log_softmax_compiled_matches_numpy(dtype, classes):
    x = _scores(dtype, c=classes)
    go = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    module = nn.LogSoftMax().to("numpy:" + dtype)
    module.forward(x)
    assert _softmax_fast.rows_ready(x, module.output)  # the compiled path runs
    fast, reference = both(lambda: module.forward(x).copy())
    np.testing.assert_allclose(fast, reference, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    fast_lse, reference_lse = both(lambda: (module.forward(x), module.lse.copy())[1])
    np.testing.assert_allclose(fast_lse, reference_lse, rtol=TOLERANCE[dtype])
    module.forward(x)
    fast, reference = both(lambda: module.backward(x, go).copy())
    np.testing.assert_allclose(fast, reference, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_log_softmax_compiled_keeps_nan_and_inf_rows_as_numpy(dtype):
    x = _scores(dtype, n=5)
    x[0, 4] = np.nan
    x[1, 2] = np.inf
    x[3] = -np.inf
    module = nn.LogSoftMax().to("numpy:" + dtype)
    with np.errstate(invalid="ignore"):
        fast, reference = both(lambda: module.forward(x).copy())
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(reference))
    np.testing.assert_allclose(fast[4], reference[4], rtol=TOLERANCE[dtype])


def test_log_softmax_other_layouts_use_the_numpy_code():
    x = np.asfortranarray(_scores("float64"))
    assert not _softmax_fast.rows_ready(x, np.empty_like(x, order="C"))
    module = nn.LogSoftMax().to("numpy:float64")
    fast, reference = both(lambda: module.forward(x).copy())
    np.testing.assert_array_equal(fast, reference)
    image = np.random.default_rng(2).standard_normal((2, 3, 4, 5))  # (N, C, H, W): the class axis is not last
    fast, reference = both(lambda: module.forward(image).copy())
    np.testing.assert_array_equal(fast, reference)


# ------------------------------------------------------------------ ClassNLL
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", ["int64", "int32", "uint8"])
@pytest.mark.parametrize("size_average", [True, False])
def test_class_nll_compiled_matches_numpy_exactly(dtype, label_dtype, size_average):
    x = _scores(dtype, n=9)
    target = np.random.default_rng(3).integers(0, 10, 9).astype(label_dtype)
    crit = nn.ClassNLLCriterion(size_average=size_average).to("numpy:" + dtype)
    assert crit._compiled(x, target, _softmax_fast.pick_classes)
    fast, reference = both(lambda: crit.forward(x, target))
    assert fast == reference
    fast, reference = both(lambda: crit.backward(x, target).copy())
    np.testing.assert_array_equal(fast, reference)


def test_class_nll_bad_labels_raise_the_same_error_on_both_paths():
    x = _scores("float32", n=4)
    crit = nn.ClassNLLCriterion()
    for bad in ([0, 1, 10, 2], [0, -1, 3, 2]):
        for on in (True, False):
            _fast.set_enabled(on)
            with pytest.raises(ValueError, match="labels must be in"):
                crit.forward(x, np.array(bad))
            with pytest.raises(ValueError, match="labels must be in"):
                crit.backward(x, np.array(bad))


def test_class_nll_ignored_samples_and_weights_use_the_numpy_code():
    x = _scores("float64", n=6)
    target = np.array([0, 3, -100, 9, -100, 1])  # ignore_index: the compiled pick stops, NumPy takes over
    crit = nn.ClassNLLCriterion().to("numpy:float64")
    fast, reference = both(lambda: (crit.forward(x, target), crit.backward(x, target).copy()))
    assert fast[0] == reference[0]
    np.testing.assert_array_equal(fast[1], reference[1])
    weighted = nn.ClassNLLCriterion(weights=np.linspace(0.5, 2, 10))
    assert not weighted._compiled(x, target, _softmax_fast.pick_classes)
    inside = nn.ClassNLLCriterion(ignore_index=3)  # an ignored class among the classes
    assert not inside._compiled(x, np.array([0, 3, 2, 9, 5, 1]), _softmax_fast.pick_classes)


# ------------------------------------------------------------------ the compiled BLAS product
def _operands(dtype, rng):
    """(a, b, out) triples in every layout _blas.gemm accepts, and some it refuses."""
    def mat(rows, cols):
        return rng.standard_normal((rows, cols)).astype(dtype)

    wide = mat(8, 40)
    yield mat(5, 7), mat(7, 3), mat(5, 3)  # all rows contiguous
    yield mat(7, 5).T, mat(3, 7).T, mat(5, 3)  # transposed views
    yield wide[:5, 2:9], wide[:7, 20:23], mat(5, 3)  # blocks of a wider matrix: leading dimension 40
    yield mat(5, 7), mat(7, 3), wide[1:6, 30:33]  # the output a block too
    yield mat(1, 7), mat(7, 1), mat(1, 1)  # single row and column
    yield mat(5, 0), mat(0, 3), mat(5, 3)  # k = 0: out = beta * out
    yield mat(0, 7), mat(7, 3), mat(0, 3)  # m = 0: nothing to do
    yield mat(5, 14)[:, ::2], mat(7, 3), mat(5, 3)  # strided columns: refused
    yield mat(5, 7), mat(7, 3), mat(3, 5).T  # transposed output: refused
    yield mat(5, 7), mat(6, 3), mat(5, 3)  # shapes that do not fit: refused


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha, beta", [(1.0, 0.0), (1.0, 1.0), (-0.5, 0.25), (0.1, 1.0)])
def test_compiled_gemm_makes_the_same_call_as_ctypes(dtype, alpha, beta):
    if not _blas.AVAILABLE:
        pytest.skip("no BLAS library found")
    _blas.gemm(np.ones((2, 2), dtype), np.ones((2, 2), dtype), np.ones((2, 2), dtype))
    if not _blas._state["gemm"]:
        pytest.skip("NumPy's BLAS is not the OpenBLAS of NumPy's wheels: no compiled product")
    for a, b, out in _operands(dtype, np.random.default_rng(4)):
        start = out.copy()

        def run(a=a, b=b, out=out, start=start):
            out[...] = start
            return _blas.gemm(a, b, out, alpha, beta), out.copy()

        (done_fast, fast), (done_ref, reference) = both(run)
        assert done_fast == done_ref, (a.shape, a.strides, b.shape, out.strides)
        np.testing.assert_array_equal(fast, reference)


def test_compiled_gemm_is_not_used_for_another_library(monkeypatch):
    if not _blas.AVAILABLE or _blas._state.get("numpy") is None:
        pytest.skip("no BLAS library found")

    def refuse(*args):
        raise AssertionError("the compiled product ran for a library it was not built for")

    other = _blas._open(_blas._state["numpy"].path)  # the same file, as another chosen library
    monkeypatch.setitem(_blas._state, "gemm", refuse)
    monkeypatch.setitem(_blas._state, "library", other)
    a, b, out = np.ones((3, 4), np.float32), np.ones((4, 2), np.float32), np.zeros((3, 2), np.float32)
    assert _blas.gemm(a, b, out)
    np.testing.assert_array_equal(out, 4)
