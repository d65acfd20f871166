"""The examples' main() runs to its end on a small budget (a crash after the training,
in the reporting, would otherwise show only after minutes of a real run)."""

import os
import runpy

import pytest

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


def test_unsup_pretrain_curves_reads_logs_and_draws(tmp_path, capsys):
    example = runpy.run_path(os.path.join(ROOT, "examples", "unsup_pretrain_curves.py"))
    header = "epoch,step,train_loss,train_acc,test_loss,test_acc,lr,time\n"
    for name, accs in (("pre", (0.985, 0.9953)), ("rand", (0.986, 0.994))):
        rows = "".join(f"{e + 1},{938 * (e + 1)},0.1,0.9,0.05,{a},0.03,100\n" for e, a in enumerate(accs))
        (tmp_path / f"{name}.csv").write_text(header + rows)
    epochs, accs = example["read_log"](str(tmp_path / "pre.csv"))
    assert epochs == [1, 2] and accs == pytest.approx([98.5, 99.53])
    out = tmp_path / "curves.png"
    example["main"](["--run", f"pre-trained={tmp_path / 'pre.csv'}",
                     "--run", f"random init={tmp_path / 'rand.csv'}", "--out", str(out)])  # fmt: skip
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "written" in capsys.readouterr().out
