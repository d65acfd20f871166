"""Checks on a classification dataset before training touches it.

Images must be numeric (integers or floats: no complex, string, object or bool arrays)
and finite, one label per image; labels must be a 1-D array of whole numbers in
``0 .. K-1`` (floats holding whole numbers are accepted, fractions are not); the class
count ``K`` is ``max label + 1`` over the training and test labels, bounded by
:data:`MAX_CLASSES`. Labels that run ``1 .. K`` (Lua/MATLAB style, no 0 anywhere) get
an error that says so. Every problem is a :class:`FormatError` naming the dataset and
the array.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError
from .._typing import Array

from typing import Any

#: most classes a dataset may have (a larger label is a corrupted file, not a class)
MAX_CLASSES = 1 << 20


def check_images(name: str, key: str, images: Array) -> None:
    """``images`` is a numeric, finite array of at least one dimension."""
    if not isinstance(images, np.ndarray) or images.ndim < 1:
        raise FormatError(f"{name}: {key} must be an array of samples, got {type(images).__name__}")
    if images.dtype.kind not in "iuf":
        raise FormatError(f"{name}: {key} has dtype {images.dtype}; images must be integers or floats")
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise FormatError(f"{name}: {key} holds NaN or infinite values")


def check_labels(name: str, key: str, labels: Array, n_images: int) -> np.ndarray:
    """``labels`` as int64, after checking shape, count, dtype, integrality and sign."""
    if not isinstance(labels, np.ndarray) or labels.ndim != 1:
        shape = getattr(labels, "shape", type(labels).__name__)
        raise FormatError(f"{name}: {key} must be a 1-D array of class indices, got shape {shape}")
    if len(labels) != n_images:
        raise FormatError(f"{name}: {len(labels)} labels in {key} for {n_images} samples")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise FormatError(f"{name}: {key} holds fractional or non-finite labels; class indices must be whole numbers")
    elif labels.dtype.kind not in "iu":
        raise FormatError(f"{name}: {key} has dtype {labels.dtype}; labels must be integers")
    if len(labels) and labels.min() < 0:
        raise FormatError(f"{name}: {key} holds negative labels ({labels.min()}); classes are 0 .. K-1")
    if len(labels) and labels.max() >= MAX_CLASSES:
        raise FormatError(f"{name}: {key} holds label {labels.max()}, more than {MAX_CLASSES} classes")
    return labels.astype(np.int64)


def class_count(name: str, *label_sets: Any) -> int:
    """``max label + 1`` over the given label arrays, refusing 1-based labels."""
    present = [y for y in label_sets if y is not None and len(y)]
    if not present:
        raise FormatError(f"{name}: no labels")
    low = min(int(y.min()) for y in present)
    high = max(int(y.max()) for y in present)
    if low == 1 and high >= 2:
        raise FormatError(
            f"{name}: labels run 1..{high} (1-based, as in Lua/Torch7 or MATLAB); ember counts classes from 0, so "
            f"this would build a {high + 1}-class network whose class 0 never occurs. Shift them: y = y - 1 "
            f"(for SVHN's .mat labels, where 10 means the digit 0: y = y % 10, or use --dataset svhn)"
        )
    return high + 1


def check_dataset(name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any) -> tuple[Any, Any, Any]:
    """``(y_train, y_test, n_classes)`` after checking all four arrays."""
    check_images(name, "x_train", x_train)
    check_images(name, "x_test", x_test)
    y_train = check_labels(name, "y_train", y_train, len(x_train))
    y_test = check_labels(name, "y_test", y_test, len(x_test))
    if not len(y_train):
        raise FormatError(f"{name}: no training samples")
    return y_train, y_test, class_count(name, y_train, y_test)
