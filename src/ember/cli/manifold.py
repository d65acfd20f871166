"""``ember manifold``: DrLIM learns the pose manifold of an object and ignores lighting.

    ember manifold [--data FILE.npz | --object airplane] [--steps 2000] [--seed N]
                   [--save-embedding OUT.npz] [--plot OUT.png] [--contact-sheet OUT.png]

Renders the turntable set (or reads ``--data``), trains a siamese net with the
contrastive loss on the fit images, and prints the metrics of
:mod:`ember.drlim.manifold` for DrLIM and for ember's PCA baseline on the held-out images.
Also runnable as ``python -m ember.cli.manifold``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .argtypes import COUNT, NON_NEGATIVE, POSITIVE, POSITIVE_INT

from typing import Any
from .._typing import Array, PathLike

#: "Done when" targets of the lecture's result (on the held-out images).
TARGETS = {"LR": ("<=", 0.30), "NP@6": (">=", 0.75), "RazRing": (">=", 0.90)}


def add_manifold_arguments(p: Any) -> Any:
    p.add_argument("--data", help=".npz with images (N,H,W) uint8 and integer azimuth, elevation, lighting "
                                  "(optional boolean held_out); default: ember's rendered set")  # fmt: skip
    p.add_argument("--object", default="airplane", help="object to render when --data is not given (airplane, truck)")
    p.add_argument("--size", type=POSITIVE_INT, default=32, help="rendered image size (default 32)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=POSITIVE_INT, help="optimizer steps (default 2000)")
    budget.add_argument("--epochs", type=POSITIVE, help="budget in passes over the fit images as anchors "
                                                     "(one step uses 2 x --pairs anchors)")  # fmt: skip
    p.add_argument("--pairs", type=POSITIVE_INT, default=64, help="similar pairs per step, and as many dissimilar (default 64)")
    p.add_argument("--margin", type=POSITIVE, default=1.0, help="contrastive margin m (default 1)")
    p.add_argument("--arch", choices=("conv", "mlp"), help="embedding network (default conv; mlp where ember has no conv)")
    p.add_argument("--dim", type=POSITIVE_INT, default=3, help="output dimension (default 3)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="default adam")
    p.add_argument("--lr", type=POSITIVE, help="learning rate (default: adam 1e-3, sgd 0.01)")
    p.add_argument("--momentum", type=NON_NEGATIVE, default=0.9, help="sgd momentum (default 0.9)")
    p.add_argument("--seed", type=COUNT, default=0, help="seed for initialisation and pair sampling")
    p.add_argument("--threads", type=POSITIVE_INT, default=1,
                   help="threads for BLAS and ember's array work (default 1: this net's products are small, and "
                        "on a busy machine a second thread measured 12x slower per step)")  # fmt: skip
    p.add_argument("--save-embedding", metavar="OUT.npz", help="write the embeddings of all images, poses and split")
    p.add_argument("--plot", metavar="OUT.png", help="3-D embeddings coloured by azimuth, elevation, lighting (matplotlib)")
    p.add_argument("--contact-sheet", metavar="OUT.png", help="a picture of the data set")
    p.add_argument("--save-data", metavar="OUT.npz", help="write the (rendered) data set as .npz")
    return p


def add_manifold_parser(subparsers: Any) -> Any:
    """Register ``ember manifold`` on the ``ember`` command's subparsers."""
    p = subparsers.add_parser("manifold", help="DrLIM: learn the pose manifold of an object (siamese net, contrastive loss)")
    add_manifold_arguments(p)
    p.set_defaults(run=run_manifold)
    return p


def _load(args):
    from ..data.pose import load_pose_set, render_pose_set

    if args.data:
        return load_pose_set(args.data)
    return render_pose_set(args.object, size=args.size)


def _steps(args, n_fit):
    if args.epochs is not None:
        return max(1, int(round(args.epochs * n_fit / (2 * args.pairs))))
    return 2000 if args.steps is None else args.steps


def format_metrics(rows: Any, margin: float) -> Any:
    """The metrics table: ``rows`` = [(name, metrics dict, unit note)]."""
    from ..drlim.manifold import METRICS

    lines = [f"{'method':<8}" + "".join(f"{m:>10}" for m in METRICS)]
    for name, metrics, note in rows:
        lines.append(f"{name:<8}" + "".join(f"{metrics[m]:>10.3f}" for m in METRICS) + f"   {note}")
    target = {**{k: f"{op}{v:g}" for k, (op, v) in TARGETS.items()}, "mean_dist": f">={0.3 * margin:g}", "Raz": ""}
    lines.append(f"{'target':<8}" + "".join(f"{target[m]:>10}" for m in METRICS))
    return "\n".join(lines)


def meets_targets(metrics: Any, margin: float) -> bool:
    ok = all(metrics[k] <= v if op == "<=" else metrics[k] >= v for k, (op, v) in TARGETS.items())
    return ok and metrics["mean_dist"] >= 0.3 * margin


