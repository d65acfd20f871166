"""The training loop and the `ember` command on real MNIST (small budgets)."""

import numpy as np
import pytest

from ember import models, nn
from ember.cli import main
from ember.errors import TrainingError
from ember.training import TrainOptions, fit, load_dataset


@pytest.fixture(scope="module")
def small_mnist():
    return load_dataset((784,), limit=6000)


def test_fit_learns_real_mnist_quickly(small_mnist):
    net = models.build_model("mnist-mlp", rng=np.random.default_rng(0))
    # 3 epochs on 6000 images: 93.9-94.4% over seeds 0-4 (2 epochs gave 92.9-93.6%, too
    # close to the bound to survive a different BLAS's rounding)
    history = fit(net, nn.ClassNLLCriterion(), small_mnist, TrainOptions(epochs=3, progress=False))
    assert history[-1]["test_acc"] >= 0.93
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_inputs_are_standardized_with_training_statistics(small_mnist):
    x_train = np.asarray(small_mnist.x_train)
    assert abs(float(x_train.mean())) < 1e-3 and abs(float(x_train.std()) - 1) < 1e-3
    assert small_mnist.x_test.dtype == np.float32 and small_mnist.x_test.shape == (10000, 784)
    assert small_mnist.x_train.raw.dtype == np.uint8  # kept compact; batches are standardized when gathered
    assert small_mnist.x_test[:5].dtype == np.float32 and small_mnist.x_train.gather(np.arange(3), np.empty((3, 784), np.float32)).std() > 0


def test_non_finite_loss_stops_training_and_keeps_the_saved_model(small_mnist, tmp_path):
    path = tmp_path / "model.safetensors"
    net = models.build_model("mnist-mlp", rng=np.random.default_rng(0))
    fit(net, nn.ClassNLLCriterion(), small_mnist, TrainOptions(epochs=1, progress=False, save=str(path)))
    good = path.read_bytes()
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) at epoch 1, step \d+ \(learning rate 1e\+30\)"):
        fit(net, nn.ClassNLLCriterion(), small_mnist, TrainOptions(epochs=1, lr=1e30, progress=False, save=str(path)))
    assert path.read_bytes() == good


def test_cli_train_then_eval(tmp_path, capsys):
    path = tmp_path / "mlp.safetensors"
    assert main(["train", "--limit", "3000", "--epochs", "1", "--save", str(path), "--no-progress", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch   1  train loss" in out and "test accuracy" in out and path.exists()
    assert main(["eval", str(path)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "target\\pred" in out and len(out.strip().splitlines()) == 16


def test_cli_reports_errors_without_a_traceback(tmp_path, capsys):
    assert main(["train", "--model", "no-such-net"]) == 1
    assert "unknown model 'no-such-net'; known models: " in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 20)
    assert main(["eval", str(bad)]) == 1
    assert "bad.safetensors" in capsys.readouterr().err
    assert main(["train", "--limit", "500", "--epochs", "1", "--lr", "1e30", "--no-progress"]) == 1
    assert "the loss became" in capsys.readouterr().err


def test_progress_bar_prints_plain_lines_when_not_a_terminal():
    import io

    from ember.training.progress import Progress

    stream = io.StringIO()
    bar = Progress(100, "epoch 1/1", stream=stream, plain_every=0.0)
    bar.update(50, loss=0.5)
    bar.close()
    line = stream.getvalue()
    assert "epoch 1/1" in line and "50/100" in line and "samples/s" in line and "ETA" in line and "loss 0.5000" in line


@pytest.mark.slow
def test_quickstart_default_training_reaches_98_percent(capsys):
    """The README's first command: `ember train` with the defaults (10 epochs)."""
    assert main(["train", "--no-progress"]) == 0
    final = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test accuracy")][0]
    assert float(final.split()[2].rstrip("%")) >= 98.0


def test_svhn_mlp_trains_on_any_3x32x32_npz(tmp_path, capsys):
    """`svhn-mlp` (the lecture's SVHN net) on a small synthetic 3x32x32 set in .npz form."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=400)
    images = rng.integers(0, 50, size=(400, 3, 32, 32)).astype(np.uint8)
    images[np.arange(400), labels % 3, labels, :] = 255  # a learnable pattern per class
    path = tmp_path / "svhn-like.npz"
    np.savez(path, x_train=images[:300], y_train=labels[:300], x_test=images[300:], y_test=labels[300:])
    assert main(["train", "--model", "svhn-mlp", "--data", str(path), "--epochs", "3", "--no-progress", "--lr", "0.01"]) == 0
    final = [line for line in capsys.readouterr().out.splitlines() if line.startswith("test accuracy")][0]
    assert float(final.split()[2].rstrip("%")) > 50.0
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x_train=images[:10, :1], y_train=labels[:10], x_test=images[:10, :1], y_test=labels[:10])
    assert main(["train", "--model", "svhn-mlp", "--data", str(wrong), "--no-progress"]) == 1
    assert "do not fit a model expecting (3, 32, 32)" in capsys.readouterr().err
