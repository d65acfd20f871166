"""Patches, whitening, encoders, pooling and the k-means feature pipeline on a small MNIST subset."""

import numpy as np
import pytest

from ember.unsup.patches import all_patches, as_images, normalize_patches, random_patches
from ember.unsup.pipeline import (FeaturePipeline, LinearEncoder, TriangleEncoder, Whitening, accuracy,
                                  fit_kmeans_pipeline, grid_bounds, pool_grid, train_linear)  # fmt: skip


def test_all_patches_match_a_naive_loop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 2, 9, 8), dtype=np.uint8)
    for stride in (1, 2):
        got = all_patches(images, 4, stride, scale=1 / 255)
        oh, ow = (9 - 4) // stride + 1, (8 - 4) // stride + 1
        assert got.shape == (3, oh, ow, 2 * 16) and got.dtype == np.float32
        for n in range(3):
            for i in range(oh):
                for j in range(ow):
                    naive = images[n, :, i * stride : i * stride + 4, j * stride : j * stride + 4].reshape(-1) / 255
                    assert np.allclose(got[n, i, j], naive)


def test_random_patches_are_real_patches_in_filter_order():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 10, 10)).astype(np.float32)
    patches = random_patches(images, 3, 50, np.random.default_rng(2))
    every = all_patches(images, 3).reshape(-1, 9)
    # each random patch equals one of the image's patches (same flattening as all_patches)
    for p in patches:
        assert np.isclose(np.abs(every - p).sum(1), 0).any()


def test_patch_errors():
    with pytest.raises(ValueError, match="larger"):
        all_patches(np.zeros((2, 4, 4)), 5)
    with pytest.raises(ValueError, match="stride"):
        all_patches(np.zeros((2, 4, 4)), 2, stride=0)
    with pytest.raises(ValueError, match="shape"):
        as_images(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="dtype"):
        as_images(np.zeros((2, 4, 4), dtype=bool))
    with pytest.raises(ValueError, match="n must"):
        random_patches(np.zeros((2, 4, 4)), 2, 0)
    with pytest.raises(TypeError, match="float"):
        normalize_patches(np.zeros((2, 3), dtype=np.int64))


def test_normalize_patches():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 16)).astype(np.float32) * 5 + 3
    y = normalize_patches(x.copy(), eps=0)
    assert np.allclose(y.mean(1), 0, atol=1e-5) and np.allclose(y.var(1), 1, atol=1e-4)
    flat = normalize_patches(np.full((1, 16), 7.0, dtype=np.float32), eps=0)
    assert np.array_equal(flat, np.zeros((1, 16)))
    damped = normalize_patches(x.copy(), eps=25.0)  # var 25 + eps 25: half the variance
    assert np.allclose(damped.var(1), x.var(1) / (x.var(1) + 25), rtol=1e-4)


def test_whitening_decorrelates():
    rng = np.random.default_rng(4)
    mix = rng.standard_normal((9, 9))
    raw = (rng.standard_normal((5000, 9)) @ mix).astype(np.float32)
    white = Whitening(contrast_eps=0.0, eps=1e-6).fit(raw)
    y = white.transform(raw.copy())
    cov = np.cov(y.T)
    # after per-patch normalization one direction (the mean) is gone: 8 unit eigenvalues
    eig = np.sort(np.linalg.eigvalsh(cov))
    assert np.allclose(eig[1:], 1, atol=0.05) and eig[0] < 1e-3
    with pytest.raises(RuntimeError, match="before fit"):
        Whitening().transform(raw.copy())


def _naive_pool(codes, grid, reduce):
    n, oh, ow, k = codes.shape
    out = np.zeros((n, grid, grid, k))
    for i, (r0, r1) in enumerate(grid_bounds(oh, grid)):
        for j, (c0, c1) in enumerate(grid_bounds(ow, grid)):
            for a in range(n):
                for b in range(k):
                    out[a, i, j, b] = reduce(codes[a, r0:r1, c0:c1, b].ravel())
    return out


