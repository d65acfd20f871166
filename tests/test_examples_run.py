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
    small = ["--train", "300", "--test", "50", "--code", "16", "--epochs", "1", "--lista-train", "400", "--lista-epochs", "1",
             "--fista-iters", "3", "--target-iters", "50"]  # fmt: skip
    tied = example["main"](small + ["--lista-steps", "1,2", "--untied-steps", "", "--json", str(tmp_path / "a.json")])
    untied = example["main"](small + ["--no-psd", "--lista-steps", "", "--untied-steps", "2", "--json", str(tmp_path / "b.json")])
    assert "psd" in tied and "psd" not in untied and tied["fista"] == untied["fista"]  # PSD changes nothing else
    png = tmp_path / "lista.png"
    merged = example["main"](["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--png", str(png)])
    assert merged["lista"] == tied["lista"] and merged["lista_untied"] == untied["lista_untied"] == {2: untied["lista_untied"][2]}
    assert png.stat().st_size > 0 and merged["ista"][1] == merged["fista"][1]  # the same first step
