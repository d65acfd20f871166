"""Images of one object under many poses and lightings (the DrLIM / NORB setting).

:func:`render_pose_set` draws a rigid, asymmetric toy object on a turntable with
ember's own little ray caster (:mod:`ember.data.pose_render`): 18 azimuths (20-degree
steps, wrapping around) x 9 camera elevations x 6 lightings = 972 grey images,
32x32 by default, in a few seconds, identical on every run. The lights are fixed in
the room, so the lighting changes the pixels more than the pose does
(:func:`variance_shares` measures it).

:func:`load_pose_set` reads any other set of the same form from an ``.npz`` file:
``images`` uint8 (N, H, W) and integer ``azimuth``, ``elevation``, ``lighting``
arrays of length N (optionally a boolean ``held_out``). Azimuth values must be equally
spaced around the full circle (indices 0..17, degrees 0..340 or NORB's 0, 2, ..., 34 all
work); elevation and lighting values are only compared for equality and order.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError
from ..io import atomic_write
from .npz import read_npz
from ..viz import write_png
from .pose_render import AZIMUTHS, ELEVATIONS, LIGHTINGS, OBJECTS, render_views

from typing import Any
from .._typing import PathLike

#: The fixed train / held-out split: this seed and fraction, whatever the training seed.
SPLIT_SEED = 2006
HELD_OUT_FRACTION = 1 / 3


@dataclass
class PoseSet:
    """Images with their pose and lighting labels.

    images: uint8 (N, H, W). azimuth, elevation, lighting: int64 (N,) as given.
    az_index, el_index, light_index: 0-based ranks of those values (azimuth ranks go
    round a circle of ``n_azimuth`` steps). held_out: bool (N,), the evaluation set S;
    the rest is the fit/training set F.
    """

    images: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray
    lighting: np.ndarray
    held_out: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        self.az_values, self.az_index = np.unique(self.azimuth, return_inverse=True)
        self.el_values, self.el_index = np.unique(self.elevation, return_inverse=True)
        self.light_values, self.light_index = np.unique(self.lighting, return_inverse=True)
        self.n_azimuth = len(self.az_values)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def angle(self) -> np.ndarray:
        """Azimuth in radians, 2*pi*az_index/n_azimuth."""
        return 2 * np.pi * self.az_index / self.n_azimuth

    @property
    def train_index(self) -> np.ndarray:
        return np.flatnonzero(~self.held_out)

    @property
    def test_index(self) -> np.ndarray:
        return np.flatnonzero(self.held_out)

    def arrays(self) -> dict:
        """The arrays written by :meth:`save` (the ``.npz`` form :func:`load_pose_set` reads)."""
        return {"images": self.images, "azimuth": self.azimuth, "elevation": self.elevation,
                "lighting": self.lighting, "held_out": self.held_out}  # fmt: skip

    def save(self, path: PathLike) -> None:
        """Write the set as an ``.npz`` (no pickled objects), atomically."""
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **self.arrays())
        atomic_write(path, [buffer.getvalue()])


def fixed_split(n: int, seed: int = SPLIT_SEED, fraction: Any = HELD_OUT_FRACTION) -> np.ndarray:
    """Boolean held-out mask: a seeded random ``fraction`` of the n images."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[: int(round(n * fraction))]] = True
    return mask