@pytest.mark.parametrize("mode,reduce", [
    ("sum", np.sum), ("mean", np.mean), ("max", np.max),
    ("lp", lambda v: np.sqrt((v**2).sum())),
    ("lse", lambda v: np.log(np.mean(np.exp(2.0 * v))) / 2.0),
])  # fmt: skip
def test_pool_grid_matches_naive(mode, reduce):
    codes = np.random.default_rng(5).standard_normal((2, 7, 7, 3))
    for grid in (1, 2, 3, 7):  # 7: one position per region, no pooling
        got = pool_grid(codes, grid, mode, p=2.0, beta=2.0)
        assert np.allclose(got, _naive_pool(codes, grid, reduce))


def test_lse_pooling_spans_mean_to_max():
    codes = np.random.default_rng(6).standard_normal((1, 5, 5, 2))
    assert np.allclose(pool_grid(codes, 1, "lse", beta=1e-4), pool_grid(codes, 1, "mean"), atol=1e-3)
    assert np.allclose(pool_grid(codes, 1, "lse", beta=1e4), pool_grid(codes, 1, "max"), atol=1e-2)


def test_grid_bounds_and_pool_errors():
    assert grid_bounds(23, 2) == [(0, 12), (12, 23)] or grid_bounds(23, 2) == [(0, 11), (11, 23)]
    assert [b - a for a, b in grid_bounds(23, 3)] in ([8, 7, 8], [7, 8, 8], [8, 8, 7])
    codes = np.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="grid"):
        pool_grid(codes, 5)
    with pytest.raises(ValueError, match="mode"):
        pool_grid(codes, 2, "median")
    with pytest.raises(ValueError, match="codes"):
        pool_grid(codes[0], 2)


def test_convolutional_encoding_equals_per_patch_encoding():
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (3, 12, 12), dtype=np.uint8)
    raw = random_patches(images, 5, 500, rng, scale=1 / 255)
    white = Whitening(0.01, 1.0).fit(raw)
    centroids = rng.standard_normal((6, 25)).astype(np.float32)
    pipe = FeaturePipeline(TriangleEncoder(centroids), white, patch=5, grid=2, pool="sum")
    maps = pipe.code_maps(images)
    assert maps.shape == (3, 8, 8, 6)
    # one patch by hand: crop, normalize, whiten, triangle code
    p = images[1, 2:7, 3:8].reshape(1, -1).astype(np.float32) / 255
    p = (p - p.mean()) / np.sqrt(p.var() + 0.01)
    w = (p - white.mean) @ white.w
    z = np.sqrt(((w - centroids) ** 2).sum(1))
    assert np.allclose(maps[1, 2, 3], np.maximum(0, z.mean() - z), atol=1e-4)
    feats = pipe.transform(images, chunk=2)
    assert feats.shape == (3, pipe.n_features) == (3, 24)
    assert np.allclose(feats, pool_grid(maps, 2, "sum").reshape(3, -1), rtol=1e-5, atol=1e-4)


def test_linear_encoder_and_rectification():
    rng = np.random.default_rng(8)
    w, b = rng.standard_normal((4, 9)), rng.standard_normal(4)
    x = rng.standard_normal((5, 9)).astype(np.float32)
    assert np.allclose(LinearEncoder(w, b, "tanh").encode(x), np.tanh(x @ w.T + b), atol=1e-5)
    u = x @ w.T
    shrink = LinearEncoder(w, None, "shrink", theta=0.5).encode(x)
    assert np.allclose(shrink, np.sign(u) * np.maximum(np.abs(u) - 0.5, 0), atol=1e-5)
    with pytest.raises(ValueError, match="nonlinearity"):
        LinearEncoder(w, b, "sigmoid")
    images = rng.integers(0, 256, (2, 8, 8), dtype=np.uint8)
    white = Whitening(0.01, None)
    split = FeaturePipeline(LinearEncoder(w, b, "none"), white, patch=3, grid=1, rectify="split")
    codes = split.code_maps(images)
    assert codes.shape == (2, 6, 6, 8) and (codes >= 0).all()
    plain = FeaturePipeline(LinearEncoder(w, b, "none"), white, patch=3, grid=1).code_maps(images)
    assert np.allclose(codes[..., :4] - codes[..., 4:], plain, atol=1e-5)
    with pytest.raises(ValueError, match="rectify"):
        FeaturePipeline(LinearEncoder(w), white, rectify="square")


