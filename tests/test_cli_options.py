"""The command line: validated numbers, --version, exit codes, optional packages checked first."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("argv", [
    ["--epochs", "0"], ["--epochs", "-3"], ["--batch-size", "0"], ["--lr", "0"], ["--lr", "nan"], ["--lr", "-1"],
    ["--momentum", "-0.1"], ["--dropout", "1"], ["--limit", "0"], ["--valid", "-1"], ["--max-steps", "0"],
    ["--threads", "0"], ["--weight-decay", "inf"], ["--epochs", "2.5"],
])  # fmt: skip
def test_bad_numbers_are_usage_errors_before_any_work(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert argv[0] in err and ("must be" in err or "expected" in err)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"ember {ember.__version__}"


def test_explicit_small_values_are_used_not_replaced_by_defaults(capsys):
    assert main(["train", "--epochs", "1", "--limit", "200", "--batch-size", "1000", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ", 1 epochs, batch 1000" in out and "after 1 epochs" in out


def test_missing_matplotlib_stops_eval_before_the_evaluation(tmp_path, capsys, monkeypatch):
    path = tmp_path / "m.safetensors"
    assert main(["train", "--limit", "200", "--epochs", "1", "--save", str(path), "--no-progress"]) == 0
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["eval", str(path), "--confusion-png", str(tmp_path / "c.png")]) == 1
    captured = capsys.readouterr()
    assert "needs matplotlib" in captured.err and "accuracy" not in captured.out
    assert not (tmp_path / "c.png").exists()


def test_siamese_example_without_matplotlib_fails_before_training(tmp_path):
    code = ("import sys, runpy; sys.modules['matplotlib'] = None; "
            "sys.argv = ['siamese_mnist.py', '--train', '100', '--epochs', '1', '--png', 'x.png']; "
            "runpy.run_path('examples/siamese_mnist.py', run_name='__main__')")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and "needs matplotlib" in result.stderr and "accuracy" not in result.stdout


def test_dataset_and_data_file_are_exclusive(tmp_path, capsys):
    path = tmp_path / "d.npz"
    y = np.arange(4) % 2
    np.savez(path, x_train=np.zeros((4, 784), np.uint8), y_train=y, x_test=np.zeros((4, 784), np.uint8), y_test=y)
    assert main(["train", "--data", str(path), "--dataset", "mnist", "--no-progress"]) == 1
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--pairs", "-1"], ["--margin", "0"], ["--epochs", "nan"]])
def test_manifold_numbers_are_validated_too(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["manifold", *argv])
    assert info.value.code == 2 and argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("script", ["char_lm.py", "graph_mnist.py", "optimizer_table.py", "siamese_mnist.py"])
def test_examples_start_as_the_readme_runs_them(script):
    """`python examples/X.py` from the clone's root with the environment ember is installed in
    (the README: activate .venv first; the test run's own environment here)."""
    result = subprocess.run([sys.executable, f"examples/{script}", "--help"], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
