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


def test_lista_vs_fista_runs_to_the_end(tmp_path):
    example = runpy.run_path(os.path.join(ROOT, "examples", "lista_vs_fista.py"))
    png = tmp_path / "lista.png"
    results = example["main"](["--train", "400", "--test", "100", "--code", "32", "--epochs", "1", "--lista-steps", "1,2",
                               "--untied-steps", "2", "--lista-train", "500", "--lista-epochs", "1", "--fista-iters", "3",
                               "--png", str(png)])  # fmt: skip
    assert set(results["lista"]) == {1, 2} and set(results["lista_untied"]) == {2} and png.stat().st_size > 0
    assert results["ista"][1] == results["fista"][1]  # the same first step
