"""The progress bar: tqdm on a terminal when installed, else ember's own; plain lines in logs."""

import io
import sys

import pytest

from ember.training.progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def run_bar(stream):
    bar = Progress(10, "epoch 1/1", stream=stream)
    bar.last_draw = -1.0  # draw at the first update (the built-in bar waits 0.1 s between draws)
    bar.update(5, loss=0.5)
    bar.close()
    return stream.getvalue()


def test_tqdm_draws_the_bar_on_a_terminal_when_installed():
    pytest.importorskip("tqdm")
    text = run_bar(Terminal())
    assert "epoch 1/1" in text and "%|" in text  # tqdm's own layout: "50%|#####     | 5/10"


def test_builtin_bar_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    text = run_bar(Terminal())
    assert "epoch 1/1 [" in text and "5/10" in text and "loss 0.5000" in text and "%|" not in text


def test_logs_get_plain_lines_even_with_tqdm():
    stream = io.StringIO()
    bar = Progress(10, "epoch 1/1", stream=stream, plain_every=0.0)
    bar.update(5, loss=0.5)
    assert stream.getvalue().endswith("loss 0.5000\n") and "\r" not in stream.getvalue()
