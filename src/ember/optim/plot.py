"""Training curves as PNG from a run's CSV log (``ember plot RUN.csv``). Needs the
optional matplotlib (``pip install matplotlib`` or ``pip install 'ember[plot]'``)."""

from __future__ import annotations

import math
import os

from .logger import read_csv

from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, or a clear ImportError."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            "writing PNG plots needs matplotlib, which is not installed: pip install matplotlib "
            "(or pip install 'ember[plot]')"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_PANELS = (
    ("loss", lambda c: c.endswith("loss")),
    ("accuracy (%)", lambda c: c.endswith("acc") or c.endswith("accuracy")),
    ("learning rate", lambda c: c in ("lr", "learning_rate")),
)


def plot_csv(csv_path: Any, png_path: Any = None, x: str = "epoch", styles: Any = None, log_scale: bool = False) -> Any:
    """Plot every column of the log against ``x``: losses, accuracies and the learning
    rate in separate panels (other numeric columns in a last one). Returns the PNG path."""
    columns = read_csv(csv_path)
    png_path = png_path or os.path.splitext(os.fspath(csv_path))[0] + ".png"
    if x not in columns:
        x = next(iter(columns))
    xs = columns[x]
    numeric = [c for c in columns if c != x and all(isinstance(v, float) for v in columns[c])
               and any(math.isfinite(v) for v in columns[c]) and c not in ("time", "step", "seconds")]  # fmt: skip
    if not xs or not numeric:
        raise ValueError(f"{csv_path}: nothing to plot (need a header, rows and numeric columns)")
    panels, used = [], set()
    for title, test in _PANELS:
        chosen = [c for c in numeric if test(c)]
        if chosen:
            panels.append((title, chosen))
            used.update(chosen)
    rest = [c for c in numeric if c not in used]
    if rest:
        panels.append(("other", rest))
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.8 * len(panels) + 0.6), sharex=True, squeeze=False)
    styles = styles or {}
    for ax, (title, names) in zip(axes[:, 0], panels):
        for name in names:
            values = columns[name]
            if title.startswith("accuracy") and max(v for v in values if math.isfinite(v)) <= 1:
                values = [v * 100 for v in values]
            ax.plot(xs, values, styles.get(name, "-" if "train" in name else "--" if "valid" in name else ":"),
                    marker="o", markersize=3, label=name)  # fmt: skip
        ax.set_ylabel(title)
        finite = [v for name in names for v in columns[name] if math.isfinite(v) and v > 0]
        wide = bool(finite) and max(finite) > 10 * min(finite)
        if (title == "learning rate" and wide) or (log_scale and title != "accuracy (%)"):
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    axes[-1, 0].set_xlabel(x)
    axes[-1, 0].xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(os.path.basename(os.fspath(csv_path)))
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return png_path
