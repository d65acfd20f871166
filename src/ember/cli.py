"""The ``ember`` command (also ``python -m ember``).

    ember train [--model mnist-mlp] [--epochs 10] [--batch-size 64] [--lr 0.05] ...
    ember eval MODEL_FILE
    ember models
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _train_parser(sub):
    p = sub.add_parser("train", help="train a network on MNIST (bundled) or an .npz dataset")
    p.add_argument("--model", default="mnist-mlp", help="network to train (see `ember models`); default mnist-mlp")
    p.add_argument("--epochs", type=int, help="passes over the training set (default: the model's, 10)")
    p.add_argument("--batch-size", type=int, help="minibatch size (default: the model's)")
    p.add_argument("--lr", type=float, help="learning rate (default: the model's)")
    p.add_argument("--lr-decay", type=float, help="Torch7 annealing lr / (1 + t * decay), t = steps (default: the model's)")
    p.add_argument("--momentum", type=float, help="momentum (classical, dampening 0; default: the model's)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    p.add_argument("--l1", type=float, default=0.0, help="L1 weight decay")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout probability in the hidden layers")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation, shuffling and dropout")
    p.add_argument("--threads", type=int, help="BLAS threads (default: all cores)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default: the bundled copy)")
    p.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test instead of MNIST")
    p.add_argument("--limit", type=int, help="use only the first N training samples (quick runs)")
    p.add_argument("--save", help="write the model here after every epoch (atomic; pickle-free)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, only the epoch summaries")
    p.set_defaults(run=cmd_train)


def _eval_parser(sub):
    p = sub.add_parser("eval", help="test accuracy and confusion matrix of a saved model")
    p.add_argument("model_file")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files (default: the bundled copy)")
    p.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test (as used in training)")
    p.add_argument("--threads", type=int)
    p.set_defaults(run=cmd_eval)


def _models_parser(sub):
    p = sub.add_parser("models", help="list the networks `ember train --model` knows")
    p.set_defaults(run=cmd_models)


def build_parser():
    parser = argparse.ArgumentParser(prog="ember", description="ember: module-based deep learning, the Torch7 nn way")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _models_parser(sub)
    return parser


def _threads(args):
    if getattr(args, "threads", None):
        from .threads import set_num_threads

        set_num_threads(args.threads)


def cmd_models(args):
    from .models import MODELS

    for name, spec in sorted(MODELS.items()):
        print(f"{name:<14} input {'x'.join(map(str, spec.input_shape)):<9} {spec.description}")
    return 0


def cmd_train(args):
    from . import nn
    from .models import get_model
    from .nn.init import manual_seed
    from .train import TrainOptions, fit, load_dataset, normalization_metadata

    _threads(args)
    spec = get_model(args.model)
    d = spec.defaults
    options = TrainOptions(
        epochs=args.epochs or d.get("epochs", 10), batch_size=args.batch_size or d.get("batch_size", 64),
        lr=args.lr if args.lr is not None else d.get("lr", 0.05), lr_decay=args.lr_decay if args.lr_decay is not None else d.get("lr_decay", 0.0),
        momentum=args.momentum if args.momentum is not None else d.get("momentum", 0.9),
        weight_decay=args.weight_decay, l1=args.l1, seed=args.seed, save=args.save, progress=not args.no_progress,
    )  # fmt: skip
    manual_seed(args.seed)
    data = load_dataset(spec.input_shape, args.data_dir, args.data, args.limit)
    options_kw = {"dropout": args.dropout} if args.dropout else {}
    model = spec.build(n_classes=data.n_classes, rng=np.random.default_rng(args.seed), **options_kw)
    print(f"ember train: {args.model} on {data.name} ({len(data.y_train)} train / {len(data.y_test)} test), "
          f"{options.epochs} epochs, batch {options.batch_size}, lr {options.lr}, momentum {options.momentum}", flush=True)  # fmt: skip
    print(model, flush=True)
    meta = {"model": args.model, "input_shape": json.dumps(list(spec.input_shape)), **normalization_metadata(data)}
    start = time.perf_counter()
    history = fit(model, nn.ClassNLLCriterion(), data, options, save_metadata=meta)
    final = history[-1]
    print(f"test accuracy {final['test_acc'] * 100:.2f}% after {len(history)} epochs "
          f"({time.perf_counter() - start:.1f}s)" + (f"; model saved to {args.save}" if args.save else ""))  # fmt: skip
    return 0


def format_confusion(matrix, labels=None):
    """A printable confusion matrix: rows are targets, columns predictions (Torch7)."""
    n = matrix.shape[0]
    labels = labels or [str(i) for i in range(n)]
    width = max(6, len(str(int(matrix.max()))) + 1)
    lines = ["target\\pred " + "".join(f"{lab:>{width}}" for lab in labels) + f"{'recall':>9}"]
    for i in range(n):
        total = matrix[i].sum()
        recall = matrix[i, i] / total * 100 if total else 0.0
        lines.append(f"{labels[i]:>11} " + "".join(f"{int(v):>{width}}" for v in matrix[i]) + f"{recall:8.2f}%")
    return "\n".join(lines)


def cmd_eval(args):
    from . import io, nn
    from .data import Standardizer
    from .train import evaluate, load_dataset

    _threads(args)
    model, meta = io.load(args.model_file, with_metadata=True)
    input_shape = tuple(json.loads(meta.get("input_shape", "[784]")))
    data = load_dataset(input_shape, args.data_dir, args.data or (None if meta.get("dataset", "mnist") == "mnist" else meta["dataset"]))
    if "normalization" in meta:  # preprocess exactly as in training
        norm = json.loads(meta["normalization"])
        scaler = Standardizer.from_state(norm["per"], norm)
        raw = data.x_test * data.standardizer.std + data.standardizer.mean
        data.x_test = scaler.transform(raw).reshape(data.x_test.shape)
    loss, acc, pred = evaluate(model, nn.ClassNLLCriterion(), data.x_test, data.y_test)
    n = data.n_classes
    matrix = np.zeros((n, n), dtype=np.int64)
    np.add.at(matrix, (data.y_test, pred), 1)
    print(f"{args.model_file}: {meta.get('model', 'model')} on {data.name} test set: "
          f"accuracy {acc * 100:.2f}% ({int(matrix.trace())}/{len(pred)}), loss {loss:.4f}")  # fmt: skip
    print(format_confusion(matrix))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .errors import FormatError, ShapeError, TrainingError

    try:
        return args.run(args)
    except (TrainingError, FormatError, ShapeError, FileNotFoundError, ValueError) as error:
        print(f"ember {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ember {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