def render_pose_set(obj: str = "airplane", size: int = 32, azimuths: Any = AZIMUTHS, elevations: Any = ELEVATIONS,
                    lightings: Any = range(len(LIGHTINGS)), supersample: int = 2) -> PoseSet:  # fmt: skip
    """Render the turntable set: every azimuth x elevation x lighting (in that nesting).

    ``obj``: a name in :data:`~ember.data.pose_render.OBJECTS` (``"airplane"``,
    ``"truck"``) or a sequence of :class:`~ember.data.pose_render.Part`. ``azimuths`` and
    ``elevations`` are in degrees; ``lightings`` are indices into
    :data:`~ember.data.pose_render.LIGHTINGS`. Deterministic: the same arguments give
    the same bytes.
    """
    if isinstance(obj, str) and obj not in OBJECTS:
        raise ValueError(f"render_pose_set: unknown object {obj!r}; known: {', '.join(sorted(OBJECTS))}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"render_pose_set: size must be an int >= 8, got {size!r}")
    lightings = list(lightings)
    chosen = [LIGHTINGS[i] for i in lightings]
    views_list: list = []
    labels: list = []
    for az in azimuths:
        for el in elevations:
            views = render_views(obj, az, el, size=size, supersample=supersample, lightings=chosen)
            views_list.append(np.round(views * 255).astype(np.uint8))
            labels += [(az, el, light) for light in lightings]
    images = np.concatenate(views_list)
    az, el, light = (np.array(column, dtype=np.int64) for column in zip(*labels))
    name = obj if isinstance(obj, str) else "custom object"
    return PoseSet(images, az, el, light, fixed_split(len(images)), name=name)


_REQUIRED = ("images", "azimuth", "elevation", "lighting")


def _label(path, arrays, key, n):
    value = arrays[key]
    if value.ndim != 1 or len(value) != n or value.dtype.kind not in "iu":
        raise FormatError(f"{path}: expected '{key}' as an integer array of shape ({n},) like the images, "
                          f"got {value.shape} {value.dtype}")  # fmt: skip
    return value.astype(np.int64)


def load_pose_set(path: PathLike) -> PoseSet:
    """Read a pose set from an ``.npz`` file, checking its form (see the module docs).

    Raises FileNotFoundError for a missing file and :class:`~ember.errors.FormatError`
    naming the file, the array and what was expected for anything else.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"pose set file {path!r} not found")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04":
        raise FormatError(f"{path}: not an .npz archive (expected a zip file of arrays, as numpy.savez writes)")
    arrays = read_npz(path)
    missing = [key for key in _REQUIRED if key not in arrays]
    if missing:
        raise FormatError(f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(_REQUIRED)} "
                          f"(found {', '.join(sorted(arrays)) or 'none'})")  # fmt: skip
    images = arrays["images"]
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) < 2:
        raise FormatError(f"{path}: expected 'images' as uint8 (N, H, W) with N >= 2, got {images.shape} {images.dtype}")
    n = len(images)
    az, el, light = (_label(path, arrays, key, n) for key in _REQUIRED[1:])
    values = np.unique(az)
    steps = np.diff(values)
    if len(values) < 3 or np.any(steps != steps[0]):
        raise FormatError(f"{path}: expected 'azimuth' values equally spaced around the circle (at least 3), "
                          f"got {values.tolist()}")  # fmt: skip
    if len(np.unique(light)) < 2:
        raise FormatError(f"{path}: expected at least 2 distinct 'lighting' values, got {np.unique(light).tolist()}")
    held_out = arrays.get("held_out")
    if held_out is None:
        held_out = fixed_split(n)
    elif held_out.shape != (n,) or held_out.dtype.kind not in "biu" or not np.isin(held_out, (0, 1)).all():
        raise FormatError(f"{path}: expected 'held_out' as a boolean array of shape ({n},), got {held_out.shape} {held_out.dtype}")
    held_out = held_out.astype(bool)
    if held_out.all() or not held_out.any():
        raise FormatError(f"{path}: 'held_out' must mark some images, not all ({int(held_out.sum())} of {n})")
    name = os.path.splitext(os.path.basename(path))[0]
    return PoseSet(images, az, el, light, held_out, name=name)


def variance_shares(pose_set: PoseSet) -> dict:
    """Shares of the total pixel variance explained by lighting alone and by pose alone.

    With g(i) the group of image i (its lighting, or its (azimuth, elevation) pose) and
    m_g the mean image of the group: share = sum_i ||m_g(i) - m||^2 / sum_i ||x_i - m||^2
    (between-group sum of squares). ``rest`` = 1 - lighting - pose (interactions; exact
    for a full grid).
    """
    x = pose_set.images.reshape(len(pose_set), -1).astype(np.float64)
    centred = x - x.mean(axis=0)
    total = float(np.sum(centred**2))
    if total == 0:
        raise ValueError(f"variance_shares: the {len(pose_set)} images are all identical: there is no variance to share")

    def share(groups):
        _, inverse = np.unique(groups, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        sums = np.zeros((inverse.max() + 1, x.shape[1]))
        np.add.at(sums, inverse, centred)
        counts = np.bincount(inverse)
        return float(np.sum(sums**2 / counts[:, None])) / total

    lighting = share(pose_set.light_index[:, None])
    pose = share(np.stack([pose_set.az_index, pose_set.el_index], axis=1))
    return {"lighting": lighting, "pose": pose, "rest": 1.0 - lighting - pose}


def contact_sheet(pose_set: PoseSet, lighting: int = 0, elevation: Any = None, gap: int = 2) -> np.ndarray:
    """A uint8 picture of the set: one column per azimuth; first every elevation under
    lighting rank ``lighting``, then (after a gap) every lighting at elevation rank
    ``elevation`` (default: the middle one). Missing images are left grey."""
    elevation = len(pose_set.el_values) // 2 if elevation is None else elevation
    rows = [("el", e) for e in range(len(pose_set.el_values))] + [("light", k) for k in range(len(pose_set.light_values))]
    h, w = pose_set.images.shape[1:]
    n_cols = pose_set.n_azimuth
    height = len(rows) * (h + gap) + 3 * gap
    sheet = np.full((height, n_cols * (w + gap) - gap), 128, dtype=np.uint8)
    lookup = {(a, e, k): i for i, (a, e, k) in
              enumerate(zip(pose_set.az_index, pose_set.el_index, pose_set.light_index))}  # fmt: skip
    y = 0
    for r, (kind, value) in enumerate(rows):
        if r == len(pose_set.el_values):
            y += 3 * gap  # a wider gap between the two blocks
        for a in range(n_cols):
            key = (a, value, lighting) if kind == "el" else (a, elevation, value)
            if key in lookup:
                sheet[y : y + h, a * (w + gap) : a * (w + gap) + w] = pose_set.images[lookup[key]]
        y += h + gap
    return sheet


def save_contact_sheet(pose_set: PoseSet, path: PathLike, scale: int = 1, **kw: int) -> None:
    """Write :func:`contact_sheet` as a PNG, each pixel repeated ``scale`` times."""
    sheet = contact_sheet(pose_set, **kw)
    write_png(path, np.repeat(np.repeat(sheet, scale, axis=0), scale, axis=1))
