"""Pose data, manifold metrics, PCA, the DrLIM pieces and the `ember manifold` command."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest

from ember import nn
from ember.data.pose import (
    PoseSet,
    contact_sheet,
    fixed_split,
    load_pose_set,
    render_pose_set,
    save_contact_sheet,
    variance_shares,
)
from ember.drlim import PairSampler, embed, embedding_net, siamese_feval, siamese_net, train_drlim
from ember.errors import FormatError
from ember.drlim.manifold import (
    azimuth_circularity,
    lighting_ratio,
    manifold_metrics,
    mean_distance,
    neighbour_precision,
    pca_embedding,
    pca_fit,
    pose_neighbours,
    ring_circularity,
)

SMALL = dict(size=16, azimuths=range(0, 360, 60), elevations=(30, 50, 70), lightings=(0, 1, 4), supersample=1)


@pytest.fixture(scope="module")
def small_set():
    return render_pose_set("airplane", **SMALL)


def grid(n_az=18, n_el=9, n_light=6):
    """Labels of a full grid, azimuth outermost (as the renderer orders them)."""
    az, el, light = np.meshgrid(np.arange(n_az), np.arange(n_el), np.arange(n_light), indexing="ij")
    return az.ravel(), el.ravel(), light.ravel()


def pose_set_from(az, el, light, held_out=None, size=4):
    n = len(az)
    images = np.zeros((n, size, size), np.uint8)
    return PoseSet(images, az * 20, el, light, fixed_split(n) if held_out is None else held_out)


# ---------------------------------------------------------------------------------- data
def test_renderer_is_deterministic_with_expected_shapes(small_set):
    again = render_pose_set("airplane", **SMALL)
    assert small_set.images.shape == (6 * 3 * 3, 16, 16) and small_set.images.dtype == np.uint8
    assert np.array_equal(small_set.images, again.images)
    assert small_set.azimuth.tolist()[:9] == [0] * 9 and small_set.elevation.tolist()[:3] == [30, 30, 30]
    assert small_set.lighting.tolist()[:3] == [0, 1, 4]
    assert small_set.n_azimuth == 6 and np.array_equal(small_set.held_out, again.held_out)
    assert 0 < small_set.held_out.sum() < len(small_set)
    truck = render_pose_set("truck", **SMALL)
    assert not np.array_equal(truck.images, small_set.images)


def test_every_view_differs_and_lighting_dominates_pixel_variance():
    data = render_pose_set("airplane", size=16, azimuths=range(0, 360, 60), elevations=(30, 70), supersample=1)
    flat = data.images.reshape(len(data), -1)
    assert len(np.unique(flat, axis=0)) == len(data)
    shares = variance_shares(data)
    assert shares["lighting"] > shares["pose"] > 0.05
    assert math.isclose(shares["lighting"] + shares["pose"] + shares["rest"], 1.0)


def test_unknown_object_and_bad_size_are_refused():
    with pytest.raises(ValueError, match="unknown object 'boat'"):
        render_pose_set("boat")
    with pytest.raises(ValueError, match="size"):
        render_pose_set("airplane", size=4)


def test_contact_sheet_and_png(tmp_path, small_set):
    sheet = contact_sheet(small_set, gap=2)
    rows = len(small_set.el_values) + len(small_set.light_values)
    assert sheet.shape == (rows * 18 + 6, 6 * 18 - 2) and sheet.dtype == np.uint8
    save_contact_sheet(small_set, tmp_path / "sheet.png", gap=2)
    data = (tmp_path / "sheet.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (height, width) == sheet.shape
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    assert np.array_equal(raw[:, 1:], sheet)


def test_save_and_load_round_trip(tmp_path, small_set):
    path = tmp_path / "set.npz"
    small_set.save(path)
    back = load_pose_set(path)
    for key, value in small_set.arrays().items():
        assert np.array_equal(getattr(back, key), value), key
    assert back.name == "set"


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _valid(n=36):
    az, el, light = grid(6, 3, 2)
    return dict(images=np.zeros((n, 8, 8), np.uint8), azimuth=az * 60, elevation=el, lighting=light)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("lighting"), "missing array.*lighting"),
    (lambda a: a.update(images=a["images"].astype(np.float32)), "'images' as uint8"),
    (lambda a: a.update(images=a["images"][:, 0]), "'images' as uint8"),
    (lambda a: a.update(azimuth=a["azimuth"][:-1]), "'azimuth' as an integer array of shape \\(36,\\)"),
    (lambda a: a.update(elevation=a["elevation"] * 0.5), "'elevation' as an integer array"),
    (lambda a: a.update(azimuth=np.where(a["azimuth"] == 300, 310, a["azimuth"])), "equally spaced"),
    (lambda a: a.update(lighting=a["lighting"] * 0), "at least 2 distinct 'lighting'"),
    (lambda a: a.update(held_out=np.ones(36, bool)), "must mark some images, not all"),
    (lambda a: a.update(held_out=np.full(36, 2)), "'held_out' as a boolean array"),
])  # fmt: skip
def test_npz_errors_are_clear(tmp_path, change, message):
    arrays = _valid()
    change(arrays)
    with pytest.raises(FormatError, match=message):
        load_pose_set(_write(tmp_path / "bad.npz", **arrays))


def test_npz_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_pose_set(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(FormatError, match="junk.npz: not an .npz archive"):
        load_pose_set(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(FormatError, match="not an .npz archive"):
        load_pose_set(tmp_path / "single.npy")
    arrays = _valid()
    arrays["images"] = np.array([object()] * 36, dtype=object)
    with pytest.raises(FormatError, match="pickle"):
        load_pose_set(_write(tmp_path / "obj.npz", **arrays))


def test_external_labels_are_ranked():
    arrays = _valid()  # azimuth in degrees 0..300, like NORB's 0, 2, ..., 34 would be
    data = PoseSet(arrays["images"], arrays["azimuth"], arrays["elevation"] + 30, arrays["lighting"], fixed_split(36))
    assert data.n_azimuth == 6 and data.az_index.max() == 5 and data.el_index.tolist()[:3] == [0, 0, 1]
    assert np.allclose(data.angle[data.az_index == 1], np.pi / 3)


# ------------------------------------------------------------------------------ metrics
def test_pose_neighbours_wrap_around():
    az, el = np.array([0, 17, 1, 2, 0, 9]), np.array([4, 5, 3, 4, 6, 4])
    nb = pose_neighbours(az, el, 18)
    assert nb[0, 1] and nb[0, 2] and not nb[1, 2]  # 0 and 17 are 1 step apart; 17 and 1 are 2
    assert not nb[0, 3] and not nb[0, 4] and not nb[0, 5] and nb.diagonal().all()
    assert np.array_equal(nb, nb.T)


def test_metrics_of_an_ideal_cylinder_are_perfect():
    az, el, light = grid()
    data = pose_set_from(az, el, light)
    z = np.column_stack([np.cos(data.angle), np.sin(data.angle), 0.2 * el])
    m = manifold_metrics(z, data)
    assert m["LR"] == 0 and m["NP@6"] > 0.95 and math.isclose(m["Raz"], 1) and math.isclose(m["RazRing"], 1)
    assert neighbour_precision(z, az, el, 18, k=6) == 1  # on the full grid: 5 other lightings + 1 ring above
    # turning, scaling and shifting the cylinder changes nothing but mean_dist
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    m2 = manifold_metrics(3 * z @ q + 5, data)
    assert math.isclose(m2["Raz"], 1) and math.isclose(m2["mean_dist"], 3 * m["mean_dist"])


def test_metrics_of_a_lighting_only_embedding_fail():
    az, el, light = grid(6, 2, 3)
    z = np.eye(3)[light]  # depends only on the lighting
    n = len(z)
    same_light = (light[:, None] == light[None, :]).sum() - n  # off-diagonal pairs, distance 0
    expected_lr = math.sqrt(2) / (math.sqrt(2) * (n * (n - 1) - same_light) / (n * (n - 1)))
    assert math.isclose(lighting_ratio(z, az, el, light), expected_lr)
    # every point's 3 nearest are the first 3 other images with its lighting (ties by index)
    assert math.isclose(neighbour_precision(z, az, el, 6, k=3), _np_by_index(az, el, light, 6, 3))
    angle = 2 * np.pi * az / 6
    assert azimuth_circularity(z, angle, z, angle) < 1e-9


def _np_by_index(az, el, light, n_az, k):
    nb = pose_neighbours(az, el, n_az)
    hits = [nb[i, [j for j in range(len(az)) if j != i and light[j] == light[i]][:k]].mean() for i in range(len(az))]
    return float(np.mean(hits))


def test_small_known_answers():
    square = np.array([[0.0, 0], [1, 0], [1, 1], [0, 1]])
    assert math.isclose(mean_distance(square), (4 + 2 * math.sqrt(2)) / 6)
    # a loop turning twice cannot be read as azimuth by an affine probe
    angle = 2 * np.pi * np.arange(18) / 18
    twice = np.column_stack([np.cos(2 * angle), np.sin(2 * angle)])
    assert azimuth_circularity(twice, angle, twice, angle) < 1e-9
    # NP@1 with ties broken by the lower index
    z = np.array([[0.0], [1.0], [1.0], [5.0]])
    az, el = np.array([0, 1, 5, 9]), np.zeros(4, int)
    assert math.isclose(neighbour_precision(z, az, el, 18, k=1), (1 + 0 + 0 + 0) / 4)  # 0->1, 1->2, 2->1, 3->1
    with pytest.raises(ValueError, match="k must be"):
        neighbour_precision(z, az, el, 18, k=4)


def test_ring_probe_forgives_a_bent_cylinder():
    az, el, light = grid(18, 3, 2)
    angle = 2 * np.pi * az / 18
    twist = angle + el * 2.0  # each ring turned by a different amount: one probe cannot read all
    z = np.column_stack([np.cos(twist), np.sin(twist), el])
    f = np.arange(len(z)) % 3 != 0
    assert ring_circularity(z[f], angle[f], el[f], z[~f], angle[~f], el[~f]) > 0.999
    assert azimuth_circularity(z[f], angle[f], z[~f], angle[~f]) < 0.6


def test_pca_fit_recovers_the_main_direction_and_baseline_fails(small_set):
    rng = np.random.default_rng(0)
    direction = np.array([3.0, 4.0]) / 5
    x = rng.normal(size=(500, 1)) * 10 * direction + rng.normal(size=(500, 2)) * 0.1 + [1, 2]
    mean, comps = pca_fit(x, 1)
    assert np.allclose(mean, x.mean(axis=0)) and np.allclose(comps[0], direction, atol=0.01)
    z = pca_embedding(small_set)
    assert z.shape == (len(small_set), 3)
    m = manifold_metrics(z, small_set, k=3)
    assert m["LR"] > 0.5  # PCA is driven by the lighting


# ------------------------------------------------------------------------------- DrLIM
def test_siamese_gradient_is_the_sum_of_both_branches():
    """The shared weights get dL/dW through x1 plus dL/dW through x2 (finite differences)."""
    rng = np.random.default_rng(0)
    net = embedding_net((4, 4), out_dim=2, arch="mlp", rng=rng)
    siamese = siamese_net(net).to("numpy:float64")
    params, grads = siamese.get_parameters()
    assert len(params) == 4 * 4 * 64 + 64 + 64 * 2 + 2  # shared arrays counted once
    x1, x2 = rng.normal(size=(6, 1, 4, 4)), rng.normal(size=(6, 1, 4, 4))
    y = np.array([0, 1, 0, 1, 1, 0.0])
    feval = siamese_feval(siamese, nn.ContrastiveCriterion(2.0).to("numpy:float64"), grads, x1, x2, y)
    loss, g = feval(params)
    g = g.copy()
    numeric = np.zeros_like(g)
    for k in rng.choice(len(params), 25, replace=False):
        keep = params[k]
        params[k] = keep + 1e-6
        up = feval(params)[0]
        params[k] = keep - 1e-6
        down = feval(params)[0]
        params[k] = keep
        numeric[k] = (up - down) / 2e-6
    checked = numeric != 0
    assert checked.sum() > 10 and np.allclose(g[checked], numeric[checked], rtol=1e-5, atol=1e-8)


def test_pair_sampler_is_balanced_and_respects_the_graph():
    az, el, light = grid(18, 3, 2)
    sampler = PairSampler(az, el, 18, np.random.default_rng(0))
    i, j, y = sampler.sample(200, 300)
    nb = pose_neighbours(az, el, 18)
    assert (y == 0).sum() == 200 and (y == 1).sum() == 300
    assert nb[i[y == 0], j[y == 0]].all() and (i[y == 0] != j[y == 0]).all()
    assert not nb[i[y == 1], j[y == 1]].any()
    wraps = (az[i] == 17) & (az[j] == 0) & (y == 0)
    assert wraps.any()  # the 340 -> 0 degree wrap is used


def test_tiny_training_smoke(small_set):
    arch = "conv" if hasattr(nn, "SpatialConvolution") else "mlp"
    net, x, history = train_drlim(small_set, steps=6, pairs=8, arch=arch, seed=3, log_every=3)
    z = embed(net, x)
    assert z.shape == (len(small_set), 3) and np.isfinite(z).all() and len(history) == 2
    m = manifold_metrics(z, small_set, k=3)
    assert all(np.isfinite(v) for v in m.values())
    net2, _, _ = train_drlim(small_set, steps=6, pairs=8, arch=arch, seed=3, log_every=3)
    assert np.array_equal(embed(net2, x), z)  # seeded: reproducible


@pytest.fixture
def keep_threads(monkeypatch):
    """The command sets the process's thread counts (--threads, default 1): not in tests."""
    import ember.runtime

    monkeypatch.setattr(ember.runtime, "configure_threads", lambda n=None, blas_idle_short=True: None)


