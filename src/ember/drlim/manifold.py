"""Measuring a learned pose manifold (DrLIM, Hadsell, Chopra & LeCun, CVPR 2006).

Images of one object at ``n_az`` azimuths (a circle), several elevations and several
lightings. Two images are **pose neighbours** ("similar", Y = 0 in DrLIM's loss) when
their circular azimuth difference is at most 1 step and their elevation difference at
most 1 step, whatever the lighting. A good 3-D embedding z is a cylinder: azimuth goes
round, elevation along the axis, lighting has no effect.

Metrics (all on a held-out evaluation set S; the fit set F is used only by the linear
probes):

- **LR** (lighting ratio) = mean ||z_i - z_j|| over pairs of S with the same azimuth and
  elevation but different lighting / mean ||z_i - z_j|| over all pairs i != j of S.
  0 = invariant to lighting, about 1 = chance.
- **NP@k** (pose-neighbour precision): for each i in S, the fraction of its k nearest
  neighbours in S \\ {i} (Euclidean, ties broken by index) that are pose neighbours,
  averaged over i. Chance is about 0.05 on the 18 x 9 x 6 grid.
- **Raz** (azimuth circularity): fit one affine least-squares map [z, 1] -> (cos az, sin az)
  on F; on S take psi = atan2 of the prediction; Raz = |mean over S of exp(i (psi - az))|.
  1 = one closed loop turning once in step with azimuth.
- **RazRing**: the same probe fitted and scored separately on each elevation ring,
  averaged over the rings (forgives a bent cylinder; every ring must still close).
- **mean_dist**: mean pairwise distance in S, in output units (compare with the margin m
  to detect a collapse).

The PCA baseline (:func:`pca_fit`) is plain NumPy SVD of the centred fit images.
"""

from __future__ import annotations

import numpy as np
from .._typing import Array

from typing import Any

METRICS = ("LR", "NP@6", "Raz", "RazRing", "mean_dist")


def pose_neighbours(az_a: Any, el_a: Any, n_azimuth: int, az_b: Any = None, el_b: Any = None) -> np.ndarray:
    """Boolean matrix ``[i, j]``: are image i (of set a) and image j (of set b) pose
    neighbours? Azimuth indices wrap around ``n_azimuth``; the diagonal of a set with
    itself is True (an image is its own neighbour; callers exclude it where needed)."""
    az_b = az_a if az_b is None else az_b
    el_b = el_a if el_b is None else el_b
    d_az = np.abs(np.asarray(az_a)[:, None] - np.asarray(az_b)[None, :]) % n_azimuth
    d_az = np.minimum(d_az, n_azimuth - d_az)
    d_el = np.abs(np.asarray(el_a)[:, None] - np.asarray(el_b)[None, :])
    return (d_az <= 1) & (d_el <= 1)


def pairwise_distances(z: Array) -> np.ndarray:
    """Euclidean distance matrix of the rows of z (float64, exact differences)."""
    z = np.asarray(z, dtype=np.float64)
    return np.sqrt(np.sum((z[:, None, :] - z[None, :, :]) ** 2, axis=-1))


def _off_diagonal(n):
    return ~np.eye(n, dtype=bool)


def lighting_ratio(z: Array, az: Any, el: Any, light: Any) -> float:
    """LR: mean distance of same-pose, different-lighting pairs / mean distance of all pairs."""
    dist = pairwise_distances(z)
    az, el, light = map(np.asarray, (az, el, light))
    same_pose = (az[:, None] == az[None, :]) & (el[:, None] == el[None, :]) & (light[:, None] != light[None, :])
    if not same_pose.any():
        return float("nan")
    return float(dist[same_pose].mean() / dist[_off_diagonal(len(dist))].mean())


def neighbour_precision(z: Array, az: Any, el: Any, n_azimuth: int, k: int = 6) -> float:
    """NP@k: mean fraction of each point's k nearest others (ties by index) that are pose
    neighbours."""
    n = len(z)
    if not 1 <= k < n:
        raise ValueError(f"neighbour_precision: k must be in [1, {n - 1}], got {k}")
    dist = pairwise_distances(z)
    np.fill_diagonal(dist, np.inf)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
    hits = pose_neighbours(az, el, n_azimuth)[np.arange(n)[:, None], nearest]
    return float(hits.mean())