def test_kmeans_pipeline_on_mnist_subset():
    from ember.data.mnist import load_mnist

    data = load_mnist()
    (x, y), (xt, yt) = data["train"], data["test"]
    x, y, xt, yt = x[:1500], y[:1500], xt[:500], yt[:500]
    pipe = fit_kmeans_pipeline(x, k=32, n_patches=20000, iterations=3, grid=2, seed=0)
    assert pipe.encoder.centroids.shape == (32, 36)
    feats, feats_test = pipe.transform(x, chunk=64), pipe.transform(xt)
    assert feats.shape == (1500, 128) and feats.dtype == np.float32
    model, standardize = train_linear(feats, y, epochs=8, seed=0)
    acc = accuracy(model, standardize, feats_test, yt)
    # pixels with the same linear classifier and data get about 85%; the features do clearly better
    assert acc > 0.9, acc
    with pytest.raises(ValueError, match="loss"):
        train_linear(feats, y, loss="mse")


def test_fold_whitening_equals_dot_products_in_whitened_space():
    from ember.data.preprocess import ZCA
    from ember.unsup.pretrain import fold_whitening

    rng = np.random.default_rng(9)
    patches = rng.standard_normal((400, 9)) @ rng.standard_normal((9, 9))
    zca = ZCA(0.1).fit(patches)
    centroids = rng.standard_normal((4, 9))
    filters, bias = fold_whitening(centroids, zca.mean, zca.w)
    assert np.allclose(patches @ filters.T + bias, ((patches - zca.mean) @ zca.w) @ centroids.T)


def test_pretrain_convolutions_sets_both_stages_at_the_random_scale():
    from ember.models.convnets import convnet_lcn
    from ember.unsup.patches import random_patches
    from ember.unsup.pretrain import _inputs_of, convolutions, pretrain_convolutions

    rng = np.random.default_rng(10)
    images = rng.random((120, 1, 28, 28)).astype(np.float32)
    net = convnet_lcn(rng=np.random.default_rng(0), width=(4, 8), hidden=16)
    before = [c.weight.copy() for c in convolutions(net)]
    messages = []
    learned = pretrain_convolutions(net, images, stages=(0, 1), n_patches=3000, iterations=2, n_images=100,
                                    progress=messages.append)  # fmt: skip
    assert [w.shape for w in learned] == [(4, 1, 5, 5), (8, 4, 5, 5)] and len(messages) == 2
    for conv, old, new in zip(convolutions(net), before, learned):
        assert np.array_equal(conv.weight, new) and not np.allclose(old, new)
        inputs = _inputs_of(net, conv, images)
        p = random_patches(inputs, 5, 2000, np.random.default_rng(1))
        ratio = (p @ new.reshape(len(new), -1).T).std() / (p @ old.reshape(len(old), -1).T).std()
        assert 0.7 < ratio < 1.4, ratio  # responses as strong as the random initialisation's
    assert np.isfinite(net.forward(images[:2])).all()
    with pytest.raises(ValueError, match="stages"):
        pretrain_convolutions(net, images, stages=(2,))
    from ember import nn

    with pytest.raises(ValueError, match="no SpatialConvolution"):
        pretrain_convolutions(nn.Sequential(nn.Linear(3, 2)), images)


