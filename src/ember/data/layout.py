"""Checks that stop silently wrong training: the image layout and the class labels.

:func:`to_model_layout` puts images into the (N, C, H, W) layout a model expects (or
flattens them for a flat model). Channels-last (NHWC, what PIL, Matplotlib, TensorFlow
and SVHN use) is recognised from the shape when only one reading fits; when both fit
(a flat 3072-vector for a 3x32x32 model, or C == H == W), it refuses and asks for
``layout="nchw"`` or ``"nhwc"`` (``ember train --layout``). It never copies to float:
the images keep their dtype (uint8 stays uint8).

The labels are checked by :mod:`ember.data.checks` (integers 0..K-1, 1-based labels
refused with the fix).
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .._typing import Array

LAYOUTS = ("nchw", "nhwc")


def _readings(sample, chw):
    """Which layouts make the sample shape ``sample`` into ``chw`` = (C, H, W)."""
    c, h, w = chw
    found = []
    if len(sample) == 3:
        if tuple(sample) == (c, h, w):
            found.append("nchw")
        if tuple(sample) == (h, w, c):
            found.append("nhwc")
    elif len(sample) == 2 and c == 1 and tuple(sample) == (h, w):
        found.append("nchw")  # one channel: the two layouts are the same bytes
    elif len(sample) == 1 and sample[0] == c * h * w:
        found += ["nchw"] if c == 1 else ["nchw", "nhwc"]
    return found


def to_model_layout(images: Array, input_shape: tuple, layout: str | None = None,
                    what: str = "data") -> tuple[np.ndarray, str]:
    """``images`` (N, ...) reshaped or transposed to ``(N, *input_shape)``; returns
    ``(images, layout_used)``.

    ``input_shape`` (C, H, W): samples (C, H, W) are NCHW, (H, W, C) NHWC (transposed,
    keeping the dtype), (H, W) one channel, flat (C*H*W,) need ``layout`` unless C == 1.
    A flat ``input_shape`` (D,): image samples with 3 axes are first put channels-first
    when NHWC (detected from a 1, 3 or 4-wide last axis or given), then flattened.
    """
    images = np.asarray(images)
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    sample, input_shape = tuple(images.shape[1:]), tuple(input_shape)
    n = images.shape[0]
    if int(np.prod(sample)) != int(np.prod(input_shape)):
        raise ShapeError(f"{what}: samples of shape {sample} do not fit a model expecting {input_shape}")
    if len(input_shape) == 3:
        found = _readings(sample, input_shape)
        chosen = layout if layout is not None else (found[0] if len(found) == 1 else None)
        if chosen is None:
            raise ShapeError(
                f"{what}: samples of shape {sample} could be channels-first (NCHW) or channels-last (NHWC) for a "
                f"model taking {input_shape}; say which with --layout nchw or --layout nhwc (layout= in Python)"
            )
        if layout is not None and found and layout not in found:
            raise ShapeError(f"{what}: samples of shape {sample} are not {layout.upper()} for a model taking {input_shape}")
        c, h, w = input_shape
        if chosen == "nhwc":
            return np.ascontiguousarray(images.reshape(n, h, w, c).transpose(0, 3, 1, 2)), chosen
        return images.reshape((n,) + input_shape), chosen
    # a flat model: channels-last images are put channels-first before flattening
    chosen = layout or ("nhwc" if len(sample) == 3 and sample[-1] in (1, 3, 4) and sample[0] not in (1, 3, 4) else "nchw")
    if chosen == "nhwc" and len(sample) == 3:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images.reshape((n,) + input_shape), chosen
