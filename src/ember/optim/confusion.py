"""Confusion matrix with Torch7's ``optim.ConfusionMatrix`` API (snake_case)."""

from __future__ import annotations

import math

import numpy as np
from .._typing import Array, PathLike

from typing import Any, Self


class ConfusionMatrix:
    """Counts of (target, prediction) pairs: ``mat[target][pred]`` (rows are targets).

    ``ConfusionMatrix(10)`` or ``ConfusionMatrix(["cat", "dog", ...])`` (or both:
    ``ConfusionMatrix(n, classes)``). Classes are 0-based; a negative target means
    "missing" and is ignored (Torch7 ignores targets <= 0, being 1-based).

    After :meth:`update_valids` (called by every accessor):

    - ``total_valid``: accuracy, trace / total (``accuracy`` is the same);
    - ``valids[c]``: recall of class c, ``mat[c, c] / sum(mat[c, :])``;
    - ``average_valid``: mean of the per-class recalls over classes that occur;
    - ``unionvalids[c]``: ``mat[c, c] / (row c + column c - mat[c, c])`` (intersection
      over union) and ``average_union_valid`` its mean (the VOC measure).
    """

    def __init__(self, n_classes: int, classes: Any = None) -> None:
        if isinstance(n_classes, list | tuple):
            classes, n_classes = list(n_classes), len(n_classes)
        if not isinstance(n_classes, int | np.integer) or n_classes < 1:
            raise ValueError(f"ConfusionMatrix: n_classes must be a positive int or a list of class names, got {n_classes!r}")
        self.n_classes = int(n_classes)
        self.classes = [str(c) for c in classes] if classes else []
        if self.classes and len(self.classes) != self.n_classes:
            raise ValueError(f"ConfusionMatrix: {len(self.classes)} class names for {self.n_classes} classes")
        self.mat = np.zeros((self.n_classes, self.n_classes), dtype=np.int64)
        self.zero()

    # ------------------------------------------------------------------ counting
    def zero(self) -> Self:
        """Forget every count (Torch7's ``confusion:zero()``)."""
        self.mat[...] = 0
        self.valids = np.zeros(self.n_classes)
        self.unionvalids = np.zeros(self.n_classes)
        self.total_valid = self.average_valid = self.average_union_valid = 0.0
        return self

    def add(self, prediction: Any, target: Array) -> Self:
        """One sample: ``prediction`` a class index or a vector of scores (argmax);
        ``target`` a class index or a one-hot / score vector (argmax)."""
        pred = self._label(prediction, "prediction")
        targ = self._label(target, "target")
        if targ >= 0:
            self._check_range(np.array([pred]), "prediction")
            self._check_range(np.array([targ]), "target")
            self.mat[targ, pred] += 1
        return self

    def batch_add(self, predictions: Array, targets: Any) -> Self:
        """Many samples: predictions (N,) class indices or (N, C) scores; targets (N,)
        indices or (N, C) one-hot rows. Rows with a negative target are skipped."""
        preds = self._labels(predictions, "predictions")
        targs = self._labels(targets, "targets")
        if preds.shape != targs.shape:
            raise ValueError(f"ConfusionMatrix.batch_add: {preds.shape[0]} predictions but {targs.shape[0]} targets")
        keep = targs >= 0
        preds, targs = preds[keep], targs[keep]
        self._check_range(preds, "predictions")
        self._check_range(targs, "targets")
        np.add.at(self.mat, (targs, preds), 1)
        return self

    batchAdd = batch_add  # noqa: N815 - Torch7's name

    def _label(self, value, what):
        array = np.asarray(_host(value))
        if array.ndim == 0:
            if not np.issubdtype(array.dtype, np.integer):
                raise ValueError(f"ConfusionMatrix.add: {what} must be a class index (int) or a vector, got {value!r}")
            return int(array)
        if array.ndim != 1 or array.shape[0] != self.n_classes:
            raise ValueError(f"ConfusionMatrix.add: {what} vector must have {self.n_classes} entries, got shape {array.shape}")
        return int(array.argmax())

    def _labels(self, values, what):
        array = np.asarray(_host(values))
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 2:
            if array.shape[1] != self.n_classes:
                raise ValueError(f"ConfusionMatrix.batch_add: {what} of shape {array.shape}, expected (N, {self.n_classes})")
            return array.argmax(axis=1)
        if array.ndim != 1:
            raise ValueError(f"ConfusionMatrix.batch_add: {what} must be (N,) indices or (N, C) scores, got shape {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            if not np.all(array == np.round(array)):
                raise ValueError(f"ConfusionMatrix.batch_add: {what} as a vector must hold class indices")
        return array.astype(np.int64)

    def _check_range(self, labels: Array, what):
        bad = labels[(labels < 0) | (labels >= self.n_classes)]
        if bad.size:
            raise ValueError(f"ConfusionMatrix: {what} must be class indices in [0, {self.n_classes - 1}], got {int(bad[0])}")

    # ------------------------------------------------------------------ measures
    def update_valids(self) -> Self:
        """Recompute ``valids``, ``unionvalids``, ``total_valid``, ``average_valid``,
        ``average_union_valid`` from ``mat``."""
        mat = self.mat.astype(np.float64)
        diag, rows, cols = np.diag(mat), mat.sum(axis=1), mat.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.valids = diag / rows
            self.unionvalids = diag / (rows + cols - diag)
        total = mat.sum()
        self.total_valid = float(diag.sum() / total) if total else 0.0
        seen = ~np.isnan(self.valids)
        self.average_valid = float(self.valids[seen].mean()) if seen.any() else 0.0
        both = seen & ~np.isnan(self.unionvalids)
        self.average_union_valid = float(self.unionvalids[both].mean()) if both.any() else 0.0
        return self

    updateValids = update_valids  # noqa: N815 - Torch7's name

    @property
    def accuracy(self) -> float:
        """Fraction of samples classified correctly (``total_valid``)."""
        return self.update_valids().total_valid

    @property
    def per_class_accuracy(self) -> np.ndarray:
        """Recall of each class (``valids``; NaN for a class with no sample)."""
        return self.update_valids().valids

    def far_frr(self) -> tuple[Any, Any]:
        """Per-class false rejection rates (1 - recall) and false acceptance rates (mean
        over the other classes of the fraction of their samples predicted as this one).
        Returns ``(frr, far)``; NaN for classes with no sample."""
        mat = self.mat.astype(np.float64)
        rows = mat.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            frr = 1 - np.diag(mat) / rows
            rates = mat / rows[:, None]  # rates[j, i]: fraction of class j predicted as i
        far = np.full(self.n_classes, np.nan)
        present = rows > 0
        for i in np.flatnonzero(present):
            others = present.copy()
            others[i] = False
            far[i] = rates[others, i].mean() if others.any() else 0.0
        return frr, far

    # ------------------------------------------------------------------ display
    def __str__(self) -> str:
        self.update_valids()
        width = max(8, 1 + len(str(int(self.mat.max(initial=0)))))
        names = self.classes or [str(c) for c in range(self.n_classes)]
        label = max(11, *(len(n) for n in names))
        corner = "target\\pred"
        lines = ["ConfusionMatrix (rows: targets, columns: predictions):",
                 f"{corner:>{label}} " + "".join(f"{n[:width - 1]:>{width}}" for n in names) + "   recall"]  # fmt: skip
        for t, name in enumerate(names):
            recall = "    -   " if math.isnan(self.valids[t]) else f"{self.valids[t] * 100:7.3f}%"
            lines.append(f"{name:>{label}} " + "".join(f"{int(v):>{width}}" for v in self.mat[t]) + "  " + recall)
        lines.append(f" + average row correct (per-class accuracy): {self.average_valid * 100:.3f}%")
        lines.append(f" + average rowUcol correct (VOC measure): {self.average_union_valid * 100:.3f}%")
        lines.append(f" + global correct (accuracy): {self.total_valid * 100:.3f}%")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ConfusionMatrix({self.n_classes}, accuracy={self.accuracy:.4f})"

    def render(self, normalize: bool = True) -> Any:
        """The matrix as an image array (rows targets, columns predictions), each row
        divided by its count when ``normalize`` (Torch7's render shows the same)."""
        mat = self.mat.astype(np.float64)
        if normalize:
            mat = mat / np.maximum(mat.sum(axis=1, keepdims=True), 1)
        return mat

    def save_png(self, path: PathLike, title: str | None = None) -> Any:
        """Write the row-normalized matrix as a PNG heat map with the counts printed
        (needs matplotlib: ``pip install matplotlib``)."""
        from .plot import pyplot

        plt = pyplot()
        self.update_valids()
        names = self.classes or [str(c) for c in range(self.n_classes)]
        size = max(4.0, 0.5 * self.n_classes + 2)
        fig, ax = plt.subplots(figsize=(size + 1, size))
        image = ax.imshow(self.render(), cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the target's samples")
        if self.n_classes <= 30:
            for t in range(self.n_classes):
                for p in range(self.n_classes):
                    if self.mat[t, p]:
                        frac = self.render()[t, p]
                        ax.text(p, t, str(int(self.mat[t, p])), ha="center", va="center", fontsize=7,
                                color="white" if frac > 0.5 else "black")  # fmt: skip
        ax.set_xticks(range(self.n_classes), names, rotation=90 if max(map(len, names)) > 3 else 0)
        ax.set_yticks(range(self.n_classes), names)
        ax.set_xlabel("prediction")
        ax.set_ylabel("target")
        ax.set_title(title or f"accuracy {self.total_valid * 100:.2f}%, per-class {self.average_valid * 100:.2f}%")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _host(value):
    return value.get() if hasattr(value, "get") and not isinstance(value, np.ndarray | dict) else value
