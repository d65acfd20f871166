"""Pictures of 3-D embeddings coloured by azimuth, elevation and lighting (matplotlib)."""

from __future__ import annotations

import numpy as np

from typing import Any
from .._typing import Array, PathLike


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need the optional matplotlib package: pip install 'ember[plot]'") from None
    return plt


def display_axes(z: Array, angle: Any, elevation: Any) -> np.ndarray:
    """The picture's coordinates (N, 3): z centred and turned rigidly (distances kept for
    a 3-D z) so that the first two axes span the plane in which an affine least-squares
    probe reads the azimuth ``angle`` (radians) -- a cylinder is then seen down its axis
    in that plane -- and the third is the remaining direction that best predicts
    ``elevation``."""
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    if z.shape[1] < 3:
        return np.column_stack([centred, np.zeros((len(z), 3 - z.shape[1]))])
    probe = np.linalg.lstsq(centred, np.column_stack([np.cos(angle), np.sin(angle)]), rcond=None)[0]
    plane = np.linalg.svd(probe, full_matrices=False)[0]  # (d, 2) orthonormal
    rest = centred - centred @ plane @ plane.T
    up = np.linalg.lstsq(rest, elevation - np.mean(elevation), rcond=None)[0]
    norm = np.linalg.norm(up)
    up = up / norm if norm > 0 else np.linalg.svd(rest, full_matrices=False)[2][0]
    return np.column_stack([centred @ plane, centred @ up])


def plot_embeddings(path: PathLike, pose_set: Any, z: Array, z_pca: Any, title: str = "", dpi: int = 90) -> None:
    """Write a PNG: one row per embedding (DrLIM ``z``, then ``z_pca``); three 3-D views
    coloured by azimuth (a cyclic map), elevation and lighting, then a view down the
    vertical axis coloured by azimuth (a closed loop for a cylinder). Held-out images are
    drawn as larger dots; true proportions. See :func:`display_axes` for the orientation."""
    plt = _matplotlib()
    from matplotlib.colors import ListedColormap

    lighting_map = ListedColormap([plt.get_cmap("tab10")(i % 10) for i in range(len(pose_set.light_values))])
    colourings = (
        ("azimuth", pose_set.az_index, "hsv", pose_set.az_values),
        ("elevation", pose_set.el_index, "viridis", pose_set.el_values),
        ("lighting", pose_set.light_index, lighting_map, pose_set.light_values),
    )
    fig = plt.figure(figsize=(15, 7.6))
    sizes = np.where(pose_set.held_out, 9.0, 4.0)
    for r, (name, emb) in enumerate((("DrLIM", z), ("PCA", z_pca))):
        coords = display_axes(emb, pose_set.angle, pose_set.el_index)
        for c, (label, values, cmap, ticks) in enumerate(colourings):
            ax = fig.add_subplot(2, 4, 4 * r + c + 1, projection="3d")
            discrete = label == "lighting"
            vmin, vmax = (-0.5, len(ticks) - 0.5) if discrete else (0, max(len(ticks) - 1, 1))
            points = ax.scatter(coords[:, 0], coords[:, 1], coords[:, 2], c=values, cmap=cmap, vmin=vmin, vmax=vmax,
                                s=sizes, depthshade=False, linewidths=0)  # fmt: skip
            ax.set_title(f"{name}, coloured by {label}", fontsize=10)
            ax.set_xticklabels([]), ax.set_yticklabels([]), ax.set_zticklabels([])
            ax.view_init(elev=30, azim=-60)
            ax.set_box_aspect(np.maximum(np.ptp(coords, axis=0), 1e-3 * np.ptp(coords)))  # true proportions
            if r == 0:
                _colourbar(fig, ax, points, ticks)
        ax = fig.add_subplot(2, 4, 4 * r + 4)
        ax.scatter(coords[:, 0], coords[:, 1], c=pose_set.az_index, cmap="hsv", vmin=0,
                   vmax=max(pose_set.n_azimuth - 1, 1), s=sizes, linewidths=0)  # fmt: skip
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"{name}, seen down the third axis", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def _colourbar(fig, ax, points, ticks) -> None:
    bar = fig.colorbar(points, ax=ax, shrink=0.55, pad=0.02)
    shown = np.unique(np.linspace(0, len(ticks) - 1, min(len(ticks), 6)).round().astype(int))
    bar.set_ticks(shown)
    bar.set_ticklabels([str(ticks[i]) for i in shown])
    bar.ax.tick_params(labelsize=7)