def run_manifold(args: Any) -> int:
    from ..data.pose import save_contact_sheet, variance_shares
    from ..drlim import embed, train_drlim
    from ..drlim.manifold import METRICS, manifold_metrics, pca_embedding

    if args.plot:  # fail before training, not after
        try:
            from ..drlim.plot import _matplotlib

            _matplotlib()
        except ImportError as error:
            print(f"ember manifold: error: {error}", file=sys.stderr)
            return 1
    if getattr(args, "threads", None):
        from .. import runtime

        runtime.configure_threads(args.threads)
    start = time.perf_counter()
    data = _load(args)
    shares = variance_shares(data)
    h, w = data.images.shape[1:]
    print(f"ember manifold: {data.name}: {len(data)} images {h}x{w}, {data.n_azimuth} azimuths x "
          f"{len(data.el_values)} elevations x {len(data.light_values)} lightings; {len(data.train_index)} fit / "
          f"{len(data.test_index)} held-out", flush=True)  # fmt: skip
    print(f"pixel variance explained by lighting {shares['lighting']:.0%}, by pose {shares['pose']:.0%}, "
          f"interactions {shares['rest']:.0%}", flush=True)  # fmt: skip
    if args.save_data:
        data.save(args.save_data)
    if args.contact_sheet:
        save_contact_sheet(data, args.contact_sheet, scale=2)
    steps = _steps(args, len(data.train_index))
    if args.arch is None:
        from .. import nn

        args.arch = "conv" if hasattr(nn, "SpatialConvolution") else "mlp"
    print(f"DrLIM: {args.arch} net -> {args.dim}-D, margin {args.margin}, {steps} steps of {args.pairs} similar + "
          f"{args.pairs} dissimilar pairs, {args.optimizer}, seed {args.seed}", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    net, x, _ = train_drlim(data, steps=steps, pairs=args.pairs, margin=args.margin, arch=args.arch, out_dim=args.dim,
                            optimizer=args.optimizer, learning_rate=args.lr, momentum=args.momentum, seed=args.seed,
                            log=lambda line: print(line, flush=True), log_every=max(1, steps // 5))  # fmt: skip
    train_time = time.perf_counter() - t0
    z = embed(net, x)
    z_pca = pca_embedding(data, args.dim)
    m_drlim, m_pca = manifold_metrics(z, data), manifold_metrics(z_pca, data)
    print(f"\nheld-out images (S = {len(data.test_index)}); probes fitted on the {len(data.train_index)} fit images")
    print(format_metrics([("DrLIM", m_drlim, f"output units (m = {args.margin:g})"), ("PCA", m_pca, "pixel units")],
                         args.margin))  # fmt: skip
    verdict = "meets" if meets_targets(m_drlim, args.margin) else "MISSES"
    print(f"DrLIM {verdict} the targets; training {train_time:.1f} s, total {time.perf_counter() - start:.1f} s")
    if args.save_embedding:
        save_embedding(args.save_embedding, data, z, z_pca, [m_drlim[m] for m in METRICS], [m_pca[m] for m in METRICS])
        print(f"embedding saved to {args.save_embedding}")
    if args.plot:
        from ..drlim.plot import plot_embeddings

        plot_embeddings(args.plot, data, z, z_pca, title=f"{data.name}: DrLIM ({args.arch}, seed {args.seed}) and PCA")
        print(f"plot saved to {args.plot}")
    return 0


def save_embedding(path: PathLike, data: Any, z: Array, z_pca: Any, drlim_metrics: Any, pca_metrics: Any) -> None:
    """Write ``embedding`` (N, d) (DrLIM), ``pca`` (N, d), the pose arrays, ``held_out``
    and the metrics (``metric_names``, ``drlim_metrics``, ``pca_metrics``) as an .npz."""
    import io as _io

    from ..io import atomic_write
    from ..drlim.manifold import METRICS

    buffer = _io.BytesIO()
    np.savez_compressed(buffer, embedding=z, pca=z_pca, azimuth=data.azimuth, elevation=data.elevation,
                        lighting=data.lighting, held_out=data.held_out, metric_names=np.array(METRICS),
                        drlim_metrics=np.array(drlim_metrics), pca_metrics=np.array(pca_metrics))  # fmt: skip
    atomic_write(path, [buffer.getvalue()])


def main(argv: Any = None) -> Any:
    parser = add_manifold_arguments(argparse.ArgumentParser(prog="ember manifold", description=__doc__.split("\n")[0]))
    args = parser.parse_args(argv)
    from ..errors import FormatError, ShapeError, TrainingError

    try:
        return run_manifold(args)
    except (TrainingError, FormatError, ShapeError, FileNotFoundError, ValueError) as error:
        print(f"ember manifold: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
