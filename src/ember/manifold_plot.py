"""Pictures of 3-D embeddings coloured by azimuth, elevation and lighting (matplotlib)."""

from __future__ import annotations

import numpy as np


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need the optional matplotlib package: pip install 'ember[plot]'") from None
    return plt


def display_axes(z, elevation) -> np.ndarray:
    """The picture's coordinates: z centred and turned rigidly (distances unchanged) so
    that the direction that best predicts ``elevation`` (least squares) points up and the
    two others are the principal axes of what is left. Only the first 3 are drawn."""
    z = np.asarray(z, dtype=np.float64)
    centred = z - z.mean(axis=0)
    up = np.linalg.lstsq(centred, elevation - np.mean(elevation), rcond=None)[0]
    if z.shape[1] < 2 or not np.any(up):
        return centred
    up /= np.linalg.norm(up)
    rest = centred - np.outer(centred @ up, up)
    _, _, vt = np.linalg.svd(rest, full_matrices=False)
    axes = np.vstack([vt[: z.shape[1] - 1], up])  # horizontal plane first, vertical last
    return centred @ axes.T


def plot_embeddings(path, pose_set, z, z_pca, title="", dpi=90) -> None:
    """Write a PNG: one row per embedding (DrLIM ``z``, then ``z_pca``), one column per
    colouring (azimuth on a cyclic map, elevation, lighting). Held-out images are drawn
    as larger dots. See :func:`display_axes` for the orientation."""
    plt = _matplotlib()
    from matplotlib.colors import ListedColormap

    colourings = (
        ("azimuth", pose_set.az_index, "hsv", pose_set.az_values),
        ("elevation", pose_set.el_index, "viridis", pose_set.el_values),
        ("lighting", pose_set.light_index, "tab10", pose_set.light_values),
    )
    rows = (("DrLIM", z), ("PCA", z_pca))
    fig = plt.figure(figsize=(12, 8.2))
    sizes = np.where(pose_set.held_out, 9.0, 4.0)
    for r, (name, emb) in enumerate(rows):
        coords = display_axes(emb, pose_set.el_index)
        coords = np.column_stack([coords, np.zeros((len(coords), max(0, 3 - coords.shape[1])))])
        coords = coords[:, [0, 1, -1]] if coords.shape[1] > 3 else coords
        for c, (label, values, cmap, ticks) in enumerate(colourings):
            ax = fig.add_subplot(2, 3, 3 * r + c + 1, projection="3d")
            if label == "lighting":  # one distinct colour per lighting
                cmap = ListedColormap([plt.get_cmap("tab10")(i % 10) for i in range(len(ticks))])
            vmin, vmax = (-0.5, len(ticks) - 0.5) if label == "lighting" else (0, max(len(ticks) - 1, 1))
            points = ax.scatter(coords[:, 0], coords[:, 1], coords[:, 2], c=values, cmap=cmap, vmin=vmin, vmax=vmax,
                                s=sizes, depthshade=False, linewidths=0)  # fmt: skip
            ax.set_title(f"{name}, coloured by {label}", fontsize=10)
            ax.set_xticklabels([]), ax.set_yticklabels([]), ax.set_zticklabels([])
            ax.view_init(elev=22, azim=-60)
            ax.set_box_aspect(np.maximum(np.ptp(coords, axis=0), 1e-3 * np.ptp(coords)))  # true proportions
            if r == 0:
                bar = fig.colorbar(points, ax=ax, shrink=0.55, pad=0.02)
                shown = np.unique(np.linspace(0, len(ticks) - 1, min(len(ticks), 6)).round().astype(int))
                bar.set_ticks(shown)
                bar.set_ticklabels([str(ticks[i]) for i in shown])
                bar.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
