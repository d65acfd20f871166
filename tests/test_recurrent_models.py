"""Recurrent models end to end: allocation-free warm steps, mnist-lstm learning on real
MNIST (small budget), the character language model example, model files."""

import os
import sys

import numpy as np
import pytest
from allocation import warm_recurrent_step

import ember
from ember import models, nn, optim
from ember.data import Standardizer, load_mnist
from ember.training import make_feval

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize("kind, layers, bidirectional", [("LSTM", 1, False), ("LSTM", 2, True), ("GRU", 1, True)])
def test_warm_recurrent_training_step_allocates_nothing(kind, layers, bidirectional):
    _, peak, kept, smallest = warm_recurrent_step(kind, layers, bidirectional)
    # The smallest per-step array here, (N, H) float32, is 64 KB; the small Python objects
    # of each step's slices and BLAS calls (freed by the garbage collector) stay below that.
    assert peak < smallest / 2, f"a warm {kind} step allocated up to {peak} bytes"
    assert kept < smallest / 2, f"{kept} bytes stayed allocated"


def test_mnist_lstm_learns_on_real_mnist():
    """A small budget (3000 images, 3 epochs, 64 units): well above chance on the test set."""
    splits = load_mnist()
    (xtr, ytr), (xte, yte) = splits["train"], splits["test"]
    scaler = Standardizer().fit(xtr[:3000])
    x, xt = scaler.transform(xtr[:3000]), scaler.transform(xte[:1000])
    y, yt = ytr[:3000].astype(np.int64), yte[:1000].astype(np.int64)
    rng = np.random.default_rng(0)
    net = models.build_model("mnist-lstm", rng=rng, hidden=64)
    assert models.get_model("mnist-lstm").input_shape == (28, 28)
    crit = nn.ClassNLLCriterion()
    net.compute_grad_input = False
    params, grads = net.get_parameters()
    config, state = {"learning_rate": 0.2, "momentum": 0.9, "dampening": 0.0}, {}
    for _ in range(3):
        for idx in np.array_split(rng.permutation(3000), 3000 // 50):
            optim.sgd(make_feval(net, crit, x[idx], y[idx], grads), params, config, state)
    net.evaluate()
    accuracy = float((net.forward(xt).argmax(1) == yt).mean())
    assert accuracy > 0.8, f"mnist-lstm reached only {accuracy:.3f} on 1000 test images"


def test_lstm_model_file_round_trip(tmp_path):
    net = models.build_model("mnist-lstm", rng=np.random.default_rng(0), hidden=16)
    x = np.random.default_rng(1).standard_normal((3, 28, 28)).astype(np.float32)
    path = tmp_path / "lstm.safetensors"
    ember.save(net, path)
    again = ember.load(path)
    np.testing.assert_array_equal(again.forward(x), net.forward(x))


def test_char_lm_example_trains_and_samples(tmp_path, capsys):
    sys.path.insert(0, EXAMPLES)
    try:
        import char_lm
    finally:
        sys.path.remove(EXAMPLES)
    text = tmp_path / "text.txt"
    text.write_text("def add(a, b):\n    return a + b\n\n" * 300)
    loss = char_lm.main([str(text), "--hidden", "32", "--embed", "8", "--batch", "8", "--steps", "16",
                         "--epochs", "3", "--lr", "1.0", "--sample", "80", "--log-every", "1000"])
    out = capsys.readouterr().out
    assert "validation loss" in out and "--- sample" in out
    assert loss < 1.0, f"a repetitive text should be easy, got {loss:.3f} nats/char"
