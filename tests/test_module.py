"""Module contract details: flattening, sharing, containers, modes, errors."""

import numpy as np
import pytest

import ember
from ember import nn
from ember.backend import transposed_product_is_faster
from ember.errors import ShapeError


def mlp(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Linear(6, 5, rng=rng), nn.ReLU(), nn.Linear(5, 3, rng=rng), nn.LogSoftMax())


def test_get_parameters_gives_views_and_survives_a_second_call():
    net = mlp()
    p1, g1 = net.get_parameters()
    assert p1.size == 6 * 5 + 5 + 5 * 3 + 3
    p1[:] = 0.5
    assert np.all(net.get(0).weight == 0.5)
    p2, g2 = net.get_parameters()
    np.testing.assert_array_equal(p2, p1)
    p2[:] = 0.25
    assert np.all(net.get(2).bias == 0.25)
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    net.forward(x)
    net.backward(x, np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32))
    assert np.shares_memory(g2, net.get(0).grad_weight)
    assert np.abs(g2).sum() > 0


def test_shared_arrays_count_once_and_gradients_accumulate_in_one_place():
    a = nn.Linear(4, 4, rng=0)
    b = a.clone("weight", "bias")
    assert b.weight is a.weight and b.grad_weight is a.grad_weight
    siamese = nn.Sequential(a, nn.Tanh(), b)
    params, grads = siamese.get_parameters()
    assert params.size == 20
    assert a.weight is b.weight and np.shares_memory(a.weight, params)
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    siamese.zero_grad_parameters()
    siamese.forward(x)
    siamese.backward(x, np.ones((3, 4), np.float32))
    # the shared gradient is the sum of the two uses: dE/dW = g2^T h + g1^T x
    w, g2 = a.weight.astype(np.float64), np.ones((3, 4))
    h = np.tanh(x @ w.T + a.bias)
    g1 = (g2 @ w) * (1 - h**2)
    np.testing.assert_allclose(a.grad_weight, g2.T @ h + g1.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.grad_bias, g2.sum(0) + g1.sum(0), rtol=1e-5, atol=1e-6)
    before = params.copy()
    ember.optim.sgd(lambda _: (0.0, grads), params, {"learning_rate": 1.0})
    np.testing.assert_allclose(params, before - grads, rtol=1e-6)


def test_parameter_shared_without_its_gradient_is_an_error():
    a = nn.Linear(2, 2)
    b = nn.Linear(2, 2)
    b.weight = a.weight
    with pytest.raises(ValueError, match="shared with another module but its gradient is not"):
        nn.Sequential(a, b).get_parameters()


def test_to_keeps_sharing_and_changes_dtype():
    a = nn.Linear(3, 3, rng=0)
    net = nn.Sequential(a, a.clone("weight", "bias")).to("numpy:float64")
    assert net.get(0).weight.dtype == np.float64
    assert net.get(0).weight is net.get(1).weight
    assert net.backend == ember.Backend("numpy", "float64")


def test_sequential_container_api():
    seq = nn.Sequential()
    seq.add(nn.Linear(2, 3)).add(nn.Tanh())
    seq.insert(nn.Identity(), 0)
    assert len(seq) == 3 and isinstance(seq.get(0), nn.Identity) and isinstance(seq[-1], nn.Tanh)
    removed = seq.remove(0)
    assert isinstance(removed, nn.Identity) and len(seq) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "Tanh"]
    assert [type(m).__name__ for m in seq.modules()] == ["Sequential", "Linear", "Tanh"]
    with pytest.raises(IndexError):
        seq.get(5)
    with pytest.raises(TypeError, match="expected a Module"):
        seq.add("Linear")
    text = repr(seq)
    assert "Sequential {" in text and "(0): Linear(2 -> 3)" in text and "[input -> (0) -> (1) -> output]" in text


def test_training_and_evaluate_switch_the_whole_tree():
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    net.evaluate()
    assert not any(m.train for m in net.modules())
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(net.forward(x), net.get(0).output)
    net.training()
    assert all(m.train for m in net.modules())


def test_apply_and_find_modules():
    net = mlp()
    names = []
    net.apply(lambda m: names.append(type(m).__name__))
    assert names == ["Sequential", "Linear", "ReLU", "Linear", "LogSoftMax"]
    assert len(net.find_modules(nn.Linear)) == 2 and len(net.find_modules("ReLU")) == 1


def test_buffers_are_reused_across_calls():
    net = mlp()
    x = np.ones((4, 6), np.float32)
    first = net.forward(x)
    second = net.forward(x * 2)
    assert first is second  # documented: the returned array is overwritten by the next call


def test_skipping_the_input_gradient_keeps_parameter_gradients():
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    go = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    full, skip = mlp(), mlp()
    skip.compute_grad_input = False
    for net in (full, skip):
        net.zero_grad_parameters()
        net.forward(x)
    assert full.backward(x, go) is not None
    assert skip.backward(x, go) is None
    for a, b in zip(full.parameters()[1], skip.parameters()[1]):
        np.testing.assert_array_equal(a, b)


def test_linear_rejects_a_wrong_feature_count_naming_the_module():
    net = mlp()
    with pytest.raises(ShapeError) as info:
        net.forward(np.ones((2, 7), np.float32))
    message = str(info.value)
    assert "Linear(6 -> 5)" in message and "(N, 6)" in message and "(2, 7)" in message
    assert "in module 0 (Linear(6 -> 5)) of Sequential" in "".join(getattr(info.value, "__notes__", []))


