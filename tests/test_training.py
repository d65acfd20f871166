"""The training loop's checkpoints: exact resume across processes (including kill -9),
corrupted or truncated checkpoints rejected without loading anything, a non-finite
loss leaving the last checkpoint in place; plus options, logs and early stopping."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ember import models, nn
from ember.training.checkpoint import read_checkpoint
from ember.errors import FormatError, TrainingError
from ember.io import read_tensors
from ember.training import TrainOptions, evaluate, fit, load_dataset

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
# dropout (RNG state), adam (optimizer state), a schedule and a validation split
COMMON = ["--limit", "1500", "--epochs", "3", "--batch-size", "50", "--dropout", "0.3", "--optimizer", "adam",
          "--valid", "300", "--schedule", "step:1:0.5", "--no-progress", "--threads", "1", "--checkpoint-every", "7"]  # fmt: skip


def ember(tmp, name, *extra, wait=True):
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    argv = [sys.executable, "-m", "ember", "train", *COMMON, "--save", str(tmp / f"{name}.st"),
            "--checkpoint", str(tmp / f"{name}.ckpt"), "--log", str(tmp / f"{name}.csv"), *extra]  # fmt: skip
    if not wait:
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def same_arrays(a, b):
    ta, _ = read_tensors(a)
    tb, _ = read_tensors(b)
    return ta.keys() == tb.keys() and all(np.array_equal(ta[k], tb[k]) for k in ta)


@pytest.mark.slow
def test_resume_is_bit_exact_after_a_stop_and_after_kill_9(tmp_path):
    ember(tmp_path, "straight")
    # k steps, stop, resume: N - k steps
    out = ember(tmp_path, "split", "--max-steps", "31")
    assert "stopped after 31 steps" in out
    assert "resumed from" in ember(tmp_path, "split", "--resume")
    assert same_arrays(tmp_path / "straight.st", tmp_path / "split.st")
    assert (tmp_path / "straight.csv").read_text().count("\n") == (tmp_path / "split.csv").read_text().count("\n") == 4
    # kill -9 at an arbitrary moment after some checkpoints, then resume
    proc = ember(tmp_path, "killed", wait=False)
    ckpt = tmp_path / "killed.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and read_checkpoint(ckpt)[1]["run"]["step"] >= 20:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "resumed from" in ember(tmp_path, "killed", "--resume")
    assert same_arrays(tmp_path / "straight.st", tmp_path / "killed.st")
    straight = [line.split(",")[:9] for line in (tmp_path / "straight.csv").read_text().splitlines()]
    killed = [line.split(",")[:9] for line in (tmp_path / "killed.csv").read_text().splitlines()]
    assert straight == killed  # every logged metric but the wall-clock time


@pytest.fixture(scope="module")
def tiny():
    return load_dataset((784,), limit=600, valid=100)


def net():
    return models.build_model("mnist-mlp", rng=np.random.default_rng(0), hidden=32)


def quiet(**kw):
    kw.setdefault("progress", False)
    kw.setdefault("epochs", 1)
    return TrainOptions(**kw)


def run(data, options):
    with open(os.devnull, "w") as out:
        return fit(net(), nn.ClassNLLCriterion(), data, options, out=out)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_damaged_checkpoint_is_rejected_and_nothing_is_loaded(tiny, tmp_path, damage):
    path = tmp_path / "run.ckpt"
    run(tiny, quiet(checkpoint=str(path), optimizer="adam"))
    raw = bytearray(path.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0x10
    elif damage == "truncate":
        raw = raw[: len(raw) - 100]
    else:
        raw[8:40] = b"x" * 32
    path.write_bytes(bytes(raw))
    model = net()
    before = [a.copy() for a in model.parameters()[0]]
    with pytest.raises(FormatError, match=r"run\.ckpt: .*(checksum mismatch|digest mismatch|truncated|not valid JSON)"):
        with open(os.devnull, "w") as out:
            fit(model, nn.ClassNLLCriterion(), tiny, quiet(checkpoint=str(path), optimizer="adam", resume=True), out=out)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.parameters()[0]))


def test_resume_with_other_options_is_refused(tiny, tmp_path):
    path = tmp_path / "run.ckpt"
    run(tiny, quiet(checkpoint=str(path), batch_size=32))
    with pytest.raises(FormatError, match=r"different training options \(batch_size: 32 -> 64\)"):
        run(tiny, quiet(checkpoint=str(path), batch_size=64, resume=True, epochs=2))


def test_non_finite_loss_stops_and_leaves_the_checkpoint(tiny, tmp_path):
    path = tmp_path / "run.ckpt"
    run(tiny, quiet(checkpoint=str(path)))
    good = path.read_bytes()
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) .*the last checkpoint \(.*run\.ckpt\) is intact"):
        run(tiny, quiet(checkpoint=str(path), lr=1e30))
    assert path.read_bytes() == good


def test_a_finished_run_resumes_to_nothing_and_more_epochs_continue(tiny, tmp_path):
    path = tmp_path / "run.ckpt"
    first = run(tiny, quiet(checkpoint=str(path), epochs=2))
    again = run(tiny, quiet(checkpoint=str(path), epochs=2, resume=True))
    assert again == first
    more = run(tiny, quiet(checkpoint=str(path), epochs=3, resume=True))
    assert more[:2] == first and len(more) == 3


def test_log_validation_schedule_and_early_stopping(tiny, tmp_path):
    log = tmp_path / "run.csv"
    model = net()
    with open(os.devnull, "w") as out:
        history = fit(model, nn.ClassNLLCriterion(), tiny,
                      quiet(epochs=6, log=str(log), schedule="exp:0.5", early_stop=1, lr=2.0, momentum=0.9), out=out)  # fmt: skip
    header = log.read_text().splitlines()[0].split(",")
    assert header == ["epoch", "step", "train_loss", "train_acc", "valid_loss", "valid_acc", "test_loss", "test_acc", "lr", "time"]
    assert len(log.read_text().splitlines()) == len(history) + 1
    lrs = [row["lr"] for row in history]
    assert lrs[0] == pytest.approx(2.0) and all(b == pytest.approx(a / 2) for a, b in zip(lrs, lrs[1:]))
    assert len(history) < 6, "lr 2.0 with momentum diverges: early stopping must kick in"
    # the best epoch's parameters are restored: the model scores the best validation loss again
    best = min(r["valid_loss"] for r in history)
    assert evaluate(model, nn.ClassNLLCriterion(), tiny.x_valid, tiny.y_valid)[0] == pytest.approx(best, rel=1e-5)


def test_weight_decay_switches_on_at_its_epoch(tiny):
    plain = run(tiny, quiet(epochs=2))
    late = run(tiny, quiet(epochs=2, weight_decay=0.5, decay_from=1, skip_biases=True))
    early = run(tiny, quiet(epochs=2, weight_decay=0.5))
    assert late[0] == {**plain[0], "time": late[0]["time"]}  # identical first epoch
    assert late[1]["train_loss"] != plain[1]["train_loss"] and early[0]["train_loss"] != plain[0]["train_loss"]


def test_unknown_optimizer_and_missing_validation_are_clear(tiny):
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        TrainOptions(optimizer="adamm")
    with pytest.raises(ValueError, match="early stopping needs a validation set"):
        run(load_dataset((784,), limit=300), quiet(early_stop=2))
    with pytest.raises(ValueError, match="cg has no learning rate to schedule"):
        run(tiny, quiet(optimizer="cg", schedule="exp:0.5"))
