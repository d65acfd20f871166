"""Resume is all or nothing (issue 13): a checkpoint edited and re-signed (both digests
recomputed) with wrong optimizer state, an integer view of the parameters, a malformed
generator or schedule state, bad counters or history is refused before anything is
assigned; a resumed run writes nothing before its first step succeeds; temporary files
left by a killed writer are removed by the next write."""

import os
import subprocess

import numpy as np
import pytest

from ember import models, nn
from ember.training import checkpoint
from ember.errors import FormatError
from ember.training import TrainOptions, fit, make_dataset


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 255, (80, 784), dtype=np.uint8), rng.integers(0, 4, 80)
    return make_dataset("tiny", x[:64], y[:64], x[64:], y[64:], (784,), preprocess="none")


def net():
    return models.build_model("mnist-mlp", rng=np.random.default_rng(0), hidden=8, n_classes=4, dropout=0.3)


def train(data, path, **kw):
    options = dict(epochs=1, batch_size=16, progress=False, checkpoint=str(path), optimizer="sgd", momentum=0.9,
                   schedule="plateau:0.5:1", lr=0.05)  # fmt: skip
    options.update(kw)
    model = net()
    with open(os.devnull, "w") as out:
        history = fit(model, nn.ClassNLLCriterion(), data, TrainOptions(**options), out=out)
    return model, history


def resign(path, edit):
    arrays, info = checkpoint.read_checkpoint(path)
    arrays = {k: v.copy() for k, v in arrays.items()}
    edit(arrays, info)
    checkpoint.write_checkpoint(path, arrays, info)


CASES = {
    "momentum-shape": (lambda a, i: a.update({"optim/dfdx": a["optim/dfdx"][:-1]}), r"optim/dfdx has shape"),
    "momentum-missing": (lambda a, i: a.pop("optim/dfdx"), r"optimizer state lacks \['optim/dfdx'\]"),
    "int32-params": (lambda a, i: a.update(params=a["params"].view(np.int32)), r"params is stored as int32"),
    "rng-state": (lambda a, i: i["rng"][0]["state"].update(state="x"), r"rng\[0\]: not a valid PCG64 state"),
    "rng-kind": (lambda a, i: i["rng"][1].update(bit_generator="MT19937"), r"does not fit a PCG64"),
    "schedule": (lambda a, i: i["schedule"].update(bad_epochs="2"), r"schedule\.bad_epochs"),
    "schedule-float": (lambda a, i: i["schedule"].update(bad_epochs=1.5), r"schedule\.bad_epochs = 1\.5"),
    "rng-float": (lambda a, i: i["rng"][0]["state"].update(state=1.5), r"rng\[0\]: not a valid PCG64 state"),
    "schedule-keys": (lambda a, i: i["schedule"].pop("lr"), r"schedule state"),
    "best": (lambda a, i: i["run"].update(best="low"), r"run\.best must be null or a finite number"),
    "history": (lambda a, i: i["run"].update(history=["x"]), r"run\.history must be a list of rows"),
    "finished-inf": (lambda a, i: i["run"].update(finished=float("inf")), r"run\.finished must be true or false"),
    "epoch-1e18": (lambda a, i: i["run"].update(epoch=1e18), r"run\.epoch must be an int"),
    "epoch-10**18": (lambda a, i: i["run"].update(epoch=10**18), r"inconsistent run counters"),
    "step": (lambda a, i: i["run"].update(step=i["run"]["step"] + 1), r"step 5 is not what epoch 1"),
    "optim-scalar": (lambda a, i: i["optim_scalars"].update(eval_counter=1.5), r"optim_scalars\.eval_counter"),
    "unknown-array": (lambda a, i: a.update(evil=np.zeros(2)), r"unexpected arrays \['evil'\]"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_re_signed_bad_checkpoint_is_refused_and_nothing_changes(data, tmp_path, case):
    path, log = tmp_path / "run.ckpt", tmp_path / "run.csv"
    train(data, path, log=str(log))
    edit, message = CASES[case]
    resign(path, edit)
    ckpt_bytes, log_bytes = path.read_bytes(), log.read_bytes()
    model = net()
    before = [p.copy() for p in model.parameters()[0]]
    options = TrainOptions(epochs=2, batch_size=16, progress=False, checkpoint=str(path), optimizer="sgd", momentum=0.9,
                           schedule="plateau:0.5:1", lr=0.05, resume=True, log=str(log))  # fmt: skip
    with pytest.raises(FormatError, match=r"run\.ckpt: .*" + message):
        with open(os.devnull, "w") as out:
            fit(model, nn.ClassNLLCriterion(), data, options, out=out)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.parameters()[0]))
    assert path.read_bytes() == ckpt_bytes and log.read_bytes() == log_bytes
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt", "run.csv"]


def test_nothing_is_written_before_the_resumed_runs_first_step_succeeds(data, tmp_path, monkeypatch):
    path, log = tmp_path / "run.ckpt", tmp_path / "run.csv"
    train(data, path, log=str(log), max_steps=6)
    log.write_text(log.read_text() if log.exists() else "")
    ckpt_bytes, log_bytes = path.read_bytes(), log.read_bytes()
    import ember.training.loop

    def broken(*args, **kwargs):
        raise RuntimeError("first step fails")

    monkeypatch.setattr(ember.training.loop, "make_feval", broken)
    with pytest.raises(RuntimeError, match="first step fails"):
        train(data, path, log=str(log), epochs=2, resume=True)
    assert path.read_bytes() == ckpt_bytes and log.read_bytes() == log_bytes


def test_resuming_a_completed_run_says_there_is_nothing_to_train(data, tmp_path, capsys):
    path = tmp_path / "run.ckpt"
    train(data, path)
    options = TrainOptions(epochs=1, batch_size=16, checkpoint=str(path), optimizer="sgd", momentum=0.9,
                           schedule="plateau:0.5:1", lr=0.05, resume=True, progress=False)  # fmt: skip
    import sys

    fit(net(), nn.ClassNLLCriterion(), data, options, out=sys.stdout)
    assert "nothing to train: it completed 1 of 1 epochs" in capsys.readouterr().out


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(data, tmp_path):
    path = tmp_path / "run.ckpt"
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = tmp_path / f".tmp-run.ckpt-{dead.pid}-abc123.part"
    leftover.write_bytes(b"half a checkpoint")
    alive = tmp_path / f".tmp-run.ckpt-{os.getpid()}-def456.part"  # a live writer's: kept
    alive.write_bytes(b"in flight")
    train(data, path)
    assert not leftover.exists() and alive.exists()
