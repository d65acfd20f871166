"""Schedules, regularization, ConfusionMatrix, Logger and plots, preprocessing."""

import math
import os

import numpy as np
import pytest

from ember import io, models, optim
from ember.cli import main
from ember.data import ZCA, Standardizer, make_preprocessor
from ember.data.preprocess import from_file, to_file


# ---------------------------------------------------------------- schedules
def test_schedules_follow_their_formulas():
    assert optim.InverseTime(0.1, 0.01)(5, step=100) == pytest.approx(0.1 / 2)
    assert optim.InverseTime(0.1, 0.5, per="epoch")(2, step=999) == pytest.approx(0.05)
    step = optim.StepDecay(1.0, 3, 0.5)
    assert [step(e) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert optim.Exponential(1.0, 0.9)(2) == pytest.approx(0.81)
    cos = optim.Cosine(1.0, 10, lr_min=0.1)
    assert cos(0) == 1.0 and cos(5) == pytest.approx(0.55) and cos(10) == pytest.approx(0.1) and cos(12) == pytest.approx(0.1)
    per_step = optim.Cosine(1.0, 2, steps_per_epoch=10)
    assert per_step(0, step=10) == pytest.approx(0.5)


def test_sgd_learning_rate_decay_equals_the_inverse_time_schedule():
    feval = lambda x: (0.0, x * 1.0)  # noqa: E731
    a, b = np.ones(3), np.ones(3)
    sa, sb, schedule = {}, {}, optim.InverseTime(0.1, 0.3)
    for t in range(5):
        optim.sgd(feval, a, {"learning_rate": 0.1, "learning_rate_decay": 0.3}, sa)
        optim.sgd(feval, b, {"learning_rate": schedule(0, t)}, sb)
    np.testing.assert_array_equal(a, b)


def test_reduce_on_plateau_waits_patience_then_cools_down_and_round_trips():
    s = optim.ReduceOnPlateau(1.0, factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    lrs = []
    for loss in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]:
        s.observe(loss)
        lrs.append(s(0))
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    twin = optim.ReduceOnPlateau(1.0, factor=0.5, patience=1, cooldown=1, min_lr=0.2)
    twin.load_state_dict(s.state_dict())
    s.observe(0.95), twin.observe(0.95)
    assert s(0) == twin(0) == 0.2


def test_parse_schedule_and_its_errors():
    assert isinstance(optim.parse_schedule("step:2:0.5", 0.1), optim.StepDecay)
    assert optim.parse_schedule("inverse:0.1", 1.0)(0, 10) == pytest.approx(0.5)
    assert optim.parse_schedule("cosine", 1.0, epochs=4)(4) == pytest.approx(0.0)
    for bad in ["nope", "step", "step:0", "exp:2", "plateau:x"]:
        with pytest.raises(ValueError, match="schedule"):
            optim.parse_schedule(bad, 0.1, epochs=3)


# ---------------------------------------------------------------- regularization
def test_parameter_mask_spares_biases_in_flat_order():
    net = models.build_model("mnist-mlp", rng=np.random.default_rng(0), hidden=5)
    flat, _ = net.get_parameters()
    mask = optim.parameter_mask(net)
    assert mask.shape == flat.shape
    (w1, b1, w2, b2) = net.parameters()[0]
    assert mask.sum() == w1.size + w2.size
    flat[...] = 1
    flat *= mask
    assert (w1 == 1).all() and (b1 == 0).all() and (w2 == 1).all() and (b2 == 0).all()


def test_weight_decay_gradient_matches_its_penalty_and_start_epoch():
    x = np.array([0.5, -2.0, 3.0, 0.1])
    mask = np.array([1.0, 1.0, 0.0, 1.0])
    decay = optim.WeightDecay(l2=0.3, l1=0.2, start_epoch=2, mask=mask)
    g = np.zeros(4)
    decay.apply(x, g, epoch=1)
    assert (g == 0).all() and decay.penalty(x, epoch=1) == 0
    decay.apply(x, g, epoch=2)
    np.testing.assert_allclose(g, (0.3 * x + 0.2 * np.sign(x)) * mask)
    diff, _, _ = optim.checkgrad(lambda z: (decay.penalty(z), decay.apply(z, np.zeros(4), 5)), x.copy(), eps=1e-6)
    assert diff < 1e-8


def test_max_norm_caps_each_units_incoming_weights_and_clip_grad_norm():
    net = models.build_model("mnist-mlp", rng=np.random.default_rng(0), hidden=7)
    w = net.get(1).weight
    w *= 10
    bias = net.get(1).bias.copy()
    before = np.linalg.norm(w, axis=1)
    largest = optim.MaxNorm(net, 1.5).apply()
    assert largest == pytest.approx(before.max(), rel=1e-5)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), np.minimum(before, 1.5), rtol=1e-5)
    assert (net.get(1).bias == bias).all()
    g = np.array([3.0, 4.0])
    assert optim.clip_grad_norm(g, 1.0) == 5.0 and np.allclose(g, [0.6, 0.8])
    assert optim.clip_grad_norm(g, 10.0) == pytest.approx(1.0) and np.allclose(g, [0.6, 0.8])
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(g, 0)


