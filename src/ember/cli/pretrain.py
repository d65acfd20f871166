"""``ember pretrain``: unsupervised features and pre-training (docs/unsupervised.md).

    ember pretrain features [--dictionary kmeans|psd] [--k 400] [--grid 3] [--pool sum] [--seed N] [--limit N]
                            [--filters OUT.png] [--save OUT.safetensors]
    ember pretrain convnet  [--model convnet-lcn] [--stages 1] [--random-init] [--epochs N]
                            [--limit N] [--seed N] [--save MODEL] [--log RUN.csv] [--filters OUT.png]

``features``: the single-layer pipeline of :mod:`ember.unsup.pipeline` on MNIST: 6x6 patches,
contrast normalization, ZCA, a k-means dictionary with the triangle code, every patch position
encoded, pooled over a grid, and a linear classifier trained with ``optim.sgd``; prints the
test accuracy and the time of each step. ``--save`` writes the dictionary, whitening and
classifier (atomically, pickle-free, read them with ``ember.io.read_tensors``).

``convnet``: pre-trains the filter banks of a ConvNet (``--stages 1`` or ``1,2``) with
spherical k-means on whitened patches of each stage's input (:mod:`ember.unsup.pretrain`),
then fine-tunes the whole net with labels exactly as ``ember train`` does (same options, same
files); ``--random-init`` skips the pre-training (the baseline, same seed and epochs).
"""

from __future__ import annotations

import sys
import time

from .argtypes import COUNT, NON_NEGATIVE, POSITIVE, POSITIVE_INT


