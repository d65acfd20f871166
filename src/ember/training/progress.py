"""A progress bar for long loops (one per epoch in ``ember train``).

On a terminal it is a tqdm bar when tqdm is installed (the ``progress`` extra:
``pip install 'ember[progress]'``), else ember's own: one line redrawn at most 10 times a
second with a bar, samples/s, the ETA and the running loss. When the output is not a
terminal (a log file, CI) it prints a plain line every ``plain_every`` seconds instead,
with or without tqdm, so logs stay readable.
"""

from __future__ import annotations

from typing import Any

import sys
import time


def _clock(seconds) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


class Progress:
    """``Progress(total, desc)``; call ``update(n, loss=...)`` per batch, then ``close()``."""

    def __init__(self, total: Any, desc: str = "", stream: Any = None, unit: str = "samples", plain_every: float = 10.0,
                 enabled: bool = True) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.plain_every = plain_every
        self.count = 0
        self.start = self.last_draw = time.perf_counter()
        self.postfix: dict[str, Any] = {}
        self._tqdm = _tqdm_bar(self) if enabled and self.tty else None

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.count += n
        self.postfix.update(postfix)
        if self._tqdm is not None:
            if postfix:
                self._tqdm.set_postfix({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in postfix.items()},
                                       refresh=False)  # fmt: skip
            self._tqdm.update(n)
            return
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty and now - self.last_draw >= 0.1:
            self._draw(now, end="\r")
        elif not self.tty and now - self.last_draw >= self.plain_every:
            self._draw(now, end="\n")

    def line(self, now: Any = None) -> Any:
        now = now or time.perf_counter()
        elapsed = max(now - self.start, 1e-9)
        rate = self.count / elapsed
        eta = (self.total - self.count) / rate if rate > 0 else 0
        frac = min(self.count / self.total, 1.0) if self.total else 1.0
        bar = "#" * int(frac * 24) + "-" * (24 - int(frac * 24))
        extra = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in self.postfix.items())
        return (f"{self.desc} [{bar}] {frac * 100:3.0f}% {self.count}/{self.total} "
                f"{rate:,.0f} {self.unit}/s ETA {_clock(eta)} {extra}").rstrip()  # fmt: skip

    def _draw(self, now, end) -> None:
        self.last_draw = now
        self.stream.write(self.line(now) + (" " * 4 if end == "\r" else "") + end)
        self.stream.flush()

    def close(self) -> None:
        """Erase the bar on a terminal (the caller prints its summary line)."""
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled and self.tty:
            self.stream.write(" " * (len(self.line()) + 4) + "\r")
            self.stream.flush()


def _tqdm_bar(progress):
    """A tqdm bar for ``progress`` on its terminal stream, or None without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=progress.total, desc=progress.desc, file=progress.stream, unit=progress.unit,
                unit_scale=True, leave=False, mininterval=0.1, dynamic_ncols=True)  # fmt: skip