def test_command_on_an_external_npz(tmp_path, capsys, keep_threads):
    from ember.cli import main

    data = render_pose_set("truck", **SMALL)
    data.save(tmp_path / "truck.npz")
    out = tmp_path / "emb.npz"
    rc = main(["manifold", "--data", str(tmp_path / "truck.npz"), "--steps", "4", "--pairs", "8", "--arch", "mlp",
               "--optimizer", "sgd", "--save-embedding", str(out)])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0 and "truck: 54 images 16x16" in text and "DrLIM" in text and "PCA" in text
    saved = np.load(out)
    assert saved["embedding"].shape == (54, 3) and np.array_equal(saved["held_out"], data.held_out)
    assert np.array_equal(saved["azimuth"], data.azimuth) and list(saved["metric_names"])[0] == "LR"


def test_command_reports_bad_input(tmp_path, capsys, keep_threads):
    from ember.cli.manifold import main

    assert main(["--data", str(tmp_path / "nope.npz")]) == 1
    assert "not found" in capsys.readouterr().err


def test_epochs_budget():
    import argparse

    from ember.cli.manifold import _steps

    args = argparse.Namespace(epochs=2.0, steps=None, pairs=64)
    assert _steps(args, 648) == round(2 * 648 / 128)
    assert _steps(argparse.Namespace(epochs=None, steps=None, pairs=64), 648) == 2000


def test_plot(tmp_path, small_set):
    pytest.importorskip("matplotlib")
    from ember.drlim.plot import plot_embeddings

    z = pca_embedding(small_set)
    plot_embeddings(tmp_path / "p.png", small_set, z, z)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