def _affine_probe(z_fit, angle_fit, z_eval):
    """Least-squares affine map [z, 1] -> (cos, sin) fitted on F; predicted angles on S."""
    a_fit = np.column_stack([np.asarray(z_fit, np.float64), np.ones(len(z_fit))])
    target = np.column_stack([np.cos(angle_fit), np.sin(angle_fit)])
    w = np.linalg.lstsq(a_fit, target, rcond=None)[0]
    pred = np.column_stack([np.asarray(z_eval, np.float64), np.ones(len(z_eval))]) @ w
    return np.arctan2(pred[:, 1], pred[:, 0])


def azimuth_circularity(z_fit: Any, angle_fit: Any, z_eval: Any, angle_eval: Any) -> float:
    """Raz = |mean exp(i (psi - az))| over S, psi from the affine probe fitted on F.
    Angles in radians."""
    psi = _affine_probe(z_fit, angle_fit, z_eval)
    return float(np.abs(np.mean(np.exp(1j * (psi - np.asarray(angle_eval))))))


def ring_circularity(z_fit: Any, angle_fit: Any, el_fit: Any, z_eval: Any, angle_eval: Any, el_eval: Any) -> float:
    """RazRing: :func:`azimuth_circularity` per elevation ring (fitted and scored on that
    ring only), averaged over the rings present in both sets."""
    scores = []
    for ring in np.unique(el_eval):
        f, s = np.asarray(el_fit) == ring, np.asarray(el_eval) == ring
        if f.any() and s.any():
            scores.append(azimuth_circularity(z_fit[f], angle_fit[f], z_eval[s], angle_eval[s]))
    return float(np.mean(scores)) if scores else float("nan")


def mean_distance(z: Array) -> float:
    """Mean Euclidean distance over the pairs i != j."""
    dist = pairwise_distances(z)
    return float(dist[_off_diagonal(len(dist))].mean())


def manifold_metrics(z: Array, pose_set: Any, k: int = 6) -> dict:
    """All the metrics of an embedding ``z`` (N, d) of every image of ``pose_set``
    (a :class:`~ember.data.pose.PoseSet`): S = its held-out images, F = the others."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) != len(pose_set):
        raise ValueError(f"manifold_metrics: expected an embedding of shape ({len(pose_set)}, d), got {z.shape}")
    f, s = pose_set.train_index, pose_set.test_index
    angle, az, el = pose_set.angle, pose_set.az_index, pose_set.el_index
    return {
        "LR": lighting_ratio(z[s], az[s], el[s], pose_set.light_index[s]),
        f"NP@{k}": neighbour_precision(z[s], az[s], el[s], pose_set.n_azimuth, k),
        "Raz": azimuth_circularity(z[f], angle[f], z[s], angle[s]),
        "RazRing": ring_circularity(z[f], angle[f], el[f], z[s], angle[s], el[s]),
        "mean_dist": mean_distance(z[s]),
    }


def pca_fit(x: Array, dim: int = 3) -> tuple[Any, Any]:
    """Principal components of the rows of ``x`` (N, D): ``(mean (D,), components (dim, D))``,
    from the SVD of the centred data (components = the top right singular vectors)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if not 1 <= dim <= min(x.shape):
        raise ValueError(f"pca_fit: dim must be in [1, {min(x.shape)}], got {dim}")
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:dim]
    # a deterministic sign: the largest coefficient of each component is positive
    signs = np.sign(components[np.arange(dim), np.argmax(np.abs(components), axis=1)])
    return mean, components * signs[:, None]


def pca_embed(x: Array, mean: Any, components: Any) -> np.ndarray:
    """Coordinates of the rows of ``x`` on the principal components: (x - mean) C^T."""
    return (np.asarray(x, dtype=np.float64).reshape(len(x), -1) - mean) @ components.T


def pca_embedding(pose_set: Any, dim: int = 3) -> np.ndarray:
    """The PCA baseline: components fitted on the fit images F only, then every image
    projected (pixel units, images scaled to [0, 1])."""
    x = pose_set.images.reshape(len(pose_set), -1) / 255.0
    mean, components = pca_fit(x[pose_set.train_index], dim)
    return pca_embed(x, mean, components)


__all__ = [
    "METRICS", "pose_neighbours", "pairwise_distances", "lighting_ratio", "neighbour_precision",
    "azimuth_circularity", "ring_circularity", "mean_distance", "manifold_metrics",
    "pca_fit", "pca_embed", "pca_embedding",
]  # fmt: skip