def test_cli_pretrain_features_quick_run(tmp_path, capsys):
    from ember.cli.main import main
    from ember.tensor_file import read_tensors

    out, png = tmp_path / "f.safetensors", tmp_path / "d.png"
    code = main(["pretrain", "features", "--limit", "600", "--test-limit", "200", "--k", "16", "--patches", "5000",
                 "--iterations", "2", "--epochs", "3", "--grid", "2", "--no-progress", "--save", str(out),
                 "--filters", str(png)])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "test accuracy" in text
    acc = float(text.split("test accuracy ")[1].split("%")[0])
    assert acc > 70, text
    tensors, meta = read_tensors(out)
    assert tensors["centroids"].shape == (16, 36) and tensors["linear.weight"].shape == (10, 64)
    assert meta["format"] == "ember-unsup-features" and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_pretrain_errors(capsys):
    from ember.cli.main import main

    assert main(["pretrain", "features", "--grid", "30", "--limit", "10"]) == 1
    assert "--grid 30" in capsys.readouterr().err
    assert main(["pretrain", "convnet", "--model", "mnist-mlp", "--limit", "10"]) == 1
    assert "no SpatialConvolution" in capsys.readouterr().err
    assert main(["pretrain", "convnet", "--stages", "3", "--limit", "10"]) == 1
    assert "2 filter banks" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "convnet", "--stages", "0"])
    assert exit_info.value.code == 2


def test_psd_pipeline_encoder_is_the_trained_psd_encoder():
    from ember.unsup.sparse_pipeline import fit_psd_pipeline

    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (20, 12, 12), dtype=np.uint8)
    energies = []
    pipe, psd = fit_psd_pipeline(images, k=8, patch=4, n_patches=2048, epochs=2, grid=2, seed=0,
                                 progress=lambda s, n, e: energies.append(e))  # fmt: skip
    assert len(energies) == 16 and np.isfinite(energies).all()
    x = pipe.whitening.transform(random_patches(images, 4, 50, rng, scale=1 / 255))
    assert np.allclose(pipe.encoder.encode(x), psd.encode(x), atol=1e-5)
    feats = pipe.transform(images)
    assert feats.shape == (20, 2 * 2 * 16) and (feats >= 0).all()  # split rectification: 2K codes


def test_cli_pretrain_features_psd_quick_run(capsys):
    from ember.cli.main import main

    code = main(["pretrain", "features", "--dictionary", "psd", "--limit", "300", "--test-limit", "100", "--k", "8",
                 "--patches", "1024", "--psd-epochs", "1", "--epochs", "2", "--grid", "2", "--no-progress"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and "PSD" in text and "test accuracy" in text
    assert "encoder error" in text


def test_psd_encoder_error_is_the_relative_prediction_error():
    from ember.unsup.sparse_pipeline import encoder_error, fit_psd_pipeline

    rng = np.random.default_rng(13)
    images = rng.integers(0, 256, (20, 12, 12), dtype=np.uint8)
    pipe, psd = fit_psd_pipeline(images, k=8, patch=4, n_patches=1024, epochs=1, grid=2, seed=0)
    x = pipe.whitening.transform(random_patches(images, 4, 100, rng, scale=1 / 255))
    error = encoder_error(psd, x)
    z_star, z_pred = psd.infer(x).copy(), psd.encode(x)
    assert np.isclose(error, np.linalg.norm(z_pred - z_star) / np.linalg.norm(z_star), rtol=1e-4)
    assert 0 < error < 1
    with pytest.raises(ValueError, match="encoder_error"):
        encoder_error(psd, x[0])


def test_train_linear_reports_divergence():
    from ember.errors import TrainingError

    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((64, 5)).astype(np.float32), rng.integers(0, 3, 64)
    with np.errstate(all="ignore"), pytest.raises(TrainingError, match="smaller lr"):
        train_linear(x, y, epochs=3, lr=1e6, loss="hinge", batch_size=16)
