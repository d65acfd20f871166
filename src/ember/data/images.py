"""Images kept in their compact dtype (uint8) and preprocessed one batch at a time.

``ember train`` used to hold the whole training set as float32 (four bytes a pixel, and
float64 copies while standardizing). :class:`PreprocessedImages` keeps the raw uint8
array and applies the fitted preprocessing (:mod:`ember.data.preprocess`) only to the
rows asked for: a minibatch (:meth:`~PreprocessedImages.gather`), or a slice for
evaluation. To NumPy it is the float array it stands for (``np.asarray(images)``
materializes it, in chunks).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .batches import Standardizer

from .._typing import Array


class PreprocessedImages:
    """The float images ``preprocessor.transform(raw)`` (or ``raw`` as ``dtype`` when the
    preprocessor is None), computed on demand: ``images[i:j]``, ``images[index_array]``
    and :meth:`gather` return ``dtype`` arrays of just those rows."""

    def __init__(self, raw: Any, preprocessor: Any = None, dtype: Any = np.float32) -> None:
        self.raw, self.preprocessor, self.dtype = raw, preprocessor, np.dtype(dtype)
        self._rows: Any = None  # a reused uint8 buffer for gathered rows

    @property
    def shape(self) -> tuple:
        return self.raw.shape

    @property
    def ndim(self) -> int:
        return self.raw.ndim

    def __len__(self) -> int:
        return len(self.raw)

    def _apply(self, rows, out=None):
        if self.preprocessor is None:
            if out is None:
                return rows.astype(self.dtype)
            np.copyto(out, rows, casting="unsafe")
            return out
        if out is not None and isinstance(self.preprocessor, Standardizer):  # straight into the batch buffer
            return self.preprocessor.transform(rows, dtype=out.dtype, out=out)
        values = self.preprocessor.transform(rows, dtype=self.dtype).reshape(rows.shape)
        if out is None:
            return values
        out[...] = values
        return out

    def __getitem__(self, key: Any) -> Any:
        return self._apply(self.raw[key])

    def gather(self, index: np.ndarray, out: Array) -> Any:
        """Rows ``index`` into the batch buffer ``out`` (NumPy, or CuPy: copied over once)."""
        if self._rows is None or self._rows.shape[0] < len(index):
            self._rows = np.empty((max(len(index), 1),) + self.raw.shape[1:], dtype=self.raw.dtype)
        rows = self._rows[: len(index)]
        np.take(self.raw, index, axis=0, out=rows)
        if isinstance(out, np.ndarray):
            return self._apply(rows, out)
        import cupy  # only reached with a CuPy batch buffer

        out[...] = cupy.asarray(self._apply(rows), dtype=out.dtype)
        return out

    def with_preprocessor(self, preprocessor: Any) -> PreprocessedImages:
        """The same raw images with another preprocessing (``ember eval`` uses the model's)."""
        return PreprocessedImages(self.raw, preprocessor, self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        out = np.empty(self.raw.shape, dtype=self.dtype)
        for start in range(0, len(self.raw), 8192):
            self._apply(self.raw[start : start + 8192], out[start : start + 8192])
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"PreprocessedImages({self.raw.shape} {self.raw.dtype} -> {self.dtype}, {self.preprocessor!r})"