def test_wrong_dtype_and_non_array_inputs_are_named():
    lin = nn.Linear(3, 2)
    with pytest.raises(ShapeError, match=r"Linear\(3 -> 2\): expected input of dtype float32, got float64"):
        lin.forward(np.ones((1, 3)))
    with pytest.raises(ShapeError, match="expected input as a NumPy array, got a list"):
        lin.forward([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    "target, message",
    [
        (np.array([0, 10]), r"labels must be in \[0, 9\] \(0-based\), got 10"),
        (np.array([-1, 2]), r"labels must be in \[0, 9\] \(0-based\), got -1"),
        (np.array([0.0, 1.0]), "expected integer class labels .0-based., got dtype float64"),
        (np.array([1, 2, 3]), r"expected 2 labels, shape \(2,\)"),
        ("3", "expected integer class labels"),
    ],
)
def test_class_nll_rejects_bad_labels_clearly(target, message):
    crit = nn.ClassNLLCriterion()
    with pytest.raises(ShapeError, match=message):
        crit.forward(np.zeros((2, 10), np.float32), target)


def test_class_nll_accepts_one_sample_with_an_int_label():
    crit = nn.ClassNLLCriterion()
    x = np.log(np.full(4, 0.25, np.float32))
    assert crit.forward(x, 2) == pytest.approx(np.log(4), rel=1e-6)
    assert crit.backward(x, 2).tolist() == [0, 0, -1, 0]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.Linear(0, 3), "in_features must be a positive int"),
        (lambda: nn.Dropout(1.0), r"p \(the drop probability\) must be in \[0, 1\)"),
        (lambda: nn.HardTanh(1, -1), "min_value must be < max_value"),
        (lambda: nn.Reshape(0), "size must be positive ints"),
        (lambda: nn.SoftPlus(beta=0), "beta must be > 0"),
    ],
)
def test_bad_constructor_arguments_name_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_dropout_v1_and_v2_scaling():
    x = np.ones((1000, 10), np.float32)
    v2 = nn.Dropout(0.25, rng=0)
    y = v2.forward(x)
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    v2.evaluate()
    np.testing.assert_array_equal(v2.forward(x), x)
    v1 = nn.Dropout(0.25, v1=True, rng=0)
    assert set(np.unique(v1.forward(x))) <= {0.0, 1.0}
    v1.evaluate()
    np.testing.assert_allclose(v1.forward(x), 0.75 * x)


def test_log_softmax_is_stable_for_large_scores():
    y = nn.LogSoftMax().forward(np.array([[1000.0, 0.0, -1000.0]], np.float32))
    assert np.all(np.isfinite(y)) and y[0, 0] == pytest.approx(0.0)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_forward_is_the_same_for_every_batch_size_and_product_form(bias, dtype):
    # Linear computes y = x W^T + b as (W x^T)^T for a few samples through a wide layer
    # (faster in OpenBLAS there); every batch size must give the formula's answer.
    rng = np.random.default_rng(0)
    lin = nn.Linear(300, 260, bias=bias, rng=rng).to(ember.Backend("numpy", dtype))
    forms = set()
    for n in (1, 2, 3, 17, 48, 49, 64):
        x = rng.standard_normal((n, 300)).astype(dtype)
        expected = x.astype(np.float64) @ lin.weight.astype(np.float64).T
        if bias:
            expected += lin.bias
        got = lin.forward(x)
        assert got.shape == (n, 260) and got.flags.c_contiguous
        np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-4 if dtype == "float32" else 1e-12)
        forms.add(transposed_product_is_faster(n, 300, 260))
    assert forms == {True, False}  # both forms were exercised


@pytest.mark.parametrize("devices, message", [(0, "no NVIDIA GPU was found"), (RuntimeError("no driver"), "CUDA is not usable")])
def test_cupy_backend_without_a_gpu_fails_at_once(monkeypatch, devices, message):
    import sys
    import types

    def count():
        if isinstance(devices, Exception):
            raise devices
        return devices

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(ImportError, match=message):
        ember.Backend("cupy")


def test_linear_weight_gradient_checks_grad_output_even_without_the_input_gradient():
    # a network that skips dE/dx (compute_grad_input=False) calls only acc_grad_parameters
    lin = nn.Linear(4, 3)
    x = np.ones((2, 4), np.float32)
    lin.forward(x)
    with pytest.raises(ShapeError, match=r"Linear\(4 -> 3\): expected grad_output of shape \(2, 3\), got .*\(50, 3\)"):
        lin.acc_grad_parameters(x, np.ones((50, 3), np.float32))
    assert not lin.grad_weight.any()


def test_blas_gemm_refuses_shapes_that_do_not_fit():
    from ember import _blas

    if not _blas.AVAILABLE:
        pytest.skip("no OpenBLAS found in NumPy")
    out = np.zeros((2, 3), np.float32)
    assert _blas.gemm(np.ones((2, 4), np.float32), np.ones((4, 3), np.float32), out) and (out == 4).all()
    out[...] = 0
    assert not _blas.gemm(np.ones((2, 4), np.float32), np.ones((5, 3), np.float32), out)
    assert not _blas.gemm(np.ones((2, 4), np.float32), np.ones((4, 3), np.float32), np.zeros((3, 3), np.float32))
    assert not out.any()


@pytest.mark.parametrize("make", [lambda: nn.Add(3), lambda: nn.CMul(3), lambda: nn.Mul()])
def test_learned_bias_and_scales_check_grad_output(make):
    module = make()
    x = np.ones((2, 3), np.float32)
    module.forward(x)
    for call in (module.update_grad_input, module.acc_grad_parameters):
        with pytest.raises(ShapeError, match=rf"{type(module).__name__}.*expected grad_output of shape \(2, 3\), got"):
            call(x, np.ones((4, 3), np.float32))