# ---------------------------------------------------------------- confusion matrix
def test_confusion_matrix_torch7_api_and_measures():
    c = optim.ConfusionMatrix(["a", "b", "c"])
    c.add(0, 0).add(np.array([0.1, 0.7, 0.2]), 1).add(2, np.array([0, 0, 1.0])).add(1, -1)
    c.batch_add(np.array([[0.9, 0.05, 0.05], [0.2, 0.5, 0.3]]), np.array([2, 2]))
    c.batchAdd(np.array([1, 1]), np.array([[0, 1, 0], [1, 0, 0]]))
    np.testing.assert_array_equal(c.mat, [[1, 1, 0], [0, 2, 0], [1, 1, 1]])  # mat[target][pred]
    c.update_valids()
    assert c.total_valid == pytest.approx(4 / 7) and c.accuracy == c.total_valid
    np.testing.assert_allclose(c.valids, [0.5, 1.0, 1 / 3])
    assert c.average_valid == pytest.approx((0.5 + 1 + 1 / 3) / 3)
    np.testing.assert_allclose(c.unionvalids, [1 / 3, 2 / 4, 1 / 3])
    text = str(c)
    assert "target\\pred" in text and "global correct (accuracy): 57.143%" in text
    assert text.splitlines()[2].split()[:4] == ["a", "1", "1", "0"]
    frr, far = c.far_frr()
    np.testing.assert_allclose(frr, [0.5, 0.0, 2 / 3])
    c.zero()
    assert c.mat.sum() == 0 and c.accuracy == 0


def test_confusion_matrix_rejects_bad_labels_clearly():
    c = optim.ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\], got 3"):
        c.batch_add(np.array([0, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="must have 3 entries"):
        c.add(np.zeros(4), 1)
    with pytest.raises(ValueError, match="2 predictions but 3 targets"):
        c.batch_add(np.array([0, 1]), np.array([0, 1, 2]))


# ---------------------------------------------------------------- logs and plots
def test_logger_writes_csv_rows_and_truncates_on_resume(tmp_path):
    path = tmp_path / "run.csv"
    log = optim.Logger(path)
    log.add({"epoch": 1, "loss": 0.5}).add({"epoch": 2, "loss": 0.25}).add([3, 0.125])
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25", "3,0.125"]
    again = optim.Logger(path, keep_rows=2)
    again.add({"epoch": 3, "loss": 0.2})
    assert path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25", "3,0.2"]
    with pytest.raises(ValueError, match="unknown column"):
        again.add({"epochs": 4})
    with pytest.raises(ValueError, match="expects 9 logged rows"):
        optim.Logger(path, keep_rows=9)


def test_ember_plot_writes_a_png(tmp_path, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    log = optim.Logger(tmp_path / "run.csv")
    for e in range(1, 5):
        log.add({"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e, "train_acc": 1 - 0.3 / e, "test_acc": 0.9, "lr": 0.1 / e})
    assert main(["plot", str(tmp_path / "run.csv")]) == 0
    png = tmp_path / "run.png"
    assert f"training curves written to {png}" in capsys.readouterr().out
    image = matplotlib.image.imread(png)
    assert image.shape[0] > 500 and image.shape[1] > 500 and image.std() > 0.05
    c = optim.ConfusionMatrix(3).batch_add(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]))
    assert matplotlib.image.imread(c.save_png(tmp_path / "c.png")).shape[0] > 300


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    optim.Logger(tmp_path / "run.csv").add({"epoch": 1, "loss": 1.0})
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert main(["plot", str(tmp_path / "run.csv")]) == 1
    assert "needs matplotlib, which is not installed: pip install matplotlib" in capsys.readouterr().err


# ---------------------------------------------------------------- preprocessing
def test_zca_whitens_the_training_set_and_stays_close_to_the_input():
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((6, 6))
    x = rng.standard_normal((5000, 6)) @ mix + 3
    z = ZCA(eps=0).fit(x)
    white = z.transform(x, dtype="float64")
    np.testing.assert_allclose(np.cov(white.T, bias=True), np.eye(6), atol=1e-8)
    np.testing.assert_allclose(z.w, z.w.T)  # symmetric: the ZCA (not PCA) rotation
    assert ZCA(eps=0.1).fit(x).transform(x).std() < 1  # eps shrinks the small directions


@pytest.mark.parametrize("kind", ["none", "global", "feature", "channel", "zca"])
def test_preprocessing_round_trips_through_a_model_file(kind, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, size=(50, 3, 2, 2))
    pre = make_preprocessor(kind)
    expected = x.astype(np.float32) if pre is None else pre.fit_transform(x)
    net = models.build_model("mnist-mlp", rng=rng, hidden=3)
    arrays, meta = to_file(pre)
    io.save(net, tmp_path / "m.st", meta, extra=arrays)
    _, saved = io.load(tmp_path / "m.st", with_metadata=True)
    back = from_file(io.load_extra(tmp_path / "m.st"), saved)
    got = x.astype(np.float32) if back is None else back.transform(x)
    np.testing.assert_array_equal(got, expected)
    assert isinstance(back, type(pre)) and (kind in ("none", "zca") or back.per == kind)


def test_eval_applies_the_stored_preprocessing(tmp_path, capsys):
    path = tmp_path / "m.st"
    argv = ["train", "--limit", "1500", "--epochs", "1", "--preprocess", "feature", "--save", str(path), "--no-progress"]
    assert main(argv) == 0
    trained = float(capsys.readouterr().out.split("test accuracy ")[1].split("%")[0])
    assert main(["eval", str(path)]) == 0
    assert f"accuracy {trained:.2f}%" in capsys.readouterr().out
    assert isinstance(from_file(io.load_extra(path), io.read_tensors(path)[1]), Standardizer)
    assert math.isfinite(trained) and os.path.getsize(path) > 0
