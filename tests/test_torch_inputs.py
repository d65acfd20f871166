"""PyTorch tensors handed to ember: labels and feval results mean the same and are taken;
module inputs and gradients are refused in one line that names ember's way."""

import numpy as np
import pytest

from ember import nn, optim
from ember.errors import ShapeError

torch = pytest.importorskip("torch")


def log_probs(n=4, c=3, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, c)).astype(np.float32)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


@pytest.mark.parametrize("make", [nn.ClassNLLCriterion, nn.CrossEntropyCriterion, nn.MultiMarginCriterion])
def test_torch_class_labels_mean_what_numpy_labels_mean(make):
    x, labels = log_probs(), np.array([0, 2, 1, 2])
    expected = make().forward(x, labels)
    criterion = make()
    assert criterion.forward(x, torch.from_numpy(labels)) == pytest.approx(expected)
    np.testing.assert_allclose(criterion.backward(x, torch.from_numpy(labels)), make().backward(x, labels))


def test_torch_labels_agree_with_pytorch_nll_loss():
    x, labels = log_probs(6, 5, seed=1), torch.tensor([4, 0, 1, 3, 2, 2])
    ours = nn.ClassNLLCriterion().forward(x, labels)
    theirs = torch.nn.functional.nll_loss(torch.from_numpy(x), labels).item()
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_torch_float_labels_are_refused_like_numpy_float_labels():
    with pytest.raises(ShapeError, match="integer class labels"):
        nn.ClassNLLCriterion().forward(log_probs(), torch.tensor([0.0, 1.0, 2.0, 0.0]))


def test_torch_pair_labels_are_taken():
    a, b = (np.random.default_rng(s).standard_normal((3, 4)).astype(np.float32) for s in (2, 3))
    labels = np.array([1, -1, 1])
    criterion = nn.CosineEmbeddingCriterion()
    want = nn.CosineEmbeddingCriterion().forward([a, b], labels)
    assert criterion.forward([a, b], torch.from_numpy(labels)) == pytest.approx(want)


@pytest.mark.parametrize("module", [nn.Linear(3, 2), nn.Tanh(), nn.Sequential().add(nn.Linear(3, 2))])
def test_torch_module_input_is_refused_naming_embers_way(module):
    with pytest.raises(ShapeError) as info:
        module.forward(torch.zeros(4, 3))
    message = str(info.value)
    assert "\n" not in message and "t.numpy()" in message and "ember.interop.to_numpy" in message


def test_torch_grad_output_is_refused_naming_embers_way():
    linear = nn.Linear(3, 2)
    x = np.zeros((4, 3), np.float32)
    linear.forward(x)
    with pytest.raises(ShapeError, match="t.numpy()"):
        linear.backward(x, torch.zeros(4, 2))


def test_torch_regression_target_is_refused_naming_embers_way():
    with pytest.raises(ShapeError, match="ember.interop.to_numpy"):
        nn.MSECriterion().forward(np.zeros((4, 3), np.float32), torch.zeros(4, 3))


@pytest.mark.parametrize("algorithm, config", [
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9}), ("adam", {}), ("adagrad", {}), ("rmsprop", {}),
    ("nag", {"learning_rate": 0.1}), ("lbfgs", {"max_iter": 3}), ("cg", {"max_iter": 3}),
])  # fmt: skip
def test_feval_returning_torch_tensors_means_the_same(algorithm, config):
    target = np.array([1.0, -2.0, 3.0])

    def numpy_feval(x):
        return float(((x - target) ** 2).sum()), 2 * (x - target)

    def torch_feval(x):
        loss, grad = numpy_feval(x)
        return torch.tensor(loss, dtype=torch.float64), torch.from_numpy(grad.copy())

    x_numpy, x_torch = np.zeros(3), np.zeros(3)
    step = getattr(optim, algorithm)
    state_numpy, state_torch = dict(config), dict(config)
    for _ in range(3):
        _, losses_numpy = step(numpy_feval, x_numpy, state_numpy)[:2]
        _, losses_torch = step(torch_feval, x_torch, state_torch)[:2]
        assert all(type(v) is float for v in losses_torch)
        assert losses_torch == pytest.approx(losses_numpy)
    np.testing.assert_allclose(x_torch, x_numpy)
