"""A CSV log per run, like Torch7's ``optim.Logger`` (one row per ``add``)."""

from __future__ import annotations

from typing import Any, Self

import csv
import io
import math
import os

from .._typing import Array, PathLike


class Logger:
    """Append rows of named values to a CSV file, flushed (and fsynced) at every row
    so that a crash loses nothing already logged.

    ``Logger(path)`` starts a new file; ``Logger(path, keep_rows=n)`` reopens an
    existing log and keeps only its header and first n rows (what a resumed run does:
    rows written after the checkpoint it resumes from are dropped, then rewritten).

    Torch7's API in snake_case: :meth:`set_names`, :meth:`add`, :meth:`style`,
    :meth:`set_log_scale`, :meth:`plot` (writes a PNG instead of opening a window).
    """

    def __init__(self, path: PathLike, names: Any = None, keep_rows: Any = None) -> None:
        self.path = os.fspath(path)
        self.names: Any = None
        self.rows = 0
        self.styles: dict[str, Any] = {}
        self.log_scale = False
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        if keep_rows is not None and os.path.exists(self.path):
            self._truncate(keep_rows)
        else:
            open(self.path, "w").close()
        if names:
            self.set_names(names)

    def _truncate(self, keep_rows):
        with open(self.path, newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            open(self.path, "w").close()
            return
        header, body = rows[0], rows[1:]
        if keep_rows > len(body):
            raise ValueError(f"{self.path}: the checkpoint expects {keep_rows} logged rows, the log has only {len(body)}")
        self._write_all([header] + body[:keep_rows])
        self.names, self.rows = header, keep_rows

    def _write_all(self, rows) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(rows)
        from ..io import atomic_write

        atomic_write(self.path, [buffer.getvalue().encode()])

    def set_names(self, names: Any) -> Self:
        """The column names (written as the header unless the file already has them)."""
        names = [str(n) for n in names]
        if self.names is not None:
            if names != self.names:
                raise ValueError(f"{self.path}: the log has columns {self.names}, cannot switch to {names}")
            return self
        self.names = names
        self._append(names)
        return self

    setNames = set_names  # noqa: N815 - Torch7's name

    def add(self, values: Array) -> Self:
        """Append one row: a dict keyed by the column names (missing -> empty) or a
        list in column order. With no names set, a dict's keys become the columns."""
        if isinstance(values, dict):
            if self.names is None:
                self.set_names(list(values))
            unknown = sorted(set(values) - set(self.names))
            if unknown:
                raise ValueError(f"{self.path}: unknown column(s) {unknown}; columns are {self.names}")
            row = [values.get(n, "") for n in self.names]
        else:
            row = list(values)
            if self.names is None or len(row) != len(self.names):
                raise ValueError(f"{self.path}: a row of {len(row)} values for columns {self.names}")
        self._append([_format(v) for v in row])
        self.rows += 1
        return self

    def _append(self, row) -> None:
        buffer = io.StringIO()
        csv.writer(buffer).writerow(row)
        with open(self.path, "a", newline="") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())

    def style(self, styles: Any) -> Self:
        """Matplotlib line styles per column, e.g. ``{"train_loss": "-", "test_loss": "--"}``."""
        self.styles.update(styles)
        return self

    def set_log_scale(self, value: bool = True) -> Self:
        """Plot the values on a logarithmic axis (Torch7's ``setlogscale``); returns self."""
        self.log_scale = bool(value)
        return self

    setlogscale = set_log_scale

    def plot(self, png_path: Any = None) -> Any:
        """Write the curves to ``png_path`` (default: the log's path with .png)."""
        from .plot import plot_csv

        return plot_csv(self.path, png_path, styles=self.styles, log_scale=self.log_scale)


def _format(value):
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return value


def read_csv(path: PathLike) -> Any:
    """``{column: [values]}`` from a log (numbers as floats, empty cells as NaN)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty log (no header)")
    header, body = rows[0], [r for r in rows[1:] if r]
    columns: dict[str, list[Any]] = {name: [] for name in header}
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}: line {line} has {len(row)} values for {len(header)} columns")
        for name, cell in zip(header, row):
            try:
                columns[name].append(float(cell) if cell != "" else math.nan)
            except ValueError:
                columns[name].append(cell)
    return columns
