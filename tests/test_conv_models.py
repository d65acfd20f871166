"""The convolutional models: registry entries, training on real MNIST (small budget),
the filter picture, and an allocation-free warm training step."""

import io
import struct
import zlib

import numpy as np
import pytest
from allocation import allocations

from ember import models, nn, optim, viz
from ember.cli import main
from ember.training import TrainOptions, fit, load_dataset, make_feval


@pytest.mark.parametrize("name", ["lenet5", "convnet-lcn"])
def test_registered_for_28x28_images(name):
    spec = models.get_model(name)
    assert spec.input_shape == (1, 28, 28)
    net = spec.build(n_classes=10, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 1, 28, 28)).astype(np.float32)
    out = net.forward(x)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1, rtol=1e-5)


def test_lenet5_learns_real_mnist_quickly():
    data = load_dataset((1, 28, 28), limit=4000)
    net = models.build_model("lenet5", rng=np.random.default_rng(0))
    history = fit(net, nn.ClassNLLCriterion(), data, TrainOptions(epochs=1, batch_size=64, lr=0.05, progress=False),
                  out=io.StringIO())  # fmt: skip
    assert history[-1]["test_acc"] > 0.9, history


def test_cli_train_draws_the_filters(tmp_path, capsys):
    png = tmp_path / "filters.png"
    assert main(["train", "--model", "lenet5", "--limit", "300", "--epochs", "1", "--no-progress", "--filters", str(png)]) == 0
    assert "filters drawn" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _decode_png(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = {0: 1, 2: 3}[color]
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, 1 + width * channels)
    assert (raw[:, 0] == 0).all() and depth == 8
    return raw[:, 1:].reshape(height, width, channels).squeeze(-1) if channels == 1 else raw[:, 1:].reshape(height, width, 3)


@pytest.mark.parametrize("shape", [(20, 1, 5, 5), (4, 3, 3, 3), (6, 2, 3, 3), (5, 4, 4)])
def test_filter_grid_png(tmp_path, shape):
    weight = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    path = tmp_path / "grid.png"
    picture = viz.filter_grid(weight, path, scale=3)
    np.testing.assert_array_equal(_decode_png(path.read_bytes()), picture)
    assert picture.max() == 255 and picture.min() == 0
    with pytest.raises(ValueError, match="filter_grid"):
        viz.filter_grid(np.zeros((3, 4)))


@pytest.mark.parametrize("name", ["lenet5", "convnet-lcn"])
def test_warm_training_step_allocates_no_arrays(name):
    rng = np.random.default_rng(0)
    net = models.build_model(name, rng=rng)
    net.compute_grad_input = False
    params, grads = net.get_parameters()
    x, y = rng.standard_normal((64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, size=64)
    feval = make_feval(net, nn.ClassNLLCriterion(), x, y, grads)
    config, state = {"learning_rate": 0.01, "momentum": 0.9, "dampening": 0.0}, {}
    for _ in range(3):
        optim.sgd(feval, params, config, state)
    peak, retained = allocations(lambda: optim.sgd(feval, params, config, state))
    # No activation or gradient array is allocated (the smallest, the 64x800 flattened
    # features, is 200 KB). What comes and goes: views, Python objects, and NumPy's
    # iterator buffers (8192-element chunks per operand) for ufuncs on strided views.
    assert peak < 128 * 1024, f"a warm step allocated up to {peak} bytes"
    assert retained < 12 * 1024, f"{retained} bytes stayed allocated"
