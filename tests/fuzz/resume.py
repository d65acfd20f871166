"""kill -9 at random moments of ``ember train``, then ``--resume``: the final model file
must be bit-identical to an uninterrupted run's, the CSV log's metrics equal, and no
``.tmp-*`` file may be left in the run's folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from ember.tensor_file import read_tensors

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
ARGS = ["--epochs", "2", "--batch-size", "16", "--dropout", "0.3", "--optimizer", "sgd", "--schedule", "step:1:0.5",
        "--valid", "32", "--no-progress", "--threads", "1", "--checkpoint-every", "1"]  # fmt: skip


def _dataset(folder):
    rng = np.random.default_rng(0)
    path = os.path.join(folder, "data.npz")
    x = rng.integers(0, 256, (200, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 200)
    np.savez(path, x_train=x[:160], y_train=y[:160], x_test=x[160:], y_test=y[160:])
    return path


def _command(folder, data, *extra):
    return [sys.executable, "-m", "ember", "train", "--data", data, *ARGS, "--save", os.path.join(folder, "m.st"),
            "--checkpoint", os.path.join(folder, "run.ckpt"), "--log", os.path.join(folder, "run.csv"), *extra]  # fmt: skip


def _env():
    return dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _metrics(folder):
    with open(os.path.join(folder, "run.csv")) as handle:
        return [line.split(",")[:-1] for line in handle.read().splitlines()]  # all but the wall-clock time


def kill_and_resume(count, seed=0):
    """``count`` runs, each killed once at a random moment and resumed; returns one dict
    per run (``exact``, ``leftovers``, ``killed_after``)."""
    root = tempfile.mkdtemp(prefix="ember-kill-")
    try:
        data = _dataset(root)
        straight = os.path.join(root, "straight")
        os.makedirs(straight)
        started = time.perf_counter()
        subprocess.run(_command(straight, data), env=_env(), check=True, capture_output=True, timeout=600)
        duration = time.perf_counter() - started
        want, _ = read_tensors(os.path.join(straight, "m.st"))
        rng = np.random.default_rng(seed)
        results = []
        for number in range(count):
            folder = os.path.join(root, f"run{number}")
            os.makedirs(folder)
            proc = subprocess.Popen(_command(folder, data), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            delay = float(rng.uniform(0.3, 0.95)) * duration
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            done = subprocess.run(_command(folder, data, "--resume"), env=_env(), capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
            got, _ = read_tensors(os.path.join(folder, "m.st")) if done.returncode == 0 else ({}, None)
            exact = (done.returncode == 0 and got.keys() == want.keys()
                     and all(np.array_equal(got[k], want[k]) for k in want) and _metrics(folder) == _metrics(straight))  # fmt: skip
            leftovers = [name for name in os.listdir(folder) if name.startswith(".tmp-")]
            results.append({"exact": exact, "leftovers": leftovers, "killed_after": delay, "stderr": done.stderr[-300:],
                            "resumed": done.stdout.splitlines()[:2], "metrics_equal": _metrics(folder) == _metrics(straight),
                            "files": sorted(os.listdir(folder))})  # fmt: skip
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)
