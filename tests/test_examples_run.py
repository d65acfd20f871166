"""The examples' main() runs to its end on a small budget (a crash after the training,
in the reporting, would otherwise show only after minutes of a real run)."""

import os
import runpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_siamese_mnist_runs_to_the_end(capsys):
    example = runpy.run_path(os.path.join(ROOT, "examples", "siamese_mnist.py"))
    example["main"](["--epochs", "1", "--train", "300", "--batch-size", "50", "--png", ""])
    out = capsys.readouterr().out
    assert "1-NN" in out and "s (loading + training)" in out