def _stages(text: str) -> tuple[int, ...]:
    import argparse

    try:
        stages = tuple(sorted({int(t) - 1 for t in text.split(",") if t.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected stage numbers like 1 or 1,2, got {text!r}") from None
    if not stages or stages[0] < 0:
        raise argparse.ArgumentTypeError(f"stages are numbered from 1, got {text!r}")
    return stages


def add_pretrain_parser(subparsers):
    """Register ``ember pretrain {features,convnet}`` on the ``ember`` command's subparsers."""
    p = subparsers.add_parser("pretrain", help="unsupervised features (k-means pipeline) and ConvNet pre-training")
    sub = p.add_subparsers(dest="pretrain_command", required=True)

    f = sub.add_parser("features", help="k-means features + pooling + linear classifier on MNIST")
    f.add_argument("--dictionary", default="kmeans", choices=("kmeans", "psd"),
                   help="kmeans (triangle code) or psd (sparse coding by FISTA + its tanh encoder, split-rectified)")
    f.add_argument("--k", type=POSITIVE_INT, help="dictionary size K (default 400 for kmeans, 256 for psd)")
    f.add_argument("--lambd", type=POSITIVE, default=0.3, help="psd: L1 weight of the codes (default 0.3)")
    f.add_argument("--psd-epochs", type=POSITIVE_INT, default=2, help="psd: passes over the patches (default 2)")
    f.add_argument("--patch", type=POSITIVE_INT, default=6, help="patch size (default 6)")
    f.add_argument("--stride", type=POSITIVE_INT, default=1, help="step between encoded patches (default 1)")
    f.add_argument("--grid", type=POSITIVE_INT, default=3, help="pooling grid: 2 = quadrants, 3 = 3x3 (default 3)")
    f.add_argument("--pool", default=None, choices=("sum", "mean", "max", "lp", "lse"),
                   help="pooling (default max for kmeans: 99.14%% mean of 3 seeds against 98.95%% with sum; sum for psd)")
    f.add_argument("--pool-p", type=POSITIVE, default=2.0, help="p of lp pooling (default 2)")
    f.add_argument("--pool-beta", type=POSITIVE, default=1.0, help="beta of lse pooling (default 1)")
    f.add_argument("--spherical", action="store_true", help="spherical k-means (unit centroids, cosine assignment)")
    f.add_argument("--patches", type=POSITIVE_INT,
                   help="random patches for the dictionary (default 400000 for kmeans, 100000 for psd)")
    f.add_argument("--iterations", type=POSITIVE_INT, default=10, help="k-means passes over the patches (default 10)")
    f.add_argument("--whiten-eps", type=NON_NEGATIVE, default=1.0, help="ZCA eps, relative to the mean eigenvalue (default 1)")
    f.add_argument("--contrast-eps", type=NON_NEGATIVE, default=0.1, help="per-patch contrast normalization eps (default 0.1)")
    f.add_argument("--epochs", type=POSITIVE_INT, default=20, help="classifier epochs (default 20)")
    f.add_argument("--lr", type=POSITIVE, default=0.05, help="classifier learning rate, decayed linearly to 0 (default 0.05)")
    f.add_argument("--weight-decay", type=NON_NEGATIVE, default=3e-3, help="classifier L2 weight decay (default 3e-3)")
    f.add_argument("--loss", default="nll", choices=("nll", "hinge"), help="softmax (nll) or squared hinge (L2-SVM)")
    f.add_argument("--chunk", type=POSITIVE_INT, default=5, help="images encoded per GEMM (default 5: codes stay in cache)")
    f.add_argument("--test-limit", type=POSITIVE_INT, help="use only the first N test images (quick runs)")
    f.add_argument("--save", help="write dictionary, whitening and classifier here (.safetensors, atomic)")
    f.set_defaults(run=cmd_features)

    c = sub.add_parser("convnet", help="pre-train a ConvNet's filter banks with k-means, then fine-tune with labels")
    c.add_argument("--model", default="convnet-lcn", help="network (see `ember models`; default convnet-lcn)")
    c.add_argument("--stages", type=_stages, default=(0,), help="filter banks to pre-train: 1 or 1,2 (default 1)")
    c.add_argument("--random-init", action="store_true", help="no pre-training: the baseline (same seed, same epochs)")
    c.add_argument("--pretrain-images", type=POSITIVE_INT, default=10000, help="training images to learn filters from")
    c.add_argument("--patches", type=POSITIVE_INT, default=100000, help="random patches per stage (default 100000)")
    c.add_argument("--whiten-eps", type=NON_NEGATIVE, default=1.0, help="ZCA eps, relative (default 1)")
    c.add_argument("--epochs", type=POSITIVE_INT, help="fine-tuning epochs (default: the model's)")
    c.add_argument("--batch-size", type=POSITIVE_INT, help="minibatch size (default: the model's)")
    c.add_argument("--lr", type=POSITIVE, help="learning rate (default: the model's)")
    c.add_argument("--lr-decay", type=NON_NEGATIVE, help="Torch7 annealing lr / (1 + t * decay) (default: the model's)")
    c.add_argument("--momentum", type=NON_NEGATIVE, help="momentum (default: the model's)")
    c.add_argument("--save", help="write the fine-tuned model here after every epoch (atomic)")
    c.add_argument("--log", help="CSV log, one row per epoch")
    c.add_argument("--checkpoint-every", type=COUNT, default=0, metavar="N", help="checkpoint (SAVE.ckpt) every N steps")
    c.add_argument("--resume", action="store_true", help="continue from the checkpoint (pre-training is not redone)")
    for q in (f, c):
        q.add_argument("--limit", type=POSITIVE_INT, help="use only the first N training images")
        q.add_argument("--seed", type=COUNT, default=0, help="seed (patches, k-means, classifier)")
        q.add_argument("--threads", type=POSITIVE_INT, default=None,
                       help="BLAS threads (features default 1: its products are small and a busy machine "
                            "makes BLAS threads spin; convnet default all cores)")  # fmt: skip
        q.add_argument("--filters", metavar="PNG", help="draw the learned filters into this PNG")
        q.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.set_defaults(run=cmd_convnet)
    return p


def _progress(total, desc, args, unit):
    from ..training.progress import Progress

    return Progress(total, desc, unit=unit, enabled=not args.no_progress)


def cmd_features(args) -> int:
    """``ember pretrain features``: fit the k-means pipeline, encode, classify, report."""
    from .. import runtime

    runtime.configure_threads(args.threads or 1)
    import numpy as np

    from ..data.mnist import load_mnist
    from ..unsup.pipeline import accuracy, fit_kmeans_pipeline, train_linear

    data = load_mnist()
    (x_train, y_train), (x_test, y_test) = data["train"], data["test"]
    if args.limit:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    if args.test_limit:
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]
    if args.patch > 28:
        raise ValueError(f"--patch {args.patch} is larger than the 28x28 images")
    code_size = (28 - args.patch) // args.stride + 1
    if args.grid > code_size:
        raise ValueError(f"--grid {args.grid} is larger than the {code_size}x{code_size} code maps")
    psd = args.dictionary == "psd"
    k = args.k or (256 if psd else 400)
    args.pool = args.pool or ("sum" if psd else "max")  # measured best for each (docs/unsupervised.md)
    n_patches = args.patches or (100000 if psd else 400000)
    what = (f"K={k} PSD (lambda {args.lambd:g}), tanh encoder, split rectification" if psd else
            f"K={k}{' spherical' if args.spherical else ''} k-means, triangle code")  # fmt: skip
    print(f"ember pretrain features: MNIST ({len(y_train)} train / {len(y_test)} test), {args.patch}x{args.patch} patches, "
          f"{what}, {args.pool} pooling {args.grid}x{args.grid}, seed {args.seed}", flush=True)  # fmt: skip
    start = time.perf_counter()
    pool_kw = dict(stride=args.stride, pool=args.pool, grid=args.grid, p=args.pool_p, beta=args.pool_beta)
    if psd:
        from ..unsup.sparse_pipeline import fit_psd_pipeline

        bar = _progress(args.psd_epochs * (n_patches // 256), "PSD", args, "batches")
        pipe, psd_model = fit_psd_pipeline(x_train, k=k, patch=args.patch, n_patches=n_patches, lambd=args.lambd,
                                           epochs=args.psd_epochs, contrast_eps=args.contrast_eps,
                                           whiten_eps=args.whiten_eps, seed=args.seed,
                                           progress=lambda i, n, e: bar.update(1, energy=e), **pool_kw)  # fmt: skip
    else:
        bar = _progress(args.iterations, "k-means", args, "passes")
        pipe = fit_kmeans_pipeline(x_train, k=k, patch=args.patch, n_patches=n_patches, iterations=args.iterations,
                                   spherical=args.spherical, contrast_eps=args.contrast_eps, whiten_eps=args.whiten_eps,
                                   seed=args.seed, progress=lambda i, n: bar.update(1), **pool_kw)  # fmt: skip
    bar.close()
    t_dict = time.perf_counter() - start
    print(f"dictionary: {k} {'PSD atoms' if psd else 'centroids'} from {n_patches} patches ({t_dict:.1f}s)", flush=True)
    if psd:
        from ..unsup.patches import random_patches
        from ..unsup.sparse_pipeline import encoder_error

        held = random_patches(x_test, args.patch, 2000, np.random.default_rng(args.seed + 1), scale=1 / 255)
        error = encoder_error(psd_model, pipe.whitening.transform(held))
        print(f"PSD encoder error ||F(x) - z*|| / ||z*|| on 2000 held-out test patches: {error:.3f}", flush=True)
    if args.filters:
        from ..viz import filter_grid

        filter_grid(pipe.encoder.filters().reshape(-1, args.patch, args.patch), args.filters, scale=4)
        print(f"dictionary drawn in {args.filters}")
    features = []
    for name, x in (("train", x_train), ("test", x_test)):
        bar = _progress(len(x), f"encoding {name}", args, "images")
        done = [0]

        def tick(n, bar=bar, done=done):
            bar.update(n - done[0])
            done[0] = n

        features.append(pipe.transform(x, chunk=args.chunk, progress=tick))
        bar.close()
    t_enc = time.perf_counter() - start - t_dict
    print(f"features: {features[0].shape[1]} per image ({t_enc:.1f}s)", flush=True)
    bar = _progress(args.epochs, "classifier", args, "epochs")
    model, standardize = train_linear(features[0], y_train, epochs=args.epochs, lr=args.lr,
                                      weight_decay=args.weight_decay, loss=args.loss, seed=args.seed,
                                      progress=lambda e, loss: bar.update(1, loss=loss))  # fmt: skip
    bar.close()
    acc = accuracy(model, standardize, features[1], y_test)
    train_acc = accuracy(model, standardize, features[0][:10000], y_train[:10000])
    total = time.perf_counter() - start
    print(f"test accuracy {acc * 100:.2f}% (train {train_acc * 100:.2f}% on the first 10000); total {total:.1f}s "
          f"= {total / 60:.1f} min (dictionary {t_dict:.0f}s, encoding {t_enc:.0f}s, classifier "
          f"{total - t_dict - t_enc:.0f}s; CPU time {time.process_time():.0f}s)")  # fmt: skip
    if args.save:
        from ..tensor_file import write_tensors

        linear = model.get(0)
        arrays = {**pipe.encoder.arrays(), "whiten_mean": pipe.whitening.mean, "whiten_w": pipe.whitening.w,
                  "linear.weight": linear.weight, "linear.bias": linear.bias,
                  "feature_mean": standardize.mean, "feature_std": standardize.std}  # fmt: skip
        meta = {"format": "ember-unsup-features", "dictionary": args.dictionary, "patch": str(args.patch), "stride": str(args.stride),
                "pool": args.pool, "grid": str(args.grid), "contrast_eps": str(args.contrast_eps),
                "whiten_eps": str(args.whiten_eps), "test_accuracy": f"{acc:.4f}"}  # fmt: skip
        write_tensors(args.save, arrays, meta)
        print(f"dictionary, whitening and classifier written to {args.save}")
    return 0


def cmd_convnet(args) -> int:
    """``ember pretrain convnet``: k-means pre-training of the filter banks, then ``fit``."""
    from .. import runtime

    if args.threads:
        runtime.configure_threads(args.threads)
    import numpy as np

    from .. import nn
    from ..models import get_model
    from ..nn.init import manual_seed
    from ..training import TrainOptions, fit, load_dataset, model_metadata
    from ..unsup.pretrain import convolutions, pretrain_convolutions

    spec = get_model(args.model)
    d = spec.defaults
    checkpoint = ((args.save or "ember") + ".ckpt") if (args.checkpoint_every or args.resume) else None
    options = TrainOptions(epochs=args.epochs or d.get("epochs", 10), batch_size=args.batch_size or d.get("batch_size", 64),
                           lr=args.lr if args.lr is not None else d.get("lr"),
                           lr_decay=args.lr_decay if args.lr_decay is not None else d.get("lr_decay", 0.0),
                           momentum=args.momentum if args.momentum is not None else d.get("momentum"),
                           seed=args.seed, save=args.save, log=args.log, checkpoint=checkpoint,
                           checkpoint_every=args.checkpoint_every, resume=args.resume, progress=not args.no_progress)  # fmt: skip
    manual_seed(args.seed)
    data = load_dataset(spec.input_shape, limit=args.limit, seed=args.seed)
    model = spec.build(n_classes=data.n_classes, rng=np.random.default_rng(args.seed))
    n_convs = len(convolutions(model))
    if not n_convs:
        raise ValueError(f"--model {args.model} has no SpatialConvolution to pre-train")
    if args.stages[-1] >= n_convs:
        raise ValueError(f"--stages: {args.model} has {n_convs} filter banks, got stage {args.stages[-1] + 1}")
    start = time.perf_counter()
    how = "random initialisation" if args.random_init else f"stages {','.join(str(s + 1) for s in args.stages)} pre-trained"
    print(f"ember pretrain convnet: {args.model} on {data.name} ({len(data.y_train)} train / {len(data.y_test)} test), "
          f"{how}, {options.epochs} epochs, seed {args.seed}", flush=True)  # fmt: skip
    if not args.random_init and not args.resume:
        pretrain_convolutions(model, data.x_train, stages=args.stages, n_patches=args.patches,
                              whiten_eps=args.whiten_eps, seed=args.seed, n_images=args.pretrain_images,
                              progress=lambda message: print(message, flush=True))  # fmt: skip
        print(f"pre-training done ({time.perf_counter() - start:.1f}s)", flush=True)
    if args.filters:
        from ..viz import filter_grid, first_layer_weight

        filter_grid(first_layer_weight(model), args.filters)
        print(f"first-layer filters (before fine-tuning) drawn in {args.filters}")
    meta = {"model": args.model, "input_shape": "[1, 28, 28]", "pretrained": "none" if args.random_init else
            ",".join(str(s + 1) for s in args.stages), **model_metadata(data)}  # fmt: skip
    history = fit(model, nn.ClassNLLCriterion(), data, options, save_metadata=meta)
    if history:
        print(f"test accuracy {history[-1]['test_acc'] * 100:.2f}% after {len(history)} epochs "
              f"({time.perf_counter() - start:.1f}s in all)")  # fmt: skip
    return 0


def main(argv=None) -> int:
    """``python -m ember.cli.pretrain ...`` (the same as ``ember pretrain ...``)."""
    from .main import main as ember_main

    return ember_main(["pretrain", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
