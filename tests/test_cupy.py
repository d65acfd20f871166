"""The CuPy (GPU) backend gives the NumPy backend's results.

Every case of ``tests/cases.py`` runs on both backends in float64 from the same
parameters: forward, gradient with respect to the input and to every parameter must
agree. Modules that draw random noise (dropout) are compared on the noise-free parts
only. Also: a short MNIST training on the GPU against the same run on the CPU, a model
file written from the GPU, and the optimizers on GPU vectors.

Skipped where CuPy or a GPU is missing (CI has none; run it on a GPU machine:
``python -m pytest tests/test_cupy.py``).
"""

import numpy as np
import pytest
from cases import CASES

import ember
from ember import nn, optim
from ember.testing import float_leaves, map_structure

cupy = pytest.importorskip("cupy")
try:
    HAS_GPU = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - the CUDA driver or runtime is missing
    HAS_GPU = False
pytestmark = pytest.mark.skipif(not HAS_GPU, reason="no GPU for CuPy")

GPU64 = "cupy:float64"


def _to_gpu(value):
    return map_structure(lambda v: cupy.asarray(v) if isinstance(v, np.ndarray) else v, value)


def _to_cpu(value):
    return map_structure(lambda v: cupy.asnumpy(v) if isinstance(v, cupy.ndarray) else v, value)


def _assert_on_gpu(value, what):
    for leaf in float_leaves(value):
        assert isinstance(leaf, cupy.ndarray), f"{what} is a {type(leaf).__name__}, not a CuPy array"


def _close(a, b, what):
    for x, y in zip(float_leaves(_to_cpu(a)), float_leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-11, err_msg=what)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cupy_matches_numpy(case):
    cpu, gpu = case.build(), case.build().to(GPU64)
    x, t = case.sample()
    if case.is_criterion:
        loss = cpu.forward(x, t)
        gpu_loss = gpu.forward(_to_gpu(x), _to_gpu(t))
        assert float(gpu_loss) == pytest.approx(loss, rel=1e-9, abs=1e-12)
        grad = gpu.backward(_to_gpu(x), _to_gpu(t))
        _assert_on_gpu(grad, "the gradient")
        _close(grad, cpu.backward(x, t), "gradient")
        return
    if case.reseed:  # random noise: both backends draw it the same way only on the CPU
        gpu.training()
        out = gpu.forward(_to_gpu(x))
        _assert_on_gpu(out, "the output")
        gpu.evaluate()
        cpu.evaluate()
    out = cpu.forward(x)
    gpu_out = gpu.forward(_to_gpu(x))
    _assert_on_gpu(gpu_out, "the output")
    _close(gpu_out, out, "output")
    probe = map_structure(lambda o: np.random.default_rng(5).standard_normal(o.shape) if hasattr(o, "shape") else o, out)
    cpu.zero_grad_parameters()
    gpu.zero_grad_parameters()
    gin = cpu.backward(x, probe)
    gpu_gin = gpu.backward(_to_gpu(x), _to_gpu(probe))
    _assert_on_gpu(gpu_gin, "the input gradient")
    _close(gpu_gin, gin, "input gradient")
    for (name, a), b in zip(gpu.named_arrays(), [v for _, v in cpu.named_arrays()], strict=True):
        _close(a, b, f"parameter {name}")
    for a, b in zip(gpu.parameters()[1], cpu.parameters()[1], strict=True):
        _close(a, b, "parameter gradient")


def _small_mnist(n=2000):
    from ember.training import load_dataset

    return load_dataset((784,), limit=n)


def test_training_on_the_gpu_follows_the_cpu(tmp_path):
    from ember.training import TrainOptions, fit

    data = _small_mnist()
    runs = []
    for backend in ("numpy:float64", GPU64):
        model = ember.models.build_model("mnist-mlp", rng=np.random.default_rng(0)).to(backend)
        save = tmp_path / f"{backend.split(':')[0]}.safetensors"
        options = TrainOptions(epochs=1, batch_size=50, lr=0.05, momentum=0.9, seed=0, save=str(save), progress=False)
        history = fit(model, nn.ClassNLLCriterion(), data, options)
        runs.append((history[-1], save, model))
    (cpu_row, _, _), (gpu_row, gpu_file, gpu_model) = runs
    assert gpu_row["train_loss"] == pytest.approx(cpu_row["train_loss"], rel=1e-6)
    assert gpu_row["test_acc"] == pytest.approx(cpu_row["test_acc"], abs=1e-3)
    from ember.training import evaluate

    _, acc, _ = evaluate(gpu_model, nn.ClassNLLCriterion(), data.x_test, data.y_test)  # a CPU criterion: moved
    assert acc == pytest.approx(gpu_row["test_acc"])
    loaded = ember.load(str(gpu_file))  # written from GPU arrays, read back on the CPU
    x = data.x_test[:16].astype(np.float32)
    np.testing.assert_allclose(loaded.forward(x), cupy.asnumpy(gpu_model.forward(cupy.asarray(x, dtype=cupy.float64))),
                               rtol=1e-4, atol=1e-5)  # fmt: skip


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_optimizers_run_on_gpu_vectors(name):
    """A few steps on a quadratic with GPU vectors give the CPU's iterates."""
    target = np.linspace(-1, 1, 7)
    results = []
    for xp in (np, cupy):
        x = xp.zeros(7)
        goal = xp.asarray(target)

        def feval(v, goal=goal):
            diff = v - goal
            return float((diff * diff).sum()), 2 * diff

        state, config = {}, {}
        for _ in range(3):
            x = optim.OPTIMIZERS[name](feval, x, config, state)[0]
        assert isinstance(x, xp.ndarray)
        results.append(cupy.asnumpy(x) if xp is cupy else x)
    np.testing.assert_allclose(results[1], results[0], rtol=1e-9, atol=1e-12)
