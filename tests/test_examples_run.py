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
